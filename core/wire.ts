/**
 * The whole conversation between the main program and one worker (thread or process).
 * Tasks and results travel in batches: one message can carry many, so a deep queue costs few
 * messages. Tuples, not objects, because they are cheaper to clone.
 */
import type { ThrownRecord } from './error-codec';

/** How a task's payload is applied to the function. */
export const TaskKind = {
  /** payload is the argument list: `fn(...payload)`. */
  Apply: 0,
  /** payload is a chunk of items: `payload.map(item => fn(item))`. */
  MapChunk: 1,
  /** payload is a chunk of argument lists: `payload.map(args => fn(...args))`. */
  StarmapChunk: 2,
  /**
   * On the wire only: an Apply task with one argument, sent as the argument itself (`fn(arg)`):
   * no array to clone and rebuild for each task.
   */
  ApplyOne: 3,
} as const;
export type TaskKind = (typeof TaskKind)[keyof typeof TaskKind];

/**
 * Tasks, flat: task id, function name, payload, kind; then the next task's four. One flat array
 * clones faster than an array per task, and a batch of 128 trivial tasks is mostly overhead.
 */
export type TaskBatch = unknown[];
/** A task's arguments, or a map chunk's items; a chunk of plain numbers travels packed. */
export type Payload = unknown[] | Float64Array;

/**
 * Map chunks and their results of at least this many plain numbers travel as a Float64Array:
 * cloning one is a copy of bytes, about 10× cheaper than cloning an array of numbers item by
 * item. Every JavaScript number is a float64, so nothing changes on the way (NaN, -0 included).
 */
export const PACK_MIN = 16;

/** `list[start..end)` as a Float64Array, or undefined if an item is not a number. */
export function packNumbers(
  list: ArrayLike<unknown>,
  start: number,
  end: number,
): Float64Array | undefined {
  if (end - start < PACK_MIN) return undefined;
  const out = new Float64Array(end - start);
  for (let i = start; i < end; i++) {
    const v = list[i];
    if (typeof v !== 'number') return undefined;
    out[i - start] = v;
  }
  return out;
}
export const TASK_STRIDE = 4;

export const Outcome = {
  Failed: 0,
  Succeeded: 1,
  /** The result could not be sent; value is the clone error's message. */
  Unsendable: 2,
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/**
 * Results, flat: task id, outcome, value (or ThrownRecord, or the clone error's message), whole
 * microseconds the task ran (an integer: no number boxed per result; 0 when not tracing); then
 * the next result's four. (The pool's `ranMs` passes it on to the trace as it is.)
 */
export type ResultBatch = unknown[];
export const RESULT_STRIDE = 4;

export interface InitMessage {
  t: 'init';
  /** file: URL of the worker module. */
  module: string;
  workerId: number;
  initializer: string | undefined;
  initArgs: unknown[];
  /** A trace sink is attached: time each task. */
  trace: boolean;
  /** PoolOptions.idleSpinMs (threads; 0 for processes and `Process`). */
  idleSpinMs: number;
  /** Set for a `Process`: run this function once with these arguments, then exit. */
  target?: { fn: string; args: unknown[] };
}

export type ToWorker =
  | InitMessage
  | { t: 'run'; tasks: TaskBatch }
  /** Finish what you hold, then exit 0. */
  | { t: 'exit' };

export type FromWorker =
  | { t: 'ready'; pid: number; threadId: number; functions: string[] }
  | { t: 'done'; results: ResultBatch }
  /** Loading the module or running the initializer failed. */
  | { t: 'startup-error'; phase: 'load' | 'initializer'; error: ThrownRecord }
  /** An uncaught exception or unhandled rejection outside any task: the worker is ending. */
  | { t: 'fatal'; error: ThrownRecord }
  /**
   * Sent from the worker's `exit` handler: it is ending with this code. Its tasks can fail now,
   * not when the process or thread has finished tearing down (3-15 ms later for a process).
   */
  | { t: 'exiting'; code: number }
  /** A copy of what a worker thread wrote to stderr, kept for the error reporting its death. */
  | { t: 'stderr'; text: string }
  /** A `Process` target threw: the process is ending with exit code 1. */
  | { t: 'target-error'; error: ThrownRecord };
