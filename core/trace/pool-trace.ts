/**
 * What a pool and a Process tell the tracer, in the protocol's words. Created only when a sink is
 * attached, so a pool without one pays for nothing but an `if`.
 */
import { inspect } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/worker-handle';
import type { Tracer } from './emitter';
import { TAG as SHARED_TAG } from '../shared/marshal';
import { errorInfo, preview } from './error-info';

type Kind = 'apply' | 'map' | 'starmap' | 'imap' | 'imapUnordered';

/** Hooks an AsyncResult calls when tracing: its callbacks ran, or `get(timeout)` gave up. */
export interface ResultObserver {
  callbackRan(which: 'callback' | 'errorCallback', error?: unknown): void;
  getTimedOut(timeoutMs: number): void;
}

export class PoolTrace {
  readonly pool: string;

  constructor(
    private readonly tracer: Tracer,
    poolNumber: number,
  ) {
    this.pool = `${process.pid}:${poolNumber}`;
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

  submitted(task: number, fn: string, kind: Kind, payload: unknown[], items: number): void {
    this.tracer.emit('task.submitted', {
      pool: this.pool,
      task,
      fn,
      kind,
      args: preview(payload.some(isSharedMark) ? payload.map(sharedLabel) : payload),
      items,
    });
  }

  started(task: number, worker: number): void {
    this.tracer.emit('task.started', { pool: this.pool, task, worker });
  }

  succeeded(
    task: number,
    fn: string,
    worker: number,
    value: unknown,
    durationMs: number,
    queuedMs: number,
  ): void {
    this.tracer.emit('task.succeeded', {
      pool: this.pool,
      task,
      fn,
      worker,
      result: preview(value),
      durationMs,
      queuedMs,
    });
  }

  failed(
    task: number,
    fn: string,
    worker: number | undefined,
    error: unknown,
    durationMs: number | undefined,
  ): void {
    this.tracer.emit('task.failed', {
      pool: this.pool,
      task,
      fn,
      ...(worker !== undefined ? { worker } : {}),
      error: errorInfo(error),
      ...(durationMs !== undefined ? { durationMs } : {}),
    });
  }

  observer(task: number): ResultObserver {
    return {
      callbackRan: (which, error) =>
        this.tracer.emit('callback.invoked', {
          pool: this.pool,
          task,
          which,
          ...(error !== undefined ? { error: errorInfo(error) } : {}),
        }),
      getTimedOut: (timeoutMs) =>
        this.tracer.emit('result.timeout', { pool: this.pool, task, timeoutMs }),
    };
  }
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
