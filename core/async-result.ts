/**
 * What a caller holds for work in flight, after Python's `ApplyResult`, `MapResult` and
 * `IMapIterator`. Each settles exactly once, calls its callback or error callback exactly once,
 * and a callback that throws is reported without breaking anything else.
 */
import { TimeoutError } from './errors';
import { waitDelay } from './timeouts';
import type { ResultObserver } from './trace/pool-trace';

/** Where a settled task's outcome goes. The pool knows tasks only through this. */
export interface TaskSink {
  taskSettled(ok: boolean, value: unknown, offset: number, count: number): void;
}

export type ReportCallbackError = (err: unknown, which: 'callback' | 'errorCallback') => void;

const PENDING = 0;
const FULFILLED = 1;
const REJECTED = 2;

/** Handles a rejection nobody asked for: a result used only through its callbacks is not an error. */
const ignore = (): void => {};

/**
 * The executor of every AsyncResult: one function that hands the promise's resolving functions
 * over through these two variables, not a closure (and its context) allocated for each task.
 */
let resolving: ((value: unknown) => void) | undefined;
let rejecting: ((err: unknown) => void) | undefined;
function captureResolvers(resolve: (value: never) => void, reject: (err: unknown) => void): void {
  resolving = resolve as (value: unknown) => void;
  rejecting = reject;
}

/**
 * The result of `applyAsync`: `get(timeout)`, `wait(timeout)`, `ready()`, `successful()`, and
 * awaitable. `get` with a timeout rejects with `TimeoutError` while the task keeps running.
 *
 * It is a native promise (of class AsyncResult, whose instances report `Promise` as their
 * constructor): `await`, `Promise.all` and `then` take the engine's fast path for promises instead
 * of treating it as a foreign thenable, which costs about 2 µs more per task in a burst.
 */
export class AsyncResult<T> extends Promise<T> implements TaskSink {
  private state: 0 | 1 | 2 = PENDING;
  private value: unknown;
  private resolveResult: (value: unknown) => void;
  private rejectResult: (err: unknown) => void;
  private readonly what: string;
  private readonly task: number;
  private callback: ((value: T) => void) | undefined;
  private errorCallback: ((err: Error) => void) | undefined;
  private readonly report: ReportCallbackError;
  /** Set only when a trace sink is attached: the pool's trace, told about callbacks and timeouts. */
  private readonly observer: ResultObserver | undefined;
  /** The task the trace knows this result by (a map's first chunk). */
  private readonly traceTask: number;

  /**
   * @internal `what` and `task` say what the result is for, in messages: with a task id,
   * `task #3 square()` for `what` = 'square'; without, `what` itself.
   */
  constructor(
    what: string,
    task: number,
    callback: ((value: T) => void) | undefined,
    errorCallback: ((err: Error) => void) | undefined,
    report: ReportCallbackError,
    observer?: ResultObserver,
    traceTask = task,
  ) {
    super(captureResolvers);
    this.resolveResult = resolving!;
    this.rejectResult = rejecting!;
    resolving = rejecting = undefined;
    this.what = what;
    this.task = task;
    this.callback = callback;
    this.errorCallback = errorCallback;
    this.report = report;
    this.observer = observer;
    this.traceTask = traceTask;
  }

  /** What the result is for, used in messages: `task #3 square()`. */
  get description(): string {
    return this.task > 0 ? `task #${this.task} ${this.what}()` : this.what;
  }

  /** @internal */
  taskSettled(ok: boolean, value: unknown, _offset: number, _count: number): void {
    this.settle(ok, value);
  }

  /** @internal Settles once; later calls are ignored. */
  settle(ok: boolean, value: unknown): void {
    if (this.state !== PENDING) return;
    this.state = ok ? FULFILLED : REJECTED;
    this.value = value;
    const callback = ok ? this.callback : this.errorCallback;
    const release = ok ? this.resolveResult : this.rejectResult;
    // A settled result keeps its outcome only: the caller's callbacks (and whatever they hold)
    // and the promise's resolving functions can go. Results kept after a burst held 376 bytes
    // a task, 208 without these.
    this.callback = this.errorCallback = undefined;
    this.resolveResult = this.rejectResult = ignore;
    // As in Python, the callback runs before anyone waiting is released.
    if (callback) this.runCallback(ok ? 'callback' : 'errorCallback', callback, value);
    if (ok) release(value);
    else {
      Promise.prototype.then.call(this, undefined, ignore);
      release(value);
    }
  }

  private runCallback(
    which: 'callback' | 'errorCallback',
    callback: (value: never) => void,
    value: unknown,
  ): void {
    try {
      callback(value as never);
    } catch (err) {
      // Neither lets anything escape (the rest of a batch of results is being settled).
      this.report(err, which);
      this.observer?.callbackRan(this.traceTask, which, true, err);
      return;
    }
    this.observer?.callbackRan(this.traceTask, which, false);
  }

  ready(): boolean {
    return this.state !== PENDING;
  }

  /** Whether the task succeeded; throws if it has not finished (Python raises ValueError). */
  successful(): boolean {
    if (this.state === PENDING) throw new Error(`${this.description} is not ready`);
    return this.state === FULFILLED;
  }

  /**
   * The task's value, or its error. With `timeoutMs`, rejects with `TimeoutError` if the task has
   * not finished by then; the task keeps running and a later `get()` can still have its value.
   */
  get(timeoutMs?: number): Promise<T> {
    let delay: number | undefined;
    try {
      delay = waitDelay(timeoutMs, `${this.description}: get()`);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (delay === undefined || this.state !== PENDING) return this;
    const asked = timeoutMs!;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.observer?.getTimedOut(this.traceTask, asked);
        reject(
          new TimeoutError(
            `${this.description} did not finish within ${asked} ms (it is still running)`,
            asked,
          ),
        );
      }, delay);
      this.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /** Resolves when the task has finished, or after `timeoutMs`; tells which (`ready()`). */
  wait(timeoutMs?: number): Promise<boolean> {
    try {
      waitDelay(timeoutMs, `${this.description}: wait()`);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (this.state !== PENDING) return Promise.resolve(true);
    return this.get(timeoutMs).then(
      () => true,
      (err: unknown) => !(err instanceof TimeoutError && this.state === PENDING),
    );
  }
}

/**
 * Instances say their constructor is Promise: `then` makes plain promises (not AsyncResults,
 * whose constructor needs a task), and `Promise.resolve(result)` returns the result itself.
 */
function promiseConstructed(cls: { prototype: object }): void {
  Object.defineProperty(cls.prototype, 'constructor', {
    value: Promise,
    writable: true,
    configurable: true,
  });
}
promiseConstructed(AsyncResult);

/**
 * The result of `mapAsync`/`starmapAsync`: the values in input order, or the first error to
 * arrive (as in Python, the callback or error callback is called once).
 */
export class MapResult<T> extends AsyncResult<T[]> {
  private readonly values: T[];
  private remaining: number;

  /** @internal */
  constructor(
    description: string,
    length: number,
    chunks: number,
    callback: ((value: T[]) => void) | undefined,
    errorCallback: ((err: Error) => void) | undefined,
    report: ReportCallbackError,
    observer?: ResultObserver,
    traceTask = 0,
  ) {
    super(description, 0, callback, errorCallback, report, observer, traceTask);
    this.values = new Array<T>(length);
    this.remaining = chunks;
    if (chunks === 0) this.settle(true, this.values);
  }

  /** @internal */
  override taskSettled(ok: boolean, value: unknown, offset: number, _count: number): void {
    if (!ok) {
      this.settle(false, value);
      return;
    }
    const items = value as T[];
    for (let i = 0; i < items.length; i++) this.values[offset + i] = items[i]!;
    if (--this.remaining === 0) this.settle(true, this.values);
  }
}

promiseConstructed(MapResult);

interface Arrival {
  ok: boolean;
  value: unknown;
}

/**
 * The async iterable `imap`/`imapUnordered` return. `next(timeoutMs)` rejects with
 * `TimeoutError` if the next result is not there in time; the iterator stays usable. A failed
 * item throws when it is reached, and iteration can go on after it, as in Python.
 */
export class IMapIterator<T> implements AsyncIterableIterator<T>, TaskSink {
  private readonly arrivals: (Arrival | undefined)[] = [];
  /** Positions to step over: the rest of a chunk whose first failure was already reported. */
  private readonly skipped = new Set<number>();
  private skippedUnordered = 0;
  private position = 0;
  private delivered = 0;
  private waiter: ((a: void) => void) | undefined;

  /** @internal */
  constructor(
    private readonly description: string,
    private readonly length: number,
    private readonly ordered: boolean,
    private readonly defaultTimeoutMs: number | undefined,
  ) {}

  /** @internal */
  taskSettled(ok: boolean, value: unknown, offset: number, count: number): void {
    if (this.ordered) {
      if (ok) {
        const items = value as unknown[];
        for (let i = 0; i < items.length; i++) this.arrivals[offset + i] = { ok, value: items[i] };
      } else {
        this.arrivals[offset] = { ok, value };
        for (let i = 1; i < count; i++) this.skipped.add(offset + i);
      }
    } else if (ok) {
      for (const item of value as unknown[]) this.arrivals.push({ ok, value: item });
    } else {
      this.arrivals.push({ ok, value });
      this.skippedUnordered += count - 1;
    }
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private total(): number {
    return this.ordered ? this.length - this.skipped.size : this.length - this.skippedUnordered;
  }

  private take(): Arrival | undefined {
    if (this.ordered) {
      while (this.skipped.has(this.position)) this.position++;
      const a = this.arrivals[this.position];
      if (a) {
        this.arrivals[this.position++] = undefined;
      }
      return a;
    }
    if (this.position < this.arrivals.length) {
      const a = this.arrivals[this.position];
      this.arrivals[this.position++] = undefined;
      return a;
    }
    return undefined;
  }

  async next(timeoutMs: number | undefined = this.defaultTimeoutMs): Promise<IteratorResult<T>> {
    const delay = waitDelay(timeoutMs, `${this.description}: next()`);
    const deadline = delay === undefined ? undefined : Date.now() + delay;
    for (;;) {
      if (this.delivered >= this.total()) return { done: true, value: undefined };
      const a = this.take();
      if (a) {
        this.delivered++;
        if (!a.ok) throw a.value;
        return { done: false, value: a.value as T };
      }
      const arrived = new Promise<void>((resolve) => (this.waiter = resolve));
      if (deadline === undefined) {
        await arrived;
        continue;
      }
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        arrived.then(() => false),
        new Promise<boolean>(
          (resolve) => (timer = setTimeout(() => resolve(true), Math.max(0, left))),
        ),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.waiter = undefined;
        throw new TimeoutError(
          `${this.description}: no result within ${timeoutMs} ms (the tasks are still running)`,
          timeoutMs!,
        );
      }
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
