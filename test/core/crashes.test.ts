import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerExitError, type Backend, type Pool } from 'poolscope';
import { BACKENDS, fixture, rejectionOf, withPool } from '../helpers';

/** After a crash: the pool is back to full size and every worker serves. */
async function assertRefilled(pool: Pool): Promise<void> {
  // Work for every worker; a replacement still starting (seconds on a loaded machine) may miss a
  // round, so a few rounds are allowed before a worker that never serves fails the test.
  let ids: unknown[] = [];
  for (let round = 0; round < 5 && new Set(ids).size < pool.size; round++) {
    ids = await pool.map('whoami', [250, 250, 250, 250, 250, 250], 1);
  }
  assert.equal(new Set(ids).size, pool.size, `expected ${pool.size} distinct workers, got ${ids}`);
  assert.equal(pool.stats().workers, pool.size);
}

interface Cause {
  name: string;
  backends: Backend[];
  fn: string;
  args: unknown[];
  options?: { execArgv?: string[]; resourceLimits?: { maxOldGenerationSizeMb: number } };
  check: (err: WorkerExitError, backend: Backend) => void;
}

const causes: Cause[] = [
  {
    name: 'process.exit(3)',
    backends: ['process', 'thread'],
    fn: 'exitWith',
    args: [3],
    check: (err) => {
      assert.equal(err.exitCode, 3);
      assert.equal(err.signal, null);
      assert.equal(err.reason, 'crash');
      assert.match(err.message, /exited with code 3 while running task #\d+ exitWith\(\)/);
    },
  },
  {
    name: 'process.exit(7) after writing to stderr',
    backends: ['process', 'thread'],
    fn: 'exitSaying',
    args: [7, 'last words before exit 7'],
    check: (err) => {
      assert.equal(err.exitCode, 7);
      assert.equal(err.reason, 'crash');
      assert.match(err.stderr, /last words before exit 7/);
    },
  },
  {
    name: 'an uncaught exception outside the task',
    backends: ['process', 'thread'],
    fn: 'uncaughtLater',
    args: [],
    check: (err) => {
      assert.equal(err.exitCode, 1);
      assert.equal(err.reason, 'uncaught');
      assert.ok(err.cause instanceof Error);
      assert.equal((err.cause as Error).message, 'thrown from a timer');
      assert.match(err.stderr, /thrown from a timer/);
    },
  },
  {
    name: 'an unhandled rejection outside the task',
    backends: ['process', 'thread'],
    fn: 'unhandledLater',
    args: [],
    check: (err) => {
      assert.equal(err.exitCode, 1);
      assert.equal(err.reason, 'uncaught');
      assert.equal((err.cause as Error).message, 'nobody handled me');
    },
  },
  {
    name: 'SIGKILL',
    backends: ['process'],
    fn: 'killSelf',
    args: ['SIGKILL'],
    check: (err) => {
      assert.equal(err.exitCode, -9);
      assert.equal(err.signal, 'SIGKILL');
      assert.equal(err.reason, 'killed');
      assert.match(err.message, /was killed by SIGKILL/);
      assert.match(err.stderr, /about to die by SIGKILL/);
    },
  },
  {
    name: 'SIGSEGV',
    backends: ['process'],
    fn: 'killSelf',
    args: ['SIGSEGV'],
    check: (err) => {
      assert.equal(err.exitCode, -11);
      assert.equal(err.signal, 'SIGSEGV');
    },
  },
  {
    name: 'running out of memory',
    backends: ['process', 'thread'],
    fn: 'exhaustMemory',
    args: [],
    options: {
      execArgv: ['--max-old-space-size=48'],
      resourceLimits: { maxOldGenerationSizeMb: 48 },
    },
    check: (err) => {
      assert.equal(err.reason, 'out-of-memory');
      assert.match(err.message, /ran out of memory/);
    },
  },
];

for (const backend of BACKENDS) {
  describe(`a dying worker never hangs its tasks, ${backend} backend`, () => {
    for (const cause of causes) {
      if (!cause.backends.includes(backend)) continue;
      it(`${cause.name}: the task rejects with WorkerExitError, errorCallback fires, the pool refills`, async () => {
        const options =
          backend === 'process'
            ? { execArgv: cause.options?.execArgv }
            : { resourceLimits: cause.options?.resourceLimits };
        await withPool(
          { module: fixture('crash.mjs'), backend, size: 2, ...options },
          async (pool) => {
            const callbacks: Error[] = [];
            const result = pool.applyAsync(cause.fn, cause.args, {
              errorCallback: (e) => callbacks.push(e),
            });
            const err = await rejectionOf(result);
            assert.ok(err instanceof WorkerExitError, `got ${err.stack}`);
            assert.deepEqual(callbacks, [err]);
            assert.equal(err.fn, cause.fn);
            assert.equal(typeof err.workerId, 'number');
            if (backend === 'process') {
              assert.equal(typeof err.pid, 'number');
              assert.notEqual(err.pid, process.pid);
              assert.equal(err.threadId, undefined);
            } else {
              assert.equal(err.pid, process.pid);
              assert.equal(typeof err.threadId, 'number');
            }
            cause.check(err, backend);
            assert.match(
              err.stack!,
              /crashes\.test\.js/,
              "the error's stack is where the task was submitted",
            );
            await assertRefilled(pool);
          },
        );
      });
    }

    it('every task handed to a dead worker is rejected, and the others complete', async () => {
      await withPool({ module: fixture('crash.mjs'), backend, size: 2 }, async (pool) => {
        const results = [pool.applyAsync('exitWith', [7])];
        for (let i = 0; i < 50; i++) results.push(pool.applyAsync('ok', [i]));
        const settled = await Promise.allSettled(results);
        const rejected = settled.filter((s) => s.status === 'rejected');
        assert.ok(rejected.length >= 1);
        for (const r of rejected) {
          assert.ok((r as PromiseRejectedResult).reason instanceof WorkerExitError);
          assert.equal((r as PromiseRejectedResult).reason.exitCode, 7);
        }
        assert.equal(settled.length, 51);
        await assertRefilled(pool);
      });
    });
  });
}
