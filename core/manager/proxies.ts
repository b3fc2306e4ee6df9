/**
 * Proxies: what a program holds for an object that lives in the manager. Every method is async
 * (a call to the manager); many can be in flight at once. A proxy passed to a pool task or a
 * `Process` travels as a descriptor (address, authkey, object id) and reconnects in the worker.
 *
 * Each proxy holds one reference to its object; the manager drops an object when no proxy in
 * any client holds it (proxies collected, clients gone), as Python's manager does.
 */
import type { ManagerTarget } from './address';
import { ManagerConnection } from './connection';
import type { ProxyKind } from './objects';

/** How a proxy travels to a worker. */
export interface ProxyDescriptor {
  kind: ProxyKind;
  id: number;
  target: ManagerTarget;
  address: string;
  authkey: Uint8Array;
  /** A Value's or Array's lock. */
  lock?: number;
  /** A Barrier's party count. */
  parties?: number;
}

const released = new FinalizationRegistry<{ conn: ManagerConnection; id: number }>(({ conn, id }) =>
  conn.notify('decref', [id]),
);

export abstract class BaseProxy {
  abstract readonly kind: ProxyKind;

  /** @internal `adopt`: a proxy revived from a descriptor takes its own reference. */
  constructor(
    /** @internal */ readonly connection: ManagerConnection,
    /** The object's id in its manager. */
    readonly id: number,
    adopt: boolean,
  ) {
    if (adopt) connection.notify('incref', [id]);
    released.register(this, { conn: connection, id });
  }

  /** The manager's address: `unix:/path` or `tcp:host:port`. */
  get address(): string {
    return this.connection.address;
  }

  /** @internal Calls a method of the object in the manager. */
  call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.connection.call(this.id, method, args, `${this.kind}.${method}()`) as Promise<T>;
  }

  /** @internal */
  describe(): ProxyDescriptor {
    return {
      kind: this.kind,
      id: this.id,
      target: this.connection.target,
      address: this.connection.address,
      authkey: this.connection.key,
    };
  }
}

/** Runs `fn` holding `lock`, and releases it whatever happens (Python's `with lock:`). */
async function holding<T>(
  lock: { acquire(): Promise<boolean>; release(): Promise<void> },
  fn: () => T | Promise<T>,
): Promise<T> {
  await lock.acquire();
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** A `Map` in the manager. Keys are compared as `Map` does: primitives by value. */
export class DictProxy<K = unknown, V = unknown> extends BaseProxy {
  readonly kind = 'dict';

  /** The value, or `fallback` (default `undefined`) when the key is missing. */
  get(key: K): Promise<V | undefined>;
  get<D>(key: K, fallback: D): Promise<V | D>;
  get(key: K, fallback?: unknown): Promise<unknown> {
    return this.call('get', key, fallback);
  }

  /** The value; rejects with `KeyError` when the key is missing (Python's `d[key]`). */
  getItem(key: K): Promise<V> {
    return this.call('getItem', key);
  }

  set(key: K, value: V): Promise<void> {
    return this.call('set', key, value);
  }

  has(key: K): Promise<boolean> {
    return this.call('has', key);
  }

  delete(key: K): Promise<boolean> {
    return this.call('delete', key);
  }

  /** Removes and returns the value; `KeyError` when missing and no fallback is given. */
  pop(key: K, ...fallback: [] | [V]): Promise<V> {
    return this.call('pop', key, fallback.length > 0, fallback[0]);
  }

  /** The value, after setting it to `value` if the key was missing. */
  setDefault(key: K, value: V): Promise<V> {
    return this.call('setDefault', key, value);
  }

  /** Sets many entries at once, from a Map, entries, or a plain object. */
  update(values: Map<K, V> | Iterable<[K, V]> | Record<string, V>): Promise<void> {
    const entries =
      Symbol.iterator in values ? [...(values as Iterable<[K, V]>)] : Object.entries(values);
    return this.call('update', entries);
  }

  clear(): Promise<void> {
    return this.call('clear');
  }

  size(): Promise<number> {
    return this.call('size');
  }

  keys(): Promise<K[]> {
    return this.call('keys');
  }

  values(): Promise<V[]> {
    return this.call('values');
  }

  entries(): Promise<[K, V][]> {
    return this.call('entries');
  }

  /** A copy, as a local `Map`. */
  async toMap(): Promise<Map<K, V>> {
    return new Map(await this.entries());
  }

  /** Iterates over a snapshot of the entries. */
  async *[Symbol.asyncIterator](): AsyncIterator<[K, V]> {
    yield* await this.entries();
  }
}

/** An array in the manager. Indexes may be negative (from the end), as in Python. */
export class ListProxy<T = unknown> extends BaseProxy {
  readonly kind = 'list';

  /** Rejects with `RangeError` outside the list. */
  get(index: number): Promise<T> {
    return this.call('get', index);
  }

  set(index: number, value: T): Promise<void> {
    return this.call('set', index, value);
  }

  /** Appends; resolves to the new length. */
  push(...values: T[]): Promise<number> {
    return this.call('push', ...values);
  }

  append(value: T): Promise<void> {
    return this.call('push', value).then(() => undefined);
  }

  extend(values: Iterable<T>): Promise<void> {
    return this.call('extend', [...values]);
  }

  insert(index: number, value: T): Promise<void> {
    return this.call('insert', index, value);
  }

  /** Removes and returns the item at `index` (default: the last). */
  pop(index = -1): Promise<T> {
    return this.call('pop', index);
  }

  /** Removes the first item deeply equal to `value`; `RangeError` when there is none. */
  remove(value: T): Promise<void> {
    return this.call('remove', value);
  }

  /** Position of the first item deeply equal to `value`, or -1. */
  indexOf(value: T): Promise<number> {
    return this.call('indexOf', value);
  }

  includes(value: T): Promise<boolean> {
    return this.call('includes', value);
  }

  count(value: T): Promise<number> {
    return this.call('count', value);
  }

  length(): Promise<number> {
    return this.call('length');
  }

  slice(start?: number, end?: number): Promise<T[]> {
    return this.call('slice', start, end);
  }

  clear(): Promise<void> {
    return this.call('clear');
  }

  /** A copy, as a local array. */
  toArray(): Promise<T[]> {
    return this.call('toArray');
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    yield* await this.toArray();
  }
}

/** Named attributes in the manager (Python's `Namespace`): `get`/`set` by name. */
export class NamespaceProxy extends BaseProxy {
  readonly kind = 'Namespace';

  get<T = unknown>(name: string): Promise<T | undefined> {
    return this.call('get', name);
  }

  set(name: string, value: unknown): Promise<void> {
    return this.call('set', name, value);
  }

  has(name: string): Promise<boolean> {
    return this.call('has', name);
  }

  delete(name: string): Promise<boolean> {
    return this.call('delete', name);
  }

  update(values: Record<string, unknown>): Promise<void> {
    return this.call('update', values);
  }

  toObject(): Promise<Record<string, unknown>> {
    return this.call('toObject');
  }
}

/**
 * Lock and RLock in the manager. The holder is the connection: one process, or one worker
 * thread. When that client goes away (exits, is killed) the manager releases its locks.
 */
abstract class LockLike extends BaseProxy {
  /** Takes the lock; with `blocking` false or a timeout (ms), resolves to whether it did. */
  acquire(blocking = true, timeoutMs?: number): Promise<boolean> {
    return this.call('acquire', blocking, timeoutMs);
  }

  release(): Promise<void> {
    return this.call('release');
  }

  locked(): Promise<boolean> {
    return this.call('locked');
  }

  /** Runs `fn` holding the lock, and releases it whatever happens. */
  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return holding(this, fn);
  }
}

export class LockProxy extends LockLike {
  readonly kind = 'Lock';
}

/** Re-entrant: the client that holds it may take it again, and must release it as often. */
export class RLockProxy extends LockLike {
  readonly kind = 'RLock';
}

export class SemaphoreProxy extends BaseProxy {
  readonly kind: 'Semaphore' | 'BoundedSemaphore' = 'Semaphore';

  acquire(blocking = true, timeoutMs?: number): Promise<boolean> {
    return this.call('acquire', blocking, timeoutMs);
  }

  release(n = 1): Promise<void> {
    return this.call('release', n);
  }

  getValue(): Promise<number> {
    return this.call('getValue');
  }

  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return holding(this, fn);
  }
}

/** A Semaphore that refuses (RangeError) to be released above its initial value. */
export class BoundedSemaphoreProxy extends SemaphoreProxy {
  override readonly kind = 'BoundedSemaphore';
}

export class ConditionProxy extends BaseProxy {
  readonly kind = 'Condition';

  acquire(blocking = true, timeoutMs?: number): Promise<boolean> {
    return this.call('acquire', blocking, timeoutMs);
  }

  release(): Promise<void> {
    return this.call('release');
  }

  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return holding(this, fn);
  }

  /** Must hold the lock: lets go of it until notified or the timeout, then takes it back. */
  wait(timeoutMs?: number): Promise<boolean> {
    return this.call('wait', timeoutMs);
  }

  /** Waits until `predicate()` is true (checked holding the lock), or the timeout. */
  async waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs?: number): Promise<boolean> {
    const deadline =
      timeoutMs === undefined || timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    let ok = await predicate();
    while (!ok) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      await this.wait(left === Infinity ? undefined : left);
      ok = await predicate();
    }
    return ok;
  }

  notify(n = 1): Promise<void> {
    return this.call('notify', n);
  }

  notifyAll(): Promise<void> {
    return this.call('notifyAll');
  }
}

export class EventProxy extends BaseProxy {
  readonly kind = 'Event';

  set(): Promise<void> {
    return this.call('set');
  }

  clear(): Promise<void> {
    return this.call('clear');
  }

  isSet(): Promise<boolean> {
    return this.call('isSet');
  }

  /** Resolves to true once set, or false after `timeoutMs`. */
  wait(timeoutMs?: number): Promise<boolean> {
    return this.call('wait', timeoutMs);
  }
}

/** Python's `Barrier`: `wait` resolves, with a distinct index per party, once all have arrived. */
export class BarrierProxy extends BaseProxy {
  readonly kind = 'Barrier';
  /** How many calls of `wait` release the barrier. */
  parties = 0;

  /** Rejects with `BrokenBarrierError` when the barrier breaks (abort, reset, a timeout). */
  wait(timeoutMs?: number): Promise<number> {
    return this.call('wait', timeoutMs);
  }

  abort(): Promise<void> {
    return this.call('abort');
  }

  reset(): Promise<void> {
    return this.call('reset');
  }

  /** Parties, calls waiting now, and whether it is broken. */
  state(): Promise<{ parties: number; nWaiting: number; broken: boolean }> {
    return this.call('state');
  }

  /** @internal */
  override describe(): ProxyDescriptor {
    return { ...super.describe(), parties: this.parties };
  }
}

/** A FIFO queue in the manager; `maxsize` 0 is unbounded. */
export class QueueProxy<T = unknown> extends BaseProxy {
  readonly kind = 'Queue';

  /** Waits for room (or `timeoutMs`, then `QueueFullError`); `block` false: at once. */
  put(item: T, block = true, timeoutMs?: number): Promise<void> {
    return this.call('put', item, block, timeoutMs);
  }

  /** Waits for an item (or `timeoutMs`, then `QueueEmptyError`); `block` false: at once. */
  get(block = true, timeoutMs?: number): Promise<T> {
    return this.call('get', block, timeoutMs);
  }

  putNowait(item: T): Promise<void> {
    return this.put(item, false);
  }

  getNowait(): Promise<T> {
    return this.get(false);
  }

  qsize(): Promise<number> {
    return this.call('qsize');
  }

  empty(): Promise<boolean> {
    return this.call('empty');
  }

  full(): Promise<boolean> {
    return this.call('full');
  }
}

/** Value and Array proxies carry their lock (Python's manager Value has none, gh-79967). */
abstract class LockedProxy extends BaseProxy {
  /** @internal */
  lock: RLockProxy | undefined;

  /** The RLock (in the manager) that guards multi-step updates; TypeError if made without one. */
  getLock(): RLockProxy {
    if (!this.lock)
      throw new TypeError(`this manager ${this.kind} has no lock (it was made with lock: false)`);
    return this.lock;
  }

  /** Runs `fn` holding this object's lock: the way to read-modify-write safely. */
  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.getLock().withLock(fn);
  }

  /** @internal */
  override describe(): ProxyDescriptor {
    return { ...super.describe(), ...(this.lock ? { lock: this.lock.id } : {}) };
  }
}

/**
 * One typed number in the manager (`'i'`, `'d'`, `'q'`, ... as the shared `Value`; 64-bit types
 * read as bigint). Each call is atomic on the server; `add` is an atomic increment.
 */
export class ValueProxy<T extends number | bigint = number> extends LockedProxy {
  readonly kind = 'Value';

  get(): Promise<T> {
    return this.call('get');
  }

  set(value: T): Promise<void> {
    return this.call('set', value);
  }

  /** Adds `delta` in one atomic step; resolves to the new value. */
  add(delta: T): Promise<T> {
    return this.call('add', delta);
  }
}

/** A fixed-length typed array in the manager. */
export class ArrayProxy<T extends number | bigint = number> extends LockedProxy {
  readonly kind = 'Array';

  get(index: number): Promise<T> {
    return this.call('get', index);
  }

  set(index: number, value: T): Promise<void> {
    return this.call('set', index, value);
  }

  length(): Promise<number> {
    return this.call('length');
  }

  toArray(): Promise<T[]> {
    return this.call('toArray');
  }
}

export type AnyProxy =
  | DictProxy
  | ListProxy
  | NamespaceProxy
  | LockProxy
  | RLockProxy
  | SemaphoreProxy
  | BoundedSemaphoreProxy
  | ConditionProxy
  | EventProxy
  | BarrierProxy
  | QueueProxy
  | ValueProxy<number | bigint>
  | ArrayProxy<number | bigint>;

const CLASSES = {
  dict: DictProxy,
  list: ListProxy,
  Namespace: NamespaceProxy,
  Lock: LockProxy,
  RLock: RLockProxy,
  Semaphore: SemaphoreProxy,
  BoundedSemaphore: BoundedSemaphoreProxy,
  Condition: ConditionProxy,
  Event: EventProxy,
  Barrier: BarrierProxy,
  Queue: QueueProxy,
  Value: ValueProxy,
  Array: ArrayProxy,
} satisfies Record<ProxyKind, new (c: ManagerConnection, id: number, adopt: boolean) => BaseProxy>;

/** @internal Makes the proxy for an object (`adopt`: take a new reference to it). */
export function makeProxy(
  connection: ManagerConnection,
  kind: ProxyKind,
  id: number,
  adopt: boolean,
  extra: { lock?: number | undefined; parties?: number | undefined } = {},
): AnyProxy {
  const Class = CLASSES[kind] as new (c: ManagerConnection, id: number, adopt: boolean) => AnyProxy;
  const proxy = new Class(connection, id, adopt);
  if (extra.lock !== undefined && proxy instanceof LockedProxy)
    proxy.lock = new RLockProxy(connection, extra.lock, adopt);
  if (extra.parties !== undefined && proxy instanceof BarrierProxy) proxy.parties = extra.parties;
  return proxy;
}

/** This thread's connections to managers, by address and key: one per manager. */
const connections = new Map<string, ManagerConnection>();

/** In a worker: the proxy a descriptor names, on this thread's connection to its manager. */
export function reviveProxy(d: ProxyDescriptor): AnyProxy {
  const key = Buffer.from(d.authkey);
  const cacheKey = `${d.address}\u0000${key.toString('hex')}`;
  let connection = connections.get(cacheKey);
  if (!connection) {
    connection = new ManagerConnection(d.target, d.address, key);
    connections.set(cacheKey, connection);
  }
  return makeProxy(connection, d.kind, d.id, true, d);
}
