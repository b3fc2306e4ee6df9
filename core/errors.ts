/**
 * The errors Poolscope itself raises. Each one names what went wrong and carries the facts a
 * caller needs to act on it (which worker, which task, which file), as own properties.
 *
 * `name` lives on the prototype, not on the instance, so that an error's own enumerable
 * properties are only the facts it carries.
 */

export interface WorkerIdentity {
  /** The pool's own number for the worker, 1-based, never reused within a pool. */
  workerId: number;
  /** The worker's process id (process backend) or the parent's pid (thread backend). */
  pid: number | undefined;
  /** The worker thread's id (thread backend); `undefined` for processes. */
  threadId: number | undefined;
}

function named<T extends new (...args: never[]) => Error>(ctor: T, name: string): T {
  Object.defineProperty(ctor.prototype, 'name', {
    value: name,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  return ctor;
}

/** `AsyncResult.get(timeout)` gave up waiting. The task itself keeps running (as in Python). */
export class TimeoutError extends Error {
  constructor(
    message: string,
    readonly timeoutMs: number,
  ) {
    super(message);
  }
}
named(TimeoutError, 'TimeoutError');

/** A task ran longer than its `timeout`: it was rejected and its worker stopped and replaced. */
export class TaskTimeoutError extends Error {
  constructor(
    message: string,
    readonly fn: string,
    readonly taskId: number,
    readonly timeoutMs: number,
    readonly workerId: number,
    readonly pid: number | undefined,
    readonly threadId: number | undefined,
  ) {
    super(message);
  }
}
named(TaskTimeoutError, 'TaskTimeoutError');

export type WorkerExitReason = 'crash' | 'killed' | 'out-of-memory' | 'uncaught' | 'startup';

/**
 * The worker running (or holding) a task died before the task settled: `process.exit(n)`, an
 * uncaught exception or unhandled rejection outside a task, a signal, running out of memory.
 */
export class WorkerExitError extends Error {
  constructor(
    message: string,
    readonly workerId: number,
    readonly pid: number | undefined,
    readonly threadId: number | undefined,
    /** The exit code as Python reports it: the code, or `-N` when killed by signal N. */
    readonly exitCode: number | null,
    /** The signal's name (`'SIGKILL'`), or `null`. */
    readonly signal: string | null,
    readonly reason: WorkerExitReason,
    /** The last lines the worker wrote to stderr. */
    readonly stderr: string,
    /** The task this error rejects, and whether the worker had started it. */
    readonly taskId: number | undefined,
    readonly fn: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
named(WorkerExitError, 'WorkerExitError');

/** A call the pool's state does not allow: submitting after `close()`, `join()` before it. */
export class PoolStateError extends Error {
  constructor(
    message: string,
    readonly state: 'running' | 'closed' | 'terminated' | 'broken',
  ) {
    super(message);
  }
}
named(PoolStateError, 'PoolStateError');

/** `terminate()` was called while this task was queued or running. */
export class PoolTerminatedError extends Error {
  constructor(
    message: string,
    readonly taskId: number,
    readonly fn: string,
  ) {
    super(message);
  }
}
named(PoolTerminatedError, 'PoolTerminatedError');

/** The worker module cannot be used: missing file, syntax error, throwing top level, bad initializer. */
export class WorkerModuleError extends Error {
  constructor(
    message: string,
    readonly module: string,
    readonly phase: 'resolve' | 'load' | 'initializer' | 'startup',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
named(WorkerModuleError, 'WorkerModuleError');

/** The worker module has no function of the name a task asked for. */
export class FunctionNotFoundError extends Error {
  constructor(
    message: string,
    readonly fn: string,
    readonly module: string,
    readonly available: string[],
  ) {
    super(message);
  }
}
named(FunctionNotFoundError, 'FunctionNotFoundError');

/** An argument or a result could not be sent between the main program and a worker. */
export class SerializationError extends Error {
  constructor(
    message: string,
    /** `'argument'`, `'result'` or `'map item'`. */
    readonly what: string,
    /** Position of the argument or map item, when there is one. */
    readonly index: number | undefined,
    readonly fn: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
named(SerializationError, 'SerializationError');

/**
 * A lock's holder, another process, died while holding it (killed, or it exited without
 * releasing). The lock has been released so the program can go on, but what it protected may be
 * half-updated: this error says so instead of waiting forever, as a robust mutex would.
 */
export class LockOwnerDiedError extends Error {
  constructor(
    message: string,
    readonly holderPid: number,
  ) {
    super(message);
  }
}
named(LockOwnerDiedError, 'LockOwnerDiedError');

/**
 * Shared memory this worker process reached through the process that made it (the server-backed
 * fallback, without the addon) is out of reach: that process exited, or stopped serving it.
 * Every later use of the objects over it fails the same way, never hangs. `ownerPid` is that
 * process.
 */
export class SharedMemoryGoneError extends Error {
  constructor(
    message: string,
    readonly ownerPid: number,
  ) {
    super(message);
  }
}
named(SharedMemoryGoneError, 'SharedMemoryGoneError');

/** How a manager ended, as far as the client can tell. */
export type ManagerGoneReason =
  'stopped' | 'closed' | 'killed' | 'exited' | 'unreachable' | 'connection-lost';

/**
 * The manager process behind a proxy is gone: stopped, killed, crashed, or its connection broke.
 * Every pending call and every later call of its proxies fails with this error (never a raw
 * EOF, Python gh-88780); `address` names the manager, `reason`, `exitCode` and `signal` say how
 * it ended when this process can know (the process that started it can).
 */
export class ManagerGoneError extends Error {
  constructor(
    message: string,
    /** `unix:/path/to/socket` or `tcp:host:port`. */
    readonly address: string,
    readonly reason: ManagerGoneReason,
    /** The manager process's pid, when known. */
    readonly managerPid: number | undefined,
    readonly exitCode: number | null,
    readonly signal: string | null,
  ) {
    super(message);
  }
}
named(ManagerGoneError, 'ManagerGoneError');

/**
 * A connection to a manager was refused because one side could not prove it knows the authkey:
 * a wrong key, or not a Poolscope manager at that address (Python's `AuthenticationError`).
 */
export class AuthenticationError extends Error {
  constructor(
    message: string,
    readonly address: string,
  ) {
    super(message);
  }
}
named(AuthenticationError, 'AuthenticationError');

/** A manager `dict` has no such key (`pop`, `getItem` without a default), as Python's KeyError. */
export class KeyError extends Error {
  constructor(
    message: string,
    readonly key: unknown,
  ) {
    super(message);
  }
}
named(KeyError, 'KeyError');

/** A manager `Barrier` was broken (aborted, reset, or a wait timed out) while this call waited. */
export class BrokenBarrierError extends Error {}
named(BrokenBarrierError, 'BrokenBarrierError');

/** `Queue.get` found nothing before its timeout (or at once, without blocking): Python's `queue.Empty`. */
export class QueueEmptyError extends Error {}
named(QueueEmptyError, 'QueueEmptyError');

/** `Queue.put` found no room before its timeout (or at once): Python's `queue.Full`. */
export class QueueFullError extends Error {}
named(QueueFullError, 'QueueFullError');

export type ThrownKind =
  | 'string'
  | 'number'
  | 'bigint'
  | 'boolean'
  | 'null'
  | 'undefined'
  | 'object'
  | 'symbol'
  | 'function';

/**
 * A task threw something that is not an `Error` (`throw 'boom'`, `throw null`, `throw {code: 1}`).
 * It still arrives as an `Error`, with the thrown value and its kind kept.
 */
export class ThrownValueError extends Error {
  constructor(
    message: string,
    readonly thrownKind: ThrownKind,
    readonly value: unknown,
  ) {
    super(message);
  }
}
named(ThrownValueError, 'ThrownValueError');

/**
 * Stands where a value could not be sent (a function, a symbol, a WeakMap): visible, never silent.
 */
export class UnsendableValue {
  constructor(
    readonly kind: string,
    readonly description: string,
  ) {}

  toString(): string {
    return `[unsendable ${this.kind}: ${this.description}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/** Poolscope's own error classes, revived by name when they cross from a worker. */
export const POOLSCOPE_ERRORS: Record<string, new (...args: never[]) => Error> = {
  TimeoutError,
  TaskTimeoutError,
  WorkerExitError,
  PoolStateError,
  PoolTerminatedError,
  WorkerModuleError,
  FunctionNotFoundError,
  SerializationError,
  ThrownValueError,
  LockOwnerDiedError,
  SharedMemoryGoneError,
  ManagerGoneError,
  AuthenticationError,
  KeyError,
  BrokenBarrierError,
  QueueEmptyError,
  QueueFullError,
};
