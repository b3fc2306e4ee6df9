/**
 * The pool: Python's `multiprocessing.Pool` over threads or processes, without its hangs.
 *
 * One owner per moving part: the queue (tasks not yet handed out), the workers (each with the
 * tasks handed to it, in order), and the pool state (running, closed, terminated). A task
 * settles exactly once: with its value, its error, or an error saying why it cannot finish.
 */
import { EventEmitter } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ResourceLimits } from 'node:worker_threads';
import { serialize } from 'node:v8';
import {
  AsyncResult,
  IMapIterator,
  MapResult,
  type ReportCallbackError,
  type TaskSink,
} from './async-result';
import { ProcessWorker } from './backend/process';
import { ThreadWorker } from './backend/thread';
import type { Backend, WorkerExit, WorkerHandle } from './backend/worker-handle';
import {
  buildUncaptured,
  decodeThrown,
  defineHidden,
  describeThrown,
  unsendableReason,
} from './error-codec';
import { hasShared, marshalArgs } from './shared/marshal';
import {
  PoolStateError,
  PoolTerminatedError,
  SerializationError,
  TaskTimeoutError,
  WorkerExitError,
  WorkerModuleError,
  type WorkerExitReason,
} from './errors';
import { tick, tracer } from './trace/emitter';
import { Fifo } from './fifo';
import { PoolTrace } from './trace/pool-trace';
import {
  Outcome,
  RESULT_STRIDE,
  TASK_STRIDE,
  TaskKind,
  packNumbers,
  type FromWorker,
  type Payload,
  type ResultBatch,
  type TaskBatch,
} from './wire';
import { checkTimeout } from './timeouts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => unknown;
/** A task function: its name in the worker module, or the function itself (its name is used). */
export type TaskFunction = string | AnyFunction;
type ArgsOf<F> = F extends (...args: infer A) => unknown ? A : unknown[];
type ResultOf<F> = F extends (...args: never[]) => infer R ? Awaited<R> : unknown;
type ItemOf<F> = F extends (item: infer I, ...rest: never[]) => unknown ? I : unknown;

export interface PoolOptions {
  /** The worker module (path, relative to the cwd, or file URL); its exports are the task functions. */
  module: string | URL;
  /** `'process'` (default for `poolscope`) or `'thread'` (default for `poolscope/dummy`). */
  backend?: Backend;
  /** Number of workers; default: `os.availableParallelism()`. `processes` is the same, as in Python. */
  size?: number;
  processes?: number;
  /** An exported function each worker runs once, with `initArgs`, before its first task. */
  initializer?: TaskFunction;
  initArgs?: unknown[];
  /** Replace a worker after it has completed this many tasks. */
  maxTasksPerChild?: number;
  /** Default per-task timeout (ms): a task over it is rejected and its worker replaced. */
  timeout?: number;
  /** Environment of worker processes (and threads). Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Node flags for worker processes. Default: this process's, less inspector and test flags. */
  execArgv?: string[];
  /** Heap limits for worker threads. */
  resourceLimits?: ResourceLimits;
  /**
   * Where tasks were submitted, for their errors' stacks. `'burst'` (default) records the site of
   * the first few tasks of each function in one synchronous run of your code, and gives later
   * ones of that run the last recorded site (their stack says so); `'every'` records each task's
   * own site, which costs a stack capture (2-6 µs) per task.
   */
  submitStacks?: 'burst' | 'every';
  /**
   * Thread backend: how long (ms) a worker that has just finished a lone task polls for the
   * next one before it sleeps, burning that much CPU at most. A sleeping thread takes tens of
   * microseconds to wake (more in a VM), which dominates a small task's round trip. Default
   * 0.3; 0 turns polling off. Either way an idle thread then blocks up to 1 ms waiting for its
   * next task before returning to its event loop.
   */
  idleSpinMs?: number;
}

export interface ApplyOptions<T> {
  callback?: (value: T) => void;
  errorCallback?: (err: Error) => void;
  /** Per-task timeout (ms), overriding the pool's. */
  timeout?: number;
}

export interface MapOptions<T> {
  chunksize?: number;
  callback?: (values: T[]) => void;
  errorCallback?: (err: Error) => void;
}

export interface IMapOptions {
  chunksize?: number;
  /** How long (ms) `next()` waits for the next result before rejecting with `TimeoutError`. */
  timeout?: number;
}

export interface WorkerExitInfo extends WorkerExit {
  workerId: number;
  pid: number | undefined;
  threadId: number | undefined;
  /** Why it ended: normal (closed), recycled (maxTasksPerChild), timeout, terminated, or a crash. */
  reason: 'normal' | 'recycled' | 'timeout' | 'terminated' | WorkerExitReason;
}

/** Python's rule for `map`'s default chunksize: about four chunks per worker. */
export function defaultChunksize(items: number, workers: number): number {
  if (items === 0) return 0;
  const chunk = Math.floor(items / (workers * 4));
  return items % (workers * 4) ? chunk + 1 : chunk;
}

type Api = 'apply' | 'map' | 'starmap' | 'imap' | 'imapUnordered';

/** Where a task was submitted: a captured stack, shared by the later tasks of a burst. */
interface SubmitSite {
  stack?: string;
  /** The task the stack was captured for. */
  readonly task: number;
  /** The stack's frames, once formatted. */
  frames: string | undefined;
  /** Failed tasks submitted here so far (see remoteError). */
  failures: number;
}

const NO_OPTIONS: ApplyOptions<unknown> = Object.freeze({});

/**
 * For work deferred to the end of the current job: a promise reaction costs half what
 * queueMicrotask does (which wraps each callback in an AsyncResource).
 */
const SETTLED = Promise.resolve();

/** PoolOptions.idleSpinMs: its default, and a bound that keeps a typo from burning a core. */
const DEFAULT_IDLE_SPIN_MS = 0.3;
const MAX_IDLE_SPIN_MS = 10;

/** Tasks of one function, in one synchronous burst, that get a stack of their own. */
const EXACT_SITES_PER_BURST = 8;

class Task {
  slot: WorkerSlot | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Times for the trace (the emitter's `tick()`, whole µs); 0 when not tracing. */
  submittedAt = 0;
  startedAt = 0;
  constructor(
    readonly api: Api,
    readonly id: number,
    readonly fn: string,
    readonly payload: Payload,
    readonly kind: TaskKind,
    readonly sink: TaskSink,
    /** First item's position, for map chunks. */
    readonly offset: number,
    readonly count: number,
    readonly timeoutMs: number | undefined,
    readonly caller: SubmitSite,
  ) {}

  describe(): string {
    return `task #${this.id} ${this.fn}()`;
  }
}

type SlotState = 'starting' | 'ready' | 'retiring' | 'gone';

class WorkerSlot {
  state: SlotState = 'starting';
  /**
   * Tasks handed to this worker, in the order it runs them, taken from the head as results
   * arrive: a long burst puts thousands here.
   */
  readonly inflight = new Fifo<Task>();
  assigned = 0;
  completed = 0;
  /** Set when the pool stops the worker on purpose. */
  stopReason: 'normal' | 'recycled' | 'timeout' | 'terminated' | undefined;
  startupError: WorkerModuleError | undefined;
  fatal: Error | undefined;
  /** Set when the worker said it was exiting on its own: its tasks have failed already. */
  exiting = false;
  /** Those tasks, for the trace's record of the exit. */
  lost: number[] = [];
  /** A task with a timeout runs alone on its worker, so its clock starts when it starts. */
  timedTask: Task | undefined;
  readonly exited: Promise<void>;
  markExited!: () => void;
  private label: string | undefined;
  private tailSite: SubmitSite | undefined;
  private tailOwn = false;
  private tail = '';

  constructor(
    readonly workerId: number,
    readonly handle: WorkerHandle,
  ) {
    this.exited = new Promise((resolve) => (this.markExited = resolve));
  }

  /**
   * Tasks sent and not finished: a thread worker's own count says how many it has finished
   * (results not taken yet included); otherwise, those whose result has not been taken.
   */
  busy(): number {
    const handle = this.handle;
    return handle.tasksFinished ? this.assigned - handle.tasksFinished() : this.inflight.length;
  }

  /**
   * What follows a failed task's name in its stack: where it ran, where it was submitted, and the
   * submitter's frames. The same for every failure of a burst on this worker: built once for the
   * last site asked (a burst's tasks share a site), not joined again for each error.
   */
  stackTail(site: SubmitSite, own: boolean): string {
    if (this.tailSite !== site || this.tailOwn !== own) {
      this.tail = stackTail(this.describe(), site, own);
      this.tailSite = site;
      this.tailOwn = own;
    }
    return this.tail;
  }

  /** `worker 1 (thread 7)`: built once, it is in every failed task's stack. */
  describe(): string {
    if (this.label === undefined) {
      const where =
        this.handle.backend === 'thread'
          ? `thread ${this.handle.threadId}`
          : `pid ${this.handle.pid}`;
      this.label = `worker ${this.workerId} (${where})`;
    }
    return this.label;
  }
}

type PoolState = 'running' | 'closed' | 'terminated';

/** Most tasks handed to one worker at once, when the queue is deep. */
const MAX_WINDOW = 128;
const APPLY = TaskKind.Apply;
const APPLY_ONE = TaskKind.ApplyOne;

/** The array send() builds its message in, between sends. */
let spareBatch: TaskBatch | undefined = [];

/** `tasks` with its payloads let go (the array keeps its length and room). */
function clearBatch(tasks: TaskBatch): TaskBatch {
  for (let i = 2; i < tasks.length; i += TASK_STRIDE) tasks[i] = 0;
  return tasks;
}

/** In a burst of submissions, ready workers get tasks every this many (a power of two). */
const EAGER_EVERY = 64;
/** A worker that said it was exiting and has not after this long is killed. */
const EXITING_GRACE_MS = 2000;
/** Startup failures in a row (no worker ever became ready) before the pool gives up. */
const MAX_STARTUP_FAILURES = 3;

export function resolveModule(module: string | URL): string {
  let file: string;
  if (module instanceof URL || URL_LIKE.test(module)) {
    const url = module instanceof URL ? module : new URL(module);
    if (url.protocol !== 'file:') {
      throw new WorkerModuleError(
        `worker module must be a file path or a file: URL, got ${url.href}`,
        url.href,
        'resolve',
      );
    }
    file = fileURLToPath(url);
  } else {
    file = resolvePath(module);
  }
  const shown =
    String(module) === file ? file : `${file} (from '${String(module)}', cwd ${process.cwd()})`;
  if (!existsSync(file)) {
    throw new WorkerModuleError(`worker module not found: ${shown}`, file, 'resolve');
  }
  if (!statSync(file).isFile()) {
    throw new WorkerModuleError(`worker module is not a file: ${shown}`, file, 'resolve');
  }
  return pathToFileURL(file).href;
}

/** ` at file:line:col` and the line, for a syntax error the worker located. */
export function locationOf(err: Error): string {
  const where = (
    err as { location?: { file: string; line: number; column: number; lineText: string } }
  ).location;
  if (!where) return '';
  return ` at ${where.file}:${where.line}:${where.column}\n    ${where.line} | ${where.lineText}`;
}

/** A path, or a URL string (`file:`, `https:`), but not a Windows drive (`C:\\`). */
const URL_LIKE = /^[a-z][a-z0-9+.-]+:/i;

export function functionName(fn: TaskFunction, what: string): string {
  if (typeof fn === 'string') {
    if (fn.length === 0) throw new TypeError(`${what}: the function name is empty`);
    return fn;
  }
  if (typeof fn === 'function') {
    const name = fn.name.replace(/^bound /, '');
    if (!name) {
      throw new TypeError(
        `${what}: got an anonymous function; pass the name of a function the worker module exports`,
      );
    }
    return name;
  }
  throw new TypeError(
    `${what}: expected a function name or an exported function, got ${typeof fn}`,
  );
}

/** What follows a failed task's name in its stack (see WorkerSlot.stackTail). */
function stackTail(worker: string, site: SubmitSite, own: boolean): string {
  const where = own ? 'submitted at' : `submitted in the same burst as task #${site.task}, at`;
  return ` ran in ${worker}; ${where}: ---\n${siteFrames(site)}`;
}

function captureSite(task: number, publicMethod: AnyFunction): SubmitSite {
  const site: SubmitSite = { task, frames: undefined, failures: 0 };
  Error.captureStackTrace(site, publicMethod);
  return site;
}

/** The frames of a submit site, formatted once however many tasks share the site. */
function siteFrames(site: SubmitSite): string {
  if (site.frames === undefined) {
    const stack = site.stack;
    const at = stack ? stack.indexOf('\n    at ') : -1;
    site.frames = at === -1 ? '' : stack!.slice(at + 1);
  }
  return site.frames;
}

/** The computations behind an object's lazy properties (see defineLazy), under one hidden key. */
const LAZY = Symbol('poolscope.lazy');
type LazyKey = 'stack' | 'callerStack';
interface LazyHolder {
  [LAZY]?: Partial<Record<LazyKey, () => string>>;
}

/** One accessor per key, shared by every object (see defineLazy). */
const LAZY_ACCESSORS = {} as Record<LazyKey, PropertyDescriptor>;
for (const key of ['stack', 'callerStack'] as const) {
  LAZY_ACCESSORS[key] = {
    configurable: true,
    enumerable: false,
    get(this: LazyHolder): string {
      const value = this[LAZY]![key]!();
      defineHidden(this, key, value);
      return value;
    },
    set(this: LazyHolder, value: string): void {
      defineHidden(this, key, value);
    },
  };
}

/**
 * A non-enumerable property computed on first read (and writable, as a stack is).
 *
 * Every object gets the same getter and setter, which find `compute` under a hidden key. With a
 * getter closure of its own, each error had a hidden class of its own: the engine keeps those in
 * the old generation, so the young objects they pointed at (the closures, the strings) survived
 * every minor collection until a full one. Failing tasks one at a time made each minor collection
 * of the main thread 10–30 times longer (3–9 ms instead of 0.3).
 */
function defineLazy(target: object, key: LazyKey, compute: () => string): void {
  let thunks = (target as LazyHolder)[LAZY];
  if (thunks === undefined) {
    thunks = {};
    defineHidden(target, LAZY, thunks);
  }
  thunks[key] = compute;
  Object.defineProperty(target, key, LAZY_ACCESSORS[key]);
}

/**
 * Arguments a worker gets in its init message (a pool's `initArgs`, a Process's target args),
 * checked before anything is spawned: a worker whose init message could not be sent waited for
 * it for ever and kept the program alive. A SerializationError names the first that cannot go.
 */
export function checkStartArgs(
  args: readonly unknown[],
  backend: Backend,
  fn: string,
  which: (index: number) => string,
): void {
  for (let i = 0; i < args.length; i++) {
    try {
      if (backend === 'thread') structuredClone(args[i]);
      else serialize(args[i]);
    } catch (err) {
      throw new SerializationError(
        `${which(i)}: ${unsendableReason(args[i], err)}`,
        'argument',
        i,
        fn,
        { cause: err },
      );
    }
  }
}

let nextPoolId = 1;

/**
 * One Task and one AsyncResult, kept for the life of the process. V8 holds the hidden classes of
 * objects built field by field only weakly: once a burst's tasks had all been collected, a full
 * garbage collection freed theirs, and every optimized function that had embedded them was
 * deoptimized (22–28 of the pool's functions after each collection between bursts, seen with
 * --trace-deopt; 4 with these kept), to be compiled again during the next burst.
 */
const KEPT_SHAPES: object[] = [];
function keepShapes(): void {
  if (KEPT_SHAPES.length > 0) return;
  const result = new AsyncResult<unknown>('(kept)', 0, undefined, undefined, () => {});
  const site = captureSite(0, keepShapes);
  const task = new Task('apply', 0, '(kept)', [0], TaskKind.Apply, result, 0, 1, undefined, site);
  KEPT_SHAPES.push(result, task);
}

/** Marshaled arguments -> the shared objects they describe (see sharedArgs). */
const pinned = new WeakMap<unknown[], unknown[]>();

/**
 * A pool of workers running the functions a worker module exports.
 *
 * ```ts
 * const pool = new Pool({ module: new URL('./tasks.mjs', import.meta.url), size: 4 });
 * pool.applyAsync('square', [3], { callback: console.log, errorCallback: console.error });
 * console.log(await pool.map('square', [1, 2, 3]));
 * pool.close(); await pool.join();
 * ```
 */
export class Pool extends EventEmitter {
  readonly id = nextPoolId++;
  readonly backend: Backend;
  readonly size: number;
  /** file: URL of the worker module. */
  readonly module: string;
  private state: PoolState = 'running';
  private broken: Error | undefined;
  private readonly queue = new Fifo<Task>();
  private readonly slots = new Set<WorkerSlot>();
  private nextWorkerId = 1;
  private nextTaskId = 1;
  /** Tasks submitted and not yet settled. */
  private pending = 0;
  private dispatchScheduled = false;
  /** Tasks submitted, counted to send some to workers every EAGER_EVERY of a long burst. */
  private submittedInTurn = 0;
  /** An eager send failed in this burst: the rest waits for its end (see fill). */
  private eagerFailed = false;
  private respawnScheduled = false;
  private startupFailures = 0;
  private refd = true;
  private readonly options: PoolOptions;
  private readonly initializer: string | undefined;
  /** `initArgs` as each worker's init message carries them (shared objects as descriptors). */
  private readonly initArgs: unknown[];
  private readonly idleSpinMs: number;
  private readonly reportCallbackError: ReportCallbackError;
  private finished: Promise<void> | undefined;
  /** Present only when a trace sink is attached. */
  private readonly trace = tracer ? new PoolTrace(tracer, this.id) : undefined;
  /** Submit sites recorded in the current synchronous burst, by method and function. */
  private readonly burst = new Map<AnyFunction, Map<string, { site: SubmitSite; exact: number }>>();
  private burstOpen = false;

  constructor(options: PoolOptions) {
    super();
    keepShapes();
    if (!options || typeof options !== 'object' || options.module === undefined) {
      throw new TypeError(
        "new Pool(options) needs options.module: the worker module's path or file URL",
      );
    }
    this.options = options;
    this.backend = options.backend ?? 'process';
    if (this.backend !== 'process' && this.backend !== 'thread') {
      throw new TypeError(`backend must be 'process' or 'thread', got ${String(this.backend)}`);
    }
    this.size = options.size ?? options.processes ?? availableParallelism();
    if (!Number.isInteger(this.size) || this.size < 1) {
      throw new RangeError(`pool size must be a positive integer, got ${this.size}`);
    }
    if (
      options.maxTasksPerChild !== undefined &&
      (!Number.isInteger(options.maxTasksPerChild) || options.maxTasksPerChild < 1)
    ) {
      throw new RangeError(
        `maxTasksPerChild must be a positive integer, got ${options.maxTasksPerChild}`,
      );
    }
    checkTimeout(options.timeout, 'new Pool()');
    const spin = options.idleSpinMs ?? DEFAULT_IDLE_SPIN_MS;
    if (typeof spin !== 'number' || !(spin >= 0 && spin <= MAX_IDLE_SPIN_MS)) {
      throw new RangeError(
        `idleSpinMs must be a number of milliseconds from 0 to ${MAX_IDLE_SPIN_MS}, got ${String(spin)}`,
      );
    }
    this.idleSpinMs = this.backend === 'thread' ? spin : 0;
    this.module = resolveModule(options.module);
    this.initializer =
      options.initializer === undefined
        ? undefined
        : functionName(options.initializer, 'initializer');
    this.initArgs = this.initArgsFor(options.initArgs);
    // Called while results are being settled: nothing may escape it, or the rest of a batch of
    // results would never settle. A listener that throws is told about on stderr.
    this.reportCallbackError = (err, which) => {
      if (this.listenerCount('callbackError') > 0) {
        try {
          this.emit('callbackError', err, which);
          return;
        } catch (listenerError) {
          process.stderr.write(
            `poolscope: a 'callbackError' listener threw (the pool carries on):\n${describeThrown(listenerError)}\n` +
              `while it was told that a task's ${which} threw:\n${describeThrown(err)}\n`,
          );
          return;
        }
      }
      process.stderr.write(
        `poolscope: a task's ${which} threw (the pool carries on):\n${describeThrown(err)}\n`,
      );
    };
    this.trace?.created(this.backend, this.size, this.module, {
      maxTasksPerChild: options.maxTasksPerChild ?? null,
      timeout: options.timeout ?? null,
      initializer: this.initializer ?? null,
    });
    for (let i = 0; i < this.size; i++) this.spawn();
    this.updateRef();
  }

  // ---- Submitting work

  /** Runs `fn(...args)` in a worker; the returned `AsyncResult` settles with its value or error. */
  applyAsync<F extends AnyFunction>(
    fn: F,
    args?: ArgsOf<F>,
    options?: ApplyOptions<ResultOf<F>>,
  ): AsyncResult<ResultOf<F>>;
  applyAsync<R = unknown>(fn: string, args?: unknown[], options?: ApplyOptions<R>): AsyncResult<R>;
  applyAsync(
    fn: TaskFunction,
    args: unknown[] = [],
    options: ApplyOptions<unknown> = NO_OPTIONS,
  ): AsyncResult<unknown> {
    return this.submitApply(fn, args, options, this.applyAsync);
  }

  /** `applyAsync(fn, args).get()`: the value, or the error. */
  apply<F extends AnyFunction>(fn: F, args?: ArgsOf<F>): Promise<ResultOf<F>>;
  apply<R = unknown>(fn: string, args?: unknown[]): Promise<R>;
  apply(fn: TaskFunction, args: unknown[] = []): Promise<unknown> {
    return this.submitApply(fn, args, NO_OPTIONS, this.apply).get();
  }

  private submitApply(
    fn: TaskFunction,
    args: unknown[],
    options: ApplyOptions<unknown>,
    publicMethod: AnyFunction,
  ): AsyncResult<unknown> {
    const name = functionName(fn, 'applyAsync');
    if (!Array.isArray(args)) {
      throw new TypeError(
        `applyAsync('${name}', args): args must be an array of arguments, got ${typeof args}; write [${String(args)}]`,
      );
    }
    if (this.state !== 'running') this.checkRunning(`applyAsync('${name}')`);
    if (options.timeout !== undefined) checkTimeout(options.timeout, `applyAsync('${name}')`);
    if (hasShared(args)) args = this.sharedArgs(args);
    const id = this.nextTaskId++;
    const caller = this.submitSite(id, name, publicMethod);
    const result = new AsyncResult<unknown>(
      name,
      id,
      options.callback,
      options.errorCallback,
      this.reportCallbackError,
      this.trace,
    );
    const timeout = options.timeout ?? this.options.timeout;
    this.enqueue(new Task('apply', id, name, args, TaskKind.Apply, result, 0, 1, timeout, caller));
    return result;
  }

  /**
   * The submit site of task `id`. A stack capture costs more than the rest of submitting a
   * trivial task, so in a burst (a loop of applyAsync) only the first few tasks of each function
   * get their own; the rest share the last one, which their error's stack says.
   */
  private submitSite(id: number, name: string, publicMethod: AnyFunction): SubmitSite {
    if (this.options.submitStacks === 'every') return captureSite(id, publicMethod);
    let byName = this.burst.get(publicMethod);
    if (!byName) this.burst.set(publicMethod, (byName = new Map()));
    const seen = byName.get(name);
    if (seen && seen.exact >= EXACT_SITES_PER_BURST) return seen.site;
    const site = captureSite(id, publicMethod);
    if (seen) {
      seen.site = site;
      seen.exact++;
    } else byName.set(name, { site, exact: 1 });
    if (!this.burstOpen) {
      this.burstOpen = true;
      void SETTLED.then(() => {
        this.burst.clear();
        this.burstOpen = false;
      });
    }
    return site;
  }

  /** Applies `fn` to every item; the values in input order (Python's `map`). */
  map<F extends AnyFunction>(
    fn: F,
    items: Iterable<ItemOf<F>>,
    chunksize?: number,
  ): Promise<ResultOf<F>[]>;
  map<R = unknown>(fn: string, items: Iterable<unknown>, chunksize?: number): Promise<R[]>;
  map(fn: TaskFunction, items: Iterable<unknown>, chunksize?: number): Promise<unknown[]> {
    return this.submitMap(fn, items, { chunksize }, TaskKind.MapChunk, this.map).get();
  }

  mapAsync<F extends AnyFunction>(
    fn: F,
    items: Iterable<ItemOf<F>>,
    options?: MapOptions<ResultOf<F>>,
  ): MapResult<ResultOf<F>>;
  mapAsync<R = unknown>(
    fn: string,
    items: Iterable<unknown>,
    options?: MapOptions<R>,
  ): MapResult<R>;
  mapAsync(
    fn: TaskFunction,
    items: Iterable<unknown>,
    options: MapOptions<unknown> = {},
  ): MapResult<unknown> {
    return this.submitMap(fn, items, options, TaskKind.MapChunk, this.mapAsync);
  }

  /** Like `map`, with each item an argument list: `fn(...item)`. */
  starmap<F extends AnyFunction>(
    fn: F,
    items: Iterable<ArgsOf<F>>,
    chunksize?: number,
  ): Promise<ResultOf<F>[]>;
  starmap<R = unknown>(fn: string, items: Iterable<unknown[]>, chunksize?: number): Promise<R[]>;
  starmap(fn: TaskFunction, items: Iterable<unknown[]>, chunksize?: number): Promise<unknown[]> {
    return this.submitMap(fn, items, { chunksize }, TaskKind.StarmapChunk, this.starmap).get();
  }

  starmapAsync<F extends AnyFunction>(
    fn: F,
    items: Iterable<ArgsOf<F>>,
    options?: MapOptions<ResultOf<F>>,
  ): MapResult<ResultOf<F>>;
  starmapAsync<R = unknown>(
    fn: string,
    items: Iterable<unknown[]>,
    options?: MapOptions<R>,
  ): MapResult<R>;
  starmapAsync(
    fn: TaskFunction,
    items: Iterable<unknown[]>,
    options: MapOptions<unknown> = {},
  ): MapResult<unknown> {
    return this.submitMap(fn, items, options, TaskKind.StarmapChunk, this.starmapAsync);
  }

  private submitMap(
    fn: TaskFunction,
    items: Iterable<unknown>,
    options: MapOptions<unknown>,
    kind: TaskKind,
    publicMethod: AnyFunction,
  ): MapResult<unknown> {
    const name = functionName(fn, 'map');
    const list = this.itemsOf(items, name, kind);
    this.checkRunning(`map('${name}')`);
    const chunksize = this.chunksizeOf(options.chunksize, list.length, name);
    const caller = captureSite(this.nextTaskId, publicMethod);
    const chunks = chunksize === 0 ? 0 : Math.ceil(list.length / chunksize);
    const result = new MapResult<unknown>(
      `map of ${name}() over ${list.length} items`,
      list.length,
      chunks,
      options.callback,
      options.errorCallback,
      this.reportCallbackError,
      this.trace,
      this.nextTaskId,
    );
    const api = kind === TaskKind.StarmapChunk ? 'starmap' : 'map';
    this.enqueueChunks(api, name, list, chunksize, kind, result, caller);
    return result;
  }

  /** Results one by one, in input order, as an async iterable (`for await`). Chunksize 1 by default. */
  imap<F extends AnyFunction>(
    fn: F,
    items: Iterable<ItemOf<F>>,
    options?: IMapOptions,
  ): IMapIterator<ResultOf<F>>;
  imap<R = unknown>(fn: string, items: Iterable<unknown>, options?: IMapOptions): IMapIterator<R>;
  imap(
    fn: TaskFunction,
    items: Iterable<unknown>,
    options: IMapOptions = {},
  ): IMapIterator<unknown> {
    return this.submitIMap(fn, items, options, true, this.imap);
  }

  /** Like `imap`, in the order results arrive. */
  imapUnordered<F extends AnyFunction>(
    fn: F,
    items: Iterable<ItemOf<F>>,
    options?: IMapOptions,
  ): IMapIterator<ResultOf<F>>;
  imapUnordered<R = unknown>(
    fn: string,
    items: Iterable<unknown>,
    options?: IMapOptions,
  ): IMapIterator<R>;
  imapUnordered(
    fn: TaskFunction,
    items: Iterable<unknown>,
    options: IMapOptions = {},
  ): IMapIterator<unknown> {
    return this.submitIMap(fn, items, options, false, this.imapUnordered);
  }

  private submitIMap(
    fn: TaskFunction,
    items: Iterable<unknown>,
    options: IMapOptions,
    ordered: boolean,
    publicMethod: AnyFunction,
  ): IMapIterator<unknown> {
    const name = functionName(fn, ordered ? 'imap' : 'imapUnordered');
    const list = this.itemsOf(items, name, TaskKind.MapChunk);
    this.checkRunning(`${ordered ? 'imap' : 'imapUnordered'}('${name}')`);
    const chunksize = options.chunksize ?? 1;
    if (!Number.isInteger(chunksize) || chunksize < 1) {
      throw new RangeError(`chunksize must be a positive integer, got ${chunksize}`);
    }
    const caller = captureSite(this.nextTaskId, publicMethod);
    const iterator = new IMapIterator<unknown>(
      `${ordered ? 'imap' : 'imapUnordered'} of ${name}()`,
      list.length,
      ordered,
      options.timeout,
    );
    this.enqueueChunks(
      ordered ? 'imap' : 'imapUnordered',
      name,
      list,
      chunksize,
      TaskKind.MapChunk,
      iterator,
      caller,
    );
    return iterator;
  }

  /** Shared memory objects travel as descriptors of the same memory. */
  private sharedArgs(args: unknown[]): unknown[] {
    const marshaled = marshalArgs(args, this.backend);
    // The originals keep their memory open until the task is done with it.
    pinned.set(marshaled, args);
    return marshaled;
  }

  private itemsOf(items: Iterable<unknown>, name: string, kind: TaskKind): unknown[] {
    if (items === null || typeof (items as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`map('${name}', items): items must be iterable, got ${typeof items}`);
    }
    let list = Array.isArray(items) ? items : [...items];
    if (kind === TaskKind.StarmapChunk) {
      if (list.some((item) => Array.isArray(item) && hasShared(item))) {
        list = list.map((item) =>
          Array.isArray(item) && hasShared(item) ? this.sharedArgs(item) : item,
        );
      }
    } else if (hasShared(list)) {
      list = this.sharedArgs(list);
    }
    if (kind === TaskKind.StarmapChunk) {
      const bad = list.findIndex((item) => !Array.isArray(item));
      if (bad !== -1) {
        throw new TypeError(`starmap('${name}', items): item ${bad} is not an array of arguments`);
      }
    }
    return list;
  }

  private chunksizeOf(chunksize: number | undefined, length: number, name: string): number {
    if (chunksize === undefined) return defaultChunksize(length, this.size);
    if (!Number.isInteger(chunksize) || chunksize < 1) {
      throw new RangeError(
        `map('${name}'): chunksize must be a positive integer, got ${chunksize}`,
      );
    }
    return chunksize;
  }

  private enqueueChunks(
    api: Api,
    name: string,
    list: unknown[],
    chunksize: number,
    kind: TaskKind,
    sink: TaskSink,
    caller: SubmitSite,
  ): void {
    let pack = kind === TaskKind.MapChunk;
    for (let offset = 0; offset < list.length; offset += chunksize) {
      const end = Math.min(list.length, offset + chunksize);
      let chunk: Payload | undefined = pack ? packNumbers(list, offset, end) : undefined;
      // Once a chunk is not all numbers, the rest are not tried.
      if (!chunk) {
        pack = false;
        chunk = list.slice(offset, end);
      }
      const task = new Task(
        api,
        this.nextTaskId++,
        name,
        chunk,
        kind,
        sink,
        offset,
        chunk.length,
        this.options.timeout,
        caller,
      );
      this.enqueue(task);
    }
  }

  private checkRunning(what: string): void {
    if (this.state !== 'running') {
      throw new PoolStateError(
        `${what}: the pool is ${this.state}; no new tasks can be submitted`,
        this.state,
      );
    }
  }

  private enqueue(task: Task): void {
    if (this.trace) {
      task.submittedAt = tick();
      const payload = task.payload;
      this.trace.submitted(
        task.id,
        task.fn,
        task.api,
        Array.isArray(payload) ? payload : Array.from(payload),
        task.count,
        task.submittedAt,
      );
    }
    this.pending++;
    if (this.pending === 1) this.updateRef();
    if (this.broken) {
      this.settle(task, false, this.broken);
      return;
    }
    this.queue.push(task);
    if (!this.dispatchScheduled) {
      this.dispatchScheduled = true;
      // Tasks submitted in one go (a loop of applyAsync) leave in batches.
      void SETTLED.then(() => this.dispatch());
    } else if ((++this.submittedInTurn & (EAGER_EVERY - 1)) === 0 && !this.eagerFailed) {
      // A long burst: workers get tasks while it goes on, instead of idling until it ends.
      this.fill(true);
    }
  }

  // ---- Handing tasks to workers

  private queued(): number {
    return this.queue.length;
  }

  private takeNext(): Task | undefined {
    return this.queue.shift();
  }

  private dispatch(): void {
    this.dispatchScheduled = false;
    this.eagerFailed = false;
    this.fill(false);
  }

  /**
   * Sends queued tasks to ready workers, each up to its window. `eager`: called from inside a
   * burst of submissions (a loop of applyAsync), which results cannot interrupt: a thread
   * worker's own count of tasks finished paces it, and a batch that cannot be sent goes back to
   * the queue, to fail when the burst is over (not in the middle of the caller's loop).
   */
  private fill(eager: boolean): void {
    if (this.queued() === 0) return;
    const maxTasks = this.options.maxTasksPerChild ?? Infinity;
    let ready = 0;
    for (const slot of this.slots) if (slot.state === 'ready') ready++;
    if (ready === 0) return;
    // Hand out one task per worker while the queue is shallow, batches while it is deep.
    const window = Math.min(MAX_WINDOW, Math.max(1, Math.floor(this.queued() / (ready * 2))));
    for (const slot of this.slots) {
      if (slot.state !== 'ready' || slot.timedTask) continue;
      const busy = slot.busy();
      if (busy > window >> 1) continue;
      const batch: Task[] = [];
      while (busy + batch.length < window && slot.assigned + batch.length < maxTasks) {
        const next = this.queue.first();
        if (!next) break;
        if (next.timeoutMs !== undefined) {
          // A task with a timeout runs alone, so its clock measures only itself.
          if (slot.inflight.length === 0 && batch.length === 0) {
            batch.push(this.takeNext()!);
            slot.timedTask = next;
          }
          break;
        }
        batch.push(this.takeNext()!);
      }
      if (batch.length > 0 && !this.send(slot, batch, eager)) {
        // Back to the front of the queue, in order; the burst's end sends them again.
        this.queue.unshift(batch);
        if (slot.timedTask === batch[0]) slot.timedTask = undefined;
        this.eagerFailed = true;
        return;
      }
      if (this.queued() === 0) break;
    }
  }

  /** False, with nothing sent, if `eager` and some task in the batch cannot be sent. */
  private send(slot: WorkerSlot, batch: Task[], eager = false): boolean {
    // The message's array is reused (sending serializes it at once): building a new one for
    // each batch was about a tenth of what a burst allocates. A send within a send (a payload's
    // getter submitting a task) builds its own.
    const tasks = spareBatch ?? [];
    spareBatch = undefined;
    let n = 0;
    for (const t of batch) {
      tasks[n++] = t.id;
      tasks[n++] = t.fn;
      const payload = t.payload;
      if (t.kind === APPLY && payload.length === 1) {
        tasks[n++] = payload[0];
        tasks[n++] = APPLY_ONE;
      } else {
        tasks[n++] = payload;
        tasks[n++] = t.kind;
      }
    }
    tasks.length = n;
    try {
      slot.handle.send({ t: 'run', tasks });
    } catch (err) {
      spareBatch = clearBatch(tasks);
      if (eager) return false;
      if (batch.length > 1) {
        // Something in the batch cannot be sent: send the tasks one by one, so only the
        // offending ones fail.
        for (const task of batch) this.send(slot, [task]);
        return true;
      }
      const task = batch[0]!;
      if (slot.timedTask === task) slot.timedTask = undefined;
      this.settle(task, false, this.unsendable(slot, task, err));
      return true;
    }
    spareBatch = clearBatch(tasks);
    const wasIdle = slot.inflight.length === 0;
    for (const task of batch) {
      task.slot = slot;
      slot.inflight.push(task);
      slot.assigned++;
      if (task.timeoutMs !== undefined) {
        task.timer = setTimeout(() => this.timedOut(slot, task), task.timeoutMs);
      }
    }
    if (this.trace && wasIdle) this.markStarted(slot.inflight.first()!, slot, tick());
    return true;
  }

  /** For the trace: a worker runs its tasks in order, so the head of its list is running. */
  private markStarted(task: Task, slot: WorkerSlot, at: number): void {
    if (task.startedAt !== 0) return;
    task.startedAt = at;
    this.trace!.started(task.id, slot.workerId, at);
  }

  /** Why a task could not be sent: the argument (or map item) that cannot be cloned, by position. */
  private unsendable(slot: WorkerSlot, task: Task, sendError: unknown): SerializationError {
    const what = task.kind === TaskKind.Apply ? 'argument' : 'map item';
    for (let i = 0; i < task.payload.length; i++) {
      try {
        slot.handle.checkSendable(task.payload[i]);
      } catch (err) {
        const reason = unsendableReason(task.payload[i], err);
        const index = task.kind === TaskKind.Apply ? i : task.offset + i;
        return this.taskError(
          task,
          () =>
            new SerializationError(
              `${what} ${index} of ${task.fn}() cannot be sent to a worker: ${reason}`,
              what,
              index,
              task.fn,
              { cause: err },
            ),
        );
      }
    }
    const reason = sendError instanceof Error ? sendError.message : String(sendError);
    return this.taskError(
      task,
      () =>
        new SerializationError(
          `${task.describe()} cannot be sent to ${slot.describe()}: ${reason}`,
          'task',
          undefined,
          task.fn,
          { cause: sendError },
        ),
    );
  }

  // ---- Results

  private onMessage(slot: WorkerSlot, msg: FromWorker): void {
    switch (msg.t) {
      case 'done':
        this.onResults(slot, msg.results);
        break;
      case 'ready':
        slot.state = 'ready';
        this.trace?.workerStarted(
          slot.workerId,
          slot.handle.pid,
          slot.handle.threadId,
          this.backend,
        );
        this.startupFailures = 0;
        if (this.state === 'closed' && this.queued() === 0) this.retire(slot, 'normal');
        else this.dispatch();
        break;
      case 'startup-error': {
        const cause = decodeThrown(msg.error);
        const what =
          msg.phase === 'load'
            ? `worker module ${fileURLToPath(this.module)} failed to load`
            : `initializer ${this.initializer}() failed in ${slot.describe()}`;
        slot.startupError = new WorkerModuleError(
          `${what}: ${cause.name}: ${cause.message}${locationOf(cause)}`,
          fileURLToPath(this.module),
          msg.phase,
          { cause },
        );
        break;
      }
      case 'fatal':
        slot.fatal = decodeThrown(msg.error);
        break;
      case 'exiting':
        this.onExiting(slot, msg.code);
        break;
      case 'target-error':
        break;
    }
  }

  private onResults(slot: WorkerSlot, results: ResultBatch): void {
    // For the trace, one clock read per message: when its results (and the next starts) arrived.
    let at = this.trace ? tick() : 0;
    for (let r = 0; r < results.length; r += RESULT_STRIDE) {
      const id = results[r] as number;
      const outcome = results[r + 1] as Outcome;
      const value = results[r + 2];
      const ranUs = results[r + 3] as number;
      // A worker runs its tasks in order, so the result is for the first one, unless that one
      // was settled already (timed out).
      const task =
        slot.inflight.first()?.id === id
          ? slot.inflight.shift()
          : slot.inflight.take((t) => t.id === id);
      if (task === undefined) continue;
      slot.completed++;
      if (slot.timedTask === task) slot.timedTask = undefined;
      if (this.trace) this.markStarted(task, slot, at);
      if (outcome === Outcome.Succeeded) this.settle(task, true, value, ranUs, at);
      else if (outcome === Outcome.Failed) {
        this.settle(task, false, this.remoteError(decodeThrown(value as never), task, slot), ranUs);
        // A failure is stamped when its error is ready (after `at`): what this report says
        // next starts no earlier, so a viewer ordering by time never sees two tasks running on
        // one worker.
        if (this.trace) at = tick();
      } else {
        const what = task.kind === TaskKind.Apply ? 'result' : 'map results';
        this.settle(
          task,
          false,
          this.taskError(
            task,
            () =>
              new SerializationError(
                `${what} of ${task.fn}() cannot be sent back from ${slot.describe()}: ${String(value)}`,
                'result',
                undefined,
                task.fn,
              ),
          ),
        );
        if (this.trace) at = tick();
      }
    }
    if (this.trace && slot.inflight.length > 0) this.markStarted(slot.inflight.first()!, slot, at);
    const max = this.options.maxTasksPerChild;
    if (max !== undefined && slot.completed >= max && slot.state === 'ready') {
      this.retire(slot, 'recycled');
    }
    if (this.queued() > 0) this.dispatch();
    else if (this.state === 'closed') this.retireIdle();
  }

  /** After `close()`, once nothing is queued, each idle worker is told to exit. */
  private retireIdle(): void {
    for (const slot of this.slots) {
      if (slot.state === 'ready' && slot.inflight.length === 0) this.retire(slot, 'normal');
    }
  }

  /** The worker's error, with the caller's stack after the worker's. */
  private remoteError(err: Error, task: Task, slot: WorkerSlot): Error {
    // As received: the worker cut its runner's frames before sending (RUNNER_FRAMES, entry.ts).
    const workerStack = err.stack ?? `${err.name}: ${err.message}`;
    const caller = task.caller;
    // The worker's frames, then a header line, then the caller's:
    //   --- task #12 parse() ran in worker 1 (thread 3); submitted in the same burst as task #8, at: ---
    const own = caller.task === task.id || task.api !== 'apply';
    defineHidden(err, 'workerStack', workerStack);
    if (caller.frames === undefined && ++caller.failures < 2) {
      // Formatting the site's stack costs more than the rest of a failed task, and a lone
      // failure's stack may never be read: built on first read.
      const name = task.describe();
      const label = slot.describe();
      defineLazy(err, 'callerStack', () => siteFrames(caller));
      defineLazy(
        err,
        'stack',
        () => `${workerStack}\n    --- ${name}${stackTail(label, caller, own)}`,
      );
      return err;
    }
    // A site with more than one failure (a burst): its frames are formatted once, and each
    // error's stack is joined now, cheaper than two lazy properties.
    defineHidden(err, 'callerStack', siteFrames(caller));
    // The codec made `stack` a writable data property: a plain store, cheaper than redefining it.
    err.stack = `${workerStack}\n    --- ${task.describe()}${slot.stackTail(caller, own)}`;
    return err;
  }

  /** An error the pool raises for a task: its stack is where the task was submitted. */
  private taskError<E extends Error>(task: Task, build: () => E): E {
    const err = buildUncaptured(build);
    const site = task.caller;
    // Formatting a site's frames the first time costs about half a millisecond (a crashed
    // worker's task waited for it): built on first read, unless a burst has built them already,
    // or the site has failed before (the tasks of a burst share one: terminate() with a full
    // queue formats it once, and joins a string per task instead of defining an accessor).
    if (site.frames === undefined && ++site.failures < 2)
      defineLazy(err, 'stack', () => `${err.name}: ${err.message}\n${siteFrames(site)}`);
    else defineHidden(err, 'stack', `${err.name}: ${err.message}\n${siteFrames(site)}`);
    return err;
  }

  private settle(task: Task, ok: boolean, value: unknown, ranUs?: number, at?: number): void {
    if (task.timer) clearTimeout(task.timer);
    if (this.trace) {
      const worker = task.slot?.workerId;
      if (ok) {
        const queuedUs = task.startedAt ? Math.max(0, task.startedAt - task.submittedAt) : 0;
        // A chunk's results may have travelled packed; the trace shows them as the array they are.
        const shown =
          task.kind !== TaskKind.Apply && value instanceof Float64Array ? Array.from(value) : value;
        this.trace.succeeded(task.id, task.fn, worker ?? 0, shown, ranUs ?? 0, queuedUs, at);
      } else {
        this.trace.failed(task.id, task.fn, worker, value, ranUs);
      }
    }
    task.sink.taskSettled(ok, value, task.offset, task.count);
    this.pending--;
    if (this.pending === 0) this.updateRef();
  }

  private timedOut(slot: WorkerSlot, task: Task): void {
    if (slot.inflight.take((t) => t === task) === undefined) return;
    slot.timedTask = undefined;
    this.settle(
      task,
      false,
      this.taskError(
        task,
        () =>
          new TaskTimeoutError(
            `${task.describe()} did not finish within ${task.timeoutMs} ms; ${slot.describe()} was stopped and will be replaced`,
            task.fn,
            task.id,
            task.timeoutMs!,
            slot.workerId,
            slot.handle.pid,
            slot.handle.threadId,
          ),
      ),
    );
    slot.stopReason = 'timeout';
    slot.state = 'retiring';
    slot.handle.kill();
  }

  // ---- Workers coming and going

  /**
   * `initArgs` as they travel: shared objects (a `Value`, a `Lock`, a manager proxy: Python's
   * usual `initargs=(lock,)`) as their descriptors, as a task's arguments do; the originals stay
   * reachable through `this.options`. Each is checked before any worker is spawned: one that
   * could not be sent left a worker waiting for its init message, and the program alive.
   */
  private initArgsFor(initArgs: unknown[] | undefined): unknown[] {
    if (initArgs === undefined) return [];
    if (!Array.isArray(initArgs)) {
      throw new TypeError(`initArgs must be an array of arguments, got ${typeof initArgs}`);
    }
    const args = hasShared(initArgs) ? marshalArgs(initArgs, this.backend) : initArgs;
    checkStartArgs(
      args,
      this.backend,
      this.initializer ?? '(initializer)',
      (i) => `new Pool(): initArgs[${i}] cannot be sent to a worker`,
    );
    return args;
  }

  private spawn(): void {
    const options = {
      env: this.options.env,
      execArgv: this.options.execArgv,
      resourceLimits: this.options.resourceLimits,
    };
    const handle: WorkerHandle =
      this.backend === 'thread' ? new ThreadWorker(options) : new ProcessWorker(options);
    const slot = new WorkerSlot(this.nextWorkerId++, handle);
    this.slots.add(slot);
    handle.onMessage = (msg) => this.onMessage(slot, msg);
    handle.onExit = (exit) => this.onExit(slot, exit);
    if (!this.refd) handle.unref();
    try {
      handle.send({
        t: 'init',
        module: this.module,
        workerId: slot.workerId,
        initializer: this.initializer,
        initArgs: this.initArgs,
        trace: this.trace !== undefined,
        idleSpinMs: this.idleSpinMs,
      });
    } catch (err) {
      // Not expected after initArgsFor's check; never leave a worker waiting for its init.
      handle.kill();
      throw err;
    }
  }

  private retire(slot: WorkerSlot, reason: 'normal' | 'recycled'): void {
    slot.state = 'retiring';
    slot.stopReason = reason;
    slot.handle.send({ t: 'exit' });
  }

  private exitReason(slot: WorkerSlot, exit: WorkerExit): WorkerExitReason {
    if (exit.outOfMemory) return 'out-of-memory';
    if (slot.fatal) return 'uncaught';
    if (exit.signal) return 'killed';
    if (slot.state === 'starting') return 'startup';
    return 'crash';
  }

  private describeExit(slot: WorkerSlot, exit: WorkerExit, reason: WorkerExitReason): string {
    switch (reason) {
      case 'out-of-memory':
        return `${slot.describe()} ran out of memory`;
      case 'uncaught':
        return `${slot.describe()} died of an uncaught ${slot.fatal!.name} outside any task (${slot.fatal!.message})`;
      case 'killed':
        return `${slot.describe()} was killed by ${exit.signal}`;
      default:
        return `${slot.describe()} exited with code ${exit.exitCode}`;
    }
  }

  private onExit(slot: WorkerSlot, exit: WorkerExit): void {
    const wasStarting = slot.state === 'starting';
    const reason = slot.stopReason ?? this.exitReason(slot, exit);
    const crashed = slot.stopReason === undefined;
    const info: WorkerExitInfo = {
      ...exit,
      workerId: slot.workerId,
      pid: slot.handle.pid,
      threadId: slot.handle.threadId,
      reason,
    };
    slot.state = 'gone';
    this.slots.delete(slot);
    const lost = [...slot.lost, ...[...slot.inflight].map((t) => t.id)];
    if (crashed && this.state !== 'terminated') {
      this.failInflight(slot, exit, reason as WorkerExitReason);
    }
    this.trace?.workerExited(
      slot.workerId,
      exit.exitCode,
      exit.signal,
      reason,
      crashed ? lost : [],
      slot.handle.stderrTail(),
    );
    this.emit('workerExit', info);
    slot.markExited();

    if (slot.startupError) {
      this.breakPool(slot.startupError);
    } else if (wasStarting && crashed && this.state !== 'terminated') {
      if (++this.startupFailures >= MAX_STARTUP_FAILURES) {
        const tail = slot.handle.stderrTail().trim();
        this.breakPool(
          new WorkerModuleError(
            `workers of ${fileURLToPath(this.module)} keep dying before they are ready: ` +
              `${this.describeExit(slot, exit, reason as WorkerExitReason)}` +
              (tail ? `; its stderr ended with:\n${tail}` : ''),
            fileURLToPath(this.module),
            'startup',
          ),
        );
      }
    }
    if (this.wantsWorkers()) this.respawnSoon();
    if (this.queued() > 0) this.dispatch();
  }

  private wantsWorkers(): boolean {
    return (
      !this.broken &&
      (this.state === 'running' || (this.state === 'closed' && this.pending > 0)) &&
      this.slots.size < this.size
    );
  }

  /**
   * Replacements for workers that died, started once the callers of their failed tasks have
   * heard: forking a process blocks this thread for milliseconds, which the rejection of a
   * crashed worker's task waited for (its callers resume in microtasks after this turn).
   */
  private respawnSoon(): void {
    if (this.respawnScheduled) return;
    this.respawnScheduled = true;
    setImmediate(() => {
      this.respawnScheduled = false;
      while (this.wantsWorkers()) this.spawn();
      if (this.queued() > 0) this.dispatch();
    });
  }

  /**
   * A worker the pool did not stop is ending (a task called `process.exit`, or an uncaught
   * error): its tasks fail now rather than when the exit is complete. A process's stderr is a
   * pipe of its own: one turn of the event loop first, so that what it wrote just before is read
   * and goes into the error. A thread's stderr came as messages before this one: already here.
   */
  private onExiting(slot: WorkerSlot, code: number): void {
    if (slot.stopReason !== undefined || slot.state !== 'ready') return;
    slot.state = 'retiring';
    const fail = (): void => {
      if (slot.state === 'gone' || slot.stopReason !== undefined || this.state === 'terminated')
        return;
      const exit: WorkerExit = { exitCode: code, signal: null, outOfMemory: false };
      slot.exiting = true;
      for (const task of slot.inflight) slot.lost.push(task.id);
      this.failInflight(slot, exit, this.exitReason(slot, exit));
    };
    if (slot.handle.backend === 'thread') fail();
    else setImmediate(fail);
  }

  private failInflight(slot: WorkerSlot, exit: WorkerExit, reason: WorkerExitReason): void {
    const tasks = slot.inflight.takeAll();
    const what = this.describeExit(slot, exit, reason);
    const stderr = slot.handle.stderrTail();
    tasks.forEach((task, i) => {
      const when =
        i === 0
          ? `while running ${task.describe()}`
          : `before ${task.describe()} reported a result (it was handed to that worker after task #${tasks[0]!.id})`;
      this.settle(
        task,
        false,
        this.taskError(
          task,
          () =>
            new WorkerExitError(
              `${what} ${when}`,
              slot.workerId,
              slot.handle.pid,
              slot.handle.threadId,
              exit.exitCode,
              exit.signal,
              reason,
              stderr,
              task.id,
              task.fn,
              slot.fatal ? { cause: slot.fatal } : undefined,
            ),
        ),
      );
    });
  }

  /** The worker module cannot run: every task, queued or to come, fails with this error. */
  private breakPool(error: Error): void {
    if (this.broken) return;
    this.broken = error;
    for (let task = this.takeNext(); task; task = this.takeNext()) this.settle(task, false, error);
    for (const slot of this.slots) {
      // One ending on its own is recorded as the crash it is.
      if (slot.exiting) continue;
      slot.stopReason ??= 'terminated';
      slot.handle.kill();
    }
  }

  // ---- Reference counting: idle workers never keep the program alive

  private updateRef(): void {
    const want = this.pending > 0 || (this.state !== 'running' && this.slots.size > 0);
    if (want === this.refd) return;
    this.refd = want;
    for (const slot of this.slots) {
      if (want) slot.handle.ref();
      else slot.handle.unref();
    }
  }

  // ---- Ending

  /** No more tasks; workers exit once the submitted ones are done. */
  close(): void {
    if (this.state !== 'running') return;
    this.state = 'closed';
    this.trace?.closed();
    this.updateRef();
    // Workers still starting retire when they are ready (see onMessage).
    if (this.queued() === 0) this.retireIdle();
  }

  /**
   * Stops every worker now, even one stuck in an endless loop, and rejects the tasks that had not
   * finished with `PoolTerminatedError`. Resolves when every worker has exited.
   */
  terminate(): Promise<void> {
    if (this.state !== 'terminated') {
      this.state = 'terminated';
      this.trace?.terminated();
      const error = (task: Task): PoolTerminatedError =>
        this.taskError(
          task,
          () =>
            new PoolTerminatedError(
              `${task.describe()} was not finished when the pool was terminated`,
              task.id,
              task.fn,
            ),
        );
      for (let task = this.takeNext(); task; task = this.takeNext())
        this.settle(task, false, error(task));
      for (const slot of this.slots) {
        for (const task of slot.inflight.takeAll()) this.settle(task, false, error(task));
        if (!slot.exiting) {
          slot.stopReason = 'terminated';
          slot.handle.terminate();
        } else {
          // Ending on its own: stopping it now would record a signal instead of its exit code.
          setTimeout(() => slot.handle.kill(), EXITING_GRACE_MS).unref();
        }
      }
      this.updateRef();
    }
    return this.join();
  }

  /** Waits until every worker has exited. Call `close()` or `terminate()` first, as in Python. */
  join(): Promise<void> {
    if (this.state === 'running') {
      return Promise.reject(
        new PoolStateError(
          'join() needs close() or terminate() first: the pool is running',
          'running',
        ),
      );
    }
    this.finished ??= this.allExited();
    return this.finished;
  }

  private async allExited(): Promise<void> {
    while (this.slots.size > 0) {
      await Promise.all([...this.slots].map((s) => s.exited));
    }
  }

  /** `await using pool = new Pool(...)`: terminates the pool at the end of the scope, as Python's `with`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** Counts for a quick look: workers, queued, in flight. */
  stats(): { workers: number; queued: number; inflight: number; pending: number; state: string } {
    let inflight = 0;
    for (const slot of this.slots) inflight += slot.inflight.length;
    return {
      workers: this.slots.size,
      queued: this.queued(),
      inflight,
      pending: this.pending,
      state: this.broken ? 'broken' : this.state,
    };
  }
}
