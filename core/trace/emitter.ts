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
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { threadId } from 'node:worker_threads';
import type { TraceEvent, TraceEventType } from './protocol';
import { PROTOCOL_VERSION } from './version';

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
const FLUSH_MS = 25;
const EXIT_FLUSH_MS = 2000;

/** Milliseconds since the epoch, sub-millisecond, monotonic within the process. */
export function now(): number {
  return performance.timeOrigin + performance.now();
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
  private pending: string[] = [];
  private pendingBytes = 0;
  private unsent: Buffer | undefined;
  private sink: Sink | undefined;
  private dead = false;
  private timer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private droppedTypes: Record<string, number> = {};

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
    try {
      this.sink?.close();
    } catch {
      // already gone
    }
    this.sink = undefined;
  }

  emit<T extends TraceEventType>(type: T, fields: EventFields<T>): void {
    if (this.dead) return;
    const buffered = this.pendingBytes + (this.unsent?.length ?? 0);
    if ((buffered > SOFT_LIMIT && DROPPABLE.has(type)) || buffered > HARD_LIMIT) {
      this.dropped++;
      this.droppedTypes[type] = (this.droppedTypes[type] ?? 0) + 1;
      this.schedule();
      return;
    }
    if (this.dropped > 0 && buffered < SOFT_LIMIT / 2) this.reportDropped();
    this.push(this.line(type, fields));
  }

  /** One event as its JSON line: the envelope, then the fields. */
  private line(type: string, fields: object): string {
    return JSON.stringify({
      v: PROTOCOL_VERSION,
      ts: now(),
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
    this.push(this.line('events.dropped', { count, types }));
  }

  private push(line: string): void {
    this.pending.push(line);
    this.pendingBytes += line.length + 1;
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

  private takePending(): Buffer {
    if (this.dropped > 0) this.reportDropped();
    const data = Buffer.from(this.pending.join('\n') + (this.pending.length ? '\n' : ''));
    this.pending = [];
    this.pendingBytes = 0;
    return this.unsent ? Buffer.concat([this.unsent, data]) : data;
  }

  /** Writes what the sink takes now; the rest waits for the next timer. */
  flush(): void {
    if (this.dead || !this.sink) {
      if (!this.dead && this.pending.length > 0) this.schedule();
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
