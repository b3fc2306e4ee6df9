/**
 * The program every worker runs, thread or process: load the user's worker module, then run the
 * tasks the main program sends, one at a time, in order, and send the results back in batches.
 */
import { isMainThread, parentPort, threadId } from 'node:worker_threads';
import { register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serialize } from 'node:v8';
import { encodeThrown } from '../error-codec';
import { FunctionNotFoundError } from '../errors';
import { unmarshalArgs } from '../shared/marshal';
import { dieWithParent } from './parent-watch';
import { locateSyntaxError } from './syntax-location';
import {
  Outcome,
  TaskKind,
  type FromWorker,
  type InitMessage,
  type Payload,
  type ResultBatch,
  type TaskBatch,
  type ToWorker,
  RESULT_STRIDE,
  TASK_STRIDE,
  packNumbers,
} from '../wire';

interface Channel {
  send(msg: FromWorker): void;
  /** Sends, then calls `then` once the message has left (or could not). */
  sendThen(msg: FromWorker, then: () => void): void;
  /** Throws the clone error if `value` cannot travel on this channel. */
  checkSendable(value: unknown): void;
  onMessage(listener: (msg: ToWorker) => void): void;
}

function threadChannel(): Channel {
  const port = parentPort!;
  return {
    send: (msg) => port.postMessage(msg),
    sendThen: (msg, then) => {
      port.postMessage(msg);
      then();
    },
    checkSendable: (value) => void structuredClone(value),
    onMessage: (listener) => port.on('message', listener),
  };
}

function processChannel(): Channel {
  return {
    send: (msg) => void process.send!(msg),
    sendThen: (msg, then) => {
      try {
        process.send!(msg, undefined, undefined, () => then());
      } catch {
        then();
      }
    },
    checkSendable: (value) => void serialize(value),
    onMessage: (listener) => process.on('message', listener as (m: unknown) => void),
  };
}

const channel = isMainThread ? processChannel() : threadChannel();
const TS_MODULE = /\.(?:ts|mts|cts)$/;

/** A child process whose parent dies never sees the IPC channel close if it is busy. */
function watchParent(): void {
  process.on('disconnect', () => process.exit(0));
  dieWithParent();
}

let workerId = 0;
let timed = false;
let moduleUrl = '';
let workerExports: Record<string, unknown> = {};
const functions = new Map<string, (...args: unknown[]) => unknown>();

function exportedFunctions(): string[] {
  const names = new Set<string>();
  for (const [key, value] of Object.entries(workerExports)) {
    if (typeof value === 'function' && key !== 'default') names.add(key);
  }
  const def = workerExports.default;
  if (def && typeof def === 'object') {
    for (const [key, value] of Object.entries(def as Record<string, unknown>)) {
      if (typeof value === 'function') names.add(key);
    }
  }
  return [...names].sort();
}

function lookup(name: string): (...args: unknown[]) => unknown {
  const cached = functions.get(name);
  if (cached) return cached;
  let fn = workerExports[name];
  const def = workerExports.default as Record<string, unknown> | undefined;
  if (fn === undefined && def && (typeof def === 'object' || typeof def === 'function')) {
    fn = def[name];
  }
  if (typeof fn !== 'function') {
    const available = exportedFunctions();
    const what =
      fn === undefined ? 'has no export named' : `exports a ${typeof fn}, not a function, as`;
    throw new FunctionNotFoundError(
      `worker module ${moduleUrl} ${what} '${name}'; its exported functions: ${available.join(', ') || '(none)'}`,
      name,
      moduleUrl,
      available,
    );
  }
  const bound = fn as (...args: unknown[]) => unknown;
  functions.set(name, bound);
  return bound;
}

async function loadModule(init: InitMessage): Promise<void> {
  moduleUrl = init.module;
  if (TS_MODULE.test(new URL(init.module).pathname)) {
    register(pathToFileURL(`${__dirname}/ts-hooks.mjs`));
    process.setSourceMapsEnabled(true);
  }
  workerExports = (await import(init.module)) as Record<string, unknown>;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

// ---- Running tasks: one at a time, in arrival order, results sent back in batches.

/** Tasks to run, flat as they arrive (see TaskBatch). */
const queue: TaskBatch = [];
let head = 0;
let draining = false;
let exitRequested = false;
let outbox: ResultBatch = [];
let oldestUnsent = 0;
/** Results are held at most this long (ms) while later short tasks run, to batch them. */
const HOLD_MS = 0.2;
const MAX_BATCH = 256;

function flush(): void {
  if (outbox.length === 0) return;
  const results = outbox;
  outbox = [];
  try {
    channel.send({ t: 'done', results });
  } catch {
    // Some result cannot be cloned: find which, and send a clear failure in its place.
    for (let r = 0; r < results.length; r += RESULT_STRIDE) {
      if (results[r + 1] !== Outcome.Succeeded) continue;
      try {
        channel.checkSendable(results[r + 2]);
      } catch (err) {
        results[r + 1] = Outcome.Unsendable;
        results[r + 2] = err instanceof Error ? err.message : String(err);
      }
    }
    channel.send({ t: 'done', results });
  }
}

/** Set by the editor's "Pause on Task Error" for debug sessions. */
const PAUSE_ON_TASK_ERROR = Boolean(process.env.POOLSCOPE_PAUSE_ON_TASK_ERROR);

/**
 * Stops in an attached debugger where a task's error is caught, before it is sent to the main
 * program: `error` is what the task threw, `fn` the task function, `args` its arguments.
 * Without a debugger the statement does nothing.
 */
function pauseOnTaskError(error: unknown, fn: string, args: unknown): void {
  const task = { fn, args, error };
  debugger; // Poolscope: a task threw (see `task`); continue to send the error to the pool.
  void task;
}

/** `ranUs`: whole microseconds it ran; `at`: when it ended (performance.now()). */
function push(id: number, outcome: Outcome, value: unknown, ranUs: number, at: number): void {
  if (outbox.length === 0) oldestUnsent = at;
  outbox.push(id, outcome, value, ranUs);
}

async function runChunk(
  fn: (...args: unknown[]) => unknown,
  items: ArrayLike<unknown>,
  spread: boolean,
): Promise<unknown[] | Float64Array> {
  const out = new Array<unknown>(items.length);
  for (let i = 0; i < items.length; i++) {
    const r = spread ? fn(...(items[i] as unknown[])) : fn(items[i]);
    out[i] = isPromiseLike(r) ? await r : r;
  }
  return packNumbers(out, 0, out.length) ?? out;
}

function start(name: string, payload: Payload, kind: TaskKind): unknown {
  const fn = lookup(name);
  // A packed chunk holds only numbers: nothing to unmarshal.
  if (!Array.isArray(payload)) return runChunk(fn, payload, false);
  switch (kind) {
    case TaskKind.Apply:
      return fn(...unmarshalArgs(payload));
    case TaskKind.MapChunk:
      return runChunk(fn, unmarshalArgs(payload), false);
    default:
      return runChunk(
        fn,
        payload.map((args) => unmarshalArgs(args as unknown[])),
        true,
      );
  }
}

function drainSoon(): void {
  void drain();
}

async function drain(): Promise<void> {
  draining = true;
  // One clock read per task: when a task ends is when the next one starts (a timed task's
  // duration) and when whether to send the results held is decided; read again after a send.
  let clock = performance.now();
  while (head < queue.length) {
    if (
      outbox.length > 0 &&
      (outbox.length >= MAX_BATCH * RESULT_STRIDE || clock - oldestUnsent > HOLD_MS)
    ) {
      flush();
      clock = performance.now();
    }
    const id = queue[head] as number;
    const name = queue[head + 1] as string;
    const payload = queue[head + 2] as Payload;
    const kind = queue[head + 3] as TaskKind;
    queue[head + 2] = undefined as unknown as Payload;
    head += TASK_STRIDE;
    const startedAt = clock;
    let outcome: Outcome = Outcome.Succeeded;
    let value: unknown;
    try {
      value = start(name, payload, kind);
      if (isPromiseLike(value)) {
        flush();
        value = await value;
      }
    } catch (err) {
      if (PAUSE_ON_TASK_ERROR) pauseOnTaskError(err, name, payload);
      outcome = Outcome.Failed;
      value = encodeThrown(err);
    }
    clock = performance.now();
    push(id, outcome, value, timed ? Math.round((clock - startedAt) * 1000) : 0, clock);
  }
  queue.length = 0;
  head = 0;
  flush();
  draining = false;
  if (exitRequested) process.exit(0);
}

async function runTarget(init: InitMessage): Promise<void> {
  const target = init.target!;
  try {
    const value = lookup(target.fn)(...unmarshalArgs(target.args));
    if (isPromiseLike(value)) await value;
  } catch (err) {
    process.exitCode = 1;
    channel.sendThen({ t: 'target-error', error: encodeThrown(err) }, () => process.exit(1));
    return;
  }
  process.exit(0);
}

async function onInit(init: InitMessage): Promise<void> {
  workerId = init.workerId;
  timed = init.trace;
  try {
    await loadModule(init);
  } catch (err) {
    if (err instanceof SyntaxError && !err.message.includes(fileURLToPath(init.module))) {
      const where = await locateSyntaxError(fileURLToPath(init.module)).catch(() => undefined);
      if (where) {
        Object.defineProperty(err, 'location', {
          value: where,
          enumerable: true,
          configurable: true,
        });
      }
    }
    channel.sendThen({ t: 'startup-error', phase: 'load', error: encodeThrown(err) }, () =>
      process.exit(1),
    );
    return;
  }
  if (init.target) {
    await runTarget(init);
    return;
  }
  if (init.initializer) {
    try {
      const r = lookup(init.initializer)(...init.initArgs);
      if (isPromiseLike(r)) await r;
    } catch (err) {
      channel.sendThen({ t: 'startup-error', phase: 'initializer', error: encodeThrown(err) }, () =>
        process.exit(1),
      );
      return;
    }
  }
  channel.send({ t: 'ready', pid: process.pid, threadId, functions: exportedFunctions() });
}

process.on('uncaughtException', (err, origin) => {
  const what = origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception';
  const text = err instanceof Error ? (err.stack ?? String(err)) : String(err);
  process.stderr.write(
    `poolscope worker ${workerId}: ${what} outside any task, exiting:\n${text}\n`,
  );
  flush();
  channel.sendThen({ t: 'fatal', error: encodeThrown(err) }, () => process.exit(1));
});

/** A worker thread's stderr reaches the main program's on its own; the pool keeps a copy of the tail. */
function copyStderr(): void {
  const write = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    parentPort!.postMessage({ t: 'stderr', text } satisfies FromWorker);
    return write(chunk, ...rest);
  }) as typeof process.stderr.write;
}

process.on('exit', (code) => {
  try {
    channel.send({ t: 'exiting', code });
  } catch {
    // The channel is gone: the main program learns of the exit from the exit itself.
  }
});

if (isMainThread) watchParent();
else copyStderr();

channel.onMessage((msg) => {
  switch (msg.t) {
    case 'init':
      void onInit(msg);
      break;
    case 'run':
      for (const item of msg.tasks) queue.push(item);
      if (!draining) {
        // From a microtask, not from inside the message event: a task's error then carries its
        // own frames and two of ours, not the event machinery's, which are costly to capture
        // and format, and cut by the main program anyway.
        draining = true;
        queueMicrotask(drainSoon);
      }
      break;
    case 'exit':
      exitRequested = true;
      if (!draining) process.exit(0);
      break;
  }
});
