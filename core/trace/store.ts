/**
 * The Store: the one reducer from protocol events to a model of runs, pools, workers, tasks,
 * errors, callbacks and processes. Every view (terminal, editor tree, panel, saved-trace summary)
 * reads this model; none re-derives it from raw events.
 *
 * It is fed one event at a time, from a live socket or a replayed file alike (a `tasks` batch is
 * applied as the task events it stands for, one by one), and it tolerates
 * what real streams do: events from several processes slightly out of order, a task whose end
 * arrives before its start, malformed lines (reported in `problems` and skipped, never fatal).
 *
 * Memory is bounded: each pool keeps rich models for its last `tasksPerPool` tasks, but its
 * counts stay exact because every task's state also lives in one byte of a table indexed by
 * task id.
 */
import { Fifo } from '../fifo';
import { BarTable } from './bars';
import { grown } from './columns';
import type { ErrorInfo, EventOf, TraceEvent } from './protocol';
import { OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION } from './version';
import { forEachTaskRecord, type TaskArgs, type TaskRecordVisitor } from './task-batch';

export type TaskState = 'queued' | 'running' | 'passed' | 'failed' | 'errored';

/** Failures of the machinery rather than of the task's own code: the Testing API's "errored". */
const INFRASTRUCTURE_ERRORS = new Set([
  'WorkerExitError',
  'TaskTimeoutError',
  'PoolTerminatedError',
  'SerializationError',
  'WorkerModuleError',
  'FunctionNotFoundError',
  // Python's concurrent.futures, once a worker died: the executor failed the future.
  'BrokenProcessPool',
]);

const STATE_CODES: TaskState[] = ['queued', 'running', 'passed', 'failed', 'errored'];
/** A state's code, without a search. */
const STATE_CODE: Record<TaskState, number> = {
  queued: 0,
  running: 1,
  passed: 2,
  failed: 3,
  errored: 4,
};
const UNKNOWN = 255;

export interface TaskModel {
  id: number;
  fn: string;
  kind: string;
  args: string;
  items: number;
  state: TaskState;
  worker?: number;
  submittedAt?: number;
  startedAt?: number;
  endedAt?: number;
  durationMs?: number;
  queuedMs?: number;
  result?: string;
  error?: ErrorInfo;
}

export interface WorkerModel {
  id: number;
  pid?: number;
  tid?: number;
  state: 'running' | 'exited';
  startedAt: number;
  exitedAt?: number;
  exitCode: number | null;
  signal: string | null;
  reason?: string;
  tasksDone: number;
  tasksFailed: number;
  /** The task it is running, as far as the trace says. */
  current?: number;
}

export interface Counts {
  submitted: number;
  queued: number;
  running: number;
  passed: number;
  failed: number;
  errored: number;
}

export interface PoolModel {
  id: string;
  pid: number;
  backend: string;
  size: number;
  module: string;
  options: Record<string, unknown>;
  state: 'running' | 'closed' | 'terminated';
  createdAt: number;
  counts: Counts;
  workers: Map<number, WorkerModel>;
  /** The last `tasksPerPool` tasks, oldest first. */
  tasks: Map<number, TaskModel>;
  /** Tasks whose rich model was dropped to bound memory (their counts remain): each once. */
  evicted: number;
  durations: { count: number; totalMs: number; maxMs: number };
  lastTs: number;
  /** Task bars for a timeline, when the Store keeps them (`barsPerPool`). */
  bars?: BarTable;
}

/** A callback or `get` timeout, as a mark on a timeline (kept with `barsPerPool`). */
export interface MarkModel {
  ts: number;
  kind: 'callback' | 'errorCallback' | 'callbackThrew' | 'getTimeout';
  pool?: string;
  task?: number;
}

export interface ErrorEntry {
  ts: number;
  /** Where it came from: a task, a callback that threw, a Process. */
  source: 'task' | 'callback' | 'errorCallback' | 'process';
  pool?: string;
  task?: number;
  worker?: number;
  fn?: string;
  process?: string;
  error: ErrorInfo;
}

export interface ProcessModel {
  name: string;
  pid: number;
  target: string;
  backend: string;
  processPid?: number;
  processTid?: number;
  state: 'running' | 'exited';
  startedAt: number;
  exitedAt?: number;
  exitCode: number | null;
  signal: string | null;
  error?: ErrorInfo;
}

export interface SharedModel {
  id: string;
  kind: string;
  ctype: string;
  length: number;
  lock: boolean;
  creator?: string;
  createdAt: number;
  /** The latest sample (JSON, as sampled). */
  value?: unknown;
  updatedAt?: number;
  contention: number;
  /** The last `samplesPerShared` samples, oldest first, for charts. */
  samples: { ts: number; value: unknown; contention?: number }[];
}

export interface ManagerModel {
  id: string;
  /** The process that started it. */
  pid: number;
  address: string;
  serverPid?: number;
  state: 'running' | 'stopped' | 'killed' | 'exited';
  startedAt: number;
  stoppedAt?: number;
  exitCode: number | null;
  signal: string | null;
  /** Calls served per proxy type (running totals, as last reported). */
  ops: Record<string, number>;
  totalOps: number;
  clients: number;
  objects: number;
  opsAt?: number;
}

export interface RunModel {
  id: string;
  argv?: string[];
  cwd?: string;
  runtime?: string;
  startedAt: number;
  endedAt?: number;
  exitCode?: number | null;
  signal?: string | null;
  pools: Map<string, PoolModel>;
  processes: Map<string, ProcessModel>;
  shared: Map<string, SharedModel>;
  managers: Map<string, ManagerModel>;
  /** The last `errorsPerRun` errors; `errorCount` counts them all. */
  errors: ErrorEntry[];
  errorCount: number;
  callbacks: { invoked: number; threw: number };
  getTimeouts: number;
  /** Timeline marks, the last `marksPerRun` (kept with `barsPerPool`). */
  marks: MarkModel[];
  /** The last `outputLines` lines of program output. */
  output: { stream: string; text: string }[];
  dropped: number;
  events: number;
  lastTs: number;
}

export interface StoreOptions {
  tasksPerPool?: number;
  errorsPerRun?: number;
  outputLines?: number;
  problemsKept?: number;
  samplesPerShared?: number;
  /** Keep timeline bars for this many tasks per pool (0, the default: none). */
  barsPerPool?: number;
  marksPerRun?: number;
}

/** Per pool: one byte per task id (its state code), grown as ids grow. */
class StateTable {
  private codes = new Uint8Array(1024).fill(UNKNOWN);
  /**
   * The ids of the pool's kept task models that have settled, in the order they settled (an id
   * whose model has since gone is skipped when met): eviction takes the first.
   */
  private readonly settled = new Fifo<number>();

  /** A kept task model has settled. */
  pushSettled(id: number): void {
    this.settled.push(id);
  }

  /**
   * The id of the kept task model that settled first, still kept and settled (looked up in
   * `tasks`), or undefined; ids met that no longer qualify are dropped.
   */
  firstSettled(tasks: Map<number, TaskModel>): number | undefined {
    for (let id = this.settled.first(); id !== undefined; id = this.settled.first()) {
      const state = tasks.get(id)?.state;
      if (state !== undefined && state !== 'queued' && state !== 'running') return id;
      this.settled.shift();
    }
    return undefined;
  }

  /** Drops the first settled id (its model has just been evicted). */
  shiftSettled(): void {
    this.settled.shift();
  }

  get(id: number): number {
    return id < this.codes.length ? this.codes[id]! : UNKNOWN;
  }

  set(id: number, code: number): void {
    if (id >= this.codes.length) {
      let size = this.codes.length;
      while (size <= id) size *= 2;
      const grown = new Uint8Array(size).fill(UNKNOWN);
      grown.set(this.codes);
      this.codes = grown;
    }
    this.codes[id] = code;
  }
}

/**
 * The tasks of a burst whose models are not built yet. In a burst, most of a pool's tasks start
 * and end without anyone looking at the pool's task models, and all but the last `tasksPerPool`
 * of those models would be built only to be evicted: their counts, workers, durations and bars
 * are applied at once, and they are held here, as columns, until someone reads the pool's tasks
 * (PoolState), another event needs a model (any model of the pool: each build reads `tasks`), or
 * the Store's `heldLimit` are held. Then the models that would be kept are built (Store.addHeld).
 *
 * Held: a task that started with no model of its own (kept as `running`), and a task that ran
 * (task.started and task.succeeded in one record), and the success of a held task. Only while
 * keep()'s choice for each is known without the models: the pool has room, or a settled model
 * to evict (`spare` counts those, from below).
 */
class HeldTasks {
  ids = new Int32Array(64);
  workers = new Int32Array(64);
  started = new Float64Array(64);
  ended = new Float64Array(64);
  durations = new Float64Array(64);
  queued = new Float64Array(64);
  /** 0 running, 1 settled; 2 while addHeld drops it (evicted before anyone saw its model). */
  done = new Uint8Array(64);
  fns: string[] = [];
  /** An integer result as itself (its preview is its text), else the preview. */
  results: (number | string)[] = [];
  /** The held tasks that have settled, by index, in the order they settled. */
  settledOrder = new Int32Array(64);
  settledCount = 0;
  /** Held tasks still running: task id to index. */
  readonly running = new Map<number, number>();
  length = 0;
  /** Kept models when the first was held. */
  keptAtStart = 0;
  /**
   * Settled models keep() would have to evict, at least: 1 if the pool had one when the first
   * task was held, plus the held tasks settled, less the evictions so far.
   */
  spare = 0;

  /** Holds a task at the next index (returned); fields not given are set by `settle`. */
  add(id: number, workerId: number, startedAt: number): number {
    const at = this.length++;
    if (at === this.ids.length) this.grow();
    this.ids[at] = id;
    this.workers[at] = workerId;
    this.started[at] = startedAt;
    this.done[at] = 0;
    this.fns[at] = '?';
    return at;
  }

  settle(
    at: number,
    endedAt: number,
    fn: string,
    workerId: number,
    result: number | string,
    durationMs: number,
    queuedMs: number,
  ): void {
    this.ended[at] = endedAt;
    this.fns[at] = fn;
    this.workers[at] = workerId;
    this.results[at] = result;
    this.durations[at] = durationMs;
    this.queued[at] = queuedMs;
    this.done[at] = 1;
    this.settledOrder[this.settledCount++] = at;
  }

  /** Holds nothing (the columns stay, for the next burst). */
  clear(): void {
    this.length = 0;
    this.settledCount = 0;
    this.running.clear();
    this.fns.length = 0;
    this.results.length = 0;
  }

  private grow(): void {
    const n = this.ids.length + 1;
    this.ids = grown(this.ids, n);
    this.workers = grown(this.workers, n);
    this.settledOrder = grown(this.settledOrder, n);
    this.started = grown(this.started, n);
    this.ended = grown(this.ended, n);
    this.durations = grown(this.durations, n);
    this.queued = grown(this.queued, n);
    this.done = grown(this.done, n);
  }
}

/**
 * A pool's model. `tasks` and `evicted` are read through getters that first build the models of
 * the tasks in `held` (so a reader always sees them); the Store's bookkeeping (`kept`, `held`,
 * `owner`) is not enumerable, so that two pools with the same models compare equal.
 */
class PoolState implements PoolModel {
  backend = '?';
  size = 0;
  module = '?';
  options: Record<string, unknown> = {};
  state: PoolModel['state'] = 'running';
  counts: Counts = { submitted: 0, queued: 0, running: 0, passed: 0, failed: 0, errored: 0 };
  workers = new Map<number, WorkerModel>();
  durations = { count: 0, totalMs: 0, maxMs: 0 };
  declare bars?: BarTable;
  /** The kept models, without those of the tasks in `held`. */
  declare readonly kept: Map<number, TaskModel>;
  declare readonly held: HeldTasks;
  declare private readonly owner: Store;

  constructor(
    readonly id: string,
    readonly pid: number,
    public createdAt: number,
    owner: Store,
  ) {
    this.lastTs = createdAt;
    Object.defineProperties(this, {
      kept: { value: new Map<number, TaskModel>() },
      held: { value: new HeldTasks() },
      owner: { value: owner },
    });
  }

  lastTs: number;

  get tasks(): Map<number, TaskModel> {
    if (this.held.length !== 0) this.owner.addHeld(this);
    return this.kept;
  }

  get evicted(): number {
    return this.counts.submitted - this.tasks.size;
  }
}

const RANK = [0, 1, 2, 2, 2];

/** Adds `d` to the count of state `code`: named stores, not a lookup by a varying key. */
function count(counts: Counts, code: number, d: number): void {
  switch (code) {
    case 0:
      counts.queued += d;
      break;
    case 1:
      counts.running += d;
      break;
    case 2:
      counts.passed += d;
      break;
    case 3:
      counts.failed += d;
      break;
    default:
      counts.errored += d;
  }
}

export class Store {
  readonly runs = new Map<string, RunModel>();
  /** Lines or events that could not be used, with why; the last `problemsKept`. */
  readonly problems: string[] = [];
  problemCount = 0;
  /** Bumped by every event applied: a view can tell whether to redraw. */
  version = 0;
  private readonly tables = new Map<PoolModel, StateTable>();
  /** The last pool asked for its table, and its table: a batch's records are mostly one pool's. */
  private tablePool: PoolModel | undefined;
  private lastTable: StateTable | undefined;
  private readonly tasksPerPool: number;
  private readonly errorsPerRun: number;
  private readonly outputLines: number;
  private readonly problemsKept: number;
  private readonly samplesPerShared: number;
  private readonly barsPerPool: number;
  private readonly marksPerRun: number;
  /** Tasks held per pool (HeldTasks) at most, before their models are built. */
  private readonly heldLimit: number;

  constructor(options: StoreOptions = {}) {
    this.tasksPerPool = options.tasksPerPool ?? 1000;
    this.errorsPerRun = options.errorsPerRun ?? 500;
    this.outputLines = options.outputLines ?? 1000;
    this.problemsKept = options.problemsKept ?? 100;
    this.samplesPerShared = options.samplesPerShared ?? 300;
    this.barsPerPool = options.barsPerPool ?? 0;
    this.marksPerRun = options.marksPerRun ?? 20_000;
    // 16 times what is kept (a sixteenth of a burst's models built), within 64k tasks (about 4
    // MB) unless 4 times what is kept is more.
    this.heldLimit = Math.max(
      1024,
      Math.min(16 * this.tasksPerPool, Math.max(65_536, 4 * this.tasksPerPool)),
    );
  }

  /** Parses and applies one JSONL line; a bad line is reported in `problems` and skipped. */
  applyLine(line: string, where = 'line'): void {
    const text = line.trim();
    if (text === '') return;
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch (err) {
      this.problem(`${where}: not JSON (${(err as Error).message}): ${text.slice(0, 80)}`);
      return;
    }
    this.applyUnknown(event, where);
  }

  /** Applies a value that should be an event, checking its envelope first. */
  applyUnknown(event: unknown, where = 'event'): void {
    if (typeof event !== 'object' || event === null) {
      this.problem(`${where}: not an event object`);
      return;
    }
    const e = event as Partial<TraceEvent>;
    if (e.v !== PROTOCOL_VERSION && e.v !== OLDEST_PROTOCOL_VERSION) {
      this.problem(
        `${where}: protocol version ${String(e.v)}, expected ${OLDEST_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`,
      );
      return;
    }
    if (typeof e.type !== 'string' || typeof e.run !== 'string' || typeof e.ts !== 'number') {
      this.problem(`${where}: missing type, run or ts`);
      return;
    }
    try {
      this.apply(e as TraceEvent);
    } catch (err) {
      this.problem(`${where}: ${e.type} event could not be applied: ${(err as Error).message}`);
    }
  }

  private problem(text: string): void {
    this.problemCount++;
    this.problems.push(text);
    if (this.problems.length > this.problemsKept) this.problems.shift();
  }

  apply(event: TraceEvent): void {
    const run = this.run(event.run, event.ts);
    if (event.type === 'tasks') {
      this.applyTasks(run, event);
      return;
    }
    run.events++;
    if (event.ts > run.lastTs) run.lastTs = event.ts;
    this.version++;
    switch (event.type) {
      case 'run.start':
        run.argv = event.argv;
        run.cwd = event.cwd;
        run.runtime = event.runtime;
        run.startedAt = Math.min(run.startedAt, event.ts);
        break;
      case 'run.end':
        run.endedAt = event.ts;
        run.exitCode = event.exitCode;
        run.signal = event.signal;
        break;
      case 'pool.created': {
        const pool = this.pool(run, event.pool, event.pid, event.ts);
        pool.backend = event.backend;
        pool.size = event.size;
        pool.module = event.module;
        pool.options = event.options;
        pool.createdAt = event.ts;
        break;
      }
      case 'pool.closed':
        this.pool(run, event.pool, event.pid, event.ts).state = 'closed';
        break;
      case 'pool.terminated':
        this.pool(run, event.pool, event.pid, event.ts).state = 'terminated';
        break;
      case 'worker.started': {
        const worker = this.worker(
          this.pool(run, event.pool, event.pid, event.ts),
          event.worker,
          event.ts,
        );
        if (event.workerPid !== undefined) worker.pid = event.workerPid;
        if (event.workerTid !== undefined) worker.tid = event.workerTid;
        worker.startedAt = Math.min(worker.startedAt, event.ts);
        break;
      }
      case 'worker.exited': {
        const worker = this.worker(
          this.pool(run, event.pool, event.pid, event.ts),
          event.worker,
          event.ts,
        );
        worker.state = 'exited';
        worker.exitedAt = event.ts;
        worker.exitCode = event.exitCode;
        worker.signal = event.signal;
        worker.reason = event.reason;
        worker.current = undefined;
        break;
      }
      case 'task.submitted':
        this.taskSubmitted(
          this.pool(run, event.pool, event.pid, event.ts),
          event.ts,
          event.task,
          event.fn,
          event.kind,
          event.args,
          event.items,
        );
        break;
      case 'task.started':
        this.taskStarted(
          this.pool(run, event.pool, event.pid, event.ts),
          event.ts,
          event.task,
          event.worker,
        );
        break;
      case 'task.succeeded':
        this.taskEnded(
          run,
          this.pool(run, event.pool, event.pid, event.ts),
          event.ts,
          event.task,
          event.fn,
          event.worker,
          event.durationMs,
          event.result,
          event.queuedMs,
          undefined,
        );
        break;
      case 'task.failed':
        this.taskEnded(
          run,
          this.pool(run, event.pool, event.pid, event.ts),
          event.ts,
          event.task,
          event.fn,
          event.worker,
          event.durationMs,
          undefined,
          undefined,
          event.error,
          false,
        );
        break;
      case 'callback.invoked':
        run.callbacks.invoked++;
        this.mark(run, {
          ts: event.ts,
          kind: event.error ? 'callbackThrew' : event.which,
          pool: event.pool,
          task: event.task,
        });
        if (event.error) {
          run.callbacks.threw++;
          this.error(run, {
            ts: event.ts,
            source: event.which,
            pool: event.pool,
            task: event.task,
            error: event.error,
          });
        }
        break;
      case 'result.timeout':
        run.getTimeouts++;
        this.mark(run, { ts: event.ts, kind: 'getTimeout', pool: event.pool, task: event.task });
        break;
      case 'process.started': {
        // Its exit may have arrived first (a child that reports its own error uses its own
        // connection): keep what that said.
        const ended = run.processes.get(event.name);
        run.processes.set(event.name, {
          ...(ended?.state === 'exited' ? ended : {}),
          name: event.name,
          pid: event.pid,
          target: event.target,
          backend: event.backend,
          ...(event.processPid !== undefined ? { processPid: event.processPid } : {}),
          ...(event.processTid !== undefined ? { processTid: event.processTid } : {}),
          state: ended?.state === 'exited' ? 'exited' : 'running',
          startedAt: event.ts,
          exitCode: ended?.state === 'exited' ? ended.exitCode : null,
          signal: ended?.state === 'exited' ? ended.signal : null,
        });
        break;
      }
      case 'process.exited': {
        const proc = run.processes.get(event.name) ?? {
          name: event.name,
          pid: event.pid,
          target: '?',
          backend: '?',
          state: 'running' as const,
          startedAt: event.ts,
          exitCode: null,
          signal: null,
        };
        proc.state = 'exited';
        proc.exitedAt = event.ts;
        proc.exitCode = event.exitCode;
        proc.signal = event.signal;
        if (event.error) {
          proc.error = event.error;
          this.error(run, {
            ts: event.ts,
            source: 'process',
            process: event.name,
            error: event.error,
          });
        }
        run.processes.set(event.name, proc);
        break;
      }
      case 'output':
        run.output.push({ stream: event.stream, text: event.text });
        if (run.output.length > this.outputLines)
          run.output.splice(0, run.output.length - this.outputLines);
        break;
      case 'events.dropped':
        run.dropped += event.count;
        break;
      case 'shared.created':
        run.shared.set(event.id, {
          id: event.id,
          kind: event.kind,
          ctype: event.ctype,
          length: event.length,
          lock: event.lock,
          ...(event.creator ? { creator: event.creator } : {}),
          createdAt: event.ts,
          contention: 0,
          samples: [],
        });
        break;
      case 'shared.sampled': {
        let shared = run.shared.get(event.id);
        if (!shared) {
          shared = {
            id: event.id,
            kind: '?',
            ctype: '',
            length: 0,
            lock: false,
            createdAt: event.ts,
            contention: 0,
            samples: [],
          };
          run.shared.set(event.id, shared);
        }
        if (shared.updatedAt === undefined || event.ts >= shared.updatedAt) {
          shared.value = event.value;
          shared.updatedAt = event.ts;
          if (event.contention !== undefined) shared.contention = event.contention;
        }
        shared.samples.push({
          ts: event.ts,
          value: event.value,
          ...(event.contention !== undefined ? { contention: event.contention } : {}),
        });
        if (shared.samples.length > this.samplesPerShared) shared.samples.shift();
        break;
      }
      case 'manager.started': {
        const m = this.manager(run, event.manager, event.pid, event.ts);
        m.address = event.address;
        m.serverPid = event.serverPid;
        m.startedAt = event.ts;
        break;
      }
      case 'manager.stopped': {
        const m = this.manager(run, event.manager, event.pid, event.ts);
        if (m.address === '') m.address = event.address;
        m.state = event.reason;
        m.stoppedAt = event.ts;
        m.exitCode = event.exitCode;
        m.signal = event.signal;
        break;
      }
      case 'manager.ops': {
        // Reported by the server process itself: its pid is not the owner's.
        const m = this.manager(run, event.manager, undefined, event.ts);
        if (m.opsAt !== undefined && event.ts < m.opsAt) break;
        m.opsAt = event.ts;
        m.ops = { ...event.ops };
        m.totalOps = Object.values(event.ops).reduce((a, b) => a + b, 0);
        m.clients = event.clients;
        m.objects = event.objects;
        m.serverPid ??= event.pid;
        break;
      }
      default:
        this.problem(`unknown event type ${(event as { type: string }).type} (skipped)`);
    }
  }

  // ---- Models, created on first sight so that any event order works

  private run(id: string, ts: number): RunModel {
    let run = this.runs.get(id);
    if (!run) {
      run = {
        id,
        startedAt: ts,
        pools: new Map(),
        processes: new Map(),
        shared: new Map(),
        managers: new Map(),
        errors: [],
        errorCount: 0,
        callbacks: { invoked: 0, threw: 0 },
        getTimeouts: 0,
        output: [],
        marks: [],
        dropped: 0,
        events: 0,
        lastTs: ts,
      };
      this.runs.set(id, run);
    }
    return run;
  }

  private manager(run: RunModel, id: string, pid: number | undefined, ts: number): ManagerModel {
    let m = run.managers.get(id);
    if (!m) {
      m = {
        id,
        // `<pid>:<n>`: the owner's pid, even when the first event comes from the server.
        pid: pid ?? (Number(id.split(':')[0]) || 0),
        address: '',
        state: 'running',
        startedAt: ts,
        exitCode: null,
        signal: null,
        ops: {},
        totalOps: 0,
        clients: 0,
        objects: 0,
      };
      run.managers.set(id, m);
    }
    return m;
  }

  private pool(run: RunModel, id: string, pid: number, ts: number): PoolState {
    let pool = run.pools.get(id) as PoolState | undefined;
    if (!pool) {
      pool = new PoolState(id, pid, ts, this);
      run.pools.set(id, pool);
      this.tables.set(pool, new StateTable());
    }
    if (ts > pool.lastTs) pool.lastTs = ts;
    return pool;
  }

  private worker(pool: PoolModel, id: number, ts: number): WorkerModel {
    let worker = pool.workers.get(id);
    if (!worker) {
      // Every field from the start (the optional ones undefined), and `current` cleared by
      // storing undefined, never deleted: a deleted property turns the object into a dictionary,
      // and a burst clears it after every task.
      worker = {
        id,
        pid: undefined,
        tid: undefined,
        state: 'running',
        startedAt: ts,
        exitedAt: undefined,
        exitCode: null,
        signal: null,
        reason: undefined,
        tasksDone: 0,
        tasksFailed: 0,
        current: undefined,
      };
      pool.workers.set(id, worker);
    }
    return worker;
  }

  private table(pool: PoolModel): StateTable {
    if (pool !== this.tablePool) {
      this.lastTable = this.tables.get(pool)!;
      this.tablePool = pool;
    }
    return this.lastTable!;
  }

  /** The state code of a task the table has (first seen: queued, and counted as submitted). */
  private seen(pool: PoolModel, table: StateTable, id: number): number {
    const code = table.get(id);
    if (code !== UNKNOWN) return code;
    table.set(id, 0);
    pool.counts.submitted++;
    pool.counts.queued++;
    return 0;
  }

  private task(pool: PoolState, id: number): TaskModel {
    let task = pool.tasks.get(id);
    if (task) return task;
    const table = this.table(pool);
    const code = this.seen(pool, table, id);
    // Every field from the start, the optional ones undefined: the fields a task's later events
    // set are then stores, not additions that reshape each model (and grow its storage).
    task = {
      id,
      fn: '?',
      kind: 'apply',
      args: '',
      items: 1,
      state: STATE_CODES[code]!,
      worker: undefined,
      submittedAt: undefined,
      startedAt: undefined,
      endedAt: undefined,
      durationMs: undefined,
      queuedMs: undefined,
      result: undefined,
      error: undefined,
    };
    this.keep(pool, table, task);
    return task;
  }

  /**
   * Keeps a new task model, within `tasksPerPool`: when there are that many, the model that
   * settled first goes; failing that, the new one is not kept if it is only queued (the tasks
   * queued first run first, so they are the ones to keep in view); failing that, the oldest
   * goes. Every task seen has a model kept or is counted in `evicted`, once (a task dropped,
   * then seen again, is not counted again).
   */
  private keep(pool: PoolState, table: StateTable, task: TaskModel): void {
    // The map itself: reading `pool.tasks` would build the held tasks' models (addHeld).
    const kept = pool.kept;
    if (kept.size >= this.tasksPerPool) {
      const victim = table.firstSettled(kept);
      if (victim !== undefined) {
        kept.delete(victim);
        table.shiftSettled();
      } else if (task.state === 'queued') {
        return;
      } else {
        const oldest = kept.keys().next();
        if (!oldest.done) kept.delete(oldest.value);
      }
    }
    kept.set(task.id, task);
    if (RANK[STATE_CODE[task.state]]! >= 2) table.pushSettled(task.id);
  }

  /**
   * Builds the models of the tasks `pool` holds, and keeps them as their events would have (see
   * HeldTasks). keep() evicted the model that settled first whenever a task came to a full pool:
   * the models kept before the first held task, then the held ones in the order they settled
   * (each had settled by then: `spare`). So the models that go are the first of those, as many
   * as the pool overflowed; the held tasks not among them are kept, in the order they came.
   */
  addHeld(pool: PoolState): void {
    const held = pool.held;
    const kept = pool.kept;
    const table = this.table(pool);
    const n = held.length;
    let evict = Math.max(0, held.keptAtStart + n - this.tasksPerPool);
    for (; evict > 0; evict--) {
      const victim = table.firstSettled(kept);
      if (victim === undefined) break;
      kept.delete(victim);
      table.shiftSettled();
    }
    // The held ones that go instead (once the models kept before have gone): marked 2, skipped.
    for (let k = 0; k < evict; k++) held.done[held.settledOrder[k]!] = 2;
    for (let at = 0; at < n; at++) {
      const done = held.done[at]!;
      if (done === 2) continue;
      const id = held.ids[at]!;
      const startedAt = held.started[at]!;
      // The fields in task()'s order, as the task's events leave them.
      kept.set(id, {
        id,
        fn: held.fns[at]!,
        kind: 'apply',
        args: '',
        items: 1,
        state: done === 1 ? 'passed' : 'running',
        worker: held.workers[at]!,
        submittedAt: undefined,
        startedAt,
        endedAt: done === 1 ? held.ended[at]! : undefined,
        durationMs: done === 1 ? held.durations[at]! : undefined,
        queuedMs: done === 1 ? held.queued[at]! : undefined,
        result: done === 1 ? String(held.results[at]!) : undefined,
        error: undefined,
      });
    }
    for (let k = evict; k < held.settledCount; k++)
      table.pushSettled(held.ids[held.settledOrder[k]!]!);
    held.clear();
  }

  /**
   * Whether a task with no model, not started, can be held (HeldTasks) as it starts: keep() would
   * keep its model, evicting a settled one if the pool is full.
   */
  private canHold(pool: PoolState, table: StateTable, id: number): boolean {
    const code = table.get(id);
    if ((code !== UNKNOWN && code !== 0) || pool.kept.has(id)) return false;
    const held = pool.held;
    if (held.length >= this.heldLimit) this.addHeld(pool);
    if (held.length === 0) {
      held.keptAtStart = pool.kept.size;
      held.spare = table.firstSettled(pool.kept) !== undefined ? 1 : 0;
    }
    if (held.keptAtStart + held.length < this.tasksPerPool) return true;
    if (held.spare < 1) return false;
    held.spare--;
    return true;
  }

  /**
   * task.started, held if it can be (canHold): what taskStarted does, but building the model.
   * Returns where it is held, or -1. `ran`: its task.succeeded follows at once (holdSucceeded).
   */
  private holdStarted(
    pool: PoolState,
    ts: number,
    id: number,
    workerId: number,
    ran: boolean,
  ): number {
    const table = this.table(pool);
    if (!this.canHold(pool, table, id)) return -1;
    this.seen(pool, table, id);
    count(pool.counts, 0, -1);
    count(pool.counts, 1, 1);
    table.set(id, 1);
    this.worker(pool, workerId, ts).current = id;
    this.barStarted(pool, id, workerId, ts);
    const at = pool.held.add(id, workerId, ts);
    if (!ran) pool.held.running.set(id, at);
    return at;
  }

  /**
   * task.succeeded of the task held at `at` (holdStarted): what taskEnded does, but updating the
   * model.
   */
  private holdSucceeded(
    pool: PoolState,
    at: number,
    ts: number,
    id: number,
    fn: string,
    workerId: number,
    result: number | string,
    durationMs: number,
    queuedMs: number,
  ): void {
    const held = pool.held;
    held.settle(at, ts, fn, workerId, result, durationMs, queuedMs);
    held.spare++;
    this.barEnded(pool, id, fn, workerId, held.started[at]!, ts, 2);
    const table = this.table(pool);
    count(pool.counts, 1, -1);
    count(pool.counts, 2, 1);
    table.set(id, 2);
    pool.durations.count++;
    pool.durations.totalMs += durationMs;
    if (durationMs > pool.durations.maxMs) pool.durations.maxMs = durationMs;
    if (workerId > 0) {
      const worker = this.worker(pool, workerId, ts);
      worker.tasksDone++;
      if (worker.current === id) worker.current = undefined;
    }
  }

  private barsOf(pool: PoolModel): BarTable | undefined {
    if (this.barsPerPool <= 0) return undefined;
    pool.bars ??= new BarTable(this.barsPerPool);
    return pool.bars;
  }

  private mark(run: RunModel, mark: MarkModel): void {
    if (this.barsPerPool <= 0) return;
    run.marks.push(mark);
    if (run.marks.length > this.marksPerRun) run.marks.splice(0, run.marks.length >> 1);
  }

  /** Moves a task to `state` unless it is already further along; keeps counts exact. */
  private move(pool: PoolState, task: TaskModel, state: TaskState): boolean {
    const table = this.table(pool);
    // task() gave every task a code, so `from` is known here.
    const from = table.get(task.id);
    const to = STATE_CODE[state];
    if (RANK[from]! >= RANK[to]!) return false;
    count(pool.counts, from, -1);
    count(pool.counts, to, 1);
    table.set(task.id, to);
    task.state = state;
    if (RANK[to]! >= 2 && RANK[from]! < 2 && pool.tasks.get(task.id) === task)
      table.pushSettled(task.id);
    return true;
  }

  /**
   * A `tasks` batch: each record is applied as the event it stands for would be (counted,
   * versioned and timed alike), without building the event.
   */
  private applyTasks(run: RunModel, e: EventOf<'tasks'>): void {
    const pid = e.pid;
    // Each record as an event: counted, the run's last time, the version.
    const begin = (ts: number): void => {
      run.events++;
      if (ts > run.lastTs) run.lastTs = ts;
      this.version++;
    };
    // The records between two pool switches are one pool's: looked up once.
    let lastId: string | undefined;
    let last: PoolState | undefined;
    const poolOf = (id: string, ts: number): PoolState => {
      if (id !== lastId || last === undefined) {
        last = this.pool(run, id, pid, ts);
        lastId = id;
      } else if (ts > last.lastTs) last.lastTs = ts;
      return last;
    };
    const visitor: TaskRecordVisitor = {
      submitted: (pool, ts, task, fn, kind, items, args) => {
        begin(ts);
        this.taskSubmitted(poolOf(pool, ts), ts, task, fn, kind, args, items);
      },
      submittedRun: (pool, first, fn, kind, items, run) => {
        const p = poolOf(pool, run.ts(0));
        const table = this.table(p);
        // While a submission would only be counted (see taskSubmitted), it is counted here
        // without a call: most of a burst's submissions.
        let counted = this.barsPerPool <= 0 && this.countsOnly(p);
        for (let k = 0; k < run.length; k++) {
          const id = first + k;
          const ts = run.ts(k);
          begin(ts);
          if (ts > p.lastTs) p.lastTs = ts;
          if (counted && table.get(id) === UNKNOWN) {
            table.set(id, 0);
            p.counts.submitted++;
            p.counts.queued++;
          } else {
            this.taskSubmitted(p, ts, id, fn, kind, run.args(k), items);
            counted = counted && this.countsOnly(p);
          }
        }
      },
      started: (pool, ts, task, worker) => {
        begin(ts);
        const p = poolOf(pool, ts);
        if (this.holdStarted(p, ts, task, worker, false) < 0) this.taskStarted(p, ts, task, worker);
      },
      ran: (pool, ts, task, fn, worker, result, durationMs, queuedMs) => {
        const p = poolOf(pool, ts);
        begin(ts);
        const at = this.holdStarted(p, ts, task, worker, true);
        if (at >= 0) {
          begin(ts);
          this.holdSucceeded(p, at, ts, task, fn, worker, result, durationMs, queuedMs);
          return;
        }
        this.taskStarted(p, ts, task, worker);
        begin(ts);
        this.taskEnded(
          run,
          p,
          ts,
          task,
          fn,
          worker,
          durationMs,
          String(result),
          queuedMs,
          undefined,
        );
      },
      succeeded: (pool, ts, task, fn, worker, result, durationMs, queuedMs) => {
        begin(ts);
        const p = poolOf(pool, ts);
        const held = p.held.running.size !== 0 ? p.held.running.get(task) : undefined;
        if (held !== undefined) {
          p.held.running.delete(task);
          this.holdSucceeded(p, held, ts, task, fn, worker, result, durationMs, queuedMs);
          return;
        }
        this.taskEnded(run, p, ts, task, fn, worker, durationMs, result, queuedMs, undefined);
      },
    };
    forEachTaskRecord(e, visitor);
  }

  /** Whether a submission of a task not seen yet would only be counted (taskSubmitted). */
  private countsOnly(pool: PoolState): boolean {
    return (
      pool.tasks.size >= this.tasksPerPool && this.table(pool).firstSettled(pool.kept) === undefined
    );
  }

  private taskSubmitted(
    pool: PoolState,
    ts: number,
    id: number,
    fn: string,
    kind: string,
    /** The preview, or what writes it (asked only for a model kept). */
    args: string | TaskArgs,
    items: number,
  ): void {
    let task = pool.tasks.get(id);
    if (task === undefined) {
      const table = this.table(pool);
      // keep()'s choice, known before building the model: counted, not kept (in a burst, most
      // submissions arrive this way).
      const counted = this.seen(pool, table, id) === 0 && this.countsOnly(pool);
      if (!counted) task = this.task(pool, id);
    }
    if (task !== undefined) {
      task.fn = fn;
      task.kind = kind;
      task.args = typeof args === 'string' ? args : args.text();
      task.items = items;
      task.submittedAt = ts;
    }
    const bars = this.barsOf(pool);
    if (bars) {
      const row = bars.row(id, this.version);
      if (row >= 0) {
        bars.fn[row] = bars.fnId(fn);
        bars.version[row] = this.version;
      }
    }
  }

  private taskStarted(pool: PoolState, ts: number, id: number, workerId: number): void {
    const task = this.task(pool, id);
    task.worker = workerId;
    task.startedAt = ts;
    if (this.move(pool, task, 'running')) this.worker(pool, workerId, ts).current = id;
    this.barStarted(pool, id, workerId, ts);
  }

  private barStarted(pool: PoolState, id: number, workerId: number, ts: number): void {
    const bars = this.barsOf(pool);
    if (bars) {
      const row = bars.row(id, this.version);
      if (row >= 0) {
        bars.worker[row] = workerId;
        bars.start[row] = ts;
        if (bars.state[row] === 0) bars.state[row] = 1;
        bars.version[row] = this.version;
      }
    }
  }

  private barEnded(
    pool: PoolState,
    id: number,
    fn: string,
    workerId: number | undefined,
    start: number,
    ts: number,
    code: number,
  ): void {
    const bars = this.barsOf(pool);
    if (bars) {
      const row = bars.row(id, this.version);
      if (row >= 0) {
        bars.fn[row] = bars.fnId(fn);
        if (workerId !== undefined) bars.worker[row] = workerId;
        bars.start[row] = start;
        bars.end[row] = ts;
        bars.state[row] = code;
        bars.version[row] = this.version;
      }
    }
  }

  /** task.succeeded (with `result`) or task.failed (with `error`). */
  private taskEnded(
    run: RunModel,
    pool: PoolState,
    ts: number,
    id: number,
    fn: string,
    workerId: number | undefined,
    durationMs: number | undefined,
    result: string | undefined,
    queuedMs: number | undefined,
    /** For a failure; undefined for a success. */
    error: ErrorInfo | undefined,
    ok = error === undefined,
  ): void {
    const task = this.task(pool, id);
    task.endedAt = ts;
    task.fn = fn;
    if (workerId !== undefined) task.worker = workerId;
    if (durationMs !== undefined) {
      task.durationMs = durationMs;
      task.startedAt ??= ts - durationMs;
    }
    let state: TaskState;
    if (ok) {
      state = 'passed';
      task.result = result;
      task.queuedMs = queuedMs;
    } else {
      // A task.failed event without its error is malformed: this throws, and it is reported.
      state = INFRASTRUCTURE_ERRORS.has(error!.name) ? 'errored' : 'failed';
      task.error = error;
    }
    this.barEnded(pool, id, fn, task.worker, task.startedAt ?? ts, ts, STATE_CODE[state]);
    if (!this.move(pool, task, state)) return;
    if (durationMs !== undefined) {
      pool.durations.count++;
      pool.durations.totalMs += durationMs;
      if (durationMs > pool.durations.maxMs) pool.durations.maxMs = durationMs;
    }
    if (task.worker !== undefined && task.worker > 0) {
      const worker = this.worker(pool, task.worker, ts);
      if (state === 'passed') worker.tasksDone++;
      else worker.tasksFailed++;
      if (worker.current === task.id) worker.current = undefined;
    }
    if (!ok) {
      this.error(run, {
        ts,
        source: 'task',
        pool: pool.id,
        task: task.id,
        ...(task.worker !== undefined ? { worker: task.worker } : {}),
        fn: task.fn,
        error: error!,
      });
    }
  }

  private error(run: RunModel, entry: ErrorEntry): void {
    run.errorCount++;
    run.errors.push(entry);
    if (run.errors.length > this.errorsPerRun)
      run.errors.splice(0, run.errors.length - this.errorsPerRun);
  }
}
