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
/** Indexes of the counters shared with the worker. */
const SENT = 0;
const FINISHED = 1;

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
  /**
   * Shared with the worker (see entry.ts): [0] messages sent, counted where the worker can wait
   * for the count to change; [1] tasks the worker has finished, which it counts as it goes.
   */
  private readonly counters = new Int32Array(new SharedArrayBuffer(8));

  constructor(options: SpawnOptions) {
    // Not `stderr: true`: a piped stderr stream keeps the program alive even after unref()
    // (seen on Node 20). The thread's stderr goes straight to ours; the entry sends us a copy.
    this.worker = new Worker(WORKER_ENTRY, {
      workerData: { counters: this.counters },
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
    Atomics.add(this.counters, SENT, 1);
    Atomics.notify(this.counters, SENT, 1);
  }

  tasksFinished(): number {
    return Atomics.load(this.counters, FINISHED);
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
