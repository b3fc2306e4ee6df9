import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import {
  Array as SharedArrayOf,
  BoundedSemaphore,
  Condition,
  Event,
  Lock,
  RawArray,
  RawValue,
  RLock,
  Semaphore,
  Struct,
  Value,
  c_double,
} from 'poolscope/dummy';
import { LockOwnerDiedError, Process as ProcessOf } from 'poolscope';
import { BACKENDS, fixture, withPool } from '../helpers';

const Point = Struct('Point', { x: 'd', y: 'd' });

describe('shared ctypes in one thread', () => {
  it('Values of every type code keep what is written', () => {
    assert.equal(new Value('i', -7).value, -7);
    assert.equal(new Value('I', 4_000_000_000).value, 4_000_000_000);
    assert.equal(new Value('b', -128).value, -128);
    assert.equal(new Value('B', 255).value, 255);
    assert.equal(new Value('h', -300).value, -300);
    assert.equal(new Value('H', 65535).value, 65535);
    assert.equal(new Value('q', 2n ** 62n).value, 2n ** 62n);
    assert.equal(new Value('Q', 2n ** 63n).value, 2n ** 63n);
    assert.equal(new Value('l', -5n).value, -5n);
    assert.equal(new Value('f', 0.5).value, 0.5);
    assert.equal(new Value(c_double, 1 / 3).value, 1 / 3);
    assert.equal(new Value('c', 'A').value, 65);
    assert.throws(() => new Value('z' as never, 1), /unknown type code 'z'/);
  });

  it('a value a type cannot hold is refused, saying what it holds, and nothing is written', () => {
    const holdsIntegers = /holds integers \(numbers without a fraction, or bigints\)/;
    assert.throws(
      () => new Value('i', 'abc'),
      (e: Error) =>
        e instanceof TypeError &&
        /^a Value\('i'\) holds integers .*; got the string "abc"$/.test(e.message),
    );
    assert.throws(() => new Value('i', 1.5), /got number 1\.5/);
    assert.throws(() => new Value('d', 'x'), /a Value\('d'\) holds numbers; got the string "x"/);
    assert.throws(() => new Value('c', 'ab'), /holds one character \(code 0-255\)/);
    assert.throws(
      () => new SharedArrayOf('i', [1, 2, 'x']),
      /item 2 of a SharedArray\('i'\) holds integers .*; got the string "x"$/,
    );
    const v = new Value('i', 7);
    assert.throws(() => (v.value = undefined as never), holdsIntegers);
    assert.throws(() => v.add('1' as never), /\(in add\(\)\) holds integers/);
    assert.equal(v.value, 7, 'nothing was written');
    const a = new SharedArrayOf('d', [1, 2]);
    assert.throws(() => (a[1] = {} as never), /item 1 of .* holds numbers; got \[object Object\]/);
    assert.equal(a[1], 2);
    const p = new SharedArrayOf<{ x: number; y: number }>(Point, 1).at(0);
    assert.throws(() => (p.x = 'far' as never), /field x of a Point holds numbers/);
    // What Python's ctypes takes is taken: a bool as an int, a bigint, a byte for 'c'.
    assert.equal(new Value('i', true).value, 1);
    assert.equal(new Value('i', 3n).value, 3);
    assert.equal(new Value('q', 5).value, 5n);
    assert.equal(new Value('c', 66).value, 66);
    assert.equal(new Value('d', 1n).value, 1);
  });

  it('Arrays index, iterate, take negative indexes, refuse out-of-range ones', () => {
    const a = new SharedArrayOf('i', [1, 2, 3]);
    assert.equal(a.length, 3);
    assert.equal(a[0], 1);
    a[1] = 20;
    assert.equal(a.at(-1), 3);
    assert.deepEqual([...a], [1, 20, 3]);
    assert.throws(() => a.at(3), /index 3 is out of range for an array of 3/);
    assert.deepEqual(new SharedArrayOf('d', 2).toArray(), [0, 0]);
  });

  it("'c' arrays read and write .value as text, as Python's bytes", () => {
    const s = new SharedArrayOf('c', 'hello world');
    assert.equal(s.value, 'hello world');
    s.value = 'HI';
    assert.equal(s.value, 'HI');
    assert.equal(s.raw.length, 11);
    assert.throws(() => (s.value = 'x'.repeat(12)), /longer than the array/);
  });

  it('struct arrays lay fields out as C does and write through field views', () => {
    assert.equal(Point.size, 16);
    assert.equal(Struct('Mixed', { a: 'b', b: 'd', c: 'i' }).size, 24);
    const A = new SharedArrayOf<{ x: number; y: number }>(Point, [[1, 2], { x: 3, y: 4 }]);
    const p = A.at(1);
    p.x **= 2;
    assert.deepEqual(
      [...A].map((q) => [q.x, q.y]),
      [
        [1, 2],
        [9, 4],
      ],
    );
  });

  it('raw objects have no lock; locked ones give theirs', () => {
    assert.throws(() => new RawValue('i', 1).getLock(), /has no lock/);
    assert.throws(() => new RawArray('i', 2).getLock(), /has no lock/);
    assert.ok(new Value('i', 1).getLock() instanceof RLock);
    const shared = new Lock();
    assert.equal(new Value('i', 1, { lock: shared }).getLock(), shared);
  });

  it("a Value's own lock lives in the Value's memory, after the data; a given lock is kept", () => {
    const v = new Value<number>('d', 1.5);
    assert.equal((v.getLock() as RLock).memory, v.memory);
    assert.equal(
      v.withLock(() => (v.value += 1)),
      2.5,
    );
    const lock = new RLock();
    const shared = new SharedArrayOf('i', 3, { lock });
    assert.equal(shared.getLock(), lock);
    assert.notEqual(lock.memory, shared.memory);
  });

  it('Lock, RLock, Semaphore, BoundedSemaphore and Event follow Python', () => {
    const lock = new Lock();
    assert.equal(lock.acquire(), true);
    assert.equal(lock.acquire(false), false);
    assert.equal(lock.acquire(true, 20), false);
    lock.release();
    assert.throws(() => lock.release(), /unlocked/);
    const r = new RLock();
    r.acquire();
    r.acquire();
    r.release();
    r.release();
    assert.throws(() => r.release(), /does not hold/);
    const sem = new Semaphore(2);
    assert.ok(sem.acquire() && sem.acquire());
    assert.equal(sem.acquire(true, 10), false);
    sem.release(2);
    const bounded = new BoundedSemaphore(1);
    assert.throws(() => bounded.release(), /released too many times/);
    const event = new Event();
    assert.equal(event.wait(10), false);
    event.set();
    assert.equal(event.wait(), true);
  });
});

for (const backend of BACKENDS) {
  describe(`shared ctypes across worker ${backend === 'process' ? 'processes' : 'threads'}`, () => {
    const module = fixture('shared-tasks.mjs');

    it('atomic add from two workers gives the exact total', async () => {
      await withPool({ module, backend, size: 2 }, async (pool) => {
        const v = new Value('i', 0);
        await Promise.all([pool.apply('addMany', [v, 50_000]), pool.apply('addMany', [v, 50_000])]);
        assert.equal(v.value, 100_000);
      });
    });

    it('read-modify-write under the value lock from two workers gives the exact total', async () => {
      await withPool({ module, backend, size: 2 }, async (pool) => {
        const v = new Value('d', 0);
        await Promise.all([
          pool.apply('incrementLocked', [v, 5_000]),
          pool.apply('incrementLocked', [v, 5_000]),
        ]);
        assert.equal(v.value, 10_000);
      });
    });

    it('a Value and a Lock given to every worker through initArgs work there, as initargs do', async () => {
      const v = new RawValue('i', 0);
      const lock = new Lock();
      await withPool(
        { module, backend, size: 2, initializer: 'initCounter', initArgs: [v, lock] },
        async (pool) => {
          await Promise.all([
            pool.apply('countUnderLock', [5_000]),
            pool.apply('countUnderLock', [5_000]),
          ]);
          assert.equal(v.value, 10_000);
        },
      );
    });

    it('writes in a worker are read here; struct arrays travel with their layout', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const arr = new SharedArrayOf('i', 5);
        await pool.apply('fill', [arr, 10]);
        assert.deepEqual(arr.toArray(), [10, 11, 12, 13, 14]);
        const points = new SharedArrayOf(Point, [[0.5, 1.5]]);
        assert.deepEqual(await pool.apply('readStruct', [points]), [[0.5, 1.5]]);
      });
    });

    it('a lock held here times out in a worker; an Event set in a worker wakes us', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const lock = new Lock();
        lock.acquire();
        assert.equal(await pool.apply('tryLock', [lock, 50]), false);
        lock.release();
        assert.equal(await pool.apply('tryLock', [lock, 50]), true);
        const event = new Event();
        const setter = pool.apply('setEvent', [event, 100]);
        assert.equal(await event.waitAsync(5_000), true);
        await setter;
      });
    });

    it('a Condition wakes a worker waiting for a value this thread sets', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const cond = new Condition();
        const v = new Value('i', 0, { lock: false });
        const waiting = pool.apply('waitForValue', [cond, v, 5_000]);
        await new Promise((r) => setTimeout(r, 100));
        cond.withLock(() => {
          v.value = 1;
          cond.notifyAll();
        });
        assert.equal(await waiting, true);
        assert.equal(
          await pool.apply('waitForValue', [cond, new Value('i', 0, { lock: false }), 50]),
          false,
        );
      });
    });

    it('acquireAsync waits for a lock a worker holds without blocking the event loop; it times out', async () => {
      await withPool({ module: fixture('lock-tasks.mjs'), backend, size: 2 }, async (pool) => {
        for (const lock of [new Lock(), new RLock()]) {
          const held = new Event();
          const go = new Event();
          const holder = pool.apply('holdUntil', [lock, held, go]);
          assert.equal(await held.waitAsync(10_000), true);
          assert.equal(await lock.acquireAsync(30), false);
          let ticks = 0;
          const ticking = setInterval(() => ticks++, 1);
          const waiting = lock.acquireAsync(10_000);
          while (ticks < 3) await new Promise((r) => setTimeout(r, 5));
          go.set();
          assert.equal(await waiting, true);
          clearInterval(ticking);
          await holder;
          if (lock instanceof RLock) {
            assert.equal(await lock.acquireAsync(0), true, 'reentrant');
            lock.release();
          } else {
            assert.equal(await lock.acquireAsync(0), false);
          }
          lock.release();
          assert.equal(await lock.acquireAsync(0), true);
          lock.release();
        }
        const sem = new Semaphore(0);
        assert.equal(await sem.acquireAsync(30), false);
        const go = new Event();
        const releaser = pool.apply('releaseWhen', [sem, go]);
        const waiting = sem.acquireAsync(10_000);
        go.set();
        assert.equal(await waiting, true);
        await releaser;
        assert.equal(sem.value, 0);
      });
    });

    it("the seed's example prints what the seed prints, in TypeScript", () => {
      const root = join(__dirname, '..', '..', '..');
      const run = spawnSync(
        process.execPath,
        [
          '--import',
          join(root, 'dist', 'cli', 'register.mjs'),
          join(root, 'examples', 'seed-shared.ts'),
          ...(backend === 'thread' ? ['--threads'] : []),
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(run.status, 0, run.stderr);
      assert.equal(
        run.stdout,
        'Ounput:\n49\n0.1111111111111111\nHELLO WORLD\n[(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]\n',
      );
    });
  });
}

describe('a lock whose holder process was killed', () => {
  it('does not deadlock: the next acquire says so with LockOwnerDiedError, then the lock works', async () => {
    const lock = new Lock();
    const p = new ProcessOf({
      module: fixture('process-targets.mjs'),
      target: 'holdLockAndDie',
      args: [lock],
    });
    p.start();
    await p.join();
    assert.equal(p.signal, 'SIGKILL');
    assert.equal(lock.locked(), true);
    const err = (() => {
      try {
        lock.acquire(true, 10_000);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    assert.ok(err instanceof LockOwnerDiedError, String(err));
    assert.equal(err.holderPid, p.pid);
    assert.match(err.message, /holder, process \d+, died while holding it/);
    assert.equal(lock.acquire(true, 1_000), true);
    lock.release();
  });
});

describe('shared memory without the addon: SharedArrayBuffers, served to worker processes', () => {
  const sab = { ...process.env, POOLSCOPE_SHARED_MEMORY: 'sab' };
  /** The fixture's lines, run once for the checks that share them. */
  let api: string;
  before(() => {
    const run = spawnSync(process.execPath, [fixture('shared-fallback.cjs')], {
      encoding: 'utf8',
      timeout: 120_000,
      env: sab,
    });
    assert.equal(run.status, 0, run.stderr);
    api = run.stdout;
  });

  it('threads still share it; processes now reach it through this process, not refused', () => {
    assert.match(api, /^threads: 20000$/m);
    assert.match(api, /^processes add: 4000$/m);
    assert.doesNotMatch(api, /TypeError|only threads can share/);
  });

  it('2 processes: Value.add and withLock increments give the exact total', () => {
    assert.match(api, /^processes add: 4000$/m);
    assert.match(api, /^processes withLock: 1000$/m);
  });

  it('arrays and struct arrays written in a process are read here, and back', () => {
    assert.match(api, /^array: 10,11,12,13,14 struct: \[\[0.5,1.5\]\]$/m);
  });

  it('a lock held here times out in a process; an Event and a Condition wake across processes', () => {
    assert.match(api, /^lock timeout: false after >=100ms, then true$/m);
    assert.match(api, /^event set in a process wakes us: true$/m);
    assert.match(api, /^condition wakes a process: true$/m);
    assert.match(api, /^condition times out: false$/m);
  });

  it('locks and a semaphore held in a process are awaited here with acquireAsync', () => {
    assert.match(api, /^Lock held in a process: false, then true$/m);
    assert.match(api, /^RLock held in a process: false, then true$/m);
    assert.match(api, /^semaphore released in a process: true$/m);
  });

  it('a process killed holding a lock is found as with the addon: LockOwnerDiedError, then the lock works', () => {
    assert.match(api, /^killed holder: true true SIGKILL$/m);
    assert.match(api, /^then the lock works: true$/m);
  });

  it("the seed's example prints what the seed prints, on processes", () => {
    const root = join(__dirname, '..', '..', '..');
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        join(root, 'dist', 'cli', 'register.mjs'),
        join(root, 'examples', 'seed-shared.ts'),
      ],
      { encoding: 'utf8', timeout: 60_000, env: sab },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(
      run.stdout,
      'Ounput:\n49\n0.1111111111111111\nHELLO WORLD\n[(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]\n',
    );
  });

  it('where the addon cannot load, the library says once that processes use the slower fallback', () => {
    const run = spawnSync(
      process.execPath,
      ['--require', fixture('no-addon.cjs'), fixture('shared-fallback.cjs'), 'warn'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'processes add: 200\n');
    const warnings = run.stderr.match(/^poolscope: .*$/gm) ?? [];
    assert.equal(warnings.length, 1, run.stderr);
    assert.match(
      warnings[0]!,
      /addon did not load \(simulated: no addon\).*worker processes fall back to a slower server-backed mode.*`npm run build`/,
    );
  });

  for (const socket of ['abstract', 'file'] as const) {
    it(`no leftovers (${socket} socket): the server ends when its memory is let go, never keeps the program alive, leaves no file`, () => {
      const t0 = Date.now();
      const run = spawnSync(
        process.execPath,
        ['--expose-gc', fixture('shared-fallback.cjs'), 'leftovers'],
        {
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...sab, ...(socket === 'file' ? { POOLSCOPE_SHARED_SOCKET: 'file' } : {}) },
        },
      );
      assert.equal(run.status, 0, run.stderr);
      assert.ok(Date.now() - t0 < 30_000, 'the program ended by itself');
      assert.match(run.stdout, /^served: 10, sockets [1-9]$/m);
      assert.match(run.stdout, /^let go: sockets 0, socket dirs 0$/m);
      assert.match(run.stdout, /^again: 5, sockets [1-9]$/m);
      const dirs = JSON.parse(/^socket dirs: (.*)$/m.exec(run.stdout)![1]!) as string[];
      assert.equal(dirs.length, socket === 'file' ? 1 : 0, 'a socket file only when asked for');
      for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} left behind`);
    });
  }

  it('a process that outlives the owner gets SharedMemoryGoneError at once, not a hang', () => {
    const run = spawnSync(process.execPath, [fixture('shared-fallback.cjs'), 'orphan'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: sab,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^child waits: true$/m);
    assert.match(
      run.stdout,
      /^orphan: SharedMemoryGoneError after <5s: shared memory from process \d+ is out of reach: process \d+, which shares it, has exited/m,
    );
    assert.match(run.stdout, /^orphan, again: SharedMemoryGoneError$/m);
  });
});
