/**
 * `poolscope/dummy`: the `poolscope` API over worker threads, as `multiprocessing.dummy` is
 * `multiprocessing` over threads. Switching between processes and threads is one import.
 */
import { Pool as BasePool, type PoolOptions } from './pool';
import { Process as BaseProcess, type ProcessOptions } from './process';

export * from './shared-api';

/** A pool of worker threads (set `backend: 'process'` for processes). */
export class Pool extends BasePool {
  constructor(options: PoolOptions) {
    super({ backend: 'thread', ...options });
  }
}

/** One function run in its own worker thread, with Python-style exit codes. */
export class Process extends BaseProcess {
  constructor(options: ProcessOptions) {
    super({ backend: 'thread', ...options });
  }
}
