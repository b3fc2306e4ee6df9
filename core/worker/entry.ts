/**
 * The program every worker runs, thread or process: load the user's worker module, then run the
 * tasks the main program sends, one at a time, in order, and send the results back in batches.
 */
import {
  isMainThread,
  parentPort,
  receiveMessageOnPort,
  threadId,
  workerData,
} from 'node:worker_threads';
import { register } from 'node:module';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serialize } from 'node:v8';
import {
  describeThrown,
  encodeThrown,
  sendableRecord,
  unsendableReason,
  type ThrownRecord,
} from '../error-codec';
import { FunctionNotFoundError } from '../errors';
import { unmarshalArg, unmarshalArgs } from '../shared/marshal';
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
  /**
   * Threads only: polls for up to `spinMs`, then blocks up to `waitMs`, for the main program's
   * next message, and hands it to `listener` at once, skipping the event loop. True if one came.
   */
  idleWait?:
    ((spinMs: number, waitMs: number, listener: (msg: ToWorker) => void) => boolean) | undefined;
  /**
   * Threads only: counters shared with the pool; this worker stores in [1] how many tasks it has
   * finished, which the pool reads to pace a burst it cannot take results during.
   */
  progress?: Int32Array | undefined;
}

/** An idle thread's poll reads the clock once every this many loads of the shared count. */
const SPIN_CHECK = 1024;

function threadChannel(): Channel {
  const port = parentPort!;
  // [0]: messages the main thread sent; [1]: tasks finished here (see ThreadWorker).
  const counters = (workerData as { counters?: Int32Array } | null)?.counters;
  const sent = counters; // [0] is the count idleWait waits on
  let seen = 0;
  return {
    progress: counters,
    idleWait: sent
      ? (spinMs, waitMs, listener) => {
          for (;;) {
            // A thread asleep on an idle core takes tens of microseconds to wake (more in a VM):
            // a short poll first catches a task sent in reply to the result just posted.
            // The clock is read once every SPIN_CHECK polls: each read allocates a number, and
            // a poll that read it every time made a worker's garbage collections (pauses of a
            // millisecond or more, early in its life) land in the middle of its tasks.
            if (spinMs > 0) {
              const until = performance.now() + spinMs;
              for (let n = 1; Atomics.load(sent, 0) === seen; n++) {
                if (n % SPIN_CHECK === 0 && performance.now() >= until) break;
              }
            }
            const woke = Atomics.wait(sent, 0, seen, waitMs);
            if (woke === 'timed-out') return false;
            seen = Atomics.load(sent, 0);
            let got = false;
            for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
              listener(m.message as ToWorker);
              got = true;
            }
            // 'not-equal' with nothing to read: the count had moved while the event loop
            // delivered those messages; now it is current, so wait again.
            if (got || woke === 'ok') return got;
          }
        }
      : undefined,
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
const progress = channel.progress;
const TS_MODULE = /\.(?:ts|mts|cts)$/;

/**
 * This runner's frames in a task error's stack, cut before the error is sent: this file, and
 * the source it was built from (as frames read with source maps on).
 */
const RUNNER_FRAMES = [
  `${__filename}:`,
  `${resolvePath(__dirname, '..', '..', '..', 'core', 'worker', 'entry.ts')}:`,
] as const;

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
/** Tasks finished here, counted in `channel.progress[1]` (threads) as they finish. */
let finished = 0;
let oldestUnsent = 0;
/** Results are held at most this long (ms) while later short tasks run, to batch them. */
const HOLD_MS = 0.2;
const MAX_BATCH = 256;
/**
 * How long (ms) an idle thread blocks waiting for its next task before returning to its event
 * loop (timers and I/O a task left running wait that long at most).
 */
const IDLE_WAIT_MS = 1;
/** The longest (ms) a thread keeps taking tasks this way without a turn of its event loop. */
const LOOP_TURN_MS = 5;
/** A drain of at most this many tasks is request/response traffic, worth polling for (see idleSpinMs). */
const SPIN_AFTER_TASKS = 2;
/** PoolOptions.idleSpinMs, from the init message. */
let idleSpinMs = 0;

function flush(): void {
  if (outbox.length === 0) return;
  const results = outbox;
  outbox = [];
  try {
    channel.send({ t: 'done', results });
  } catch {
    // Some result cannot be cloned: find which, and send a clear failure in its place. A failed
    // task's error whose record cannot be (a detached buffer in its `detail`) travels with that
    // part marked instead.
    for (let r = 0; r < results.length; r += RESULT_STRIDE) {
      const outcome = results[r + 1];
      if (outcome !== Outcome.Succeeded && outcome !== Outcome.Failed) continue;
      try {
        channel.checkSendable(results[r + 2]);
      } catch (err) {
        if (outcome === Outcome.Failed) {
          results[r + 2] = sendableRecord(results[r + 2], channel.checkSendable);
        } else {
          results[r + 1] = Outcome.Unsendable;
          results[r + 2] = unsendableReason(results[r + 2], err);
        }
      }
    }
    channel.send({ t: 'done', results });
  }
}

/** What was thrown, encoded, with any part that cannot be sent marked (sendableRecord). */
function encodeForSending(thrown: unknown): ThrownRecord {
  const record = encodeThrown(thrown);
  try {
    channel.checkSendable(record);
    return record;
  } catch {
    return sendableRecord(record, channel.checkSendable);
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

const STARTED = Promise.resolve();

function start(name: string, payload: Payload, kind: TaskKind): unknown {
  const fn = lookup(name);
  if (kind === TaskKind.ApplyOne) return fn(unmarshalArg(payload));
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

/** When the task running now started (performance.now()), for its duration. */
let clock = 0;
/** When this drain began: it gives the event loop a turn every LOOP_TURN_MS. */
let began = 0;
/** Tasks run since the worker last went idle (see SPIN_AFTER_TASKS). */
let ran = 0;

/** A task's outcome, into the results held; when it ended starts the next task's clock. */
function finish(id: number, outcome: Outcome, value: unknown, startedAt: number): void {
  clock = performance.now();
  push(id, outcome, value, timed ? Math.round((clock - startedAt) * 1000) : 0, clock);
  if (progress) Atomics.store(progress, 1, ++finished);
}

/**
 * Runs the queued tasks in order, then waits a moment for more (threads). Synchronous: a task
 * whose function returns a promise is awaited by resume(), which calls this again (`resumed`)
 * once it has settled. A loop with no `await` in it is a much smaller compile for the engine
 * (every worker thread compiles it during its first burst), and a task's error stack holds one
 * frame of this file below the task's own (each frame costs the worker time to capture).
 */
function drain(resumed?: unknown): void {
  if (resumed !== true) {
    // One clock read per task: when a task ends is when the next one starts (a timed task's
    // duration) and when whether to send the results held is decided; read again after a send.
    clock = began = performance.now();
    ran = 0;
  }
  for (;;) {
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
      ran++;
      queue[head + 2] = undefined as unknown as Payload;
      head += TASK_STRIDE;
      const startedAt = clock;
      let outcome: Outcome = Outcome.Succeeded;
      let value: unknown;
      try {
        // An apply task is called right here (see above).
        value =
          kind === TaskKind.ApplyOne
            ? lookup(name)(unmarshalArg(payload))
            : kind === TaskKind.Apply && Array.isArray(payload)
              ? lookup(name)(...unmarshalArgs(payload))
              : start(name, payload, kind);
        if (isPromiseLike(value)) {
          void resume(value, id, startedAt, name, payload);
          return;
        }
      } catch (err) {
        if (PAUSE_ON_TASK_ERROR) pauseOnTaskError(err, name, payload);
        outcome = Outcome.Failed;
        value = encodeThrown(err, RUNNER_FRAMES);
      }
      finish(id, outcome, value, startedAt);
    }
    queue.length = 0;
    head = 0;
    flush();
    // A thread waits a moment for its next task before going back to the event loop: woken
    // directly, it starts the task sooner than a message event would.
    // A worker fed one task at a time also polls briefly first (not one fed batches: on a busy
    // machine the main program needs that core to send the next batch).
    const spinMs = ran <= SPIN_AFTER_TASKS ? idleSpinMs : 0;
    // Tasks arriving back to back would keep a thread here for good: it goes back to its event
    // loop at least every LOOP_TURN_MS, so that timers and I/O its tasks started keep running.
    if (exitRequested || performance.now() - began > LOOP_TURN_MS) break;
    if (!channel.idleWait?.(spinMs, IDLE_WAIT_MS, onMessage)) break;
    if (head >= queue.length) break;
    clock = performance.now();
    ran = 0;
  }
  draining = false;
  if (exitRequested) process.exit(0);
}

/** A task that returned a promise: its outcome once settled, then the rest of the queue. */
async function resume(
  pending: PromiseLike<unknown>,
  id: number,
  startedAt: number,
  name: string,
  payload: Payload,
): Promise<void> {
  // What waits behind it is sent first.
  flush();
  let outcome: Outcome = Outcome.Succeeded;
  let value: unknown;
  try {
    value = await pending;
  } catch (err) {
    if (PAUSE_ON_TASK_ERROR) pauseOnTaskError(err, name, payload);
    outcome = Outcome.Failed;
    value = encodeThrown(err, RUNNER_FRAMES);
  }
  finish(id, outcome, value, startedAt);
  drain(true);
}

async function runTarget(init: InitMessage): Promise<void> {
  const target = init.target!;
  try {
    const value = lookup(target.fn)(...unmarshalArgs(target.args));
    if (isPromiseLike(value)) await value;
  } catch (err) {
    process.exitCode = 1;
    channel.sendThen({ t: 'target-error', error: encodeForSending(err) }, () => process.exit(1));
    return;
  }
  process.exit(0);
}

async function onInit(init: InitMessage): Promise<void> {
  workerId = init.workerId;
  timed = init.trace;
  idleSpinMs = init.idleSpinMs;
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
    channel.sendThen({ t: 'startup-error', phase: 'load', error: encodeForSending(err) }, () =>
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
      const r = lookup(init.initializer)(...unmarshalArgs(init.initArgs));
      if (isPromiseLike(r)) await r;
    } catch (err) {
      channel.sendThen(
        { t: 'startup-error', phase: 'initializer', error: encodeForSending(err) },
        () => process.exit(1),
      );
      return;
    }
  }
  channel.send({ t: 'ready', pid: process.pid, threadId, functions: exportedFunctions() });
}

process.on('uncaughtException', (err, origin) => {
  const what = origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception';
  process.stderr.write(
    `poolscope worker ${workerId}: ${what} outside any task, exiting:\n${describeThrown(err)}\n`,
  );
  flush();
  channel.sendThen({ t: 'fatal', error: encodeForSending(err) }, () => process.exit(1));
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

function onMessage(msg: ToWorker): void {
  switch (msg.t) {
    case 'init':
      void onInit(msg);
      break;
    case 'run':
      for (const item of msg.tasks) queue.push(item);
      if (!draining) {
        // From a promise job, not from inside the message event nor queueMicrotask (which wraps
        // its callback in three frames of its own): a task's error then carries its own frames
        // and one of ours, not the event machinery's, which are costly to capture and format,
        // and cut by the main program anyway.
        draining = true;
        void STARTED.then(drain);
      }
      break;
    case 'exit':
      exitRequested = true;
      if (!draining) process.exit(0);
      break;
  }
}

channel.onMessage(onMessage);
