/**
 * C types for shared memory, with Python's type codes (`multiprocessing.sharedctypes`) and
 * ctypes-style structures. A type knows its size, its alignment, and how to read and write one
 * value at a byte offset of a shared buffer.
 */

export type TypeCode = 'b' | 'B' | 'h' | 'H' | 'i' | 'I' | 'l' | 'L' | 'q' | 'Q' | 'f' | 'd' | 'c';

/**
 * What types read and write through: a DataView over memory this thread addresses, or, for
 * memory another process serves (no addon, see remote/client.ts), the same calls sent there.
 */
export type ByteView = Pick<
  DataView,
  | 'getInt8'
  | 'getUint8'
  | 'getInt16'
  | 'getUint16'
  | 'getInt32'
  | 'getUint32'
  | 'getBigInt64'
  | 'getBigUint64'
  | 'getFloat32'
  | 'getFloat64'
  | 'setInt8'
  | 'setUint8'
  | 'setInt16'
  | 'setUint16'
  | 'setInt32'
  | 'setUint32'
  | 'setBigInt64'
  | 'setBigUint64'
  | 'setFloat32'
  | 'setFloat64'
>;

export interface ScalarType {
  readonly kind: 'scalar';
  readonly code: TypeCode;
  readonly size: number;
  readonly align: number;
  /** An integer type whose values fit an Int32Array/Uint32Array lane, so Atomics work on it. */
  readonly atomic: boolean;
  read(view: ByteView, offset: number): number | bigint;
  write(view: ByteView, offset: number, value: number | bigint): void;
}

export interface StructType {
  readonly kind: 'struct';
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly { name: string; type: ScalarType; offset: number }[];
}

export type CType = ScalarType | StructType;

const LE = true;

function scalar(
  code: TypeCode,
  size: number,
  atomic: boolean,
  read: (v: ByteView, o: number) => number | bigint,
  write: (v: ByteView, o: number, x: number | bigint) => void,
): ScalarType {
  return Object.freeze({ kind: 'scalar', code, size, align: size, atomic, read, write });
}

const num = (x: number | bigint): number => Number(x);
const big = (x: number | bigint): bigint => BigInt(x);

/** Python's type codes. `l`/`L` are C `long`: 64 bits on the 64-bit platforms Node runs on. */
export const TYPES: Readonly<Record<TypeCode, ScalarType>> = Object.freeze({
  b: scalar(
    'b',
    1,
    false,
    (v, o) => v.getInt8(o),
    (v, o, x) => v.setInt8(o, num(x)),
  ),
  B: scalar(
    'B',
    1,
    false,
    (v, o) => v.getUint8(o),
    (v, o, x) => v.setUint8(o, num(x)),
  ),
  c: scalar(
    'c',
    1,
    false,
    (v, o) => v.getUint8(o),
    (v, o, x) => v.setUint8(o, num(x)),
  ),
  h: scalar(
    'h',
    2,
    false,
    (v, o) => v.getInt16(o, LE),
    (v, o, x) => v.setInt16(o, num(x), LE),
  ),
  H: scalar(
    'H',
    2,
    false,
    (v, o) => v.getUint16(o, LE),
    (v, o, x) => v.setUint16(o, num(x), LE),
  ),
  i: scalar(
    'i',
    4,
    true,
    (v, o) => v.getInt32(o, LE),
    (v, o, x) => v.setInt32(o, num(x), LE),
  ),
  I: scalar(
    'I',
    4,
    true,
    (v, o) => v.getUint32(o, LE),
    (v, o, x) => v.setUint32(o, num(x), LE),
  ),
  l: scalar(
    'l',
    8,
    false,
    (v, o) => v.getBigInt64(o, LE),
    (v, o, x) => v.setBigInt64(o, big(x), LE),
  ),
  L: scalar(
    'L',
    8,
    false,
    (v, o) => v.getBigUint64(o, LE),
    (v, o, x) => v.setBigUint64(o, big(x), LE),
  ),
  q: scalar(
    'q',
    8,
    false,
    (v, o) => v.getBigInt64(o, LE),
    (v, o, x) => v.setBigInt64(o, big(x), LE),
  ),
  Q: scalar(
    'Q',
    8,
    false,
    (v, o) => v.getBigUint64(o, LE),
    (v, o, x) => v.setBigUint64(o, big(x), LE),
  ),
  f: scalar(
    'f',
    4,
    false,
    (v, o) => v.getFloat32(o, LE),
    (v, o, x) => v.setFloat32(o, num(x), LE),
  ),
  d: scalar(
    'd',
    8,
    false,
    (v, o) => v.getFloat64(o, LE),
    (v, o, x) => v.setFloat64(o, num(x), LE),
  ),
});

/** ctypes' names for the same types, for code ported from Python (`c_double`, `c_int`, ...). */
export const c_byte = TYPES.b;
export const c_ubyte = TYPES.B;
export const c_char = TYPES.c;
export const c_short = TYPES.h;
export const c_ushort = TYPES.H;
export const c_int = TYPES.i;
export const c_uint = TYPES.I;
export const c_long = TYPES.l;
export const c_ulong = TYPES.L;
export const c_longlong = TYPES.q;
export const c_ulonglong = TYPES.Q;
export const c_float = TYPES.f;
export const c_double = TYPES.d;

/**
 * A C structure: fields laid out in order with C's alignment, as ctypes' `Structure` does.
 * `Struct('Point', { x: 'd', y: 'd' })` is the seed's `Point` with two doubles.
 */
export function Struct(name: string, fields: Record<string, TypeCode | ScalarType>): StructType {
  let offset = 0;
  let align = 1;
  const laid: { name: string; type: ScalarType; offset: number }[] = [];
  for (const [field, spec] of Object.entries(fields)) {
    const type = typeof spec === 'string' ? TYPES[spec] : spec;
    if (!type || type.kind !== 'scalar') {
      throw new TypeError(`Struct ${name}: field ${field} has an unknown type ${String(spec)}`);
    }
    offset = Math.ceil(offset / type.align) * type.align;
    laid.push({ name: field, type, offset });
    offset += type.size;
    align = Math.max(align, type.align);
  }
  if (laid.length === 0) throw new TypeError(`Struct ${name} needs at least one field`);
  return Object.freeze({
    kind: 'struct',
    name,
    size: Math.ceil(offset / align) * align,
    align,
    fields: Object.freeze(laid),
  });
}

export function resolveType(spec: TypeCode | CType): CType {
  if (typeof spec === 'string') {
    const type = TYPES[spec as TypeCode];
    if (!type) {
      throw new TypeError(
        `unknown type code '${spec}': use one of ${Object.keys(TYPES).join(' ')} or a Struct`,
      );
    }
    return type;
  }
  if (spec && (spec.kind === 'scalar' || spec.kind === 'struct')) return spec;
  throw new TypeError(`expected a type code or a Struct, got ${String(spec)}`);
}

/** What a scalar type holds, for an error. */
function holds(t: ScalarType): string {
  if (t.code === 'c') return 'one character (code 0-255) or a byte as an integer';
  if (t.code === 'f' || t.code === 'd') return 'numbers';
  return 'integers (numbers without a fraction, or bigints)';
}

function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof value} ${String(value)}`;
    case 'undefined':
      return 'undefined';
    default:
      return value === null ? 'null' : Object.prototype.toString.call(value);
  }
}

/**
 * `value` as type `t` stores it, or a TypeError that says what the type holds and where. As
 * ctypes does, an integer type refuses a number with a fraction, a string or an object (instead
 * of truncating it, or storing NaN's 0 or a string's first character code); `'c'` takes one
 * character or a byte; `'f'` and `'d'` take any number. Booleans count as 0 and 1 (Python's bool
 * is an int). Integers out of the type's range wrap, as ctypes' do. `where` names the slot.
 */
export function scalarValue(t: ScalarType, value: unknown, where: () => string): number | bigint {
  switch (typeof value) {
    case 'number':
      if (t.code === 'f' || t.code === 'd' || Number.isInteger(value)) return value;
      break;
    case 'bigint':
      if (t.code !== 'c') return value;
      break;
    case 'boolean':
      if (t.code !== 'c') return value ? 1 : 0;
      break;
    case 'string':
      if (t.code === 'c' && value.length === 1 && value.charCodeAt(0) < 256)
        return value.charCodeAt(0);
      break;
    default:
      break;
  }
  throw new TypeError(`${where()} holds ${holds(t)}; got ${describeValue(value)}`);
}

export function describeType(type: CType): string {
  return type.kind === 'scalar' ? `'${type.code}'` : `Struct ${type.name}`;
}
