/**
 * `Process`: run one exported function in its own worker and read its exit code, as Python's
 * `multiprocessing.Process`. `exitCode` is `null` while running, `0` when the target returned,
 * `1` when it threw (the error arrives whole in `error`), `n` after `process.exit(n)`, and `-N`
 * when killed by signal N (`signal` names it).
 */
import { fileURLToPath } from 'node:url';
import type { ResourceLimits } from 'node:worker_threads';
import { ProcessWorker } from './backend/process';
import { ThreadWorker } from './backend/thread';
import type { Backend, WorkerExit, WorkerHandle } from './backend/worker-handle';
import { decodeThrown } from './error-codec';
import { PoolStateError, WorkerModuleError } from './errors';
import { hasShared, marshalArgs } from './shared/marshal';
import { tracer } from './trace/emitter';
import { errorInfo } from './trace/error-info';
import { checkStartArgs, functionName, locationOf, resolveModule, type TaskFunction } from './pool';
import { waitDelay } from './timeouts';

export interface ProcessOptions {
  /** The module that exports `target` (path relative to the cwd, or file URL). */
  module: string | URL;
  /** The exported function to run, by name or by reference. */
  target: TaskFunction;
  args?: unknown[];
  name?: string;
  backend?: Backend;
  env?: NodeJS.ProcessEnv;
  execArgv?: string[];
  resourceLimits?: ResourceLimits;
}

let nextProcessNumber = 1;

export class Process {
  readonly name: string;
  readonly backend: Backend;
  private readonly module: string;
  private readonly target: string;
  private handle: WorkerHandle | undefined;
  private exit: WorkerExit | undefined;
  private failure: Error | undefined;
  private readonly exited: Promise<void>;
  private markExited!: () => void;

  constructor(private readonly options: ProcessOptions) {
    if (!options || typeof options !== 'object' || options.module === undefined) {
      throw new TypeError('new Process(options) needs options.module and options.target');
    }
    this.backend = options.backend ?? 'process';
    this.module = resolveModule(options.module);
    this.target = functionName(options.target, 'Process target');
    this.name = options.name ?? `Process-${nextProcessNumber++}`;
    this.exited = new Promise((resolve) => (this.markExited = resolve));
  }

  /** Starts the worker. A process can be started once. */
  start(): void {
    if (this.handle) throw new PoolStateError(`${this.name} was already started`, 'running');
    // Checked before anything is spawned: a worker whose init message could not be sent waited
    // for it forever, and kept the program alive (a child process, for the process backend).
    const args = this.targetArgs();
    checkStartArgs(
      args,
      this.backend,
      this.target,
      (i) =>
        `${this.name}: argument ${i} of ${this.target}() cannot be sent to its ${this.backend}`,
    );
    const spawn = {
      env: this.options.env,
      execArgv: this.options.execArgv,
      resourceLimits: this.options.resourceLimits,
    };
    const handle = this.backend === 'thread' ? new ThreadWorker(spawn) : new ProcessWorker(spawn);
    this.handle = handle;
    handle.onMessage = (msg) => {
      if (msg.t === 'target-error' || msg.t === 'fatal') this.failure = decodeThrown(msg.error);
      else if (msg.t === 'startup-error') {
        const cause = decodeThrown(msg.error);
        this.failure = new WorkerModuleError(
          `${this.name}: module ${fileURLToPath(this.module)} failed to load: ${cause.name}: ${cause.message}${locationOf(cause)}`,
          fileURLToPath(this.module),
          'load',
          { cause },
        );
      }
    };
    handle.onExit = (exit) => {
      this.exit = exit;
      tracer?.emit('process.exited', {
        name: this.name,
        exitCode: exit.exitCode,
        signal: exit.signal,
        ...(this.failure ? { error: errorInfo(this.failure) } : {}),
      });
      this.markExited();
    };
    try {
      handle.send({
        t: 'init',
        module: this.module,
        workerId: 0,
        initializer: undefined,
        initArgs: [],
        trace: false,
        idleSpinMs: 0,
        target: { fn: this.target, args },
      });
    } catch (err) {
      // Not expected after the check above; never leave the worker waiting for its init.
      handle.kill();
      throw err;
    }
    tracer?.emit('process.started', {
      name: this.name,
      target: this.target,
      backend: this.backend,
      ...(this.backend === 'process'
        ? { processPid: handle.pid }
        : { processTid: handle.threadId }),
    });
  }

  private targetArgs(): unknown[] {
    const args = this.options.args ?? [];
    if (!hasShared(args)) return args;
    // The originals stay reachable through this.options for as long as the Process exists.
    return marshalArgs(args, this.backend);
  }

  /** Waits for the process to end, or for `timeoutMs`; check `exitCode` to know which. */
  async join(timeoutMs?: number): Promise<void> {
    if (!this.handle) throw new PoolStateError(`${this.name}: join() before start()`, 'running');
    const delay = waitDelay(timeoutMs, `${this.name}: join()`);
    if (delay === undefined) return this.exited;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, delay)))]);
    clearTimeout(timer);
  }

  isAlive(): boolean {
    return this.handle !== undefined && this.exit === undefined;
  }

  /** The worker's process id (the main process's, for the thread backend). */
  get pid(): number | undefined {
    return this.handle?.pid;
  }

  get threadId(): number | undefined {
    return this.handle?.threadId;
  }

  /** `null` while running (or not started), else as Python reports it. */
  get exitCode(): number | null {
    return this.exit?.exitCode ?? null;
  }

  /** Name of the signal that ended it (`'SIGKILL'`), or `null`. */
  get signal(): string | null {
    return this.exit?.signal ?? null;
  }

  /** The error that ended it, whole, when the target threw or the module failed to load. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** The last lines it wrote to stderr. */
  get stderr(): string {
    return this.handle?.stderrTail() ?? '';
  }

  /** SIGTERM (a thread is stopped at once and reports `-15`). */
  terminate(): void {
    this.handle?.terminate();
  }

  /** SIGKILL (a thread is stopped at once and reports `-9`). */
  kill(): void {
    this.handle?.kill();
  }
}
