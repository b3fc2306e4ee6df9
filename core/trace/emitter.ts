/**
 * The trace emitter: how the library tells a viewer (the CLI, the editor) what it is doing.
 *
 * It exists only when a sink is attached through the environment:
 *   POOLSCOPE_TRACE=unix:/path/to/socket  with POOLSCOPE_TRACE_TOKEN=<token>
 *   POOLSCOPE_TRACE=file:/path/to/trace.jsonl
 * and POOLSCOPE_RUN=<run id>. Without it, `tracer` is undefined and the library builds no event
 * objects at all: every emit site is guarded by `if (tracer)`.
 *
 * Events are JSON lines, buffered and written in batches. Writes go straight to the file
 * descriptor (never queued inside Node), so what is buffered can be flushed synchronously when
 * the process exits, in order. Memory is bounded: past a limit, low-value events are dropped and
 * counted (an `events.dropped` event says how many); errors, task ends and exits are kept until a
 * much higher hard limit. A sink that goes away turns tracing off; it never blocks or crashes
 * the program.
 *
 * The events of every task (submitted, started, succeeded) are not JSON objects: they are
 * records of the open `tasks` batch (task-batch.ts), a few integers stored in a reused array,
 * closed into one line before any other event is queued (so the order of events is kept), when
 * it reaches FLUSH_BYTES, and at every flush.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { threadId } from 'node:worker_threads';
import type { TraceEvent, TraceEventType } from './protocol';
import { PROTOCOL_VERSION } from './version';
import { KINDS, TaskBatchWriter } from './task-batch';

/** The fields an emit site gives; the envelope (v, ts, pid, tid, run) is added here. */
export type EventFields<T extends TraceEventType> = Omit<
  Extract<TraceEvent, { type: T }>,
  'v' | 'ts' | 'pid' | 'tid' | 'run' | 'type'
>;

const DROPPABLE = new Set<string>(['task.submitted', 'task.started', 'output']);
/** Buffered bytes past which droppable events are dropped. */
const SOFT_LIMIT = 4 * 1024 * 1024;
/** Buffered bytes past which every event is dropped (and counted). */
const HARD_LIMIT = 64 * 1024 * 1024;
const FLUSH_BYTES = 64 * 1024;
/**
 * The first batch closes at this size, each one closed for its size after it at twice the size
 * before, up to FLUSH_BYTES. So a program's first few hundred tasks (a warm-up) already take
 * every path a long burst takes (a batch filling up, closing, opening again): V8 collects
 * feedback for those paths before it optimizes the pool's code, instead of deoptimizing it (and
 * compiling it again) the first time a batch fills up in the middle of the first big burst.
 */
const FIRST_BATCH_BYTES = 512;
const FLUSH_MS = 25;
const EXIT_FLUSH_MS = 2000;

/** The process's (or thread's) time origin in whole microseconds since the epoch. */
const ORIGIN_US = Math.round(performance.timeOrigin * 1000);

/**
 * Whole microseconds since the process's (or thread's) time origin: what the pool stamps its
 * tasks with. A small integer (for the first 35 minutes), so a task holds it, and a call passes
 * it, without allocating: a double in a field is a heap box, and a field that changes from small
 * integers to doubles deoptimized the pool's code after every full garbage collection.
 */
export function tick(): number {
  return Math.round(performance.now() * 1000);
}

/** A `tick()` as milliseconds since the epoch (a trace event's `ts`). */
export function tickToMs(t: number): number {
  return (ORIGIN_US + t) / 1000;
}

/**
 * Milliseconds since the epoch in whole microseconds, monotonic within the process. On a grid,
 * so that a batch record's time (its batch's time plus whole microseconds) and an event's own
 * time read back equal when they were equal: off the grid, rounding put a task's end up to half
 * a microsecond after the start of its worker's next task (stamped in the next batch), and a
 * viewer ordering by time saw both running.
 */
export function now(): number {
  return tickToMs(tick());
}

interface Sink {
  /** Writes what it can without blocking; returns the bytes written. Throws when the sink is gone. */
  write(data: Buffer): number;
  /** Writes everything, waiting at most until `deadline`. */
  writeAll(data: Buffer, deadline: number): void;
  close(): void;
}

function fdSink(fd: number, onClose: () => void): Sink {
  const sink: Sink = {
    write(data) {
      try {
        return writeSync(fd, data);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
        throw err;
      }
    },
    writeAll(data, deadline) {
      let off = 0;
      while (off < data.length && Date.now() < deadline) off += sink.write(data.subarray(off));
    },
    close: onClose,
  };
  return sink;
}

export class Tracer {
  readonly pid = process.pid;
  readonly tid = threadId;
  /** Text to write, in order: lines (newlines included), or pieces of one (a batch's). */
  private pending: string[] = [];
  private pendingBytes = 0;
  private unsent: Buffer | undefined;
  private sink: Sink | undefined;
  private dead = false;
  private timer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private droppedTypes: Record<string, number> = {};
  /** The open `tasks` batch (a PoolTrace writes into it directly while `batch.fast`). */
  readonly batch = new TaskBatchWriter(ORIGIN_US);
  /** Where the open batch closes (FIRST_BATCH_BYTES, doubling up to FLUSH_BYTES). */
  private batchBytes = FIRST_BATCH_BYTES;
  /** The envelope as JSON text: before `ts`, and the fields after it. */
  private readonly envelopeHead: string;
  private readonly envelopeTail: string;

  constructor(
    readonly run: string,
    private readonly target: string,
    token: string | undefined,
  ) {
    if (target.startsWith('file:')) {
      const fd = openSync(target.slice('file:'.length), 'a');
      this.sink = fdSink(fd, () => closeSync(fd));
    } else if (target.startsWith('unix:')) {
      this.connect(target.slice('unix:'.length), token ?? '');
    } else {
      throw new Error(`POOLSCOPE_TRACE must start with unix: or file:, got ${target}`);
    }
    process.on('exit', () => this.flushSync());
    this.envelopeHead = `{"v":${PROTOCOL_VERSION},`;
    this.envelopeTail = `,"pid":${this.pid},"tid":${this.tid},"run":${JSON.stringify(run)}`;
  }

  private connect(path: string, token: string): void {
    const socket: Socket = connect(path);
    socket.unref();
    socket.on('error', () => this.stop());
    socket.on('close', () => this.stop());
    socket.on('connect', () => {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) {
        this.stop();
        return;
      }
      this.sink = fdSink(fd, () => socket.destroy());
      const hello = JSON.stringify({
        hello: PROTOCOL_VERSION,
        token,
        pid: this.pid,
        tid: this.tid,
        run: this.run,
      });
      this.unsent = Buffer.concat([Buffer.from(`${hello}\n`), this.unsent ?? Buffer.alloc(0)]);
      this.flush();
    });
    // The program must not wait on the socket: reading is never needed.
    socket.pause();
  }

  private stop(): void {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.timer);
    this.pending = [];
    this.pendingBytes = 0;
    this.unsent = undefined;
    this.batch.clear();
    try {
      this.sink?.close();
    } catch {
      // already gone
    }
    this.sink = undefined;
  }

  emit<T extends Exclude<TraceEventType, 'tasks'>>(type: T, fields: EventFields<T>): void {
    if (this.dead) return;
    if (this.batch.length !== 0) this.closeBatch();
    if (!this.admit(type)) return;
    this.push(this.line(type, fields));
  }

  /** Bytes held and not yet written, the open batch included. */
  private buffered(): number {
    return this.pendingBytes + (this.unsent?.length ?? 0) + this.batch.bytes;
  }

  /** Whether an event of `type` is kept, or dropped (and counted) because too much is held. */
  private admit(type: string): boolean {
    const buffered = this.buffered();
    if ((buffered > SOFT_LIMIT && DROPPABLE.has(type)) || buffered > HARD_LIMIT) {
      this.dropped++;
      this.droppedTypes[type] = (this.droppedTypes[type] ?? 0) + 1;
      this.schedule();
      return false;
    }
    if (this.dropped > 0 && buffered < SOFT_LIMIT / 2) {
      if (this.batch.length !== 0) this.closeBatch();
      this.reportDropped();
    }
    return true;
  }

  // ---- Task events, as records of the open `tasks` batch (see task-batch.ts)

  /**
   * task.submitted at `at` (a `tick()`). `args`: up to 7 int32 values, or the arguments' preview.
   */
  taskSubmitted(
    pool: string,
    at: number,
    task: number,
    fn: string,
    kind: number,
    items: number,
    args: readonly number[] | string,
  ): void {
    if (this.dead || !this.admit('task.submitted')) return;
    const opening = this.batch.length === 0;
    if (this.batch.submitted(pool, at, task, fn, kind, items, args)) this.recorded(opening);
    else {
      const shown = typeof args === 'string' ? args : args.length ? `[ ${args.join(', ')} ]` : '[]';
      const fields = { pool, task, fn, kind: KINDS[kind]!, args: shown, items };
      this.unbatched('task.submitted', tickToMs(at), fields);
    }
  }

  taskStarted(pool: string, at: number, task: number, worker: number): void {
    if (this.dead || !this.admit('task.started')) return;
    const opening = this.batch.length === 0;
    if (this.batch.started(pool, at, task, worker)) this.recorded(opening);
    else this.unbatched('task.started', tickToMs(at), { pool, task, worker });
  }

  /** task.succeeded at `at` (a `tick()`); `result`: an int32 value, or the result's preview. */
  taskSucceeded(
    pool: string,
    at: number,
    task: number,
    fn: string,
    worker: number,
    result: number | string,
    durationUs: number,
    queuedUs: number,
  ): void {
    if (this.dead || !this.admit('task.succeeded')) return;
    const opening = this.batch.length === 0;
    if (this.batch.succeeded(pool, at, task, fn, worker, result, durationUs, queuedUs))
      this.recorded(opening);
    else {
      const durationMs = durationUs / 1000;
      const queuedMs = queuedUs / 1000;
      const fields = { pool, task, fn, worker, result: String(result), durationMs, queuedMs };
      this.unbatched('task.succeeded', tickToMs(at), fields);
    }
  }

  private recorded(opened: boolean): void {
    if (this.batch.bytes >= this.batchBytes) {
      if (this.batchBytes < FLUSH_BYTES) this.batchBytes *= 2;
      this.closeBatch();
      this.maybeFlush();
    } else if (opened) this.schedule();
    // Records may go straight into the batch while it is open, nothing is being dropped, and
    // what is held stays far from the soft limit (what admit() would let through anyway);
    // closing the batch, or its reaching its size, ends that.
    const held = this.pendingBytes + (this.unsent?.length ?? 0);
    if (this.batch.length !== 0 && this.dropped === 0 && held + 2 * FLUSH_BYTES < SOFT_LIMIT)
      this.batch.goFast(this.batchBytes);
  }

  /** A task event a record cannot hold (a number past 32 bits), in its place as a v1 event. */
  private unbatched<T extends 'task.submitted' | 'task.started' | 'task.succeeded'>(
    type: T,
    at: number,
    fields: EventFields<T>,
  ): void {
    if (this.batch.length !== 0) this.closeBatch();
    this.push(this.line(type, fields, at));
  }

  /** The open batch as one `tasks` line, queued like any other (not written yet). */
  private closeBatch(): void {
    for (const piece of this.batch.close(this.envelopeHead, this.envelopeTail)) this.queue(piece);
  }

  /** One event as its JSON line: the envelope, then the fields. */
  private line(type: string, fields: object, ts = now()): string {
    return JSON.stringify({
      v: PROTOCOL_VERSION,
      ts,
      pid: this.pid,
      tid: this.tid,
      run: this.run,
      type,
      ...fields,
    });
  }

  private reportDropped(): void {
    const count = this.dropped;
    const types = this.droppedTypes;
    this.dropped = 0;
    this.droppedTypes = {};
    // Queued only: this runs while what is held is being taken, too.
    this.queue(`${this.line('events.dropped', { count, types })}\n`);
    this.schedule();
  }

  /** Queues a line: JSON text without its newline, or bytes with it. */
  /** Queues a line (JSON text, without its newline); writes what is held past FLUSH_BYTES. */
  private push(line: string): void {
    this.queue(`${line}\n`);
    this.maybeFlush();
  }

  /** Queues text: a line with its newline, or a piece of one. */
  private queue(text: string): void {
    this.pending.push(text);
    this.pendingBytes += text.length;
  }

  private maybeFlush(): void {
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.dead) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, FLUSH_MS);
    this.timer.unref();
  }

  /** What is held, as one buffer: each piece copied once (a batch's base64 is not joined first). */
  private takePending(): Buffer {
    if (this.batch.length !== 0) this.closeBatch();
    if (this.dropped > 0) this.reportDropped();
    const unsent = this.unsent;
    let size = unsent ? unsent.length : 0;
    for (const text of this.pending) size += Buffer.byteLength(text);
    const data = Buffer.allocUnsafe(size);
    let offset = unsent ? unsent.copy(data) : 0;
    for (const text of this.pending) offset += data.write(text, offset);
    this.pending = [];
    this.pendingBytes = 0;
    return data;
  }

  /** Writes what the sink takes now; the rest waits for the next timer. */
  flush(): void {
    if (this.dead || !this.sink) {
      if (!this.dead && (this.pending.length > 0 || this.batch.length !== 0)) this.schedule();
      return;
    }
    const data = this.takePending();
    try {
      const written = this.sink.write(data);
      this.unsent = written < data.length ? data.subarray(written) : undefined;
    } catch {
      this.stop();
      return;
    }
    if (this.unsent) this.schedule();
  }

  /** At exit: everything buffered, in order, waiting a bounded time for a slow reader. */
  flushSync(): void {
    if (this.dead || !this.sink) return;
    clearTimeout(this.timer);
    try {
      this.sink.writeAll(this.takePending(), Date.now() + EXIT_FLUSH_MS);
    } catch {
      // the sink is gone: nothing more to do
    }
    this.unsent = undefined;
  }

  describe(): string {
    return this.target;
  }
}

function fromEnvironment(): Tracer | undefined {
  const target = process.env.POOLSCOPE_TRACE;
  if (!target) return undefined;
  try {
    return new Tracer(
      process.env.POOLSCOPE_RUN ?? `run-${process.pid}`,
      target,
      process.env.POOLSCOPE_TRACE_TOKEN,
    );
  } catch (err) {
    process.stderr.write(`poolscope: tracing is off: ${(err as Error).message}\n`);
    return undefined;
  }
}

/** The process's (or thread's) tracer, or undefined when no sink is attached. */
export const tracer: Tracer | undefined = fromEnvironment();
