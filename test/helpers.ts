/** Shared by the core tests: fixture paths, the backends to run every case on, pool cleanup. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/** Runs a script with a file trace sink (run id `run`) and returns the trace's lines. */
export function traceOf(
  script: string,
  args: string[] = [],
  nodeArgs: string[] = [],
  run = 'test-run',
): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
  try {
    const file = join(dir, 'trace.jsonl');
    const result = spawnSync(process.execPath, [...nodeArgs, script, ...args], {
      env: { ...process.env, POOLSCOPE_TRACE: `file:${file}`, POOLSCOPE_RUN: run },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(result.status, 0, result.stderr);
    return readFileSync(file, 'utf8').trim().split('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Processes (other than this one) whose command line and environment satisfy `predicate`. */
export function processesWith(predicate: (cmdline: string, environ: string) => boolean): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8');
      if (predicate(cmdline, environ)) found.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** `check()` until it finds nothing or `ms` have passed: what it still finds. */
export async function eventually(check: () => number[], ms: number): Promise<number[]> {
  const until = Date.now() + ms;
  let left = check();
  while (left.length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    left = check();
  }
  return left;
}
