import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FunctionNotFoundError,
  Pool,
  Process,
  PoolStateError,
  SerializationError,
  WorkerModuleError,
} from 'poolscope';
import { BACKENDS, fixture, rejectionOf, withPool } from '../helpers';

describe('bad input is refused at once, with what to fix', () => {
  it('a missing worker file names the path it looked for', () => {
    assert.throws(
      () => new Pool({ module: 'no/such/worker.mjs' }),
      (err: Error) =>
        err instanceof WorkerModuleError &&
        /worker module not found: .*no\/such\/worker\.mjs \(from 'no\/such\/worker\.mjs', cwd /.test(
          err.message,
        ),
    );
  });

  it('a directory, a non-file URL, a missing module option, a bad size', () => {
    assert.throws(() => new Pool({ module: __dirname }), /worker module is not a file/);
    assert.throws(
      () => new Pool({ module: 'https://example.invalid/w.mjs' }),
      /file path or a file: URL/,
    );
    assert.throws(() => new Pool({} as never), /needs options\.module/);
    assert.throws(() => new Pool({ module: fixture('tasks.mjs'), size: 0 }), RangeError);
  });

  it('idleSpinMs must be a number of milliseconds from 0 to 10', () => {
    for (const idleSpinMs of [-1, 11, Number.NaN, '0.3' as never]) {
      assert.throws(
        () => new Pool({ module: fixture('tasks.mjs'), backend: 'thread', idleSpinMs }),
        (err: Error) =>
          err instanceof RangeError &&
          /idleSpinMs must be a number of milliseconds/.test(err.message),
        String(idleSpinMs),
      );
    }
  });

  it('a timeout the pool cannot keep is refused at once, naming the call', async () => {
    const bad = [-1, 0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '100' as never];
    const cannotKeep = /timeout must be a number of milliseconds above 0 and at most 2147483647/;
    for (const timeout of bad) {
      assert.throws(
        () => new Pool({ module: fixture('tasks.mjs'), backend: 'thread', timeout }),
        (err: Error) =>
          err instanceof RangeError &&
          /^new Pool\(\): /.test(err.message) &&
          cannotKeep.test(err.message),
        String(timeout),
      );
    }
    await withPool({ module: fixture('tasks.mjs'), backend: 'thread', size: 1 }, async (pool) => {
      const worker = await pool.apply<string>('sleepWhoami', [0]);
      for (const timeout of bad) {
        assert.throws(
          () => pool.applyAsync('square', [2], { timeout }),
          (err: Error) =>
            err instanceof RangeError &&
            /^applyAsync\('square'\): /.test(err.message) &&
            cannotKeep.test(err.message),
          String(timeout),
        );
      }
      // Before, each of them fired at once and stopped the worker the task was given to.
      assert.equal(await pool.applyAsync('square', [3], { timeout: 5000 }), 9);
      assert.equal(await pool.apply('sleepWhoami', [0]), worker);
    });
  });

  it("a wait timeout must be a number; one past setTimeout's range waits instead of ending at once", async () => {
    await withPool({ module: fixture('tasks.mjs'), backend: 'thread', size: 1 }, async (pool) => {
      const running = pool.applyAsync('slow', [1, 150]);
      for (const bad of [Number.NaN, '100' as never]) {
        await assert.rejects(
          running.get(bad),
          /get\(\): timeoutMs must be a number of milliseconds/,
        );
        await assert.rejects(running.wait(bad), /wait\(\): timeoutMs must be a number/);
      }
      // 3e9 ms is past setTimeout's range, which used to fire at once: a TimeoutError in 1 ms.
      assert.equal(await running.get(3e9), 1);
      const items = pool.imap<string>('sleepWhoami', [150]);
      const first = await items.next(3e9);
      assert.equal(first.done, false);
      assert.match(first.value, /^\d+:\d+$/);
    });
    const target = new Process({ module: fixture('tasks.mjs'), target: 'slow', args: [0, 150] });
    target.start();
    await assert.rejects(target.join(Number.NaN), /join\(\): timeoutMs must be a number/);
    await target.join(3e9);
    assert.equal(target.isAlive(), false, 'join(3e9) waited for the end');
    assert.equal(target.exitCode, 0);
  });

  it('initArgs or Process args that cannot be sent are refused before any worker starts', () => {
    for (const backend of BACKENDS) {
      assert.throws(
        () =>
          new Pool({
            module: fixture('tasks.mjs'),
            backend,
            initializer: 'square',
            initArgs: [1, () => 2],
          }),
        (err: Error) =>
          err instanceof SerializationError &&
          /^new Pool\(\): initArgs\[1\] cannot be sent to a worker: /.test(err.message),
        backend,
      );
      const target = new Process({
        module: fixture('tasks.mjs'),
        target: 'square',
        args: [new Proxy({}, {})],
        backend,
        name: 'proxied',
      });
      assert.throws(
        () => target.start(),
        (err: Error) =>
          err instanceof SerializationError &&
          /^proxied: argument 0 of square\(\) cannot be sent to its (thread|process): .*it is a Proxy/.test(
            err.message,
          ),
        backend,
      );
      // Nothing was started: before, a worker waited for its init message and kept the program
      // alive (a child process, on the process backend).
      assert.equal(target.isAlive(), false);
      assert.equal(target.pid, undefined);
    }
  });

  it('args that are not an array, and anonymous functions, are refused', async () => {
    await withPool({ module: fixture('tasks.mjs'), size: 1 }, async (pool) => {
      assert.throws(
        () => pool.applyAsync('square', 3 as never),
        /args must be an array.*write \[3\]/,
      );
      assert.throws(() => pool.applyAsync(() => 1), /anonymous function/);
      assert.throws(() => pool.starmap('add', [1] as never), /item 0 is not an array/);
    });
  });
});

for (const backend of BACKENDS) {
  describe(`bad input on the ${backend} backend`, () => {
    it('a syntax error fails every task with the file and line, without respawning forever', async () => {
      for (const file of ['syntax-error.mjs', 'syntax-error.ts']) {
        await withPool({ module: fixture(file), backend, size: 2 }, async (pool) => {
          const results = [pool.apply('ok'), pool.apply('ok')];
          for (const r of results) {
            const err = await rejectionOf(r);
            assert.ok(err instanceof WorkerModuleError, err.stack);
            assert.equal(err.phase, 'load');
            assert.match(err.message, new RegExp(`${file.replace('.', '\\.')} failed to load`));
            assert.match(
              err.message + String((err.cause as Error).stack),
              /SyntaxError|Unexpected|Expected/,
            );
            assert.match(
              `${err.message}\n${(err.cause as Error).stack}`,
              new RegExp(`${file.replace('.', '\\.')}:3`),
            );
          }
          // Later tasks fail the same way, at once.
          assert.ok((await rejectionOf(pool.apply('ok'))) instanceof WorkerModuleError);
          assert.equal(pool.stats().state, 'broken');
        });
      }
    });

    it('a module whose top level throws, and a failing initializer, name what failed', async () => {
      await withPool({ module: fixture('throws-at-load.mjs'), backend, size: 1 }, async (pool) => {
        const err = await rejectionOf(pool.apply('anything'));
        assert.ok(err instanceof WorkerModuleError);
        assert.match(
          err.message,
          /throws-at-load\.mjs failed to load: Error: cannot start: missing configuration/,
        );
      });
      await withPool(
        { module: fixture('initializer.mjs'), backend, size: 1, initializer: 'failingInit' },
        async (pool) => {
          const err = await rejectionOf(pool.apply('getConfig'));
          assert.ok(err instanceof WorkerModuleError);
          assert.equal(err.phase, 'initializer');
          assert.match(err.message, /initializer failingInit\(\) failed .*initializer refused/);
        },
      );
    });

    it('a missing export names the function and lists the ones there are', async () => {
      await withPool({ module: fixture('tasks.mjs'), backend, size: 1 }, async (pool) => {
        const err = await rejectionOf(pool.apply('sqaure', [2]));
        assert.ok(err instanceof FunctionNotFoundError);
        assert.equal(err.fn, 'sqaure');
        assert.ok(err.available.includes('square'));
        assert.match(err.message, /has no export named 'sqaure'; its exported functions: .*square/);
        const notFn = await rejectionOf(pool.apply('notAFunction'));
        assert.match(notFn.message, /exports a number, not a function/);
        // The pool is fine afterwards.
        assert.equal(await pool.apply('square', [2]), 4);
      });
    });

    it('an argument that cannot be sent names the argument; the rest of the batch runs', async () => {
      await withPool({ module: fixture('tasks.mjs'), backend, size: 1 }, async (pool) => {
        const good = pool.applyAsync('square', [3]);
        const bad = pool.applyAsync('echo', [() => 1]);
        const err = await rejectionOf(bad);
        assert.ok(err instanceof SerializationError);
        assert.equal(err.what, 'argument');
        assert.equal(err.index, 0);
        assert.match(
          err.message,
          /argument 0 of echo\(\) cannot be sent to a worker: .*could not be cloned/,
        );
        assert.match(err.stack!, /bad-input\.test\.js/);
        assert.equal(await good, 9);
        const badItem = await rejectionOf(pool.map('echo', [1, 2, Symbol('x')], 1));
        assert.match(badItem.message, /map item 2 of echo\(\) cannot be sent/);
      });
    });

    it('in a long burst, a task that cannot be sent fails once the burst is over, not inside it', async () => {
      await withPool({ module: fixture('tasks.mjs'), backend, size: 2 }, async (pool) => {
        await pool.apply('square', [1]); // a worker ready: a long burst sends tasks as it goes
        let inBurst = true;
        let calledInBurst: boolean | undefined;
        const results = [];
        for (let i = 0; i < 300; i++) {
          if (i === 5) {
            const errorCallback = (): void => void (calledInBurst = inBurst);
            results.push(pool.applyAsync('echo', [() => i], { errorCallback }));
          } else results.push(pool.applyAsync('echo', [i]));
        }
        inBurst = false;
        const settled = await Promise.allSettled(results);
        assert.equal(calledInBurst, false, 'the errorCallback ran inside the loop of applyAsync');
        const rejected = settled.flatMap((s, i) => (s.status === 'rejected' ? [i] : []));
        assert.deepEqual(rejected, [5]);
        const err = (settled[5] as PromiseRejectedResult).reason as SerializationError;
        assert.ok(err instanceof SerializationError);
        assert.match(err.message, /argument 0 of echo\(\) cannot be sent to a worker/);
        const values = settled.map((s) => (s.status === 'fulfilled' ? s.value : 'x'));
        assert.deepEqual(values, [
          0,
          1,
          2,
          3,
          4,
          'x',
          ...Array.from({ length: 294 }, (_, k) => k + 6),
        ]);
      });
    });

    it('a result that cannot be sent back names the function; the pool carries on', async () => {
      await withPool({ module: fixture('tasks.mjs'), backend, size: 1 }, async (pool) => {
        const results = [
          pool.applyAsync('square', [2]),
          pool.applyAsync('returnsFunction'),
          pool.applyAsync('square', [5]),
        ];
        const err = await rejectionOf(results[1]!);
        assert.ok(err instanceof SerializationError);
        assert.equal(err.what, 'result');
        assert.match(
          err.message,
          /result of returnsFunction\(\) cannot be sent back from worker 1/,
        );
        assert.equal(await results[0], 4);
        assert.equal(await results[2], 25);
      });
    });

    it('a Proxy argument, map item or result fails its task with a SerializationError that says so', async () => {
      await withPool({ module: fixture('tasks.mjs'), backend, size: 1 }, async (pool) => {
        const reactive = new Proxy({ a: 1 }, {});
        const { proxy: revoked, revoke } = Proxy.revocable({}, {});
        revoke();
        const trapped = new Proxy(
          {},
          {
            getPrototypeOf() {
              throw new Error('trap');
            },
          },
        );
        const proxyHint =
          /it is a Proxy, which the structured clone algorithm refuses: send a plain copy of it/;
        for (const [i, arg] of [reactive, revoked, trapped].entries()) {
          const err = await rejectionOf(pool.apply('square', [arg]));
          assert.ok(err instanceof SerializationError, `${i}: ${String(err)}`);
          assert.match(err.message, /argument 0 of square\(\) cannot be sent to a worker: /);
          assert.match(err.message, proxyHint);
        }
        const mapped = await rejectionOf(pool.map('square', [1, revoked, 3]));
        assert.ok(mapped instanceof SerializationError);
        assert.match(mapped.message, /map item 1 of square\(\) cannot be sent/);
        const back = await rejectionOf(pool.apply('returnsProxy'));
        assert.ok(back instanceof SerializationError);
        assert.match(back.message, /result of returnsProxy\(\) cannot be sent back from worker 1/);
        assert.match(back.message, proxyHint);
        assert.equal(await pool.apply('square', [5]), 25);
      });
    });

    it('submitting after close() or terminate() throws PoolStateError naming the call', async () => {
      const pool = new Pool({ module: fixture('tasks.mjs'), backend, size: 1 });
      pool.close();
      assert.throws(
        () => pool.applyAsync('square', [1]),
        /applyAsync\('square'\): the pool is closed/,
      );
      assert.throws(() => pool.map('square', [1]), PoolStateError);
      await pool.join();
      await pool.terminate();
      assert.throws(() => pool.imap('square', [1]), /the pool is terminated/);
    });
  });
}
