/**
 * Shared ctypes objects, as `multiprocessing.sharedctypes`: `Value`, `Array`, `RawValue`,
 * `RawArray`. Created in the main program, passed to workers as task or Process arguments, and
 * seen by all: a write in one is read by the others.
 *
 * As in Python, a `Value` or `Array` made with a lock (the default: a new `RLock`) takes it for
 * each read and each write, and `v.value += 1` is still two separate steps, not atomic. Hold the
 * lock around both (`v.withLock(() => { v.value += 1 })`) or use `v.add(1)`.
 */
import type { Backend } from '../backend/worker-handle';
import {
  describeType,
  resolveType,
  scalarValue,
  TYPES,
  type ByteView,
  type CType,
  type ScalarType,
  type StructType,
  type TypeCode,
} from './ctypes';
import { announceShared, summarize } from '../trace/shared-trace';
import {
  allocate,
  bytesOf,
  describeMemory,
  viewOf,
  wordsOf,
  writeBytes,
  type Memory,
  type MemoryDescriptor,
} from './memory';
import { Lock, RLock, RLOCK_BYTES, type SyncDescriptor } from './sync';
import type { Words } from './words';

type Scalar = number | bigint;
type LockOption = boolean | Lock | RLock;

/** A plain description of a type, to rebuild it in a worker. */
export type TypeSpec = { code: TypeCode } | { struct: string; fields: [string, TypeCode][] };

export function typeSpec(type: CType): TypeSpec {
  return type.kind === 'scalar'
    ? { code: type.code }
    : { struct: type.name, fields: type.fields.map((f) => [f.name, f.type.code]) };
}

export interface SharedDescriptor {
  kind: 'Value' | 'Array';
  type: TypeSpec;
  length: number;
  memory: MemoryDescriptor;
  lock: SyncDescriptor | undefined;
}

/** A field-by-field view of one struct in shared memory: `point.x **= 2` writes through. */
function structView(
  type: StructType,
  view: ByteView,
  offset: number,
  guard: <T>(fn: () => T) => T,
): Record<string, Scalar> {
  const obj: Record<string, Scalar> = {};
  for (const field of type.fields) {
    Object.defineProperty(obj, field.name, {
      enumerable: true,
      get: () => guard(() => field.type.read(view, offset + field.offset)),
      set: (v: Scalar) => {
        const x = scalarValue(field.type, v, () => `field ${field.name} of a ${type.name}`);
        guard(() => field.type.write(view, offset + field.offset, x));
      },
    });
  }
  return obj;
}

/** A shared object's name in an error: "a Value('i')", "a SharedArray(Struct Point)". */
function nameOf(cls: string, type: CType): string {
  return `a ${cls}(${describeType(type)})`;
}

function writeStruct(type: StructType, view: ByteView, offset: number, value: unknown): void {
  const where = (f: { name: string }) => () => `field ${f.name} of a ${type.name}`;
  if (Array.isArray(value)) {
    type.fields.forEach((f, i) =>
      f.type.write(view, offset + f.offset, scalarValue(f.type, value[i], where(f))),
    );
  } else if (value && typeof value === 'object') {
    for (const f of type.fields) {
      const v = (value as Record<string, Scalar>)[f.name];
      if (v !== undefined) f.type.write(view, offset + f.offset, scalarValue(f.type, v, where(f)));
    }
  } else {
    throw new TypeError(
      `a ${type.name} is written from [${type.fields.map((f) => f.name).join(', ')}] or an object`,
    );
  }
}

function makeLock(option: LockOption): Lock | RLock | undefined {
  if (option === false) return undefined;
  if (option === true) return new RLock(undefined, false);
  if (option instanceof Lock || option instanceof RLock) return option;
  throw new TypeError('lock must be true, false, a Lock or an RLock');
}

abstract class SharedCType {
  readonly type: CType;
  /** A DataView where this thread addresses the memory; its accessors, remote, otherwise. */
  readonly view: ByteView;
  readonly memory: Memory;
  protected readonly lock: Lock | RLock | undefined;
  protected readonly guard: <T>(fn: () => T) => T;

  protected constructor(
    type: CType,
    readonly length: number,
    memory: Memory | undefined,
    lockOption: LockOption,
  ) {
    this.type = type;
    const bytes = type.size * length;
    let lock: Lock | RLock | undefined;
    if (lockOption === true && !memory) {
      // An object's own RLock lives right after its data, in the same memory: a small Value and
      // its lock share a cache line, so a locked update moves one line between cores, not two.
      const at = Math.ceil(bytes / 8) * 8;
      this.memory = allocate(at + RLOCK_BYTES);
      lock = new RLock(this.memory, false, at);
    } else {
      this.memory = memory ?? allocate(bytes);
      lock = makeLock(lockOption);
    }
    this.view = viewOf(this.memory, 0, Math.max(1, bytes));
    this.lock = lock;
    const own = this.memory;
    this.guard = lock
      ? (fn) => lock.withLock(fn)
      : own.kind === 'remote'
        ? (fn) => {
            try {
              return fn();
            } finally {
              // Remote memory holds small writes back until the next request (or a release).
              own.flush();
            }
          }
        : (fn) => fn();
  }

  /** The lock that guards this object (Python's `get_lock()`); raw objects have none. */
  getLock(): Lock | RLock {
    if (!this.lock)
      throw new TypeError(
        `this ${this.constructor.name} has no lock (made with lock: false, or raw)`,
      );
    return this.lock;
  }

  /** Runs `fn` holding this object's lock: the way to read-modify-write safely. */
  withLock<T>(fn: () => T): T {
    const lock = this.getLock();
    lock.acquire();
    try {
      return fn();
    } finally {
      lock.release();
    }
  }

  protected read(index: number): unknown {
    const type = this.type;
    const offset = index * type.size;
    if (type.kind === 'struct') return structView(type, this.view, offset, this.guard);
    // The hot path of every `.value`: the lock taken and released inline, no closure.
    const lock = this.lock;
    if (!lock) return type.read(this.view, offset);
    lock.acquire();
    try {
      return type.read(this.view, offset);
    } finally {
      lock.release();
    }
  }

  /** The slot `index` names, for an error: "a Value('i')" (SharedArray: "item 3 of a ..."). */
  protected slot(_index: number): string {
    return nameOf(this.constructor.name, this.type);
  }

  protected write(index: number, value: unknown): void {
    const type = this.type;
    // Checked before the lock is taken: a value the type cannot hold is refused, not mangled.
    this.store(
      index,
      type.kind === 'scalar' ? scalarValue(type, value, () => this.slot(index)) : value,
    );
  }

  /** Writes under the lock: a scalar already checked, or a struct (writeStruct checks its fields). */
  protected store(index: number, value: unknown): void {
    const offset = index * this.type.size;
    const type = this.type;
    const lock = this.lock;
    lock?.acquire();
    try {
      if (type.kind === 'struct') writeStruct(type, this.view, offset, value);
      else type.write(this.view, offset, value as Scalar);
    } finally {
      if (lock) lock.release();
      // Remote memory holds small writes back until the next request: send them now.
      else if (this.memory.kind === 'remote') this.memory.flush();
    }
  }

  /** @internal For the trace: read without the lock (a sample may be torn; it is only a view). */
  protected peek(index: number): unknown {
    const offset = index * this.type.size;
    if (this.type.kind === 'scalar') return this.type.read(this.view, offset);
    const out: Record<string, unknown> = {};
    for (const f of this.type.fields) out[f.name] = f.type.read(this.view, offset + f.offset);
    return out;
  }

  /** @internal */
  protected announce(): void {
    announceShared(
      { sample: () => this.sample() },
      this.constructor.name === 'SharedArray' ? 'Array' : this.constructor.name,
      describeType(this.type),
      this.length,
      this.lock !== undefined,
    );
  }

  /** @internal */
  protected abstract sample(): { value: unknown; contention?: number };

  /** @internal How it travels to a worker of backend `to`. */
  describe(kind: 'Value' | 'Array', to: Backend): SharedDescriptor {
    return {
      kind,
      type: typeSpec(this.type),
      length: this.length,
      memory: describeMemory(this.memory, to),
      lock: this.lock?.describe(to),
    };
  }
}

export interface ValueOptions {
  /** `true` (default): a new RLock; `false`: none (a raw value); or a Lock/RLock to share. */
  lock?: LockOption;
}

/** One shared C value: `new Value('i', 7)`, `new Value(c_double, 1/3, { lock: false })`. */
export class Value<T = Scalar> extends SharedCType {
  constructor(
    type: TypeCode | CType,
    initial?: unknown,
    options: ValueOptions = {},
    memory?: Memory,
  ) {
    const resolved = resolveType(type);
    // Checked once, before any memory is taken.
    const name = new.target.name;
    const first =
      memory || initial === undefined || resolved.kind !== 'scalar'
        ? initial
        : scalarValue(resolved, initial, () => nameOf(name, resolved));
    super(resolved, 1, memory, options.lock ?? true);
    if (!memory && first !== undefined) this.store(0, first);
    if (!memory) this.announce();
  }

  /** @internal */
  protected sample(): { value: unknown; contention?: number } {
    return { value: this.peek(0), ...(this.lock ? { contention: this.lock.contention } : {}) };
  }

  get value(): T {
    return this.read(0) as T;
  }

  set value(v: T) {
    this.write(0, v);
  }

  /** The value as a 32-bit word, for `add` on 'i'/'I' (made on first use). */
  private lane: Words | undefined;

  /** Adds atomically and returns the new value: safe from any number of workers. */
  add(delta: number | bigint): T {
    const type = this.type;
    if (type.kind === 'scalar') scalarValue(type, delta, () => `${this.slot(0)} (in add())`);
    if (type.kind === 'scalar' && type.atomic) {
      const lane = (this.lane ??= wordsOf(this.memory, 0, 1));
      const d = Number(delta);
      // The new value as the type holds it (wrapped like the add itself: the signed word's old
      // value and the unsigned one differ by 2^32, which >>> 0 drops).
      return (type.code === 'i' ? (lane.add(0, d) + d) | 0 : (lane.add(0, d) + d) >>> 0) as T;
    }
    if (type.kind !== 'scalar')
      throw new TypeError(`add() needs a numeric Value, not ${describeType(type)}`);
    const lock = this.lock;
    if (!lock)
      throw new TypeError(
        `add() on a raw ${describeType(type)} value is not atomic: give it a lock`,
      );
    return lock.withLock(() => {
      const next =
        typeof delta === 'bigint' || (type.size === 8 && type.code !== 'd')
          ? BigInt(type.read(this.view, 0)) + BigInt(delta)
          : Number(type.read(this.view, 0)) + Number(delta);
      type.write(this.view, 0, next);
      return type.read(this.view, 0) as T;
    });
  }

  override toString(): string {
    return `Value(${describeType(this.type)}, ${String(this.value)})`;
  }
}

/** A shared value without a lock (Python's `RawValue`). */
export class RawValue<T = Scalar> extends Value<T> {
  constructor(type: TypeCode | CType, initial?: unknown, memory?: Memory) {
    super(type, initial, { lock: false }, memory);
  }
}

/**
 * A shared C array: `new SharedArray('i', 10)`, `new SharedArray('c', 'hello world')`,
 * `new SharedArray(Point, [[1, 2], [3, 4]])`. Index it (`a[0]`, `a.at(-1)`), iterate it, and for
 * `'c'` arrays read and write `.value` as a string.
 */
export class SharedArray<T = Scalar> extends SharedCType implements Iterable<T> {
  [index: number]: T;

  constructor(
    type: TypeCode | CType,
    sizeOrInitial: number | Iterable<unknown> | string,
    options: ValueOptions = {},
    memory?: Memory,
  ) {
    const resolved = resolveType(type);
    const initial =
      typeof sizeOrInitial === 'number'
        ? undefined
        : typeof sizeOrInitial === 'string'
          ? [...Buffer.from(sizeOrInitial, 'latin1')]
          : sizeOrInitial instanceof Uint8Array
            ? [...sizeOrInitial]
            : [...sizeOrInitial];
    const length = typeof sizeOrInitial === 'number' ? sizeOrInitial : initial!.length;
    if (!Number.isInteger(length) || length < 0)
      throw new RangeError(`array size must be a non-negative integer, got ${length}`);
    // Every initial item checked once, before any memory is taken.
    const name = new.target.name;
    const items =
      memory || !initial || resolved.kind !== 'scalar'
        ? initial
        : initial.map((v, i) =>
            scalarValue(resolved, v, () => `item ${i} of ${nameOf(name, resolved)}`),
          );
    super(resolved, length, memory, options.lock ?? true);
    if (!memory && items) items.forEach((v, i) => this.store(i, v));
    if (!memory) this.announce();
    // Index access (a[0]) as in Python, on top of the methods.
    return new Proxy(this, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) return target.at(Number(prop));
        return Reflect.get(target, prop, receiver);
      },
      set(target, prop, value, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) {
          target.set(Number(prop), value as T);
          return true;
        }
        return Reflect.set(target, prop, value, receiver);
      },
    });
  }

  /** @internal */
  protected sample(): { value: unknown; contention?: number } {
    const contention = this.lock ? { contention: this.lock.contention } : {};
    if (this.type === TYPES.c) {
      const bytes = bytesOf(this.memory, 0, this.length);
      const end = bytes.indexOf(0);
      return {
        value: Buffer.from(bytes.subarray(0, end === -1 ? this.length : end)).toString('latin1'),
        ...contention,
      };
    }
    // Large arrays: a window and, up to 100k items, the range.
    const n = this.length <= 100_000 ? this.length : 16;
    const items: unknown[] = [];
    for (let i = 0; i < n; i++) items.push(this.peek(i));
    const summary = summarize(items);
    const value = this.length > n ? { length: this.length, window: items.slice(0, 16) } : summary;
    return { value, ...contention };
  }

  protected override slot(index: number): string {
    return `item ${index} of ${super.slot(index)}`;
  }

  private index(i: number): number {
    const at = i < 0 ? this.length + i : i;
    if (!Number.isInteger(at) || at < 0 || at >= this.length) {
      throw new RangeError(`index ${i} is out of range for an array of ${this.length}`);
    }
    return at;
  }

  at(i: number): T {
    return this.read(this.index(i)) as T;
  }

  set(i: number, value: T): void {
    this.write(this.index(i), value);
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }

  toArray(): T[] {
    return [...this];
  }

  /** For `'c'` arrays: the bytes up to the first NUL, as a string (Python's `.value`). */
  get value(): string {
    this.mustBeChars();
    return this.guard(() => {
      const bytes = bytesOf(this.memory, 0, this.length);
      const end = bytes.indexOf(0);
      return Buffer.from(bytes.subarray(0, end === -1 ? this.length : end)).toString('latin1');
    });
  }

  set value(text: string) {
    this.mustBeChars();
    const bytes = Buffer.from(text, 'latin1');
    if (bytes.length > this.length)
      throw new RangeError(`'${text}' is longer than the array (${this.length})`);
    // With its NUL when it is shorter than the array, as C's strcpy.
    const written = bytes.length < this.length ? Buffer.concat([bytes, Buffer.alloc(1)]) : bytes;
    this.guard(() => writeBytes(this.memory, 0, written));
  }

  /**
   * For `'c'` arrays: every byte. The memory itself where this thread addresses it; a copy in a
   * worker process that reaches the memory through the process that made it (no addon).
   */
  get raw(): Uint8Array {
    this.mustBeChars();
    return bytesOf(this.memory, 0, this.length);
  }

  private mustBeChars(): void {
    if (this.type !== TYPES.c)
      throw new TypeError(".value and .raw are for 'c' arrays; index other arrays");
  }
}

/** A shared array without a lock (Python's `RawArray`). */
export class RawArray<T = Scalar> extends SharedArray<T> {
  constructor(
    type: TypeCode | CType,
    sizeOrInitial: number | Iterable<unknown> | string,
    memory?: Memory,
  ) {
    super(type, sizeOrInitial, { lock: false }, memory);
  }
}

export type { ScalarType };
