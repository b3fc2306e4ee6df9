/**
 * The receiving end of a live trace: a Unix socket in a fresh directory only this user can read
 * (mkdtemp makes it 0700), and a per-run token that every connection must present in its first
 * line. Lines after that are handed over as they arrive; what a connection sends before a valid
 * hello, or a stranger's connection, is refused and reported.
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
}

const MAX_HELLO = 4096;

export class TraceServer {
  readonly dir: string;
  readonly path: string;
  private readonly token = randomBytes(24).toString('hex');
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private closed = false;
  private readonly cleanupAtExit = (): void => this.removeDir();

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
      for (const line of complete.split('\n')) if (line) this.options.onLine(line);
    });
    socket.on('end', () => {
      if (greeted && buffered.trim()) this.options.onLine(buffered);
    });
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

  /** Stops listening, waits briefly for connected producers to finish, removes the directory. */
  async close(graceMs = 500): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.sockets.size > 0) {
      await Promise.race([
        Promise.all([...this.sockets].map((s) => new Promise((r) => s.once('close', r)))),
        new Promise((r) => setTimeout(r, graceMs).unref()),
      ]);
    }
    for (const socket of this.sockets) socket.destroy();
    await stopped;
    this.removeDir();
    process.off('exit', this.cleanupAtExit);
  }

  private removeDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
