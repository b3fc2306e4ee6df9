/** The process backend: each worker is a `node` child process, talking over an IPC channel. */
import { fork, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Socket } from 'node:net';
import {
  StderrTail,
  WORKER_ENTRY,
  inheritedExecArgv,
  type SpawnOptions,
  type WorkerExit,
  type WorkerHandle,
} from './worker-handle';
import type { FromWorker, ToWorker } from '../wire';
import { serialize } from 'node:v8';

const OUT_OF_MEMORY = /heap out of memory|Allocation failed/;
/** After SIGTERM, a worker that handles the signal and keeps going gets SIGKILL this much later. */
const KILL_AFTER_TERM_MS = 2000;

export class ProcessWorker implements WorkerHandle {
  readonly backend = 'process';
  readonly threadId = undefined;
  readonly pid: number | undefined;
  onMessage: (msg: FromWorker) => void = () => {};
  onExit: (exit: WorkerExit) => void = () => {};
  alive = true;
  private readonly child: ChildProcess;
  private readonly tail = new StderrTail();
  private killTimer: NodeJS.Timeout | undefined;

  constructor(options: SpawnOptions) {
    this.child = fork(WORKER_ENTRY, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env: options.env ?? process.env,
      execArgv: options.execArgv ?? inheritedExecArgv(),
    });
    this.pid = this.child.pid;
    const stderr = this.child.stderr!;
    stderr.on('data', (chunk: Buffer) => {
      this.tail.push(chunk);
      process.stderr.write(chunk);
    });
    this.child.on('message', (msg: FromWorker) => this.onMessage(msg));
    this.child.on('error', (err) => this.tail.push(`${err.stack ?? String(err)}\n`));
    let reported = false;
    const report = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (reported) return;
      reported = true;
      this.alive = false;
      clearTimeout(this.killTimer);
      const signum = signal ? (constants.signals[signal] ?? 0) : 0;
      this.onExit({
        exitCode: signal ? -signum : code,
        signal,
        outOfMemory: OUT_OF_MEMORY.test(this.tail.text()),
      });
    };
    this.child.on('exit', (code, signal) => {
      // Wait for the rest of stderr (up to a moment: a grandchild may hold the pipe open).
      if (stderr.readableEnded) report(code, signal);
      else {
        const timer = setTimeout(() => report(code, signal), 200);
        stderr.once('end', () => {
          clearTimeout(timer);
          report(code, signal);
        });
      }
    });
  }

  send(msg: ToWorker): void {
    this.child.send(msg);
  }

  checkSendable(value: unknown): void {
    serialize(value);
  }

  stderrTail(): string {
    return this.tail.text();
  }

  ref(): void {
    this.child.ref();
    this.child.channel?.ref();
    (this.child.stderr as Socket | null)?.ref();
  }

  unref(): void {
    this.child.unref();
    this.child.channel?.unref();
    (this.child.stderr as Socket | null)?.unref();
  }

  terminate(): void {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    this.killTimer ??= setTimeout(() => this.kill(), KILL_AFTER_TERM_MS);
  }

  kill(): void {
    if (!this.alive) return;
    this.child.kill('SIGKILL');
  }
}
