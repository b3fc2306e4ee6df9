/**
 * What a pool and a Process tell the tracer, in the protocol's words. Created only when a sink is
 * attached, so a pool without one pays for nothing but an `if`.
 */
import { inspect } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/worker-handle';
import { tick, type Tracer } from './emitter';
import { TAG as SHARED_TAG } from '../shared/marshal';
import { errorInfo, preview } from './error-info';
import { KINDS, MAX_RAW_ARGS as RAW_ARGS, type TaskBatchWriter } from './task-batch';

/** As a plain constant: an imported binding is a getter call in the built code. */
const MAX_RAW_ARGS = RAW_ARGS;

type Kind = 'apply' | 'map' | 'starmap' | 'imap' | 'imapUnordered';

/**
 * What an AsyncResult tells the trace (the pool's PoolTrace itself: nothing is allocated per
 * task): a task's callbacks ran, or `get(timeout)` gave up on it.
 */
export interface ResultObserver {
  /** `threw`: the callback threw `error` (which may be any value, `undefined` too). */
  callbackRan(
    task: number,
    which: 'callback' | 'errorCallback',
    threw: boolean,
    error?: unknown,
  ): void;
  getTimedOut(task: number, timeoutMs: number): void;
}

export class PoolTrace implements ResultObserver {
  readonly pool: string;
  private readonly batch: TaskBatchWriter;

  constructor(
    private readonly tracer: Tracer,
    poolNumber: number,
  ) {
    this.pool = `${process.pid}:${poolNumber}`;
    this.batch = tracer.batch;
  }

  created(backend: Backend, size: number, module: string, options: Record<string, unknown>): void {
    this.tracer.emit('pool.created', {
      pool: this.pool,
      backend,
      size,
      module: fileURLToPath(module),
      options,
    });
  }

  closed(): void {
    this.tracer.emit('pool.closed', { pool: this.pool });
  }

  terminated(): void {
    this.tracer.emit('pool.terminated', { pool: this.pool });
  }

  workerStarted(
    worker: number,
    pid: number | undefined,
    threadId: number | undefined,
    backend: Backend,
  ): void {
    this.tracer.emit('worker.started', {
      pool: this.pool,
      worker,
      ...(backend === 'process' ? { workerPid: pid } : { workerTid: threadId }),
    });
  }

  workerExited(
    worker: number,
    exitCode: number | null,
    signal: string | null,
    reason:
      | 'normal'
      | 'recycled'
      | 'timeout'
      | 'terminated'
      | 'crash'
      | 'killed'
      | 'out-of-memory'
      | 'uncaught'
      | 'startup',
    lostTasks: number[],
    stderrTail: string,
  ): void {
    this.tracer.emit('worker.exited', {
      pool: this.pool,
      worker,
      exitCode,
      signal,
      reason,
      lostTasks,
      ...(stderrTail && lostTasks.length > 0 ? { stderrTail: stderrTail.slice(-2000) } : {}),
    });
  }

  /**
   * Task events are records of the tracer's `tasks` batch; `at` is the pool's `tick()`. While the
   * batch is open and far from every limit (`batch.fast`), a record goes straight into it;
   * otherwise, through the tracer (which opens, closes, bounds and counts).
   */
  submitted(
    task: number,
    fn: string,
    kind: Kind,
    payload: unknown[],
    items: number,
    at: number,
  ): void {
    const args = recordArgs(payload);
    const code = KIND_CODES[kind];
    if (!this.batch.fast || !this.batch.submitted(this.pool, at, task, fn, code, items, args))
      this.tracer.taskSubmitted(this.pool, at, task, fn, code, items, args);
  }

  started(task: number, worker: number, at: number): void {
    if (!this.batch.fast || !this.batch.started(this.pool, at, task, worker))
      this.tracer.taskStarted(this.pool, at, task, worker);
  }

  succeeded(
    task: number,
    fn: string,
    worker: number,
    value: unknown,
    /** Whole microseconds, as the worker measured it. */
    durationUs: number,
    /** Whole microseconds from submitted to started. */
    queuedUs: number,
    at = tick(),
  ): void {
    const result = recordResult(value);
    const b = this.batch;
    if (!b.fast || !b.succeeded(this.pool, at, task, fn, worker, result, durationUs, queuedUs))
      this.tracer.taskSucceeded(this.pool, at, task, fn, worker, result, durationUs, queuedUs);
  }

  failed(
    task: number,
    fn: string,
    worker: number | undefined,
    error: unknown,
    /** Whole microseconds, as the worker measured it. */
    durationUs: number | undefined,
  ): void {
    this.tracer.emit('task.failed', {
      pool: this.pool,
      task,
      fn,
      ...(worker !== undefined ? { worker } : {}),
      error: errorInfo(error),
      ...(durationUs !== undefined ? { durationMs: durationUs / 1000 } : {}),
    });
  }

  callbackRan(
    task: number,
    which: 'callback' | 'errorCallback',
    threw: boolean,
    error?: unknown,
  ): void {
    this.tracer.emit('callback.invoked', {
      pool: this.pool,
      task,
      which,
      ...(threw ? { error: errorInfo(error) } : {}),
    });
  }

  getTimedOut(task: number, timeoutMs: number): void {
    this.tracer.emit('result.timeout', { pool: this.pool, task, timeoutMs });
  }
}

const KIND_CODES: Record<Kind, number> = {
  apply: KINDS.indexOf('apply'),
  map: KINDS.indexOf('map'),
  starmap: KINDS.indexOf('starmap'),
  imap: KINDS.indexOf('imap'),
  imapUnordered: KINDS.indexOf('imapUnordered'),
};

/** A 32-bit integer: what a record holds as itself (its preview is its decimal text). */
function isInt32(v: unknown): v is number {
  return typeof v === 'number' && (v | 0) === v;
}

/**
 * A task's arguments for its `tasks` record: up to 7 integers as themselves (the consumer
 * writes the preview, `[ 1, 2 ]`, without util.inspect), anything else as its preview.
 */
function recordArgs(payload: unknown[]): readonly number[] | string {
  const n = payload.length;
  if (n <= MAX_RAW_ARGS) {
    let raw = true;
    for (let i = 0; i < n && raw; i++) raw = isInt32(payload[i]);
    if (raw) return payload as number[];
  }
  return preview(payload.some(isSharedMark) ? payload.map(sharedLabel) : payload);
}

/** A result for its record: an integer as itself, else its preview. */
function recordResult(value: unknown): number | string {
  if (isInt32(value)) return value;
  if (value === undefined) return 'undefined';
  return preview(value);
}

function isSharedMark(arg: unknown): boolean {
  return typeof arg === 'object' && arg !== null && SHARED_TAG in arg;
}

/** A shared argument travels as a descriptor; previews show what it is: `Value('i')`, `Lock`. */
function sharedLabel(arg: unknown): unknown {
  if (!isSharedMark(arg)) return arg;
  const d = (
    arg as { d?: { kind?: string; type?: { code?: string; struct?: string }; length?: number } }
  ).d;
  const type = d?.type?.code ? `'${d.type.code}'` : (d?.type?.struct ?? '');
  const text =
    d?.kind === 'Array'
      ? `Array(${type}, ${d.length ?? '?'})`
      : d?.kind === 'Value'
        ? `Value(${type})`
        : String(d?.kind ?? 'shared');
  return { [inspect.custom]: () => text };
}
