import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  AsyncResult,
  defaultChunksize,
  Pool,
  PoolStateError,
  PoolTerminatedError,
  TaskTimeoutError,
  TimeoutError,
} from 'poolscope';
import { Pool as ThreadPool } from 'poolscope/dummy';
import { BACKENDS, fixture, rejectionOf, withPool } from '../helpers';

describe('chunksize follows Python', () => {
  it('uses about four chunks per worker, rounding up', () => {
    assert.equal(defaultChunksize(0, 2), 0);
    assert.equal(defaultChunksize(1, 2), 1);
    assert.equal(defaultChunksize(8, 2), 1);
    assert.equal(defaultChunksize(9, 2), 2);
    assert.equal(defaultChunksize(1_000_000, 2), 125_000);
    assert.equal(defaultChunksize(100, 3), 9);
  });
});

describe('one import switches the backend', () => {
  it("'poolscope' gives processes and 'poolscope/dummy' gives threads", async () => {
    const processes = new Pool({ module: fixture('tasks.mjs'), size: 1 });
    const threads = new ThreadPool({ module: fixture('tasks.mjs'), size: 1 });
    try {
      assert.equal(processes.backend, 'process');
      assert.equal(threads.backend, 'thread');
      const [inProcess, inThread] = await Promise.all([
        processes.apply('sleepWhoami', [0]),
        threads.apply('sleepWhoami', [0]),
      ]);
      assert.notEqual(String(inProcess).split(':')[0], String(process.pid));
      assert.equal(String(inThread).split(':')[0], String(process.pid));
      assert.notEqual(String(inThread).split(':')[1], '0');
    } finally {
      await Promise.all([processes.terminate(), threads.terminate()]);
    }
  });
});

describe('a long burst of submissions on the thread backend', () => {
  it('starts running tasks while the loop of applyAsync is still going', async () => {
    await withPool({ module: fixture('tasks.mjs'), backend: 'thread', size: 2 }, async (pool) => {
      await pool.apply('square', [1]); // a worker ready
      const counter = new SharedArrayBuffer(4);
      const ran = new Int32Array(counter);
      const nap = new Int32Array(new SharedArrayBuffer(4));
      const results: Promise<number>[] = [];
      for (let i = 0; i < 256; i++) results.push(pool.applyAsync<number>('tally', [counter]));
      // Still in the same synchronous turn: no result can have been taken, yet the workers, told
      // of tasks as the loop went, run them. Without that, this waits out its deadline.
      const deadline = Date.now() + 20_000;
      while (Atomics.load(ran, 0) === 0 && Date.now() < deadline) Atomics.wait(nap, 0, 0, 1);
      const seen = Atomics.load(ran, 0);
      for (let i = 0; i < 256; i++) results.push(pool.applyAsync<number>('tally', [counter]));
      assert.ok(seen > 0, 'no task ran before the loop of applyAsync ended');
      const counts = (await Promise.all(results)).sort((a, b) => a - b);
      assert.deepEqual(
        counts,
        Array.from({ length: 512 }, (_, k) => k + 1),
      );
    });
  });
});

describe('a settled result', () => {
  it('keeps its outcome, not the callbacks it was given', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    await withPool({ module: fixture('tasks.mjs'), backend: 'thread', size: 1 }, async (pool) => {
      // Built in a function of its own, so that only the callbacks hold `big`.
      const submit = (): { result: AsyncResult<number>; held: WeakRef<object> } => {
        const big = { data: new Array<number>(10_000).fill(1) };
        const result = pool.applyAsync<number>('square', [3], {
          callback: () => void big.data.length,
          errorCallback: () => void big.data.length,
        });
        return { result, held: new WeakRef(big) };
      };
      const { result, held } = submit();
      assert.equal(await result, 9);
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      assert.equal(held.deref(), undefined, 'the settled result still holds its callbacks');
      assert.equal(await result.get(), 9);
      assert.equal(result.successful(), true);
    });
  });
});

describe('a worker thread waiting for its next task', () => {
  it('allocates next to nothing while it polls', async () => {
    // Each task below arrives after the worker has polled for the whole idleSpinMs. A poll that
    // allocated at every clock read made about 450 KB of garbage in those 2 ms, and the worker's
    // garbage collections then landed in the middle of its tasks.
    await withPool(
      { module: fixture('heap.mjs'), backend: 'thread', size: 1, idleSpinMs: 2 },
      async (pool) => {
        type Heap = { used: number; collections: number };
        await pool.apply('heap', []);
        const tasks = 20;
        const windows: string[] = [];
        // A window in which a collection ran says nothing: try a few.
        for (let attempt = 0; attempt < 4; attempt++) {
          const before = await pool.apply<Heap>('heap', []);
          for (let i = 0; i < tasks; i++) {
            await new Promise((resolve) => setTimeout(resolve, 4));
            await pool.apply('nothing', []);
          }
          const after = await pool.apply<Heap>('heap', []);
          if (after.collections !== before.collections) {
            windows.push('a collection ran');
            continue;
          }
          const perTask = (after.used - before.used) / tasks;
          assert.ok(perTask < 50_000, `the worker allocated ${Math.round(perTask)} bytes a task`);
          return;
        }
        assert.fail(`every window saw a garbage collection in the worker: ${windows.join(', ')}`);
      },
    );
  });
});

for (const backend of BACKENDS) {
  describe(`pool on the ${backend} backend`, () => {
    const tasks = fixture('tasks.mjs');

    it('apply returns the value of a sync task and of an async task', async () => {
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        assert.equal(await pool.apply('square', [7]), 49);
        assert.equal(await pool.apply('slow', ['done', 5]), 'done');
        assert.equal(await pool.apply('add', [2, 3]), 5);
      });
    });

    it('a lone argument arrives as it left: an array, undefined, an object (sent without its list)', async () => {
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        assert.deepEqual(await pool.apply('echo', [[1, [2]]]), [1, [2]]);
        assert.equal(await pool.apply('echo', [undefined]), undefined);
        assert.deepEqual(await pool.apply('echo', [{ a: [1] }]), { a: [1] });
        assert.equal(await pool.apply('add', [2, 3]), 5);
        assert.equal(await pool.apply('readSetup', []), null);
      });
    });

    it('applyAsync calls callback with the value and errorCallback with the error, once each', async () => {
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const values: number[] = [];
        const errors: Error[] = [];
        const results: AsyncResult<unknown>[] = [];
        for (let i = 0; i < 10; i++) {
          results.push(
            pool.applyAsync('failOdd', [i], {
              callback: (v) => values.push(v as number),
              errorCallback: (e) => errors.push(e),
            }),
          );
        }
        await Promise.allSettled(results);
        assert.deepEqual(
          values.sort((a, b) => a - b),
          [0, 20, 40, 60, 80],
        );
        assert.equal(errors.length, 5);
        assert.ok(errors.every((e) => e instanceof RangeError && /^odd: \d$/.test(e.message)));
      });
    });

    it('a failed task used only through its errorCallback is no unhandled rejection; a result is a promise', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
          const seen: Error[] = [];
          pool.applyAsync('failOdd', [1], { errorCallback: (e) => seen.push(e) });
          const ignored = pool.applyAsync('failOdd', [3]);
          const awaited = pool.applyAsync('failOdd', [5]);
          await assert.rejects(awaited, /odd: 5/);
          await ignored.wait();
          // Two turns of the event loop: Node reports unhandled rejections after microtasks.
          await new Promise((r) => setImmediate(r));
          await new Promise((r) => setImmediate(r));
          assert.equal(seen.length, 1);
          const ok = pool.applyAsync('square', [4]);
          assert.ok(ok instanceof Promise);
          assert.equal(Promise.resolve(ok), ok, 'Promise.resolve takes it as it is');
          assert.ok(!(ok.then(() => 0) instanceof AsyncResult), 'then makes a plain promise');
          assert.equal(await ok, 16);
        });
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      assert.deepEqual(unhandled, []);
    });

    it('AsyncResult: get, wait, ready, successful, and await', async () => {
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        const slow = pool.applyAsync('slow', [1, 300]);
        assert.equal(slow.ready(), false);
        assert.throws(() => slow.successful(), /not ready/);
        const timeout = await rejectionOf(slow.get(20));
        assert.ok(timeout instanceof TimeoutError);
        assert.match(timeout.message, /still running/);
        assert.equal(await slow.wait(10), false);
        // The task kept running: a later get still has its value.
        assert.equal(await slow.get(), 1);
        assert.equal(slow.ready(), true);
        assert.equal(slow.successful(), true);
        assert.equal(await slow.wait(), true);
        assert.equal(await pool.applyAsync('square', [5]), 25);
        const failed = pool.applyAsync('fail', [1]);
        await failed.wait();
        assert.equal(failed.successful(), false);
        assert.equal((await rejectionOf(failed)).message, 'task failed: 1');
      });
    });

    it('a function reference works as the task name, with its types', async () => {
      const { square } = (await import(pathToFileURL(tasks).href)) as {
        square: (x: number) => number;
      };
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        const value: number = await pool.apply(square, [9]);
        assert.equal(value, 81);
      });
    });

    it('map, starmap and their async forms keep input order', async () => {
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const items = Array.from({ length: 1000 }, (_, i) => i);
        assert.deepEqual(
          await pool.map('square', items),
          items.map((i) => i * i),
        );
        assert.deepEqual(
          await pool.map('square', items, 7),
          items.map((i) => i * i),
        );
        assert.deepEqual(await pool.map('square', []), []);
        assert.deepEqual(
          await pool.starmap('add', [
            [1, 2],
            [3, 4],
            [5, 6],
          ]),
          [3, 7, 11],
        );
        let called: unknown[] | undefined;
        const mapped = pool.mapAsync('square', [3, 4], { callback: (v) => (called = v) });
        assert.deepEqual(await mapped.get(), [9, 16]);
        assert.deepEqual(called, [9, 16]);
        assert.deepEqual(await pool.starmapAsync('add', [['a', 'b']]), ['ab']);
      });
    });

    it('map over numbers: every value arrives exactly (they travel packed), mixed items too', async () => {
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const odd = [NaN, -0, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 0.1, 5e-324];
        const numbers = Array.from({ length: 200 }, (_, i) => odd[i % odd.length]! * (i + 1));
        const back = await pool.map('echo', numbers, 50);
        assert.equal(back.length, numbers.length);
        back.forEach((v, i) => assert.ok(Object.is(v, numbers[i]), `item ${i}: ${v}`));
        assert.ok(Array.isArray(back));
        // Numbers in, strings out; and a chunk with a non-number among numbers.
        const mixed = [...numbers.slice(0, 40), 'x', { y: 1 }, ...numbers.slice(40, 80)];
        const echoed = await pool.map('echo', mixed, 25);
        echoed.forEach((v, i) => assert.deepEqual(v, mixed[i]));
        const text = await pool.map('describeNumber', numbers.slice(0, 32), 32);
        assert.deepEqual(
          text,
          numbers.slice(0, 32).map((n) => `n=${n}`),
        );
        const ordered: unknown[] = [];
        for await (const v of pool.imap('echo', numbers, { chunksize: 20 })) ordered.push(v);
        ordered.forEach((v, i) => assert.ok(Object.is(v, numbers[i])));
        const unordered: unknown[] = [];
        for await (const v of pool.imapUnordered('echo', numbers, { chunksize: 20 }))
          unordered.push(v);
        assert.equal(unordered.length, numbers.length);
      });
    });

    it('map rejects with the first error and calls errorCallback once', async () => {
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const errors: Error[] = [];
        const result = pool.mapAsync('failOdd', [0, 2, 4, 5, 6, 7], {
          chunksize: 1,
          errorCallback: (e) => errors.push(e),
        });
        const err = await rejectionOf(result);
        assert.ok(err instanceof RangeError);
        assert.match(err.message, /^odd: [57]$/);
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(errors.length, 1);
      });
    });

    it('imap yields in order, imapUnordered as results arrive, errors at their place', async () => {
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const ordered: number[] = [];
        for await (const v of pool.imap('square', [1, 2, 3, 4, 5])) ordered.push(v as number);
        assert.deepEqual(ordered, [1, 4, 9, 16, 25]);

        const unordered: unknown[] = [];
        for await (const v of pool.imapUnordered(
          'slow',
          [[0]].map(() => 0),
        ))
          unordered.push(v);
        assert.deepEqual(unordered, [0]);

        // The second item finishes first; imapUnordered yields it first, imap keeps order.
        const starred = pool.imapUnordered('square', [1, 2, 3]);
        const seen: unknown[] = [];
        for await (const v of starred) seen.push(v);
        assert.deepEqual(
          seen.map(Number).sort((a, b) => a - b),
          [1, 4, 9],
        );

        const it = pool.imap('failOdd', [0, 1, 2]);
        assert.deepEqual(await it.next(), { done: false, value: 0 });
        const err = await rejectionOf(it.next());
        assert.ok(err instanceof RangeError);
        assert.deepEqual(await it.next(), { done: false, value: 20 });
        assert.deepEqual(await it.next(), { done: true, value: undefined });
      });
    });

    it('imap next() rejects with TimeoutError when the next item is late, and stays usable', async () => {
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        const it = pool.imap('slow', [300], { timeout: 20 });
        const err = await rejectionOf(it.next());
        assert.ok(err instanceof TimeoutError);
        // Python's slow() returns its argument: the late value still arrives.
        assert.deepEqual(await it.next(5000), { done: false, value: 300 });
      });
    });

    it('a task over its timeout is rejected with TaskTimeoutError and its worker replaced', async () => {
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        const before = await pool.apply('sleepWhoami', [0]);
        const err = await rejectionOf(pool.applyAsync('spin', [], { timeout: 100 }));
        assert.ok(err instanceof TaskTimeoutError);
        assert.equal(err.fn, 'spin');
        assert.equal(err.timeoutMs, 100);
        assert.match(err.message, /did not finish within 100 ms/);
        const after = await pool.apply('sleepWhoami', [0]);
        assert.notEqual(after, before);
      });
    });

    it('a pool-wide timeout applies to every task', async () => {
      await withPool({ module: tasks, backend, size: 1, timeout: 100 }, async (pool) => {
        assert.equal(await pool.apply('square', [3]), 9);
        assert.ok((await rejectionOf(pool.apply('spin'))) instanceof TaskTimeoutError);
        assert.equal(await pool.apply('square', [4]), 16);
      });
    });

    it("env sets the workers' environment", async () => {
      await withPool(
        {
          module: fixture('nested-pools.mjs'),
          backend,
          size: 1,
          env: { ...process.env, POOLSCOPE_TEST_ENV: 'set' },
        },
        async (pool) => {
          assert.equal(await pool.apply('readEnv', ['POOLSCOPE_TEST_ENV']), 'set');
        },
      );
      await withPool({ module: fixture('nested-pools.mjs'), backend, size: 1 }, async (pool) => {
        assert.equal(await pool.apply('readEnv', ['POOLSCOPE_TEST_ENV']), null);
      });
    });

    it('the initializer runs once in each worker with initArgs', async () => {
      const module = fixture('initializer.mjs');
      await withPool(
        { module, backend, size: 2, initializer: 'init', initArgs: ['configured'] },
        async (pool) => {
          const configs = (await pool.map('getConfig', [1, 2, 3, 4], 1)) as { value: string }[];
          assert.ok(configs.every((c) => c.value === 'configured'));
        },
      );
    });

    it('maxTasksPerChild replaces a worker after that many tasks', async () => {
      await withPool({ module: tasks, backend, size: 1, maxTasksPerChild: 2 }, async (pool) => {
        const exits: string[] = [];
        pool.on('workerExit', (info: { reason: string }) => exits.push(info.reason));
        const ids: unknown[] = [];
        for (let i = 0; i < 6; i++) ids.push(await pool.apply('sleepWhoami', [0]));
        assert.equal(new Set(ids).size, 3);
        assert.equal(ids[0], ids[1]);
        assert.notEqual(ids[1], ids[2]);
        assert.ok(exits.length >= 2 && exits.every((r) => r === 'recycled'));
      });
    });

    it('close then join finishes queued work and ends every worker', async () => {
      const pool = new Pool({ module: tasks, backend, size: 2 });
      const results = [1, 2, 3, 4, 5].map((i) => pool.applyAsync('slow', [i, 20]));
      pool.close();
      assert.throws(() => pool.applyAsync('square', [1]), PoolStateError);
      await pool.join();
      assert.deepEqual(await Promise.all(results), [1, 2, 3, 4, 5]);
      assert.equal(pool.stats().workers, 0);
    });

    it('join before close or terminate is refused, as in Python', async () => {
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        const err = await rejectionOf(pool.join());
        assert.ok(err instanceof PoolStateError);
      });
    });

    it('terminate resolves with workers stuck in endless loops and rejects unfinished tasks', async () => {
      const pool = new Pool({ module: tasks, backend, size: 2 });
      const stuck = [
        pool.applyAsync('spin'),
        pool.applyAsync('spin'),
        pool.applyAsync('square', [2]),
      ];
      await new Promise((r) => setTimeout(r, 200));
      await pool.terminate();
      for (const r of stuck) assert.ok((await rejectionOf(r)) instanceof PoolTerminatedError);
      assert.equal(pool.stats().workers, 0);
    });

    it('terminate() with a full queue builds no stack per task, only one per submit site', async () => {
      const pool = new Pool({ module: tasks, backend, size: 1 });
      const submitHere = (i: number) => pool.applyAsync('square', [i]);
      const results = Array.from({ length: 2000 }, (_, i) => submitHere(i));
      const original = Error.prepareStackTrace;
      let formatted = 0;
      Error.prepareStackTrace = (err, frames) => {
        formatted++;
        return original
          ? original(err, frames)
          : `${String(err)}${frames.map((f) => `\n    at ${String(f)}`).join('')}`;
      };
      try {
        await pool.terminate();
      } finally {
        Error.prepareStackTrace = original;
      }
      const settled = await Promise.allSettled(results);
      assert.ok(
        settled.every((s) => s.status === 'rejected' && s.reason instanceof PoolTerminatedError),
      );
      // A stack captured for each error, then replaced by the submit site's, was formatted first:
      // 2,000 of them (terminate() with 300,000 queued took 5.2 s, now under 1).
      assert.ok(formatted <= 10, `${formatted} stacks formatted for 2,000 tasks`);
      const last = (settled[1999] as PromiseRejectedResult).reason as Error;
      assert.match(last.stack!, /^PoolTerminatedError: task #\d+ square\(\) was not finished/);
      assert.match(last.stack!, /at submitHere/);
    });

    it('await using terminates the pool at the end of the scope', async () => {
      let escaped: Pool;
      {
        await using pool = new Pool({ module: tasks, backend, size: 1 });
        escaped = pool;
        assert.equal(await pool.apply('square', [2]), 4);
      }
      assert.equal(escaped.stats().state, 'terminated');
      assert.equal(escaped.stats().workers, 0);
    });

    it('a callback or errorCallback that throws is reported and every other task still settles', async () => {
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const reported: unknown[] = [];
        pool.on('callbackError', (err: unknown) => reported.push(err));
        const results = [];
        for (let i = 0; i < 20; i++) {
          results.push(
            pool.applyAsync('failOdd', [i], {
              callback: () => {
                throw new Error('callback bug');
              },
              errorCallback: () => {
                throw new Error('errorCallback bug');
              },
            }),
          );
        }
        const settled = await Promise.allSettled(results);
        assert.equal(settled.length, 20);
        assert.equal(settled.filter((s) => s.status === 'fulfilled').length, 10);
        assert.equal(reported.length, 20);
        assert.equal(await pool.apply('square', [3]), 9);
      });
    });

    it('nothing a callback throws, nor a callbackError listener that throws, stops the others settling', async () => {
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        const { proxy, revoke } = Proxy.revocable({}, {});
        revoke();
        const written: string[] = [];
        const write = process.stderr.write;
        process.stderr.write = ((chunk: string) => {
          written.push(String(chunk));
          return true;
        }) as typeof process.stderr.write;
        try {
          // A callback that throws a value no code can read (a revoked proxy).
          const first = Array.from({ length: 10 }, (_, i) =>
            pool.applyAsync('square', [i], {
              callback: () => {
                if (i === 3) throw proxy;
              },
            }),
          );
          assert.deepEqual(await Promise.all(first), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
          assert.match(
            written.join(''),
            /a task's callback threw \(the pool carries on\):\na value that cannot be read/,
          );
          // A listener for callbackError that throws itself.
          pool.on('callbackError', () => {
            throw new Error('listener bug');
          });
          written.length = 0;
          const second = Array.from({ length: 10 }, (_, i) =>
            pool.applyAsync('square', [i], {
              callback: () => {
                if (i === 5) throw new Error('callback bug');
              },
            }),
          );
          assert.equal((await Promise.all(second)).length, 10);
          const text = written.join('');
          assert.match(
            text,
            /a 'callbackError' listener threw \(the pool carries on\):\nError: listener bug/,
          );
          assert.match(
            text,
            /while it was told that a task's callback threw:\nError: callback bug/,
          );
        } finally {
          process.stderr.write = write;
        }
        assert.equal(await pool.apply('square', [3]), 9);
      });
    });

    it('runs CommonJS and TypeScript worker modules', async () => {
      await withPool({ module: fixture('tasks.cjs'), backend, size: 1 }, async (pool) => {
        assert.equal(await pool.apply('square', [6]), 36);
        assert.equal(await pool.apply('asyncDouble', [6]), 12);
        const err = await rejectionOf(pool.apply('fail', [1]));
        assert.ok(err instanceof TypeError);
        assert.equal((err as Error & { code: string }).code, 'E_CJS');
      });
      await withPool(
        { module: pathToFileURL(fixture('tasks.ts')), backend, size: 1 },
        async (pool) => {
          assert.equal(await pool.apply('squareArea', [5]), 25);
          const err = await rejectionOf(pool.apply('failTyped', ['no']));
          assert.equal(err.message, 'typed failure: no');
          // Source maps: the worker frame points at the TypeScript line that threw.
          assert.match(err.stack!, /tasks\.ts:10:/);
        },
      );
    });

    it("a task's stack holds its own frames, one of the pool's and at most one of Node's", async () => {
      await withPool({ module: fixture('tasks.mjs'), backend, size: 1 }, async (pool) => {
        const stacks = [await pool.apply<string>('stackHere')];
        await new Promise((resolve) => setTimeout(resolve, 30)); // the worker back in its event loop
        stacks.push(await pool.apply<string>('stackHere'));
        stacks.push(await pool.apply<string>('stackHere')); // the worker still waiting for it
        for (const stack of stacks) {
          const frames = stack.split('\n').filter((line) => line.trimStart().startsWith('at '));
          assert.match(frames[0]!, /at stackHere /, stack);
          assert.match(frames[1]!, /worker[/\\]entry\.js/, stack);
          // A process's messages arrive through process.nextTick, whose loop is one more frame.
          const rest = frames.slice(2);
          assert.ok(rest.length <= 1 && rest.every((f) => f.includes('node:internal/')), stack);
        }
      });
    });

    it('timers a task left running keep firing while tasks arrive back to back', async () => {
      await withPool({ module: fixture('tasks.mjs'), backend, size: 1 }, async (pool) => {
        await pool.apply('startTicking');
        const before = await pool.apply<number>('ticksSoFar');
        let after = before;
        // Each task is sent as soon as the previous one's result arrives, well within the time a
        // thread waits for its next task: the worker must still give its timers their turn.
        for (let i = 0; i < 2000 && after <= before + 3; i++) {
          after = await pool.apply<number>('ticksSoFar');
        }
        assert.ok(after > before + 3, `the worker's 1 ms interval ticked ${after - before} times`);
      });
    });

    it('an idle pool that was never closed does not keep the program alive', async () => {
      const { spawnSync } = await import('node:child_process');
      const script = `
        const { Pool } = require('poolscope');
        const pool = new Pool({ module: ${JSON.stringify(tasks)}, backend: '${backend}', size: 2 });
        pool.apply('square', [3]).then((v) => console.log('value', v));
      `;
      const run = spawnSync(process.execPath, ['-e', script], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(run.signal, null, 'the program hung');
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /value 9/);
    });
  });
}
