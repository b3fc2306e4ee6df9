/**
 * Shared objects travel to workers as descriptors (their buffers are shared, not copied) and are
 * rebuilt there with the same class, so `Value`, `SharedArray` and the locks work the same on
 * both sides. Manager proxies travel as their manager's address, authkey and object id, and
 * reconnect in the worker. Only top-level arguments are looked at: that is where Python's API
 * passes them.
 */
import type { Backend } from '../backend/worker-handle';
import { BaseProxy, reviveProxy, type ProxyDescriptor } from '../manager/proxies';
import { Struct, TYPES, type CType } from './ctypes';
import { openMemory } from './memory';
import {
  BoundedSemaphore,
  Condition,
  Event,
  Lock,
  reviveSync,
  RLock,
  Semaphore,
  type AnySync,
  type SyncDescriptor,
} from './sync';
import { SharedArray, Value, type SharedDescriptor, type TypeSpec } from './values';

/** Marks a shared object's descriptor among a task's arguments. */
export const TAG = '__poolscope_shared__';

type Marked =
  | { [TAG]: 'value'; d: SharedDescriptor }
  | { [TAG]: 'sync'; d: SyncDescriptor }
  | { [TAG]: 'proxy'; d: ProxyDescriptor };

function isShared(
  arg: unknown,
): arg is Value<unknown> | SharedArray<unknown> | AnySync | BaseProxy {
  try {
    return (
      arg instanceof BaseProxy ||
      arg instanceof Value ||
      arg instanceof SharedArray ||
      arg instanceof Lock ||
      arg instanceof RLock ||
      arg instanceof Semaphore ||
      arg instanceof BoundedSemaphore ||
      arg instanceof Event ||
      arg instanceof Condition
    );
  } catch {
    // A revoked proxy, or one whose getPrototypeOf trap throws: not a shared object. Sending it
    // fails its task with a SerializationError that names the argument and says why.
    return false;
  }
}

/** Whether any argument is a shared object (cheap: one `typeof` per argument otherwise). */
export function hasShared(args: readonly unknown[]): boolean {
  // An indexed loop: this runs over every item of a map (a million numbers: 2 ms, not 30).
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (typeof a === 'object' && a !== null && isShared(a)) return true;
  }
  return false;
}

/**
 * Arguments for a worker of backend `to`, with shared objects replaced by their descriptors. A
 * SharedArrayBuffer (no addon) goes to threads as it is, and to processes as the address of
 * the server thread that serves it from here (started on first use).
 */
export function marshalArgs(args: readonly unknown[], to: Backend): unknown[] {
  return args.map((a): unknown => {
    if (typeof a !== 'object' || a === null || !isShared(a)) return a;
    if (a instanceof BaseProxy) return { [TAG]: 'proxy', d: a.describe() } satisfies Marked;
    if (a instanceof Value) return { [TAG]: 'value', d: a.describe('Value', to) } satisfies Marked;
    if (a instanceof SharedArray)
      return { [TAG]: 'value', d: a.describe('Array', to) } satisfies Marked;
    return { [TAG]: 'sync', d: (a as AnySync).describe(to) } satisfies Marked;
  });
}

function typeOf(spec: TypeSpec): CType {
  return 'code' in spec ? TYPES[spec.code] : Struct(spec.struct, Object.fromEntries(spec.fields));
}

/** In the worker: descriptors back into objects over the same memory. */
export function unmarshalArgs(args: unknown[]): unknown[] {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (typeof a === 'object' && a !== null && (a as Partial<Marked>)[TAG] !== undefined)
      args[i] = unmarshalArg(a);
  }
  return args;
}

/** One argument: a descriptor back into its object, anything else as it is. */
export function unmarshalArg(arg: unknown): unknown {
  const a = arg as Partial<Marked> | null;
  if (typeof a !== 'object' || a === null || a[TAG] === undefined) return arg;
  if (a[TAG] === 'proxy') return reviveProxy(a.d as ProxyDescriptor);
  if (a[TAG] === 'sync') return reviveSync(a.d as SyncDescriptor);
  const d = a.d as SharedDescriptor;
  const lock = d.lock ? (reviveSync(d.lock) as Lock | RLock) : false;
  const memory = openMemory(d.memory);
  return d.kind === 'Value'
    ? new Value(typeOf(d.type), undefined, { lock }, memory)
    : new SharedArray(typeOf(d.type), d.length, { lock }, memory);
}
