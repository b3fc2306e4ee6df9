/**
 * Carries a thrown value from a worker to the main program without losing anything.
 *
 * `encodeThrown` turns whatever a task threw into a graph that the structured clone algorithm
 * (worker_threads `postMessage`, child_process `serialization: 'advanced'`) can carry: Errors
 * become records (name, message, stack, every own property, `cause`, `errors`), values that
 * cannot be cloned (functions, symbols, WeakMaps, ...) become visible markers, and shared
 * references and cycles are kept because the clone algorithm keeps them.
 * `decodeThrown` turns the received graph back into real `Error` objects.
 */
import { types } from 'node:util';
import { POOLSCOPE_ERRORS, ThrownValueError, UnsendableValue, type ThrownKind } from './errors';

/**
 * Records are arrays, not objects: the clone algorithm writes an object's keys with every object,
 * and an error travelling as an array clones about twice as fast. The first item marks what the
 * array is.
 */
const ERROR = '__poolscope_error__';
const UNSENDABLE = '__poolscope_unsendable__';

/**
 * [ERROR, name, message, stack, props, constructor name, shared, has cause, cause, errors], where
 * props is flat: key, value, enumerable for every own property but name, message, stack, cause,
 * errors. The items after props are left off while they are the default (most errors end at
 * props): the constructor name when it is the name; `shared`, true when the graph sent holds an
 * object twice (shared references, cycles), on the outermost record only; the cause and the
 * aggregated errors when the error has none.
 */
type ErrorRecord = [
  typeof ERROR,
  string,
  string,
  string | undefined,
  unknown[],
  (string | undefined)?,
  boolean?,
  boolean?,
  unknown?,
  (unknown[] | undefined)?,
];

/** [UNSENDABLE, kind, description] */
type MarkerRecord = [typeof UNSENDABLE, string, string];

/** What was thrown: an Error's record, or [kind, encoded value] for anything else. */
export type ThrownRecord = ErrorRecord | [ThrownKind, unknown];

/** The objects met so far in a graph being encoded, and whether one was met twice. */
class Memo extends Map<object, unknown> {
  shared = false;
}

type ErrorClass = new (...args: never[]) => Error;

/**
 * Classes an error is revived as, by name. Maps, not objects: a name such as `constructor` or
 * `toString` must not find what every object inherits.
 */
const BUILTIN_ERRORS = new Map<string, ErrorClass>([
  ['Error', Error],
  ['TypeError', TypeError],
  ['RangeError', RangeError],
  ['SyntaxError', SyntaxError],
  ['ReferenceError', ReferenceError],
  ['EvalError', EvalError],
  ['URIError', URIError],
  ['AggregateError', AggregateError],
]);
const OWN_ERRORS = new Map<string, ErrorClass>(Object.entries(POOLSCOPE_ERRORS));

const registered = new Map<string, ErrorClass>();

/**
 * Makes errors of this class arrive from workers as instances of it (`instanceof` holds), when
 * the class is registered in the main program under the same name it has in the worker.
 */
export function registerErrorClass(ctor: new (...args: never[]) => Error, name = ctor.name): void {
  registered.set(name, ctor);
}

const SKIPPED_ERROR_KEYS = new Set(['name', 'message', 'stack', 'cause', 'errors']);

/**
 * Whether `value` is an Error (of this realm or another). False, not an exception, for a proxy
 * whose traps throw or that was revoked (an immer draft after its recipe, for one).
 */
export function isError(value: unknown): value is Error {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return value instanceof Error || Object.prototype.toString.call(value) === '[object Error]';
  } catch {
    return false;
  }
}

/** What an exception says, for a marker; never throws. */
export function reasonOf(err: unknown): string {
  try {
    return isError(err) ? `${String(err.name)}: ${String(err.message)}` : String(err);
  } catch {
    return 'a value that cannot be read';
  }
}

/**
 * A thrown value as text for a log line: an Error's stack (or its name and message), anything
 * else as a string. Never throws, whatever was thrown (a revoked proxy, a getter that throws).
 */
export function describeThrown(value: unknown): string {
  try {
    if (isError(value)) {
      const stack = value.stack;
      return typeof stack === 'string' && stack !== '' ? stack : reasonOf(value);
    }
    return String(value);
  } catch {
    return 'a value that cannot be read (a revoked proxy, or one whose traps throw)';
  }
}

/**
 * Why `value` cannot be sent, from the clone algorithm's error: its message, and for a proxy
 * (Vue's reactive objects, immer's drafts, MobX's observables) what to do, since V8 only says
 * "#<Object> could not be cloned" (or "null" for a revoked one).
 */
export function unsendableReason(value: unknown, err: unknown): string {
  let message: string;
  try {
    message = err instanceof Error ? err.message : String(err);
  } catch {
    message = reasonOf(err);
  }
  return types.isProxy(value)
    ? `${message} (it is a Proxy, which the structured clone algorithm refuses: send a plain copy of it)`
    : message;
}

function describeFunction(fn: Function): MarkerRecord {
  let kind = 'function';
  let name = '';
  try {
    if (Function.prototype.toString.call(fn).startsWith('class')) kind = 'class';
    name = String(fn.name);
  } catch {
    // A proxy of a function: its source and name can throw.
  }
  return [UNSENDABLE, kind, name || '(anonymous)'];
}

function marker(kind: string, description: string): MarkerRecord {
  return [UNSENDABLE, kind, description];
}

function safeGet(obj: object, key: PropertyKey): unknown {
  try {
    return (obj as Record<PropertyKey, unknown>)[key];
  } catch (err) {
    return marker('getter', `threw ${reasonOf(err)}`);
  }
}

const CLONEABLE_AS_IS = [
  Date,
  RegExp,
  ArrayBuffer,
  DataView,
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
];

function encodeValue(value: unknown, memo: Memo): unknown {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return value;
    case 'symbol':
      return marker('symbol', value.toString());
    case 'function':
      return describeFunction(value);
    default:
      break;
  }
  if (value === null) return null;
  const obj = value as object;
  const seen = memo.get(obj);
  if (seen !== undefined) {
    memo.shared = true;
    return seen;
  }
  try {
    return encodeObject(obj, memo);
  } catch (err) {
    // A proxy whose traps throw, a revoked one, a getter of a Map subclass: what was read of it
    // is dropped, and a marker says why, in its place (and wherever else it is referenced).
    const out = marker('unreadable', `reading it threw ${reasonOf(err)}`);
    memo.set(obj, out);
    return out;
  }
}

function encodeObject(obj: object, memo: Memo): unknown {
  if (isError(obj)) return encodeError(obj, memo);
  // A plain object (an error's `detail`, most often) is none of the kinds below.
  if (Object.getPrototypeOf(obj) === Object.prototype) return encodePlain(obj, memo);
  // A proxy of a Date or a typed array is not cloneable as one: it is read as an object.
  if (!types.isProxy(obj)) {
    for (const ctor of CLONEABLE_AS_IS) {
      if (obj instanceof ctor) return obj;
    }
  }
  if (Array.isArray(obj)) {
    const out: unknown[] = [];
    memo.set(obj, out);
    for (const item of obj) out.push(encodeValue(item, memo));
    return out;
  }
  if (obj instanceof Map) {
    const out = new Map<unknown, unknown>();
    memo.set(obj, out);
    for (const [k, v] of obj) out.set(encodeValue(k, memo), encodeValue(v, memo));
    return out;
  }
  if (obj instanceof Set) {
    const out = new Set<unknown>();
    memo.set(obj, out);
    for (const v of obj) out.add(encodeValue(v, memo));
    return out;
  }
  if (obj instanceof WeakMap || obj instanceof WeakSet || obj instanceof WeakRef) {
    return marker(obj.constructor.name, 'weak references cannot be sent');
  }
  if (obj instanceof Promise) return marker('Promise', 'a promise cannot be sent');
  return encodePlain(obj, memo);
}

/** An object as its own enumerable string-keyed properties, each encoded. */
function encodePlain(obj: object, memo: Memo): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  memo.set(obj, out);
  for (const key of Object.keys(obj)) out[key] = encodeValue(safeGet(obj, key), memo);
  return out;
}

/**
 * A string read from an error (its name, its message), or `fallback` when there is none, or
 * when reading it threw (safeGet's marker, whose text `fallback` may include); never throws.
 */
function textOf(value: unknown, fallback: string | ((why: string) => string)): string {
  if (typeof value === 'string') return value;
  const marked = Array.isArray(value) && value[0] === UNSENDABLE;
  if (value === undefined || value === null || marked) {
    return typeof fallback === 'string' ? fallback : fallback(marked ? String(value[2]) : '');
  }
  try {
    return String(value);
  } catch (err) {
    return typeof fallback === 'string' ? fallback : fallback(`threw ${reasonOf(err)}`);
  }
}

/** `value` as an array to encode, if it is one; undefined if not, or if it cannot be read. */
function arrayOf(value: unknown): unknown[] | undefined {
  try {
    return Array.isArray(value) ? Array.from(value as unknown[]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An error's record. Every read that can throw (a getter, a proxy's trap) is guarded: a part
 * that cannot be read is left out or marked, and the rest of the error still travels.
 */
function encodeError(err: Error, memo: Memo): ErrorRecord {
  const name = textOf(safeGet(err, 'name'), 'Error');
  const message = textOf(safeGet(err, 'message'), (why) => (why ? `[message ${why}]` : ''));
  const record: ErrorRecord = [ERROR, name, message, undefined, []];
  memo.set(err, record);
  const stack = safeGet(err, 'stack');
  record[3] = typeof stack === 'string' ? stack : undefined;
  const props = record[4];
  let keys: string[] = [];
  try {
    keys = Object.getOwnPropertyNames(err);
  } catch {
    // A proxy whose ownKeys trap throws: its name, message and stack still travel.
  }
  for (const key of keys) {
    if (SKIPPED_ERROR_KEYS.has(key)) continue;
    let enumerable = false;
    try {
      enumerable = Object.prototype.propertyIsEnumerable.call(err, key);
    } catch {
      // Read as a hidden property.
    }
    props.push(key, encodeValue(safeGet(err, key), memo), enumerable);
  }
  const ctor = safeGet(err, 'constructor');
  const ctorName = textOf(typeof ctor === 'function' ? safeGet(ctor, 'name') : undefined, 'Error');
  let hasCause = false;
  try {
    hasCause = Object.prototype.hasOwnProperty.call(err, 'cause');
  } catch {
    // As if it had none.
  }
  const errors = arrayOf(safeGet(err, 'errors'));
  if (!hasCause && errors === undefined) {
    if (ctorName !== name) record[5] = ctorName;
  } else {
    record[5] = ctorName;
    record[6] = false;
    record[7] = hasCause;
    record[8] = hasCause ? encodeValue(safeGet(err, 'cause'), memo) : undefined;
    record[9] = errors?.map((e) => encodeValue(e, memo));
  }
  return record;
}

/**
 * A stack without the frames from the first line naming `frames[0]` or `frames[1]` (a file path
 * and a colon) on: the frames of the code that called the user's, which say nothing to the user.
 */
function cutFrames(stack: string, frames: readonly [string, string]): string {
  let cut = stack.indexOf(frames[0]);
  if (cut === -1) cut = stack.indexOf(frames[1]);
  if (cut === -1) return stack;
  const lineStart = stack.lastIndexOf('\n', cut);
  return lineStart === -1 ? stack : stack.slice(0, lineStart);
}

/** Error.prototype.toString as it was when this module loaded, before a program could change it. */
const errorToString = Error.prototype.toString;
/** Node's own Error.prepareStackTrace: a function in recent versions, undefined in older ones. */
const nodePrepareStackTrace = Error.prepareStackTrace;
/** Whether Error has it as its own property (put back as it was, not as an own `undefined`). */
const ownPrepareStackTrace = Object.prototype.hasOwnProperty.call(Error, 'prepareStackTrace');

/** The file whose frames formatStackAbove leaves out, while it formats. */
let stopFile = '';
/** Whether formatAbove ran since formatStackAbove set it. */
let formatted = false;

/**
 * V8's stack formatting (what Node does by default, when no hook and no source maps are set: the
 * error's toString, then `    at ` and each frame's own text), up to the first frame in stopFile.
 */
function formatAbove(error: Error, frames: NodeJS.CallSite[]): string {
  formatted = true;
  let text = errorToString.call(error);
  for (const frame of frames) {
    if (frame.getFileName() === stopFile) break;
    text += `\n    at ${String(frame)}`;
  }
  return text;
}

/**
 * Has V8 format `err`'s stack now (true if it did), without the frames from the first one in
 * `file` on: the text its own formatting would give, cut there (as cutFrames cuts it), at a
 * fraction of the cost, as every frame formatted costs microseconds and a task's error has its
 * runner's frames below its own. Leaves the stack alone when it is formatted already, when the
 * program formats stacks itself (its own Error.prepareStackTrace), and when source maps are on
 * (Node's formatting maps frames).
 */
function formatStackAbove(err: Error, file: string): boolean {
  const sourceMaps = (process as { sourceMapsEnabled?: boolean }).sourceMapsEnabled;
  if (Error.prepareStackTrace !== nodePrepareStackTrace || sourceMaps !== false) return false;
  stopFile = file;
  formatted = false;
  Error.prepareStackTrace = formatAbove;
  try {
    void err.stack;
  } catch {
    // A stack getter of the program's own that throws: encodeError reports it.
  } finally {
    if (ownPrepareStackTrace) Error.prepareStackTrace = nodePrepareStackTrace;
    else delete (Error as { prepareStackTrace?: unknown }).prepareStackTrace;
    stopFile = '';
  }
  return formatted;
}

/**
 * What a task threw, in a form the structured clone algorithm can carry. With `runnerFrames`,
 * the error's stack ends where the user's code ends (formatStackAbove, cutFrames): shorter to
 * format, to send and to receive.
 */
export function encodeThrown(
  thrown: unknown,
  runnerFrames?: readonly [string, string],
): ThrownRecord {
  const kind: ThrownKind = thrown === null ? 'null' : (typeof thrown as ThrownKind);
  const memo = new Memo();
  try {
    if (isError(thrown)) {
      // The first of the runner's frames names its file and a colon.
      const cut =
        runnerFrames !== undefined && formatStackAbove(thrown, runnerFrames[0].slice(0, -1));
      const record = encodeError(thrown, memo);
      // A stack formatted before (or by someone else) is cut as text.
      if (runnerFrames && !cut && record[3] !== undefined)
        record[3] = cutFrames(record[3], runnerFrames);
      // Told to the receiver, which keeps no memo for a graph without shared objects.
      if (memo.shared) {
        if (record.length < 6) record[5] = undefined;
        record[6] = true;
      }
      return record;
    }
    return [kind, encodeValue(thrown, memo)];
  } catch (err) {
    // Every read above is guarded; this is the last resort, so that a worker never dies of
    // what a task threw: the task fails with a ThrownValueError that says what went wrong.
    return [kind, marker('unreadable', `encoding it threw ${reasonOf(err)}`)];
  }
}

/**
 * An encoded record with every part that `check` refuses (it throws) replaced by a marker. What
 * the encoder passes on as it is (a Date, a typed array) can still fail to clone: a detached
 * buffer, for one. Walks what the encoder builds (arrays, plain objects, Maps, Sets), keeping
 * shared references shared. Called only once sending the record failed.
 */
export function sendableRecord<T>(
  record: T,
  check: (value: unknown) => void,
  memo = new Map<object, unknown>(),
): T {
  if (typeof record !== 'object' || record === null) return record;
  if (memo.has(record)) return memo.get(record) as T;
  if (Array.isArray(record)) {
    const out: unknown[] = [];
    memo.set(record, out);
    for (const item of record) out.push(sendableRecord(item, check, memo));
    return out as T;
  }
  if (record instanceof Map) {
    const out = new Map<unknown, unknown>();
    memo.set(record, out);
    for (const [k, v] of record)
      out.set(sendableRecord(k, check, memo), sendableRecord(v, check, memo));
    return out as T;
  }
  if (record instanceof Set) {
    const out = new Set<unknown>();
    memo.set(record, out);
    for (const v of record) out.add(sendableRecord(v, check, memo));
    return out as T;
  }
  if (Object.getPrototypeOf(record) === Object.prototype) {
    const out: Record<string, unknown> = {};
    memo.set(record, out);
    for (const [k, v] of Object.entries(record)) out[k] = sendableRecord(v, check, memo);
    return out as T;
  }
  try {
    check(record);
    memo.set(record, record);
    return record;
  } catch (err) {
    const kind = Object.prototype.toString.call(record).slice(8, -1);
    const out = marker(kind, `cannot be sent: ${reasonOf(err)}`);
    memo.set(record, out);
    return out as T;
  }
}

function isRecord(value: unknown[], mark: string): boolean {
  return value.length > 0 && value[0] === mark;
}

/** One descriptor for every defineHidden: a failed task defines several, and each was an object. */
const HIDDEN: PropertyDescriptor = {
  value: undefined,
  writable: true,
  configurable: true,
  enumerable: false,
};

/** A non-enumerable, writable property, as an error's own `message` and `stack` are. */
export function defineHidden(target: object, key: PropertyKey, value: unknown): void {
  HIDDEN.value = value;
  try {
    Object.defineProperty(target, key, HIDDEN);
  } finally {
    HIDDEN.value = undefined;
  }
}

/**
 * Whether an Error constructed while `Error.stackTraceLimit` is not a number still has its own
 * `stack`, writable and not enumerable (V8's, as in Node 20): then a revived error's stack is a
 * plain store into it, cheaper than defining the property again.
 */
const STACK_ASSIGNABLE = ((): boolean => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = undefined as unknown as number;
  try {
    const d = Object.getOwnPropertyDescriptor(new Error('probe'), 'stack');
    return d !== undefined && d.writable === true && d.enumerable === false && 'value' in d;
  } finally {
    Error.stackTraceLimit = limit;
  }
})();

/**
 * What a decoded object became, so that shared objects stay shared and cycles end; none for a
 * graph the sender saw no object twice in (most errors: a Map less per failed task).
 */
type DecodeMemo = Map<object, unknown> | undefined;

/**
 * An Error built without capturing this process's stack: with `Error.stackTraceLimit` not a
 * number V8 captures nothing (a capture costs a microsecond or more, and formatting its frames
 * several more; they would be the pool's own receiving code).
 */
function constructUncaptured<E extends Error>(
  target: ErrorClass,
  args: unknown[],
  newTarget: ErrorClass = target,
): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = undefined as unknown as number;
  try {
    return Reflect.construct(target, args, newTarget) as E;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * `build()`'s error, constructed without capturing this thread's stack, for an error whose stack
 * the caller then sets (the pool's own task errors show where the task was submitted): a capture
 * costs microseconds a frame, and replacing a captured stack formats it first (terminate() with
 * 300,000 tasks queued spent 3.5 of its 5.2 s there).
 */
export function buildUncaptured<E extends Error>(build: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = undefined as unknown as number;
  try {
    return build();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Sets an uncaptured error's stack: a plain store where its `stack` is writable data. */
function setStack(err: Error, stack: string): void {
  if (STACK_ASSIGNABLE) err.stack = stack;
  else defineHidden(err, 'stack', stack);
}

function reviveError(record: ErrorRecord, memo: DecodeMemo): Error {
  const [, name, message, stack, props, ctorName = name, , hasCause, cause, errors] = record;
  const ctor =
    registered.get(name) ??
    registered.get(ctorName) ??
    OWN_ERRORS.get(name) ??
    BUILTIN_ERRORS.get(ctorName) ??
    BUILTIN_ERRORS.get(name) ??
    Error;
  // A real Error with the class's prototype, not Object.create: it keeps the internal error slot, so
  // util.inspect, console.log and util.types.isNativeError treat it as the error it is. Built
  // uncaptured, so setting `stack` below does not format an empty one first, as it does after a
  // limit of 0. The message as the constructor's own argument, cheaper than defining it after.
  const err = constructUncaptured<Error>(Error, [message], ctor);
  memo?.set(record, err);
  if (err.name !== name) defineHidden(err, 'name', name);
  setStack(err, stack ?? `${name}: ${message}`);
  for (let i = 0; i < props.length; i += 3) {
    const key = props[i] as string;
    const decoded = decodeValue(props[i + 1], memo);
    if (props[i + 2]) (err as unknown as Record<string, unknown>)[key] = decoded;
    else defineHidden(err, key, decoded);
  }
  if (hasCause) defineHidden(err, 'cause', decodeValue(cause, memo));
  if (errors) {
    defineHidden(
      err,
      'errors',
      errors.map((e) => decodeValue(e, memo)),
    );
  }
  return err;
}

function decodeValue(value: unknown, memo: DecodeMemo): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const seen = memo?.get(value);
  if (seen !== undefined) return seen;
  if (Array.isArray(value)) {
    if (isRecord(value, ERROR)) return reviveError(value as ErrorRecord, memo);
    if (isRecord(value, UNSENDABLE)) {
      const out = new UnsendableValue(value[1] as string, value[2] as string);
      memo?.set(value, out);
      return out;
    }
  }
  // The received graph is a fresh copy made by the clone algorithm: decode it in place.
  memo?.set(value, value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = decodeValue(value[i], memo);
  } else if (value instanceof Map) {
    const entries = [...value];
    value.clear();
    for (const [k, v] of entries) value.set(decodeValue(k, memo), decodeValue(v, memo));
  } else if (value instanceof Set) {
    const items = [...value];
    value.clear();
    for (const v of items) value.add(decodeValue(v, memo));
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    const rec = value as Record<string, unknown>;
    for (const key of Object.keys(rec)) rec[key] = decodeValue(rec[key], memo);
  }
  return value;
}

function preview(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 200 ? value.slice(0, 200) + '…' : value);
  if (value instanceof UnsendableValue) return value.toString();
  if (typeof value === 'object' && value !== null) {
    try {
      const json = JSON.stringify(value);
      if (json !== undefined) return json.length > 200 ? json.slice(0, 200) + '…' : json;
    } catch {
      // cycles: fall through to the generic description
    }
    return Object.prototype.toString.call(value);
  }
  return String(value);
}

/** Turns a received `ThrownRecord` back into an `Error`, whatever was thrown. */
export function decodeThrown(record: ThrownRecord): Error {
  if (isRecord(record, ERROR)) {
    const shared = (record as ErrorRecord)[6] === true;
    return reviveError(record as ErrorRecord, shared ? new Map() : undefined);
  }
  const [kind, encoded] = record as [ThrownKind, unknown];
  const value = decodeValue(encoded, new Map());
  // A thrown value has no stack in the worker; here it would be the pool's receiving code (nine
  // frames, formatted when the pool adds the caller's). The name and message, as a stack starts.
  const err = constructUncaptured<ThrownValueError>(ThrownValueError, [
    `task threw a non-Error ${kind}: ${preview(value)}`,
    kind,
    value,
  ]);
  setStack(err, `${err.name}: ${err.message}`);
  return err;
}
