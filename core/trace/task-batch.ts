/**
 * The `tasks` event (protocol v2): a process's task.submitted, task.started and task.succeeded
 * events, in the order they happened, packed into one line as records of 32-bit integers
 * instead of one JSON object per event. It is what makes tracing a burst of small tasks cheap:
 * the producer stores a few integers per record into a reused Int32Array and stringifies
 * nothing per task (the array is base64-encoded once per batch); a consumer decodes one array
 * per batch.
 *
 *   {"v":2,"ts":T,"pid":…,"tid":…,"run":"…","type":"tasks","pools":["4242:1"],"fns":["inc"],
 *    "strings":["undefined"],"ops":"<base64 of little-endian int32 values>"}
 *
 * Records, as int32 values (times are whole microseconds; a record's time is `ts + dt / 1000`):
 *
 *   0, pool                                           the records after it are pools[pool]'s
 *   1, dt, task, fn, kind, items, argc, arg…          task.submitted
 *   2, dt, task, worker                               task.started
 *   3, dt, task, fn, worker, result, durUs, queuedUs  task.succeeded
 *   4, dt, task, fn, worker, result, durUs, queuedUs  task.started then task.succeeded, both at
 *                                                     that time on that worker
 *   5, 6                                              as 3 and 4, `result` an index in strings
 *   7, task, fn, kind, items, n, (dt, arg) × n        task.submitted of tasks task … task + n - 1,
 *                                                     each with one integer argument
 *   8, dt, task, fn, worker, n, (result, durUs,       records 4 of tasks task … task + n - 1, all
 *        queuedUs) × n                                at dt on worker, with integer results
 *
 * Records 7 and 8 are runs: in a burst, most tasks are submitted one after the other with one
 * integer argument, and a worker's results arrive together, so a task costs 2 and 3 values
 * instead of 8 and 8.
 *
 * `fn` indexes `fns`; `kind` indexes KINDS. `argc` ≥ 0: that many integer arguments follow,
 * whose preview a consumer writes as the producer would have (`[ 1, 2 ]`, `[]`); `argc` < 0: the
 * arguments' preview is `strings[-argc - 1]`. A `result` of records 3 and 4 is an integer whose
 * preview is its decimal text. A task event with a number that does not fit (a duration past
 * 35 minutes) is written as a v1 event instead, in its place.
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
/** OP_SUCCEEDED and OP_RAN with the result's preview in `strings`. */
export const OP_SUCCEEDED_TEXT = 5;
export const OP_RAN_TEXT = 6;
/** OP_SUBMITTED of consecutive tasks, one integer argument each. */
export const OP_SUBMITTED_RUN = 7;
/** OP_RAN of consecutive tasks, at one time on one worker, integer results. */
export const OP_RAN_RUN = 8;

/** Integer arguments written as themselves: the preview of up to 7 is short. */
export const MAX_RAW_ARGS = 7;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Whether a value is a 32-bit integer (a record holds nothing else). */
export function isInt32(v: unknown): v is number {
  return typeof v === 'number' && (v | 0) === v;
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
    /** The arguments' preview, written when asked (a consumer that keeps no model never asks). */
    args: TaskArgs,
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
  /**
   * A run of submissions (a record of type 7): tasks `first` to `first + run.length - 1`, each
   * with one integer argument. When absent, `submitted` is called for each. `run` serves this
   * call only.
   */
  submittedRun?(
    pool: string,
    first: number,
    fn: string,
    kind: TaskKindName,
    items: number,
    run: SubmittedRun,
  ): void;
  /**
   * task.started then task.succeeded, at one time, on one worker (a record of type 4 or 6): when
   * absent, `started` and `succeeded` are called. `result` is an integer result as itself (its
   * preview is `String(result)`), else the preview.
   */
  ran?(
    pool: string,
    ts: number,
    task: number,
    fn: string,
    worker: number,
    result: number | string,
    durationMs: number,
    queuedMs: number,
  ): void;
}

/**
 * A submission's arguments: `text()` is their preview. One object serves every record of a walk:
 * read it during the visitor's call, not after.
 */
export interface TaskArgs {
  text(): string;
}

/** The tasks of a run of submissions (TaskRecordVisitor.submittedRun). */
export interface SubmittedRun {
  readonly length: number;
  /** The k-th task's time (ms since the epoch, as an event's `ts`). */
  ts(k: number): number;
  /** The k-th task's arguments; like `submitted`'s, read before asking for another. */
  args(k: number): TaskArgs;
}

/** The SubmittedRun of forEachTaskRecord: (dt, arg) pairs from `from` in `cursor.ops`. */
class RunCursor implements SubmittedRun {
  length = 0;
  from = 0;
  base = 0;

  constructor(private readonly cursor: ArgsCursor) {}

  ts(k: number): number {
    return (this.base + this.cursor.ops[this.from + 2 * k]!) / 1000;
  }

  args(k: number): TaskArgs {
    this.cursor.count = 1;
    this.cursor.from = this.from + 2 * k + 1;
    return this.cursor;
  }
}

/** The TaskArgs of forEachTaskRecord: the record being visited's arguments. */
class ArgsCursor implements TaskArgs {
  ops: Int32Array = new Int32Array(0);
  from = 0;
  /** ≥ 0: that many integers at `from`; < 0: `preview` is the text. */
  count = 0;
  preview = '';

  text(): string {
    return this.count < 0 ? this.preview : argsText(this.ops, this.from, this.count);
  }
}

function entry<T>(table: readonly T[], index: number, what: string, at: number): T {
  if (index < 0 || index >= table.length)
    throw new Error(`tasks: ${what} ${index} of the record at ops[${at}] is out of range`);
  return table[index]!;
}

/** The int32 values of a batch's `ops`. */
function decodeOps(ops: unknown): Int32Array {
  if (typeof ops !== 'string') throw new Error('tasks: ops must be a base64 string');
  const bytes = Buffer.from(ops, 'base64');
  if (bytes.length % 4 !== 0) throw new Error('tasks: ops is not a whole number of int32 values');
  const ints = new Int32Array(bytes.length / 4);
  if (LITTLE_ENDIAN) new Uint8Array(ints.buffer).set(bytes);
  else for (let i = 0; i < ints.length; i++) ints[i] = bytes.readInt32LE(i * 4);
  return ints;
}

/** The preview of `count` integer arguments from `ops[from]`: `[ 1, 2 ]`, `[]`. */
function argsText(ops: Int32Array, from: number, count: number): string {
  if (count === 0) return '[]';
  let text = `[ ${ops[from]!}`;
  for (let k = 1; k < count; k++) text += `, ${ops[from + k]!}`;
  return `${text} ]`;
}

/**
 * Walks a `tasks` event's records in order. Throws on a malformed record (the records before it
 * have been visited).
 */
export function forEachTaskRecord(event: EventOf<'tasks'>, visit: TaskRecordVisitor): void {
  const { pools, fns, strings } = event;
  if (!Array.isArray(pools) || !Array.isArray(fns) || !Array.isArray(strings))
    throw new Error('tasks: pools, fns and strings must be arrays');
  const ops = decodeOps(event.ops);
  const args = new ArgsCursor();
  args.ops = ops;
  const run = new RunCursor(args);
  // Whole microseconds (see now() in emitter.ts): a record's time is then the same number as the
  // same instant written as an event's own ts.
  const base = Math.round(event.ts * 1000);
  let pool: string | undefined;
  let i = 0;
  const need = (n: number, at: number): void => {
    if (i + n > ops.length) throw new Error(`tasks: the record at ops[${at}] is cut short`);
  };
  while (i < ops.length) {
    const at = i;
    const op = ops[i]!;
    if (op === OP_POOL) {
      need(2, at);
      pool = entry(pools, ops[i + 1]!, 'pool', at);
      i += 2;
      continue;
    }
    if (pool === undefined) throw new Error(`tasks: the record at ops[${at}] has no pool`);
    if (op === OP_SUBMITTED_RUN) {
      need(6, at);
      const first = ops[i + 1]!;
      const fn = entry(fns, ops[i + 2]!, 'fn', at);
      const kind = entry(KINDS, ops[i + 3]!, 'kind', at);
      const items = ops[i + 4]!;
      const n = ops[i + 5]!;
      if (n < 1) throw new Error(`tasks: the run at ops[${at}] has ${n} tasks`);
      need(6 + 2 * n, at);
      run.length = n;
      run.from = i + 6;
      run.base = base;
      if (visit.submittedRun !== undefined) visit.submittedRun(pool, first, fn, kind, items, run);
      else {
        for (let k = 0; k < n; k++)
          visit.submitted(pool, run.ts(k), first + k, fn, kind, items, run.args(k));
      }
      i += 6 + 2 * n;
      continue;
    }
    if (op === OP_RAN_RUN) {
      need(6, at);
      const ts = (base + ops[i + 1]!) / 1000;
      const first = ops[i + 2]!;
      const fn = entry(fns, ops[i + 3]!, 'fn', at);
      const worker = ops[i + 4]!;
      const n = ops[i + 5]!;
      if (n < 1) throw new Error(`tasks: the run at ops[${at}] has ${n} tasks`);
      need(6 + 3 * n, at);
      for (let k = 0, j = i + 6; k < n; k++, j += 3) {
        const task = first + k;
        const durationMs = ops[j + 1]! / 1000;
        const queuedMs = ops[j + 2]! / 1000;
        if (visit.ran !== undefined)
          visit.ran(pool, ts, task, fn, worker, ops[j]!, durationMs, queuedMs);
        else {
          visit.started(pool, ts, task, worker);
          visit.succeeded(pool, ts, task, fn, worker, String(ops[j]!), durationMs, queuedMs);
        }
      }
      i += 6 + 3 * n;
      continue;
    }
    need(4, at);
    const ts = (base + ops[i + 1]!) / 1000;
    const task = ops[i + 2]!;
    switch (op) {
      case OP_SUBMITTED: {
        need(7, at);
        const argc = ops[i + 6]!;
        args.count = argc;
        if (argc < 0) args.preview = entry(strings, -argc - 1, 'args', at);
        else {
          need(7 + argc, at);
          args.from = i + 7;
        }
        visit.submitted(
          pool,
          ts,
          task,
          entry(fns, ops[i + 3]!, 'fn', at),
          entry(KINDS, ops[i + 4]!, 'kind', at),
          ops[i + 5]!,
          args,
        );
        i += 7 + Math.max(0, argc);
        break;
      }
      case OP_STARTED:
        visit.started(pool, ts, task, ops[i + 3]!);
        i += 4;
        break;
      case OP_SUCCEEDED:
      case OP_RAN:
      case OP_SUCCEEDED_TEXT:
      case OP_RAN_TEXT: {
        need(8, at);
        const worker = ops[i + 4]!;
        const result = ops[i + 5]!;
        if (visit.ran !== undefined && (op === OP_RAN || op === OP_RAN_TEXT)) {
          visit.ran(
            pool,
            ts,
            task,
            entry(fns, ops[i + 3]!, 'fn', at),
            worker,
            op === OP_RAN ? result : entry(strings, result, 'result', at),
            ops[i + 6]! / 1000,
            ops[i + 7]! / 1000,
          );
          i += 8;
          break;
        }
        if (op === OP_RAN || op === OP_RAN_TEXT) visit.started(pool, ts, task, worker);
        visit.succeeded(
          pool,
          ts,
          task,
          entry(fns, ops[i + 3]!, 'fn', at),
          worker,
          op === OP_SUCCEEDED || op === OP_RAN
            ? String(result)
            : entry(strings, result, 'result', at),
          ops[i + 6]! / 1000,
          ops[i + 7]! / 1000,
        );
        i += 8;
        break;
      }
      default:
        throw new Error(`tasks: unknown record type ${op} at ops[${at}]`);
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
      out.push({
        ...envelope,
        ts,
        type: 'task.submitted',
        pool,
        task,
        fn,
        kind,
        args: args.text(),
        items,
      });
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

/** Room for one record without a check: the longest is a submission with 7 arguments. */
const RECORD_ROOM = 16;

/**
 * The producer's side: records stored as int32 values into one reused array, nothing allocated
 * per record (integer arguments and results as themselves, previews in a table). A method
 * returns false, writing nothing, when a value does not fit in 32 bits: the caller then writes
 * that event as a v1 event. `close` gives the batch's line.
 */
export class TaskBatchWriter {
  /**
   * Times given to the writer are whole microseconds since `originUs` (microseconds since the
   * epoch): the emitter's `tick()`, whose origin is the process's time origin.
   */
  constructor(private readonly originUs = 0) {}

  /**
   * Whether records may be written without asking the tracer: set by it (goFast), cleared when
   * the batch closes or reaches `fastBytes`.
   */
  fast = false;
  private fastBytes = 0;
  private ints = new Int32Array(16 * 1024);
  /** Values written; 0 when no batch is open. */
  length = 0;
  /** Characters of previews held in `strings`. */
  private textLength = 0;
  /** The batch's time, in the writer's microseconds. */
  private base = 0;
  private pools: string[] = [];
  private pool = '';
  private fns = new Map<string, number>();
  private lastFn = '';
  private lastFnIndex = 0;
  private strings = new Map<string, number>();
  /**
   * A task.started record not yet written (task -1: none): when task.succeeded follows for that
   * task, at the same time on the same worker, the two are written as one OP_RAN record.
   */
  private startedTask = -1;
  private startedWorker = 0;
  private startedAt = 0;
  private startedDt = 0;
  /**
   * The run record the next task may extend (OP_SUBMITTED_RUN or OP_RAN_RUN; 0: none, as after
   * any other record), where its count is, and what the next task must have to join it.
   */
  private run = 0;
  private runCount = 0;
  private runNext = 0;
  private runFn = 0;
  private runKind = 0;
  private runItems = 0;
  private runDt = 0;
  private runWorker = 0;

  /** About the size of the batch's line so far, in bytes. */
  get bytes(): number {
    return this.length * 6 + this.textLength;
  }

  goFast(bytes: number): void {
    this.fastBytes = bytes;
    this.fast = this.length * 6 + this.textLength < bytes;
  }

  private wrote(n: number): void {
    this.length = n;
    // Stored every time, not only when it turns false: a store first made in the middle of a
    // burst, in code optimized without it, deoptimized that code.
    this.fast = this.fast && n * 6 + this.textLength < this.fastBytes;
  }

  /** task.submitted at `at` (whole µs); `args`: up to 7 int32 values, or the arguments' preview. */
  submitted(
    pool: string,
    at: number,
    task: number,
    fn: string,
    kind: number,
    items: number,
    args: readonly number[] | string,
  ): boolean {
    if (this.startedTask !== -1) this.writeStarted();
    const dt = this.begin(pool, at);
    if ((dt | 0) !== dt || (task | 0) !== task || (items | 0) !== items) return false;
    const a = this.ints;
    let n = this.length;
    const fnIndex = this.fnIndex(fn);
    if (typeof args !== 'string' && args.length === 1) {
      if (
        this.run === OP_SUBMITTED_RUN &&
        task === this.runNext &&
        fnIndex === this.runFn &&
        kind === this.runKind &&
        items === this.runItems
      )
        a[this.runCount]!++;
      else {
        a[n++] = OP_SUBMITTED_RUN;
        a[n++] = task;
        a[n++] = fnIndex;
        a[n++] = kind;
        a[n++] = items;
        this.runCount = n;
        a[n++] = 1;
        this.run = OP_SUBMITTED_RUN;
        this.runFn = fnIndex;
        this.runKind = kind;
        this.runItems = items;
      }
      a[n++] = dt;
      a[n++] = args[0]!;
      this.runNext = task + 1;
      this.wrote(n);
      return true;
    }
    this.run = 0;
    a[n++] = OP_SUBMITTED;
    a[n++] = dt;
    a[n++] = task;
    a[n++] = fnIndex;
    a[n++] = kind;
    a[n++] = items;
    if (typeof args === 'string') a[n++] = -this.text(args) - 1;
    else {
      a[n++] = args.length;
      for (let i = 0; i < args.length; i++) a[n++] = args[i]!;
    }
    this.wrote(n);
    return true;
  }

  started(pool: string, at: number, task: number, worker: number): boolean {
    if (this.startedTask !== -1) this.writeStarted();
    // Opened (and its pool switched to) now; written with the next record.
    const dt = this.begin(pool, at);
    if ((dt | 0) !== dt || (task | 0) !== task || (worker | 0) !== worker) return false;
    this.startedDt = dt;
    this.startedTask = task;
    this.startedWorker = worker;
    this.startedAt = at;
    return true;
  }

  private writeStarted(): void {
    this.run = 0;
    if (this.length + RECORD_ROOM > this.ints.length) this.grow();
    const a = this.ints;
    let n = this.length;
    a[n++] = OP_STARTED;
    a[n++] = this.startedDt;
    a[n++] = this.startedTask;
    a[n++] = this.startedWorker;
    this.wrote(n);
    this.startedTask = -1;
  }

  /** task.succeeded; `result`: an int32 value, or the result's preview. */
  succeeded(
    pool: string,
    at: number,
    task: number,
    fn: string,
    worker: number,
    result: number | string,
    /** Whole microseconds, as `queued`. */
    dur: number,
    queued: number,
  ): boolean {
    if ((dur | 0) !== dur || (queued | 0) !== queued || (task | 0) !== task) {
      if (this.startedTask !== -1) this.writeStarted();
      return false;
    }
    const text = typeof result === 'string';
    let op = text ? OP_SUCCEEDED_TEXT : OP_SUCCEEDED;
    let dt: number;
    if (this.startedTask === -1) dt = this.begin(pool, at);
    else if (
      task === this.startedTask &&
      at === this.startedAt &&
      worker === this.startedWorker &&
      pool === this.pool
    ) {
      op = text ? OP_RAN_TEXT : OP_RAN;
      dt = this.startedDt;
      this.startedTask = -1;
      if (this.length + RECORD_ROOM > this.ints.length) this.grow();
    } else {
      this.writeStarted();
      dt = this.begin(pool, at);
    }
    if ((dt | 0) !== dt) return false;
    const a = this.ints;
    let n = this.length;
    const fnIndex = this.fnIndex(fn);
    if (op === OP_RAN) {
      if (
        this.run === OP_RAN_RUN &&
        task === this.runNext &&
        dt === this.runDt &&
        worker === this.runWorker &&
        fnIndex === this.runFn
      )
        a[this.runCount]!++;
      else {
        a[n++] = OP_RAN_RUN;
        a[n++] = dt;
        a[n++] = task;
        a[n++] = fnIndex;
        a[n++] = worker;
        this.runCount = n;
        a[n++] = 1;
        this.run = OP_RAN_RUN;
        this.runDt = dt;
        this.runWorker = worker;
        this.runFn = fnIndex;
      }
      a[n++] = result as number;
      a[n++] = dur;
      a[n++] = queued;
      this.runNext = task + 1;
      this.wrote(n);
      return true;
    }
    this.run = 0;
    a[n++] = op;
    a[n++] = dt;
    a[n++] = task;
    a[n++] = fnIndex;
    a[n++] = worker;
    a[n++] = text ? this.text(result) : result;
    a[n++] = dur;
    a[n++] = queued;
    this.wrote(n);
    return true;
  }

  /**
   * The open batch as its JSON line (newline included), in pieces to write one after the other
   * (the records' base64 is not copied into a joined string), given the envelope's JSON text
   * from `{` up to `"ts"`, and the JSON text of its fields after `ts`.
   */
  close(head: string, tail: string): string[] {
    if (this.startedTask !== -1) this.writeStarted();
    const bytes = Buffer.from(this.ints.buffer, 0, this.length * 4);
    const ops = (LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32()).toString('base64');
    this.length = 0;
    this.fast = false;
    this.run = 0;
    return [
      `${head}"ts":${(this.originUs + this.base) / 1000}${tail},"type":"tasks","pools":${JSON.stringify(this.pools)},` +
        `"fns":${JSON.stringify([...this.fns.keys()])},` +
        `"strings":${JSON.stringify([...this.strings.keys()])},"ops":"`,
      ops,
      '"}\n',
    ];
  }

  /** Drops the open batch. */
  clear(): void {
    this.length = 0;
    this.fast = false;
    this.startedTask = -1;
    this.run = 0;
  }

  /** Opens a batch or switches its pool as needed, makes room; returns the record's dt (µs). */
  private begin(pool: string, at: number): number {
    if (this.length + RECORD_ROOM > this.ints.length) this.grow();
    if (this.length === 0) {
      this.run = 0;
      this.base = at;
      this.pools = [pool];
      this.pool = pool;
      this.fns = new Map();
      this.lastFn = '';
      this.strings = new Map();
      this.textLength = 0;
      this.ints[0] = OP_POOL;
      this.ints[1] = 0;
      this.length = 2;
      return 0;
    }
    if (pool !== this.pool) {
      this.run = 0;
      let index = this.pools.indexOf(pool);
      if (index === -1) index = this.pools.push(pool) - 1;
      this.pool = pool;
      this.ints[this.length++] = OP_POOL;
      this.ints[this.length++] = index;
    }
    return at - this.base;
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

  /** A preview's index in `strings`, each text kept once per batch. */
  private text(s: string): number {
    let index = this.strings.get(s);
    if (index === undefined) {
      index = this.strings.size;
      this.strings.set(s, index);
      this.textLength += s.length + 3;
    }
    return index;
  }

  private grow(): void {
    const grown = new Int32Array(this.ints.length * 2);
    grown.set(this.ints.subarray(0, this.length));
    this.ints = grown;
  }
}
