/**
 * Turns thrown values into the protocol's JSON records (`ErrorInfo`), and any value into a
 * bounded preview. JSON-safe: non-JSON values become tagged objects (docs/protocol.md, "Values"),
 * cycles become `{"$cycle": "<path>"}`, and everything is bounded in depth and size.
 */
import { isError, reasonOf } from '../error-codec';
import { ThrownValueError, UnsendableValue } from '../errors';
import type { ErrorInfo, StackFrame } from './protocol';
import { inspect } from 'node:util';

const MAX_DEPTH = 8;
const MAX_STRING = 2000;
const MAX_ITEMS = 100;
const MAX_STACK = 16_000;
const SKIPPED = new Set(['name', 'message', 'stack', 'cause', 'errors']);

/** `at fn (file:line:col)`, `at file:line:col`, `at async fn (...)`, `at new Foo (...)`. */
const FRAME = /^\s*at (?:(.+?) \()?(.+?):(\d+):(\d+)\)?$/;

export function parseFrames(stack: string | undefined): StackFrame[] {
  if (!stack) return [];
  const frames: StackFrame[] = [];
  for (const line of stack.split('\n')) {
    if (!/^\s+at /.test(line)) continue;
    const m = FRAME.exec(line);
    const raw = line.trim();
    if (!m) {
      frames.push({ raw });
      continue;
    }
    const frame: StackFrame = { raw, file: m[2]!, line: Number(m[3]), column: Number(m[4]) };
    if (m[1]) frame.fn = m[1];
    frames.push(frame);
  }
  return frames;
}

function clip(text: string, max = MAX_STRING): string {
  return text.length > max ? `${text.slice(0, max)}…(${text.length - max} more)` : text;
}

/** Any value as JSON, with tags for what JSON cannot say. */
export function jsonSafe(
  value: unknown,
  path = '$',
  seen = new Map<object, string>(),
  depth = 0,
): unknown {
  switch (typeof value) {
    case 'string':
      return clip(value);
    case 'number':
      return Number.isFinite(value) ? value : { $number: String(value) };
    case 'boolean':
      return value;
    case 'bigint':
      return { $bigint: value.toString() };
    case 'undefined':
      return { $undefined: true };
    case 'symbol':
      return { $unsendable: value.toString() };
    case 'function':
      return { $unsendable: `function ${value.name || '(anonymous)'}` };
  }
  if (value === null) return null;
  const obj = value as object;
  const at = seen.get(obj);
  if (at !== undefined) return { $cycle: at };
  if (depth >= MAX_DEPTH) return { $truncated: Object.prototype.toString.call(obj) };
  seen.set(obj, path);
  try {
    if (obj instanceof UnsendableValue) return { $unsendable: `${obj.kind} ${obj.description}` };
    if (obj instanceof Date)
      return { $date: Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString() };
    if (obj instanceof RegExp) return { $regexp: String(obj) };
    if (isError(obj)) return { $error: errorInfo(obj, seen) };
    if (ArrayBuffer.isView(obj)) {
      return {
        $bytes: obj.constructor.name,
        length: (obj as unknown as { length?: number }).length ?? obj.byteLength,
      };
    }
    if (obj instanceof Map) {
      const entries = [...obj].slice(0, MAX_ITEMS);
      return {
        $map: entries.map(([k, v], i) => [
          jsonSafe(k, `${path}.<key ${i}>`, seen, depth + 1),
          jsonSafe(v, `${path}.<value ${i}>`, seen, depth + 1),
        ]),
        ...(obj.size > MAX_ITEMS ? { $more: obj.size - MAX_ITEMS } : {}),
      };
    }
    if (obj instanceof Set) {
      return {
        $set: [...obj]
          .slice(0, MAX_ITEMS)
          .map((v, i) => jsonSafe(v, `${path}[${i}]`, seen, depth + 1)),
      };
    }
    if (Array.isArray(obj)) {
      const out = obj
        .slice(0, MAX_ITEMS)
        .map((v, i) => jsonSafe(v, `${path}[${i}]`, seen, depth + 1));
      if (obj.length > MAX_ITEMS) out.push({ $more: obj.length - MAX_ITEMS });
      return out;
    }
    const out: Record<string, unknown> = {};
    const keys = Object.keys(obj);
    for (const key of keys.slice(0, MAX_ITEMS)) {
      let v: unknown;
      try {
        v = (obj as Record<string, unknown>)[key];
      } catch (err) {
        v = { $unsendable: `getter threw ${String(err)}` };
      }
      out[key] = jsonSafe(v, `${path}.${key}`, seen, depth + 1);
    }
    if (keys.length > MAX_ITEMS) out.$more = keys.length - MAX_ITEMS;
    return out;
  } finally {
    // A value reached twice along different paths is not a cycle: only ancestors are.
    seen.delete(obj);
  }
}

/**
 * The protocol's record of a thrown value, whatever it was. Never throws: a value that cannot be
 * read (a revoked proxy, traps that throw) is recorded as such.
 */
export function errorInfo(thrown: unknown, seen = new Map<object, string>()): ErrorInfo {
  try {
    return readErrorInfo(thrown, seen);
  } catch (err) {
    const kind = (thrown === null ? 'null' : typeof thrown) as ErrorInfo['thrown'];
    return {
      thrown: kind,
      name: kind,
      message: clip(`a value that cannot be read: reading it threw ${reasonOf(err)}`),
      frames: [],
      props: {},
    };
  }
}

function readErrorInfo(thrown: unknown, seen: Map<object, string>): ErrorInfo {
  if (thrown instanceof ThrownValueError) {
    return {
      thrown: thrown.thrownKind,
      name: thrown.thrownKind,
      message: clip(preview(thrown.value)),
      frames: [],
      props: {},
      value: jsonSafe(thrown.value),
    };
  }
  if (!isError(thrown)) {
    const kind = thrown === null ? 'null' : typeof thrown;
    return {
      thrown: kind as ErrorInfo['thrown'],
      name: kind,
      message: clip(preview(thrown)),
      frames: [],
      props: {},
      value: jsonSafe(thrown),
    };
  }
  const err = thrown as Error & { code?: unknown; errors?: unknown };
  seen.set(err, '$');
  const props: Record<string, unknown> = {};
  for (const key of Object.getOwnPropertyNames(err)) {
    if (SKIPPED.has(key)) continue;
    let v: unknown;
    try {
      v = (err as unknown as Record<string, unknown>)[key];
    } catch (e) {
      v = { $unsendable: `getter threw ${String(e)}` };
    }
    props[key] = jsonSafe(v, `$.${key}`, seen, 1);
  }
  const stack = typeof err.stack === 'string' ? clip(err.stack, MAX_STACK) : undefined;
  const info: ErrorInfo = {
    thrown: 'error',
    name: String(err.name),
    message: clip(String(err.message)),
    frames: parseFrames(stack),
    props,
  };
  if (stack !== undefined) info.stack = stack;
  if (typeof err.code === 'string' || typeof err.code === 'number') info.code = err.code;
  if (Object.prototype.hasOwnProperty.call(err, 'cause')) {
    const cause = err.cause;
    info.cause =
      typeof cause === 'object' && cause !== null && seen.has(cause)
        ? {
            thrown: 'object',
            name: 'cycle',
            message: `(cycle to ${seen.get(cause)})`,
            frames: [],
            props: {},
          }
        : errorInfo(cause, seen);
  }
  if (Array.isArray(err.errors))
    info.errors = err.errors.slice(0, MAX_ITEMS).map((e) => errorInfo(e, seen));
  seen.delete(err);
  return info;
}

/** A short, bounded, human-readable rendering of any value (argument and result previews). */
export function preview(value: unknown, max = 200): string {
  // The common case, a few primitive arguments or a primitive result, without util.inspect,
  // which costs more than a small task: this runs for every task while tracing.
  if (typeof value === 'number' || typeof value === 'boolean' || value === null)
    return String(value);
  if (Array.isArray(value) && value.length <= 8 && value.every(isSmallPrimitive)) {
    const inner = value
      .map((v) => (typeof v === 'string' ? JSON.stringify(v) : String(v)))
      .join(', ');
    const text = inner ? `[ ${inner} ]` : '[]';
    if (text.length <= max) return text;
  }
  const text =
    typeof value === 'string'
      ? JSON.stringify(value.length > max ? value.slice(0, max) : value)
      : inspect(value, {
          depth: 2,
          breakLength: Infinity,
          maxArrayLength: 10,
          maxStringLength: max,
          compact: true,
        });
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function isSmallPrimitive(v: unknown): boolean {
  return (
    typeof v === 'number' ||
    typeof v === 'boolean' ||
    v === null ||
    v === undefined ||
    (typeof v === 'string' && v.length <= 64)
  );
}
