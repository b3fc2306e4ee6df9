/**
 * `poolscope`: worker pools over processes. `poolscope/dummy` is the same API over threads,
 * as `multiprocessing.dummy` is to `multiprocessing`: switching is one import.
 */
import { Pool as BasePool, type PoolOptions } from './pool';
import { Process as BaseProcess, type ProcessOptions } from './process';

export * from './shared-api';

/** A pool of worker processes (set `backend: 'thread'` for threads). */
export class Pool extends BasePool {
  constructor(options: PoolOptions) {
    super({ backend: 'process', ...options });
  }
}

/** One function run in its own child process, with Python's exit codes. */
export class Process extends BaseProcess {
  constructor(options: ProcessOptions) {
    super({ backend: 'process', ...options });
  }
}
