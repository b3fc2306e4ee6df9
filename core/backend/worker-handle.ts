/**
 * One worker, thread or process, seen from the main program. The pool and `Process` talk to
 * workers only through this interface, so both backends behave the same.
 */
import { resolve } from 'node:path';
import type { ResourceLimits } from 'node:worker_threads';
import type { FromWorker, ToWorker } from '../wire';

export type Backend = 'process' | 'thread';

export interface WorkerExit {
  /** As Python reports it: the exit code, or `-N` when ended by signal N. */
  exitCode: number | null;
  /** The signal's name, or `null`. Threads report `SIGTERM`/`SIGKILL` when stopped that way. */
  signal: string | null;
  /** The thread ran out of memory (`resourceLimits`) or the process's V8 heap was exhausted. */
  outOfMemory: boolean;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv | undefined;
  execArgv?: string[] | undefined;
  resourceLimits?: ResourceLimits | undefined;
}

export interface WorkerHandle {
  readonly backend: Backend;
  readonly pid: number | undefined;
  readonly threadId: number | undefined;
  /** Throws the clone error when a value in the message cannot be sent. */
  send(msg: ToWorker): void;
  /** Throws the clone error if `value` cannot travel to this worker. */
  checkSendable(value: unknown): void;
  /**
   * Threads only: how many of the tasks sent the worker has finished so far, its results sent
   * or not. The pool reads it to pace a burst of submissions while it cannot take results.
   */
  tasksFinished?(): number;
  onMessage: (msg: FromWorker) => void;
  onExit: (exit: WorkerExit) => void;
  /** The last lines the worker wrote to stderr (it is also forwarded to ours). */
  stderrTail(): string;
  ref(): void;
  unref(): void;
  /** Asks the worker to stop: SIGTERM for a process; a thread is stopped at once. */
  terminate(): void;
  /** Stops the worker at once, whatever it is doing: SIGKILL, or stopping the thread. */
  kill(): void;
  readonly alive: boolean;
}

/** The path of the compiled worker entry, next to this file after the build. */
export const WORKER_ENTRY = resolve(__dirname, '..', 'worker', 'entry.js');

const TAIL_BYTES = 8192;

/** Keeps the last few KiB a worker wrote to stderr, to put in the error that reports its death. */
export class StderrTail {
  private chunks: string[] = [];
  private size = 0;

  push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    this.chunks.push(text);
    this.size += text.length;
    while (this.size > TAIL_BYTES && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  text(): string {
    const all = this.chunks.join('');
    return all.length > TAIL_BYTES ? all.slice(-TAIL_BYTES) : all;
  }
}

/**
 * Flags that must not pass from the main program to its workers: code to evaluate (a worker of
 * `node -e "..."` would run that code again, and start workers of its own), a REPL, a second
 * inspector on the same port, a test runner, a watcher, profilers writing the same files.
 */
const NOT_INHERITED =
  /^(-[epic]|--(eval|print|interactive|check|input-type|inspect|debug|test|watch|prof|cpu-prof|heap-prof|run)\b)/;
/** Of those, the ones whose value may follow as a separate argument. */
const TAKES_VALUE =
  /^(-[ep]|--(eval|print|input-type|inspect-port|debug-port|test-reporter|test-reporter-destination|test-name-pattern|test-skip-pattern|cpu-prof-dir|cpu-prof-name|cpu-prof-interval|heap-prof-dir|heap-prof-name|heap-prof-interval|watch-path|run))$/;

export function inheritedExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (NOT_INHERITED.test(arg)) {
      if (TAKES_VALUE.test(arg)) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}
