/**
 * What lives in the manager process: the shared objects behind the proxies, one class per kind.
 * The server is one event loop, so each call runs alone and whole; a call that has to wait (a
 * lock held elsewhere, an empty queue, an unset event) parks a waiter and answers later, and
 * never holds up other clients' calls. Waiters leave with their connection: a client that goes
 * away neither keeps waiting nor receives a lock it can never release, and the locks it held
 * are released for it.
 */
import { isDeepStrictEqual } from 'node:util';
import { BrokenBarrierError, KeyError, QueueEmptyError, QueueFullError } from '../errors';
import { scalarValue, TYPES, type ScalarType, type TypeCode } from '../shared/ctypes';
import { MAX_TIMEOUT_MS } from '../timeouts';

/** A client connection, as the objects see it. */
export interface Client {
  readonly id: number;
  closed: boolean;
  /** Runs `fn` when the connection closes; returns a function that cancels that. */
  onClose(fn: () => void): () => void;
}

export type ProxyKind =
  | 'dict'
  | 'list'
  | 'Namespace'
  | 'Lock'
  | 'RLock'
  | 'Semaphore'
  | 'BoundedSemaphore'
  | 'Condition'
  | 'Event'
  | 'Barrier'
  | 'Queue'
  | 'Value'
  | 'Array';

export interface ManagedObject {
  readonly kind: ProxyKind;
  /** The methods a client may call, each `(client, ...args)`; a Promise answers later. */
  readonly methods: Readonly<Record<string, (client: Client, ...args: never[]) => unknown>>;
}

/** Timeouts are milliseconds; undefined, null or negative: wait forever. */
/**
 * Whether a wait has no end: no timeout, a negative one, or one past setTimeout's range (which
 * would fire at once) or not a number (NaN: the same).
 */
function forever(timeoutMs: number | null | undefined): boolean {
  return (
    timeoutMs === undefined ||
    timeoutMs === null ||
    typeof timeoutMs !== 'number' ||
    Number.isNaN(timeoutMs) ||
    timeoutMs < 0 ||
    timeoutMs > MAX_TIMEOUT_MS
  );
}

/** The connection went away while its call waited: nobody is left to answer. */
const GONE = new Error('the client went away');

interface Waiter<T> {
  client: Client;
  settle(value: T): void;
  fail(err: Error): void;
}

/**
 * Parks a call in `queue` until settled, `timeoutMs` passes (then `onTimeout` decides), or its
 * client goes away.
 */
function park<T, W extends Waiter<T>>(
  queue: W[],
  client: Client,
  timeoutMs: number | null | undefined,
  onTimeout: () => T | Error,
  extra: Omit<W, keyof Waiter<T>>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      cancelClose();
      const at = queue.indexOf(waiter);
      if (at !== -1) queue.splice(at, 1);
    };
    const waiter = {
      ...extra,
      client,
      settle: (value: T) => {
        done();
        resolve(value);
      },
      fail: (err: Error) => {
        done();
        reject(err);
      },
    } as W;
    const cancelClose = client.onClose(() => waiter.fail(GONE));
    if (!forever(timeoutMs)) {
      timer = setTimeout(() => {
        const outcome = onTimeout();
        if (outcome instanceof Error) waiter.fail(outcome);
        else waiter.settle(outcome);
      }, timeoutMs!);
    }
    queue.push(waiter);
  });
}

/** Lock and RLock: a holder (a client connection) and a FIFO of waiters. */
export class ServerLock implements ManagedObject {
  holder: Client | undefined;
  depth = 0;
  private waiters: (Waiter<boolean> & { depth: number })[] = [];
  private cancelClose: (() => void) | undefined;

  constructor(readonly kind: 'Lock' | 'RLock') {}

  readonly methods = {
    acquire: (client: Client, blocking = true, timeoutMs?: number | null) =>
      this.acquire(client, blocking, timeoutMs),
    release: (client: Client) => this.release(client),
    locked: () => this.holder !== undefined,
  };

  acquire(
    client: Client,
    blocking = true,
    timeoutMs?: number | null,
    depth = 1,
  ): boolean | Promise<boolean> {
    if (client.closed) return false;
    if (this.holder === undefined) {
      this.take(client, depth);
      return true;
    }
    if (this.kind === 'RLock' && this.holder === client) {
      this.depth += depth;
      return true;
    }
    if (!blocking) return false;
    return park(this.waiters, client, timeoutMs, () => false, { depth });
  }

  private take(client: Client, depth: number): void {
    this.holder = client;
    this.depth = depth;
    // A client that goes away holding the lock: release it for them.
    this.cancelClose = client.onClose(() => this.handOver());
  }

  release(client: Client): void {
    if (this.holder === undefined) throw new Error(`release of an unlocked ${this.kind}`);
    if (this.kind === 'RLock') {
      if (this.holder !== client)
        throw new Error('cannot release an RLock held by another process or thread');
      if (--this.depth > 0) return;
    }
    this.handOver();
  }

  /** For Condition.wait: lets go entirely, and says how deep the lock was held. */
  releaseAll(client: Client): number {
    if (this.holder !== client)
      throw new Error(`cannot wait on a Condition without holding its ${this.kind}`);
    const depth = this.depth;
    this.handOver();
    return depth;
  }

  /** Gives the lock to the first waiter still connected, or leaves it free. */
  private handOver(): void {
    this.cancelClose?.();
    this.cancelClose = undefined;
    this.holder = undefined;
    this.depth = 0;
    const next = this.waiters.shift();
    if (next) {
      this.take(next.client, next.depth);
      next.settle(true);
    }
  }
}

export class ServerSemaphore implements ManagedObject {
  private waiters: Waiter<boolean>[] = [];
  private readonly max: number;

  constructor(
    readonly kind: 'Semaphore' | 'BoundedSemaphore',
    private value: number,
  ) {
    if (!Number.isInteger(value) || value < 0)
      throw new RangeError(`semaphore initial value must be an integer >= 0, got ${value}`);
    this.max = kind === 'BoundedSemaphore' ? value : Infinity;
  }

  readonly methods = {
    acquire: (client: Client, blocking = true, timeoutMs?: number | null) => {
      if (this.value > 0) {
        this.value--;
        return true;
      }
      if (!blocking) return false;
      return park(this.waiters, client, timeoutMs, () => false, {});
    },
    release: (_client: Client, n = 1) => {
      if (this.value + n > this.max)
        throw new RangeError('BoundedSemaphore released too many times');
      this.value += n;
      while (this.value > 0 && this.waiters.length > 0) {
        this.value--;
        this.waiters[0]!.settle(true);
      }
    },
    getValue: () => this.value,
  };
}

export class ServerEvent implements ManagedObject {
  readonly kind = 'Event';
  private flag = false;
  private waiters: Waiter<boolean>[] = [];

  readonly methods = {
    set: () => {
      this.flag = true;
      for (const w of [...this.waiters]) w.settle(true);
    },
    clear: () => {
      this.flag = false;
    },
    isSet: () => this.flag,
    wait: (client: Client, timeoutMs?: number | null) =>
      this.flag || park(this.waiters, client, timeoutMs, () => false, {}),
  };
}

export class ServerCondition implements ManagedObject {
  readonly kind = 'Condition';
  private waiters: Waiter<boolean>[] = [];

  constructor(readonly lock: ServerLock) {}

  readonly methods = {
    acquire: (client: Client, blocking = true, timeoutMs?: number | null) =>
      this.lock.acquire(client, blocking, timeoutMs),
    release: (client: Client) => this.lock.release(client),
    wait: (client: Client, timeoutMs?: number | null) => this.wait(client, timeoutMs),
    notify: (_client: Client, n = 1) => {
      for (const w of this.waiters.slice(0, n)) w.settle(true);
    },
    notifyAll: () => {
      for (const w of [...this.waiters]) w.settle(true);
    },
  };

  private async wait(client: Client, timeoutMs?: number | null): Promise<boolean> {
    const depth = this.lock.releaseAll(client);
    const notified = await park(this.waiters, client, timeoutMs, () => false, {});
    // Notified or not, the lock is taken back before the caller goes on, as in Python.
    await this.lock.acquire(client, true, undefined, depth);
    return notified;
  }
}

export class ServerBarrier implements ManagedObject {
  readonly kind = 'Barrier';
  private waiters: (Waiter<number> & { index: number })[] = [];
  private count = 0;
  private broken = false;

  constructor(
    private readonly parties: number,
    private readonly defaultTimeoutMs: number | undefined,
  ) {
    if (!Number.isInteger(parties) || parties < 1)
      throw new RangeError(`a Barrier needs at least 1 party, got ${parties}`);
  }

  readonly methods = {
    wait: (client: Client, timeoutMs?: number | null) => this.wait(client, timeoutMs),
    abort: () => this.breakAll('the barrier was aborted'),
    reset: () => {
      if (this.waiters.length > 0) this.breakAll('the barrier was reset while calls waited');
      this.broken = false;
      this.count = 0;
    },
    state: () => ({ parties: this.parties, nWaiting: this.count, broken: this.broken }),
  };

  private wait(client: Client, timeoutMs?: number | null): number | Promise<number> {
    if (this.broken) throw new BrokenBarrierError('the barrier is broken');
    const index = this.count++;
    if (this.count === this.parties) {
      for (const w of [...this.waiters]) w.settle(w.index);
      this.count = 0;
      return index;
    }
    const timeout = timeoutMs ?? this.defaultTimeoutMs;
    return park<number, Waiter<number> & { index: number }>(
      this.waiters,
      client,
      timeout,
      () => {
        this.breakAll(`a wait timed out after ${timeout} ms`);
        return new BrokenBarrierError(`the barrier broke: this wait timed out after ${timeout} ms`);
      },
      { index },
    );
  }

  private breakAll(why: string): void {
    this.broken = true;
    this.count = 0;
    for (const w of [...this.waiters]) w.fail(new BrokenBarrierError(`the barrier broke: ${why}`));
  }
}

export class ServerQueue implements ManagedObject {
  readonly kind = 'Queue';
  private items: unknown[] = [];
  private head = 0;
  private getters: Waiter<unknown>[] = [];
  private putters: (Waiter<void> & { item: unknown })[] = [];

  constructor(private readonly maxsize: number) {
    if (!Number.isInteger(maxsize) || maxsize < 0)
      throw new RangeError(`Queue maxsize must be an integer >= 0 (0: unbounded), got ${maxsize}`);
  }

  private get size(): number {
    return this.items.length - this.head;
  }

  private full(): boolean {
    return this.maxsize > 0 && this.size >= this.maxsize;
  }

  readonly methods = {
    put: (client: Client, item: unknown, block = true, timeoutMs?: number | null) =>
      this.put(client, item, block, timeoutMs),
    get: (client: Client, block = true, timeoutMs?: number | null) =>
      this.get(client, block, timeoutMs),
    qsize: () => this.size,
    empty: () => this.size === 0,
    full: () => this.full(),
  };

  private put(
    client: Client,
    item: unknown,
    block: boolean,
    timeoutMs?: number | null,
  ): void | Promise<void> {
    const getter = this.getters[0];
    if (getter) {
      getter.settle(item);
      return;
    }
    if (!this.full()) {
      this.items.push(item);
      return;
    }
    if (!block) throw new QueueFullError(`the queue is full (maxsize ${this.maxsize})`);
    return park<void, Waiter<void> & { item: unknown }>(
      this.putters,
      client,
      timeoutMs,
      () =>
        new QueueFullError(`the queue stayed full (maxsize ${this.maxsize}) for ${timeoutMs} ms`),
      { item },
    );
  }

  private get(client: Client, block: boolean, timeoutMs?: number | null): unknown {
    if (this.size > 0) {
      const item = this.items[this.head];
      this.items[this.head++] = undefined;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      const putter = this.putters[0];
      if (putter) {
        this.items.push(putter.item);
        putter.settle();
      }
      return item;
    }
    if (!block) throw new QueueEmptyError('the queue is empty');
    return park(
      this.getters,
      client,
      timeoutMs,
      () => new QueueEmptyError(`the queue stayed empty for ${timeoutMs} ms`),
      {},
    );
  }
}

function scalarType(code: TypeCode): ScalarType {
  const type = TYPES[code];
  if (!type) throw new TypeError(`unknown type code '${String(code)}'`);
  return type;
}

function indexIn(index: number, length: number, what: string): number {
  if (!Number.isInteger(index))
    throw new TypeError(`${what} index must be an integer, got ${index}`);
  const i = index < 0 ? index + length : index;
  if (i < 0 || i >= length)
    throw new RangeError(`index ${index} is out of range for a ${what} of ${length}`);
  return i;
}

/** Value and Array hold typed memory, so they keep their type's range and wrap-around. */
export class ServerValue implements ManagedObject {
  readonly kind = 'Value';
  private readonly type: ScalarType;
  private readonly view = new DataView(new ArrayBuffer(8));

  constructor(code: TypeCode, initial: number | bigint | string | undefined) {
    this.type = scalarType(code);
    if (initial !== undefined) this.type.write(this.view, 0, this.check(initial));
  }

  /** What the type holds, checked as a shared Value checks it (a TypeError to the caller). */
  private check(value: unknown, what = ''): number | bigint {
    return scalarValue(this.type, value, () => `a manager Value('${this.type.code}')${what}`);
  }

  readonly methods = {
    get: () => this.type.read(this.view, 0),
    set: (_client: Client, value: unknown) => this.type.write(this.view, 0, this.check(value)),
    add: (_client: Client, delta: unknown) => {
      const d = this.check(delta, ' (in add())');
      const now = this.type.read(this.view, 0);
      this.type.write(this.view, 0, typeof now === 'bigint' ? now + BigInt(d) : now + Number(d));
      return this.type.read(this.view, 0);
    },
  };
}

export class ServerArray implements ManagedObject {
  readonly kind = 'Array';
  private readonly type: ScalarType;
  private readonly view: DataView;
  private readonly length: number;

  constructor(code: TypeCode, sizeOrInitial: number | ArrayLike<number | bigint> | string) {
    this.type = scalarType(code);
    const initial =
      typeof sizeOrInitial === 'number'
        ? undefined
        : typeof sizeOrInitial === 'string'
          ? [...Buffer.from(sizeOrInitial, 'latin1')]
          : Array.from(sizeOrInitial);
    this.length = initial ? initial.length : (sizeOrInitial as number);
    if (!Number.isInteger(this.length) || this.length < 0)
      throw new RangeError(`Array size must be an integer >= 0, got ${String(sizeOrInitial)}`);
    const values = initial?.map((v, i) => this.check(v, i));
    this.view = new DataView(new ArrayBuffer(Math.max(1, this.type.size * this.length)));
    values?.forEach((v, i) => this.type.write(this.view, i * this.type.size, v));
  }

  /** What the type holds, checked as a shared Array checks it (a TypeError to the caller). */
  private check(value: unknown, index: number): number | bigint {
    return scalarValue(
      this.type,
      value,
      () => `item ${index} of a manager Array('${this.type.code}')`,
    );
  }

  private read(i: number): number | bigint {
    return this.type.read(this.view, i * this.type.size);
  }

  readonly methods = {
    get: (_client: Client, index: number) => this.read(indexIn(index, this.length, 'Array')),
    set: (_client: Client, index: number, value: unknown) => {
      const i = indexIn(index, this.length, 'Array');
      this.type.write(this.view, i * this.type.size, this.check(value, i));
    },
    length: () => this.length,
    toArray: () => Array.from({ length: this.length }, (_, i) => this.read(i)),
  };
}

function keyText(key: unknown): string {
  return typeof key === 'string' ? JSON.stringify(key) : String(key);
}

export class ServerDict implements ManagedObject {
  readonly kind = 'dict';

  constructor(private readonly map: Map<unknown, unknown>) {}

  readonly methods = {
    get: (_c: Client, key: unknown, fallback?: unknown) =>
      this.map.has(key) ? this.map.get(key) : fallback,
    getItem: (_c: Client, key: unknown) => {
      if (!this.map.has(key)) throw new KeyError(`no key ${keyText(key)} in this dict`, key);
      return this.map.get(key);
    },
    set: (_c: Client, key: unknown, value: unknown) => void this.map.set(key, value),
    has: (_c: Client, key: unknown) => this.map.has(key),
    delete: (_c: Client, key: unknown) => this.map.delete(key),
    pop: (_c: Client, key: unknown, hasFallback = false, fallback?: unknown) => {
      if (!this.map.has(key)) {
        if (hasFallback) return fallback;
        throw new KeyError(`no key ${keyText(key)} in this dict`, key);
      }
      const value = this.map.get(key);
      this.map.delete(key);
      return value;
    },
    setDefault: (_c: Client, key: unknown, value: unknown) => {
      if (!this.map.has(key)) this.map.set(key, value);
      return this.map.get(key);
    },
    update: (_c: Client, entries: Iterable<[unknown, unknown]>) => {
      for (const [k, v] of entries) this.map.set(k, v);
    },
    clear: () => this.map.clear(),
    size: () => this.map.size,
    keys: () => [...this.map.keys()],
    values: () => [...this.map.values()],
    entries: () => [...this.map.entries()],
  };
}

export class ServerList implements ManagedObject {
  readonly kind = 'list';

  constructor(private readonly items: unknown[]) {}

  private at(index: number): number {
    return indexIn(index, this.items.length, 'list');
  }

  private find(value: unknown): number {
    return this.items.findIndex((x) => isDeepStrictEqual(x, value));
  }

  readonly methods = {
    get: (_c: Client, index: number) => this.items[this.at(index)],
    set: (_c: Client, index: number, value: unknown) => void (this.items[this.at(index)] = value),
    push: (_c: Client, ...values: unknown[]) => this.items.push(...values),
    extend: (_c: Client, values: unknown[]) => void this.items.push(...values),
    insert: (_c: Client, index: number, value: unknown) => {
      const n = this.items.length;
      const i = index < 0 ? Math.max(0, index + n) : Math.min(index, n);
      this.items.splice(i, 0, value);
    },
    pop: (_c: Client, index = -1) => {
      if (this.items.length === 0) throw new RangeError('pop from an empty list');
      return this.items.splice(this.at(index), 1)[0];
    },
    remove: (_c: Client, value: unknown) => {
      const i = this.find(value);
      if (i === -1) throw new RangeError(`list.remove(x): ${keyText(value)} is not in the list`);
      this.items.splice(i, 1);
    },
    indexOf: (_c: Client, value: unknown) => this.find(value),
    includes: (_c: Client, value: unknown) => this.find(value) !== -1,
    count: (_c: Client, value: unknown) =>
      this.items.filter((x) => isDeepStrictEqual(x, value)).length,
    length: () => this.items.length,
    slice: (_c: Client, start?: number, end?: number) => this.items.slice(start, end),
    clear: () => void (this.items.length = 0),
    toArray: () => this.items,
  };
}

export class ServerNamespace implements ManagedObject {
  readonly kind = 'Namespace';

  constructor(private readonly attrs: Map<string, unknown>) {}

  readonly methods = {
    get: (_c: Client, name: string) => this.attrs.get(name),
    set: (_c: Client, name: string, value: unknown) => void this.attrs.set(name, value),
    has: (_c: Client, name: string) => this.attrs.has(name),
    delete: (_c: Client, name: string) => this.attrs.delete(name),
    update: (_c: Client, values: Record<string, unknown>) => {
      for (const [k, v] of Object.entries(values)) this.attrs.set(k, v);
    },
    toObject: () => Object.fromEntries(this.attrs),
  };
}
