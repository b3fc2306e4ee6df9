/**
 * The receiving end of a live trace: a Unix socket in a fresh directory only this user can read
 * (mkdtemp makes it 0700), and a per-run token that every connection must present in its first
 * line. Lines after that are handed over in arrival order; what a connection sends before a valid
 * hello, or a stranger's connection, is refused and reported.
 *
 * Lines are handed over in slices of at most `sliceMs` of the consumer's time, with a turn of the
 * event loop between slices: libuv reads a fast producer's socket many times in one turn, and an
 * editor's extension host applying all of that at once went unresponsive for 100-800 ms. While
 * more than HIGH_WATER characters wait, the sockets are paused, so a producer that outpaces its
 * consumer is slowed down (its own buffer then bounds its memory, see emitter.ts), as before.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TraceServerOptions {
  /** One JSONL line, without its newline, from any connected process. */
  onLine(line: string): void;
  /** A refused connection or a broken stream, in words. */
  onProblem?(text: string): void;
  /** The run id every producer stamps on its events. */
  run: string;
  /** The longest (ms) `onLine` is called back to back before the event loop gets a turn. Default 5. */
  sliceMs?: number;
}

const MAX_HELLO = 4096;
/** Characters of lines waiting past which the sockets are paused, and below which resumed. */
const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = HIGH_WATER / 4;

export class TraceServer {
  readonly dir: string;
  readonly path: string;
  private readonly token = randomBytes(24).toString('hex');
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private closed = false;
  private readonly cleanupAtExit = (): void => this.removeDir();
  /** Lines received and not yet handed over, from `head`; their total length. */
  private lines: (string | undefined)[] = [];
  private head = 0;
  private waiting = 0;
  private paused = false;
  private pumpScheduled = false;
  private readonly idle: (() => void)[] = [];

  private constructor(private readonly options: TraceServerOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'poolscope-'));
    this.path = join(this.dir, 'trace.sock');
    this.server = createServer((socket) => this.accept(socket));
    process.on('exit', this.cleanupAtExit);
  }

  static async start(options: TraceServerOptions): Promise<TraceServer> {
    const server = new TraceServer(options);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(server.path, () => resolve());
    });
    return server;
  }

  /** What a producer needs in its environment to send here. */
  get env(): Record<string, string> {
    return {
      POOLSCOPE_TRACE: `unix:${this.path}`,
      POOLSCOPE_TRACE_TOKEN: this.token,
      POOLSCOPE_RUN: this.options.run,
    };
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    if (this.paused) socket.pause();
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => this.options.onProblem?.(`trace connection error: ${err.message}`));
    socket.setEncoding('utf8');
    let buffered = '';
    let greeted = false;
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (!greeted) {
        const end = buffered.indexOf('\n');
        if (end === -1) {
          if (buffered.length > MAX_HELLO) this.refuse(socket, 'no hello line');
          return;
        }
        if (!this.validHello(buffered.slice(0, end))) {
          this.refuse(socket, 'wrong or missing token');
          return;
        }
        greeted = true;
        buffered = buffered.slice(end + 1);
      }
      const last = buffered.lastIndexOf('\n');
      if (last === -1) return;
      const complete = buffered.slice(0, last);
      buffered = buffered.slice(last + 1);
      for (const line of complete.split('\n')) if (line) this.enqueue(line);
    });
    socket.on('end', () => {
      if (greeted && buffered.trim()) this.enqueue(buffered);
    });
  }

  private enqueue(line: string): void {
    this.lines.push(line);
    this.waiting += line.length;
    if (this.waiting > HIGH_WATER && !this.paused && !this.closed) {
      this.paused = true;
      for (const socket of this.sockets) socket.pause();
    }
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(this.pump);
    }
  }

  /** Hands over waiting lines for at most `sliceMs`, then yields to the event loop. */
  private readonly pump = (): void => {
    this.pumpScheduled = false;
    const until = performance.now() + (this.options.sliceMs ?? 5);
    const lines = this.lines;
    while (this.head < lines.length) {
      const line = lines[this.head]!;
      lines[this.head++] = undefined;
      this.waiting -= line.length;
      try {
        this.options.onLine(line);
      } catch (err) {
        this.options.onProblem?.(`a trace line could not be taken: ${(err as Error).message}`);
      }
      if (performance.now() >= until) break;
    }
    if (this.head < lines.length) {
      if (this.head > 4096) {
        this.lines = lines.slice(this.head);
        this.head = 0;
      }
      this.pumpScheduled = true;
      setImmediate(this.pump);
    } else {
      this.lines = [];
      this.head = 0;
      for (const done of this.idle.splice(0)) done();
    }
    if (this.paused && (this.waiting < LOW_WATER || this.closed)) {
      this.paused = false;
      for (const socket of this.sockets) socket.resume();
    }
  };

  /** Resolves once every line received so far has been handed over. */
  private drained(): Promise<void> {
    if (this.head >= this.lines.length) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private validHello(line: string): boolean {
    try {
      const hello = JSON.parse(line) as { token?: unknown };
      if (typeof hello.token !== 'string') return false;
      const given = Buffer.from(hello.token);
      const expected = Buffer.from(this.token);
      return given.length === expected.length && timingSafeEqual(given, expected);
    } catch {
      return false;
    }
  }

  private refuse(socket: Socket, why: string): void {
    this.options.onProblem?.(`refused a trace connection: ${why}`);
    socket.destroy();
  }

  /**
   * Stops listening, waits briefly for connected producers to finish, hands over every line they
   * sent, removes the directory.
   */
  async close(graceMs = 500): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // No more backpressure: what producers still have to say is read now (they are ending, so it
    // is bounded), not lost when their sockets are destroyed after the grace period.
    if (this.paused) {
      this.paused = false;
      for (const socket of this.sockets) socket.resume();
    }
    if (this.sockets.size > 0) {
      await Promise.race([
        Promise.all([...this.sockets].map((s) => new Promise((r) => s.once('close', r)))),
        new Promise((r) => setTimeout(r, graceMs).unref()),
      ]);
    }
    for (const socket of this.sockets) socket.destroy();
    await stopped;
    await this.drained();
    this.removeDir();
    process.off('exit', this.cleanupAtExit);
  }

  private removeDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
