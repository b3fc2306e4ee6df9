/**
 * The `tasks` event (protocol v2): a process's task.submitted, task.started and task.succeeded
 * events, in the order they happened, packed into one line as a flat array of records instead of
 * one JSON object per event. It is what makes tracing a burst of small tasks cheap: the producer
 * writes a few integers per record as bytes into a reused buffer and stringifies nothing; a
 * consumer parses one array per batch.
 *
 *   {"v":2,"ts":T,"pid":…,"tid":…,"run":"…","type":"tasks","pools":["4242:1"],"fns":["inc"],
 *    "ops":[0,0, 1,0,1,0,0,1,[41], 2,3,1,1, 3,57,1,0,1,42,12,3, 1,60,2,0,0,1,[7], 4,90,2,0,1,8,9,30]}
 *
 * Records (all times are whole microseconds; a record's time is `ts + dt / 1000`):
 *
 *   0, pool                                          the records after it are pools[pool]'s
 *   1, dt, task, fn, kind, items, args               task.submitted
 *   2, dt, task, worker                              task.started
 *   3, dt, task, fn, worker, result, durUs, queuedUs task.succeeded
 *   4, dt, task, fn, worker, result, durUs, queuedUs task.started, then task.succeeded, both at
 *                                                    that time on that worker
 *
 * `fn` is an index into `fns`; `kind` an index into KINDS. `args` is either the preview itself
 * (a string) or, for up to 7 numbers, booleans and nulls, those values, whose preview a consumer
 * writes as the producer would have: `[ 1, true ]`. `result` likewise: a string is the preview,
 * a number, boolean or null is the value whose preview is `String(value)`.
 *
 * Expanded, a batch is exactly the v1 events it stands for, in order (`expandTasks`); the Store
 * applies it without building them (`forEachTaskRecord`).
 */
import type { EventOf, TraceEvent } from './protocol';

export const KINDS = ['apply', 'map', 'starmap', 'imap', 'imapUnordered'] as const;
export type TaskKindName = (typeof KINDS)[number];

export const OP_POOL = 0;
export const OP_SUBMITTED = 1;
export const OP_STARTED = 2;
export const OP_SUCCEEDED = 3;
/** task.started then task.succeeded, at one time, on one worker: most tasks of a busy pool. */
export const OP_RAN = 4;

/** The arguments of a task with a raw `args` record: a preview of up to 7 of these is short. */
export const MAX_RAW_ARGS = 7;

/** The preview a raw `args` value stands for (the producer's `preview(payload)`). */
export function argsPreview(args: unknown): string {
  if (typeof args === 'string') return args;
  if (!Array.isArray(args)) throw new Error('tasks: args is neither a preview nor an array');
  if (args.length === 0) return '[]';
  let text = '[ ';
  for (let i = 0; i < args.length; i++) {
    const v: unknown = args[i];
    if (typeof v !== 'number' && typeof v !== 'boolean' && v !== null)
      throw new Error('tasks: raw args hold a value that is not a number, boolean or null');
    text += i === 0 ? String(v) : `, ${String(v)}`;
  }
  return `${text} ]`;
}

/** The preview a raw `result` value stands for. */
export function resultPreview(result: unknown): string {
  if (typeof result === 'string') return result;
  if (typeof result === 'number' || typeof result === 'boolean' || result === null)
    return String(result);
  throw new Error('tasks: result is neither a preview nor a number, boolean or null');
}

/** What a batch's records say, one call per record, with the values a v1 event would carry. */
export interface TaskRecordVisitor {
  submitted(
    pool: string,
    ts: number,
    task: number,
    fn: string,
    kind: TaskKindName,
    items: number,
    args: string,
  ): void;
  started(pool: string, ts: number, task: number, worker: number): void;
  succeeded(
    pool: string,
    ts: number,
    task: number,
    fn: string,
    worker: number,
    result: string,
    durationMs: number,
    queuedMs: number,
  ): void;
}

function int(value: unknown, what: string, at: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw new Error(`tasks: ${what} of the record at ops[${at}] is not an integer`);
  return value;
}

function entry<T>(table: readonly T[], index: unknown, what: string, at: number): T {
  const i = int(index, what, at);
  if (i < 0 || i >= table.length)
    throw new Error(`tasks: ${what} ${i} of the record at ops[${at}] is out of range`);
  return table[i]!;
}

/**
 * Walks a `tasks` event's records in order. Throws on a malformed record (the records before it
 * have been visited).
 */
export function forEachTaskRecord(event: EventOf<'tasks'>, visit: TaskRecordVisitor): void {
  const { ops, pools, fns } = event;
  if (!Array.isArray(ops) || !Array.isArray(pools) || !Array.isArray(fns))
    throw new Error('tasks: ops, pools and fns must be arrays');
  const base = event.ts;
  let pool: string | undefined;
  let i = 0;
  while (i < ops.length) {
    const at = i;
    const op = ops[i];
    if (op === OP_POOL) {
      pool = entry(pools, ops[i + 1], 'pool', at);
      i += 2;
      continue;
    }
    if (pool === undefined) throw new Error(`tasks: the record at ops[${at}] has no pool`);
    const ts = base + int(ops[i + 1], 'dt', at) / 1000;
    const task = int(ops[i + 2], 'task', at);
    switch (op) {
      case OP_SUBMITTED:
        if (i + 7 > ops.length) throw new Error(`tasks: the record at ops[${at}] is cut short`);
        visit.submitted(
          pool,
          ts,
          task,
          entry(fns, ops[i + 3], 'fn', at),
          entry(KINDS, ops[i + 4], 'kind', at),
          int(ops[i + 5], 'items', at),
          argsPreview(ops[i + 6]),
        );
        i += 7;
        break;
      case OP_STARTED:
        if (i + 4 > ops.length) throw new Error(`tasks: the record at ops[${at}] is cut short`);
        visit.started(pool, ts, task, int(ops[i + 3], 'worker', at));
        i += 4;
        break;
      case OP_SUCCEEDED:
      case OP_RAN: {
        if (i + 8 > ops.length) throw new Error(`tasks: the record at ops[${at}] is cut short`);
        const worker = int(ops[i + 4], 'worker', at);
        if (op === OP_RAN) visit.started(pool, ts, task, worker);
        visit.succeeded(
          pool,
          ts,
          task,
          entry(fns, ops[i + 3], 'fn', at),
          worker,
          resultPreview(ops[i + 5]),
          int(ops[i + 6], 'durUs', at) / 1000,
          int(ops[i + 7], 'queuedUs', at) / 1000,
        );
        i += 8;
        break;
      }
      default:
        throw new Error(`tasks: unknown record type ${String(op)} at ops[${at}]`);
    }
  }
}

/** The v1-shaped events a `tasks` event stands for, in order (for tools and tests). */
export function expandTasks(event: EventOf<'tasks'>): TraceEvent[] {
  const { v, pid, tid, run } = event;
  const envelope = { v, pid, ...(tid !== undefined ? { tid } : {}), run };
  const out: TraceEvent[] = [];
  forEachTaskRecord(event, {
    submitted(pool, ts, task, fn, kind, items, args) {
      out.push({ ...envelope, ts, type: 'task.submitted', pool, task, fn, kind, args, items });
    },
    started(pool, ts, task, worker) {
      out.push({ ...envelope, ts, type: 'task.started', pool, task, worker });
    },
    succeeded(pool, ts, task, fn, worker, result, durationMs, queuedMs) {
      out.push({
        ...envelope,
        ts,
        type: 'task.succeeded',
        pool,
        task,
        fn,
        worker,
        result,
        durationMs,
        queuedMs,
      });
    },
  });
  return out;
}

/** Any event as the events it stands for: a `tasks` batch expanded, anything else as it is. */
export function expandEvent(event: TraceEvent): TraceEvent[] {
  return event.type === 'tasks' ? expandTasks(event) : [event];
}

const COMMA = 44;
const MINUS = 45;
const ZERO = 48;
/** "00" to "99", as bytes. */
const PAIRS = new Uint8Array(200);
for (let i = 0; i < 100; i++) {
  PAIRS[i * 2] = ZERO + Math.floor(i / 10);
  PAIRS[i * 2 + 1] = ZERO + (i % 10);
}
/** Room for a record's numbers; strings make room for themselves. */
const RECORD_ROOM = 256;

/**
 * The producer's side: records written as bytes into one reused buffer, numbers as digits, with
 * nothing allocated per record in the common case (whole numbers, raw arguments and results).
 * `close` gives the batch's line.
 */
export class TaskBatchWriter {
  private buf = Buffer.allocUnsafe(96 * 1024);
  /** Bytes of records written; 0 when no batch is open. */
  length = 0;
  private base = 0;
  private pools: string[] = [];
  private pool = '';
  private fns = new Map<string, number>();
  private lastFn = '';
  private lastFnIndex = 0;
  /**
   * A task.started record not yet written (-1: none): when task.succeeded follows for that task,
   * at the same time on the same worker, the two are written as one OP_RAN record.
   */
  private startedTask = -1;
  private startedWorker = 0;
  private startedAt = 0;
  private startedDt = 0;

  /** task.submitted; `args` raw (up to 7 finite numbers, booleans, nulls) or a preview. */
  submitted(
    pool: string,
    at: number,
    task: number,
    fn: string,
    kind: number,
    items: number,
    args: readonly unknown[] | string,
  ): void {
    if (this.startedTask !== -1) this.writeStarted();
    const dt = this.begin(pool, at);
    const b = this.buf;
    b[this.length++] = COMMA;
    b[this.length++] = ZERO + OP_SUBMITTED;
    this.field(dt);
    this.field(task);
    this.field(this.fnIndex(fn));
    this.field(kind);
    this.field(items);
    b[this.length++] = COMMA;
    if (typeof args === 'string') this.text(JSON.stringify(args));
    else {
      b[this.length++] = 91; // [
      for (let i = 0; i < args.length; i++) {
        // this.buf: a string written before may have grown it.
        if (i > 0) this.buf[this.length++] = COMMA;
        this.raw(args[i] as number | boolean | null);
      }
      this.buf[this.length++] = 93; // ]
    }
  }

  started(pool: string, at: number, task: number, worker: number): void {
    if (this.startedTask !== -1) this.writeStarted();
    // Opened (and its pool switched to) now; written with the next record.
    this.startedDt = this.begin(pool, at);
    this.startedTask = task;
    this.startedWorker = worker;
    this.startedAt = at;
  }

  private writeStarted(): void {
    if (this.length + RECORD_ROOM > this.buf.length) this.grow(RECORD_ROOM);
    const b = this.buf;
    b[this.length++] = COMMA;
    b[this.length++] = ZERO + OP_STARTED;
    this.field(this.startedDt);
    this.field(this.startedTask);
    this.field(this.startedWorker);
    this.startedTask = -1;
  }

  /** task.succeeded; `result` raw (a finite number, boolean or null) or a preview. */
  succeeded(
    pool: string,
    at: number,
    task: number,
    fn: string,
    worker: number,
    result: number | boolean | null | string,
    durationMs: number,
    queuedMs: number,
  ): void {
    let op = OP_SUCCEEDED;
    let dt: number;
    if (this.startedTask === -1) dt = this.begin(pool, at);
    else if (
      task === this.startedTask &&
      at === this.startedAt &&
      worker === this.startedWorker &&
      pool === this.pool
    ) {
      op = OP_RAN;
      dt = this.startedDt;
      this.startedTask = -1;
      if (this.length + RECORD_ROOM > this.buf.length) this.grow(RECORD_ROOM);
    } else {
      this.writeStarted();
      dt = this.begin(pool, at);
    }
    const b = this.buf;
    b[this.length++] = COMMA;
    b[this.length++] = ZERO + op;
    this.field(dt);
    this.field(task);
    this.field(this.fnIndex(fn));
    this.field(worker);
    b[this.length++] = COMMA;
    if (typeof result === 'string') this.text(JSON.stringify(result));
    else this.raw(result);
    this.field(Math.round(durationMs * 1000));
    this.field(Math.round(queuedMs * 1000));
  }

  /**
   * The open batch as its JSON line (newline included), given the envelope's JSON text from
   * `"v"` up to and without `"ts"`, and the JSON text of its fields after `ts`.
   */
  close(head: string, tail: string): Buffer {
    if (this.startedTask !== -1) this.writeStarted();
    const line = Buffer.concat([
      Buffer.from(
        `${head}"ts":${this.base}${tail},"type":"tasks","pools":${JSON.stringify(this.pools)},` +
          `"fns":${JSON.stringify([...this.fns.keys()])},"ops":[`,
      ),
      this.buf.subarray(0, this.length),
      Buffer.from(']}\n'),
    ]);
    this.length = 0;
    return line;
  }

  /** Drops the open batch. */
  clear(): void {
    this.length = 0;
    this.startedTask = -1;
  }

  /** Opens a batch or switches its pool as needed, makes room; returns the record's dt (µs). */
  private begin(pool: string, at: number): number {
    if (this.length + RECORD_ROOM > this.buf.length) this.grow(RECORD_ROOM);
    if (this.length === 0) {
      this.base = at;
      this.pools = [pool];
      this.pool = pool;
      this.fns = new Map();
      this.lastFn = '';
      // The first record, without a comma before it: pool 0.
      this.buf[0] = ZERO + OP_POOL;
      this.buf[1] = COMMA;
      this.buf[2] = ZERO;
      this.length = 3;
      return 0;
    }
    if (pool !== this.pool) {
      let index = this.pools.indexOf(pool);
      if (index === -1) index = this.pools.push(pool) - 1;
      this.pool = pool;
      this.buf[this.length++] = COMMA;
      this.buf[this.length++] = ZERO + OP_POOL;
      this.field(index);
    }
    return Math.round((at - this.base) * 1000);
  }

  private fnIndex(fn: string): number {
    if (fn === this.lastFn) return this.lastFnIndex;
    let index = this.fns.get(fn);
    if (index === undefined) {
      index = this.fns.size;
      this.fns.set(fn, index);
    }
    this.lastFn = fn;
    this.lastFnIndex = index;
    return index;
  }

  private grow(room: number): void {
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + room));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }

  /** `,` and a number. */
  private field(n: number): void {
    this.buf[this.length++] = COMMA;
    this.number(n);
  }

  private raw(v: number | boolean | null): void {
    if (typeof v === 'number') this.number(v);
    else this.text(v === null ? 'null' : v ? 'true' : 'false');
  }

  /** A finite number as JSON: whole numbers as digits, others as `String(n)`. */
  private number(n: number): void {
    if ((n | 0) !== n || n === -2147483648) {
      this.text(String(n));
      return;
    }
    const b = this.buf;
    if (n < 0) {
      b[this.length++] = MINUS;
      n = -n;
    }
    if (n < 10) {
      b[this.length++] = ZERO + n;
      return;
    }
    const digits =
      n < 100
        ? 2
        : n < 1000
          ? 3
          : n < 10000
            ? 4
            : n < 100000
              ? 5
              : n < 1000000
                ? 6
                : n < 10000000
                  ? 7
                  : n < 100000000
                    ? 8
                    : n < 1000000000
                      ? 9
                      : 10;
    let end = this.length + digits;
    this.length = end;
    // Two digits at a time.
    while (n >= 100) {
      const q = (n / 100) | 0;
      const pair = (n - q * 100) << 1;
      b[--end] = PAIRS[pair + 1]!;
      b[--end] = PAIRS[pair]!;
      n = q;
    }
    if (n >= 10) {
      const pair = n << 1;
      b[--end] = PAIRS[pair + 1]!;
      b[--end] = PAIRS[pair]!;
    } else b[--end] = ZERO + n;
  }

  /** JSON text, as UTF-8. */
  private text(s: string): void {
    const n = s.length;
    if (this.length + n * 3 > this.buf.length) this.grow(n * 3);
    const b = this.buf;
    let p = this.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.length += b.write(s, this.length, 'utf8');
        return;
      }
      b[p++] = c;
    }
    this.length = p;
  }
}
