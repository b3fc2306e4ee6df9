/** The thread backend: each worker is a `worker_threads` Worker in this process. */
import { Worker } from 'node:worker_threads';
import {
  StderrTail,
  WORKER_ENTRY,
  type SpawnOptions,
  type WorkerExit,
  type WorkerHandle,
} from './worker-handle';
import type { FromWorker, ToWorker } from '../wire';

const SIGNALS = { SIGTERM: 15, SIGKILL: 9 } as const;

export class ThreadWorker implements WorkerHandle {
  readonly backend = 'thread';
  readonly pid = process.pid;
  readonly threadId: number;
  onMessage: (msg: FromWorker) => void = () => {};
  onExit: (exit: WorkerExit) => void = () => {};
  alive = true;
  private readonly worker: Worker;
  private readonly tail = new StderrTail();
  private stoppedBy: keyof typeof SIGNALS | undefined;
  private outOfMemory = false;
  /** Messages sent, counted where the worker can wait for the count to change (see entry.ts). */
  private readonly sent = new Int32Array(new SharedArrayBuffer(4));

  constructor(options: SpawnOptions) {
    // Not `stderr: true`: a piped stderr stream keeps the program alive even after unref()
    // (seen on Node 20). The thread's stderr goes straight to ours; the entry sends us a copy.
    this.worker = new Worker(WORKER_ENTRY, {
      workerData: { sent: this.sent },
      ...(options.env ? { env: options.env } : {}),
      ...(options.execArgv ? { execArgv: options.execArgv } : {}),
      ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
    });
    this.threadId = this.worker.threadId;
    this.worker.on('message', (msg: FromWorker) => {
      if (msg.t === 'stderr') this.tail.push(msg.text);
      else this.onMessage(msg);
    });
    this.worker.on('error', (err: Error & { code?: string }) => {
      // The entry reports errors itself; what arrives here is what it could not catch.
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') this.outOfMemory = true;
      else this.tail.push(`${err.stack ?? String(err)}\n`);
    });
    this.worker.on('exit', (code) => {
      this.alive = false;
      const signal = this.stoppedBy ?? null;
      // Let the last messages (stderr copies) arrive before reporting.
      setImmediate(() =>
        this.onExit({
          exitCode: signal ? -SIGNALS[signal] : code,
          signal,
          outOfMemory: this.outOfMemory,
        }),
      );
    });
  }

  send(msg: ToWorker): void {
    this.worker.postMessage(msg);
    Atomics.add(this.sent, 0, 1);
    Atomics.notify(this.sent, 0, 1);
  }

  checkSendable(value: unknown): void {
    structuredClone(value);
  }

  stderrTail(): string {
    return this.tail.text();
  }

  ref(): void {
    this.worker.ref();
  }

  unref(): void {
    this.worker.unref();
  }

  terminate(): void {
    this.stop('SIGTERM');
  }

  kill(): void {
    this.stop('SIGKILL');
  }

  private stop(how: keyof typeof SIGNALS): void {
    if (!this.alive || this.stoppedBy) return;
    this.stoppedBy = how;
    // terminate() interrupts running JavaScript, even an endless loop.
    void this.worker.terminate();
  }
}
