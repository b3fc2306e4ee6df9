/** Shared by the core tests: fixture paths, the backends to run every case on, pool cleanup. */
import { join } from 'node:path';
import { Pool, type Backend, type PoolOptions } from 'poolscope';

export const BACKENDS: Backend[] = ['process', 'thread'];

/** Absolute path of a file in test/fixtures (tests run from out/test, fixtures stay in test/). */
export function fixture(name: string): string {
  return join(__dirname, '..', '..', 'test', 'fixtures', name);
}

/** Runs `body` with a pool, and always terminates the pool afterwards. */
export async function withPool<T>(
  options: PoolOptions,
  body: (pool: Pool) => Promise<T>,
): Promise<T> {
  const pool = new Pool(options);
  try {
    return await body(pool);
  } finally {
    await pool.terminate();
  }
}

/** Settles with the rejection reason, failing if the promise resolves. */
export async function rejectionOf(promise: PromiseLike<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection, got a value');
}
