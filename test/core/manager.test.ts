/** The Manager: a server process of shared objects, reached through proxies from any process. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Ajv from 'ajv';
import {
  AuthenticationError,
  BrokenBarrierError,
  KeyError,
  Manager,
  ManagerGoneError,
  Process,
  QueueEmptyError,
  QueueFullError,
  RLockProxy,
  SerializationError,
  type AnyProxy,
  type Backend,
} from 'poolscope';
import { Manager as ManagerFromDummy } from 'poolscope/dummy';
import { protocolJsonSchema } from 'poolscope/internal/trace/protocol';
import { BACKENDS, fixture, rejectionOf, traceOf, withPool } from '../helpers';

const tasks = fixture('manager-tasks.mjs');

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

let published = 0;

/** The same object, through another client's connection (published, then looked up). */
async function seenBy<P extends AnyProxy>(client: Manager, owner: Manager, proxy: P): Promise<P> {
  const name = `shared-${++published}`;
  await owner.publish(name, proxy);
  return client.lookup<P>(name);
}

function socketDir(m: Manager): string {
  return dirname(m.address.slice('unix:'.length));
}

describe('Manager proxies', () => {
  let m: Manager;
  before(async () => {
    m = await Manager.start();
  });
  after(async () => {
    await m.stop();
  });

  it('poolscope and poolscope/dummy export the same Manager', () => {
    assert.equal(Manager, ManagerFromDummy);
    assert.match(m.address, /^unix:\/.*poolscope-manager-.*\/manager\.sock$/);
  });

  it('dict is a Map in the manager; a missing key is a KeyError that arrives whole', async () => {
    const d = await m.dict<string, unknown>({ a: 1 });
    await d.set('b', { nested: [1, 2n, new Map([['x', 1]])] });
    assert.equal(await d.get('a'), 1);
    assert.equal(await d.get('zz', 'fallback'), 'fallback');
    assert.deepEqual(await d.get('b'), { nested: [1, 2n, new Map([['x', 1]])] });
    assert.deepEqual(await d.keys(), ['a', 'b']);
    assert.equal(await d.size(), 2);
    assert.equal(await d.setDefault('c', 3), 3);
    await d.update({ e: 5 });
    assert.equal(await d.pop('e'), 5);
    assert.equal(await d.delete('c'), true);
    // undefined, null, -0 and NaN come back as they went (JSON frames must not blur them).
    await d.set('u', undefined);
    assert.equal(await d.get('u', 'fallback'), undefined);
    await d.set('n', null);
    assert.equal(await d.get('n'), null);
    await d.update([
      ['z', -0],
      ['nan', NaN],
    ]);
    assert.ok(Object.is(await d.get('z'), -0));
    assert.ok(Number.isNaN(await d.get('nan')));
    assert.equal(await d.pop('missing', undefined), undefined);
    for (const k of ['u', 'n', 'z', 'nan']) await d.delete(k);
    const err = await rejectionOf(d.pop('nope'));
    assert.ok(err instanceof KeyError, String(err));
    assert.equal(err.key, 'nope');
    assert.match(err.message, /no key "nope" in this dict/);
    assert.match(err.stack!, /at manager unix:.* dict\.pop\(\)/);
    const entries: [string, unknown][] = [];
    for await (const entry of d) entries.push(entry);
    assert.equal(entries.length, 2);
  });

  it('a method the object does not have is a TypeError naming the methods it has', async () => {
    const d = await m.dict();
    const err = await rejectionOf(d.call('frobnicate', 1));
    assert.ok(err instanceof TypeError, String(err));
    assert.match(
      err.message,
      /a manager dict has no method 'frobnicate'; its methods: get, getItem/,
    );
  });

  it('list: negative indexes, deep-equal search, RangeError outside', async () => {
    const l = await m.list([1, { a: 1 }]);
    assert.equal(await l.push(3, 4), 4);
    assert.deepEqual(await l.get(-1), 4);
    await l.remove({ a: 1 });
    assert.deepEqual(await l.toArray(), [1, 3, 4]);
    assert.equal(await l.pop(), 4);
    await l.insert(0, 0);
    assert.deepEqual(await l.slice(0, 2), [0, 1]);
    assert.ok((await rejectionOf(l.get(10))) instanceof RangeError);
    assert.match((await rejectionOf(l.remove(99))).message, /99 is not in the list/);
  });

  it('Namespace holds named attributes', async () => {
    const ns = await m.Namespace({ x: 1 });
    await ns.set('y', 'two');
    assert.deepEqual(await ns.toObject(), { x: 1, y: 'two' });
    assert.equal(await ns.get('missing'), undefined);
  });

  it('Value and Array keep their type; Value has getLock() (unlike Python, gh-79967)', async () => {
    const b = await m.Value('B', 300);
    assert.equal(await b.get(), 44);
    const v = await m.Value('i', 1);
    assert.equal(await v.add(41), 42);
    assert.ok(v.getLock() instanceof RLockProxy);
    assert.equal(await v.withLock(async () => v.set((await v.get()) + 1)), undefined);
    assert.equal(await v.get(), 43);
    const big = await m.Value<bigint>('q', 2n ** 62n);
    assert.equal(await big.add(1n), 2n ** 62n + 1n);
    const raw = await m.Value('d', 0.5, { lock: false });
    assert.throws(() => raw.getLock(), /has no lock/);
    const a = await m.Array('i', [1, 2, 3]);
    await a.set(-1, 30);
    assert.deepEqual(await a.toArray(), [1, 2, 30]);
    assert.ok((await rejectionOf(a.get(3))) instanceof RangeError);
    await assert.rejects(m.Value('z' as never, 1), /unknown type code 'z'/);
  });

  it('Manager.start refuses a startTimeoutMs it cannot keep, before starting anything', async () => {
    for (const startTimeoutMs of [0, -1, Number.NaN, 3e9]) {
      await assert.rejects(
        Manager.start({ startTimeoutMs }),
        (e: Error) =>
          e instanceof RangeError && /^Manager\.start\(\): startTimeoutMs must be/.test(e.message),
      );
    }
  });

  it('a typed Value or Array refuses what its type cannot hold, and keeps what it had', async () => {
    const v = await m.Value('i', 7);
    const refused = await rejectionOf(v.set('abc' as never));
    assert.ok(refused instanceof TypeError);
    assert.match(refused.message, /a manager Value\('i'\) holds integers .*; got the string "abc"/);
    await assert.rejects(v.add('1' as never), /\(in add\(\)\) holds integers/);
    assert.equal(await v.get(), 7);
    await assert.rejects(m.Value('d', 'x' as never), /a manager Value\('d'\) holds numbers/);
    const a = await m.Array('d', [1, 2]);
    await assert.rejects(a.set(1, {} as never), /item 1 of a manager Array\('d'\) holds numbers/);
    assert.deepEqual(await a.toArray(), [1, 2]);
    // A 64-bit Value adds a plain number as a bigint.
    const big = await m.Value<bigint>('q', 1n);
    assert.equal(await big.add(2 as never), 3n);
  });

  it('an argument that cannot be sent is a SerializationError naming the call and the argument', async () => {
    const d = await m.dict();
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const buf = new ArrayBuffer(8);
    structuredClone(buf, { transfer: [buf] });
    for (const [value, reason] of [
      [() => 1, /could not be cloned/],
      [proxy, /it is a Proxy, which the structured clone algorithm refuses/],
      [buf, /An ArrayBuffer is detached/],
    ] as const) {
      const err = await rejectionOf(d.set('k', value));
      assert.ok(err instanceof SerializationError, String(err));
      assert.match(err.message, /^argument 1 of dict\.set\(\) cannot be sent to the manager: /);
      assert.match(err.message, reason);
    }
    // A live proxy of a plain object travels as a copy, as it did.
    await d.set('k', new Proxy({ a: 1 }, {}));
    assert.deepEqual(await d.get('k'), { a: 1 });
  });

  it('Queue: FIFO, get and put time out with QueueEmptyError and QueueFullError', async () => {
    const q = await m.Queue<number>(1);
    await q.put(1);
    assert.ok((await rejectionOf(q.putNowait(2))) instanceof QueueFullError);
    const blockedPut = q.put(2);
    assert.equal(await q.get(), 1);
    await blockedPut;
    assert.equal(await q.get(true, 1000), 2);
    const err = await rejectionOf(q.get(true, 20));
    assert.ok(err instanceof QueueEmptyError, String(err));
    assert.ok((await rejectionOf(q.getNowait())) instanceof QueueEmptyError);
    // A timeout past setTimeout's range waits (it used to end at once with QueueEmptyError).
    const later = new Promise((r) => setTimeout(r, 100)).then(() => q.put(3));
    assert.equal(await q.get(true, 3e9), 3);
    await later;
  });

  it('Event, Semaphore, BoundedSemaphore and Barrier follow Python', async () => {
    const e = await m.Event();
    assert.equal(await e.wait(10), false);
    const waiting = e.wait();
    await e.set();
    assert.equal(await waiting, true);
    const s = await m.Semaphore(1);
    assert.equal(await s.acquire(), true);
    assert.equal(await s.acquire(false), false);
    assert.equal(await s.acquire(true, 10), false);
    await s.release();
    const bs = await m.BoundedSemaphore(1);
    await assert.rejects(bs.release(), /released too many times/);
    const barrier = await m.Barrier(2);
    assert.equal(barrier.parties, 2);
    const indexes = await Promise.all([barrier.wait(), barrier.wait()]);
    assert.deepEqual(indexes.sort(), [0, 1]);
    const err = await rejectionOf(barrier.wait(20));
    assert.ok(err instanceof BrokenBarrierError, String(err));
    assert.equal((await barrier.state()).broken, true);
  });

  it('calls wait in the server without holding up any other call, of this client or another', async () => {
    const other = await Manager.connect(m.address, { authkey: m.authkey });
    try {
      const lock = await m.Lock();
      const d = await m.dict();
      await lock.acquire();
      const theirs = await seenBy(other, m, lock);
      const waiting = theirs.acquire();
      let settled = false;
      void waiting.then(() => (settled = true));
      // Both clients go on while the acquire waits.
      await d.set('k', 1);
      assert.equal(await (await seenBy(other, m, d)).get('k'), 1);
      assert.equal(await theirs.acquire(true, 20), false);
      assert.equal(settled, false);
      await lock.release();
      assert.equal(await waiting, true);
      await theirs.release();
    } finally {
      await other.close();
    }
  });

  it('a Condition wakes a waiter in another client, which holds the lock again on waking', async () => {
    const other = await Manager.connect(m.address, { authkey: m.authkey });
    try {
      const cond = await m.Condition();
      const ns = await m.Namespace({ ready: false });
      const theirCond = await seenBy(other, m, cond);
      const theirNs = await seenBy(other, m, ns);
      await theirCond.acquire();
      const woke = theirCond.waitFor(async () => (await theirNs.get('ready')) === true, 5000);
      await until(() => true, 0);
      await cond.withLock(async () => {
        await ns.set('ready', true);
        await cond.notifyAll();
      });
      assert.equal(await woke, true);
      // It holds the lock again: ours cannot take it until it lets go.
      assert.equal(await cond.acquire(true, 20), false);
      await theirCond.release();
      assert.equal(await cond.acquire(true, 1000), true);
      await cond.release();
      assert.ok((await rejectionOf(cond.wait(10))) instanceof Error, 'wait without the lock');
    } finally {
      await other.close();
    }
  });
});

describe('Manager pipelining', () => {
  it("calls made in one tick leave in one write (besides the lane's), and replies are matched by id", async () => {
    await using m = await Manager.start();
    const v = await m.Value('i', 0);
    const l = await m.list();
    const socket = (m.connection as unknown as { socket: Socket }).socket;
    const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
    let writes = 0;
    socket.write = ((...a: unknown[]) => {
      writes++;
      return write(...a);
    }) as typeof socket.write;
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => (i % 2 ? v.add(1) : l.push(i))),
    );
    // The first call, alone in flight when made, may take the lane and ring the server: one
    // more write at most.
    assert.ok(writes <= 2, `${writes} writes`);
    assert.equal(results[499], 250);
    assert.equal(results[498], 250);
    assert.equal(await v.get(), 250);
  });

  it('a waiting call does not hold up the calls made after it on the same connection', async () => {
    await using m = await Manager.start();
    const e = await m.Event();
    const d = await m.dict();
    const order: string[] = [];
    const waited = e.wait().then(() => order.push('wait'));
    await d.set('x', 1).then(() => order.push('set'));
    await e.set();
    await waited;
    assert.deepEqual(order, ['set', 'wait']);
  });
});

describe('Manager fast lane (shared memory beside the Unix socket)', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('awaited calls, one at a time, take the lane; calls in flight together take the socket', async () => {
    await using m = await Manager.start();
    const v = await m.Value('i', 0);
    assert.ok(m.connection.hasLane());
    const before = m.connection.laneCalls;
    for (let i = 0; i < 100; i++) await v.add(1);
    assert.equal(await v.get(), 100);
    assert.ok(m.connection.laneCalls - before >= 100, String(m.connection.laneCalls - before));
    const lane = m.connection.laneCalls;
    await Promise.all(Array.from({ length: 50 }, () => v.add(1)));
    // The first of the 50 may take the lane; the others are in flight with it.
    assert.ok(m.connection.laneCalls - lane <= 1);
    assert.equal(await v.get(), 150);
  });

  for (const backend of BACKENDS) {
    it(`workers (${backend}) take the lane, and locked increments from 2 of them lose nothing`, async () => {
      await using m = await Manager.start();
      const v = await m.Value('i', 0);
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const [a] = (await Promise.all([
          pool.apply('awaitedCalls', [v, 200]),
          pool.apply('awaitedCalls', [v, 200]),
        ])) as { laneCalls: number; hasLane: boolean }[];
        assert.ok(a!.hasLane);
        assert.ok(a!.laneCalls > 0);
        assert.equal(await v.get(), 400);
        await v.set(0);
        // Contended: a blocked acquire leaves the lane, and its answer comes by the socket.
        await Promise.all([
          pool.apply('lockedIncrements', [v, 300]),
          pool.apply('lockedIncrements', [v, 300]),
        ]);
      });
      assert.equal(await v.get(), 600);
    });
  }

  it('values JSON does not carry, and values larger than the lane, go by the socket', async () => {
    await using m = await Manager.start();
    const d = await m.dict();
    const big = 'x'.repeat(100_000) + '\u00e9\u{1F600}';
    await d.set('big', big);
    assert.equal(await d.get('big'), big);
    const map = new Map<unknown, unknown>([[1n, undefined]]);
    await d.set('map', map);
    assert.deepEqual(await d.get('map'), map);
    await d.set('nan', NaN);
    assert.ok(Number.isNaN(await d.get('nan')));
    assert.equal(await d.get('missing'), undefined);
    const err = await rejectionOf(d.getItem('missing'));
    assert.ok(err instanceof KeyError);
    // The lane still works after all that.
    const before = m.connection.laneCalls;
    assert.equal(await d.size(), 3);
    assert.equal(m.connection.laneCalls, before + 1);
  });

  it('a stopped (SIGSTOP) server: the waiting call parks and its answer comes by the socket', async () => {
    await using m = await Manager.start();
    const v = await m.Value('i', 7);
    await v.get();
    process.kill(m.pid!, 'SIGSTOP');
    try {
      const got = v.get();
      await sleep(100);
      process.kill(m.pid!, 'SIGCONT');
      assert.equal(await got, 7);
    } finally {
      process.kill(m.pid!, 'SIGCONT');
    }
    assert.equal(await v.add(1), 8);
  });

  it('a server killed while a call waits on the lane: ManagerGoneError', async () => {
    const m = await Manager.start();
    const v = await m.Value('i', 0);
    await v.get();
    const pid = m.pid!;
    process.kill(pid, 'SIGSTOP');
    const got = v.get();
    process.kill(pid, 'SIGKILL');
    const err = await rejectionOf(got);
    assert.ok(err instanceof ManagerGoneError, String(err));
    assert.match(err.message, /^Value\.get\(\): .* was killed by SIGKILL$/);
    await m.stop();
  });

  it('POOLSCOPE_MANAGER_LANE=0 in the server: no lane, every call by the socket', async () => {
    await using m = await Manager.start({ env: { ...process.env, POOLSCOPE_MANAGER_LANE: '0' } });
    const v = await m.Value('i', 0);
    for (let i = 0; i < 20; i++) await v.add(1);
    assert.equal(await v.get(), 20);
    assert.ok(!m.connection.hasLane());
    assert.equal(m.connection.laneCalls, 0);
  });

  it('the server keeps no descriptor of a client that has gone', async () => {
    await using m = await Manager.start();
    const fds = () => readdirSync(`/proc/${m.pid}/fd`).length;
    const v = await m.Value('i', 0);
    await v.get();
    const baseline = fds();
    for (let i = 0; i < 10; i++) {
      const client = await Manager.connect(m.address, { authkey: m.authkey });
      const mine = await seenBy(client, m, v);
      await mine.add(1);
      assert.ok(client.connection.hasLane());
      await client.close();
    }
    await until(() => fds() <= baseline);
    assert.equal(await v.get(), 10);
  });
});

describe('Manager transport and authentication', () => {
  it('listens on TCP when asked; a client connects by address and key', async () => {
    await using m = await Manager.start({
      address: { host: '127.0.0.1', port: 0 },
      authkey: 'secret',
    });
    assert.match(m.address, /^tcp:127\.0\.0\.1:\d+$/);
    const d = await m.dict();
    await d.set('from', 'owner');
    await using client = await Manager.connect(m.address, { authkey: 'secret' });
    const theirs = await seenBy(client, m, d);
    assert.equal(await theirs.get('from'), 'owner');
  });

  it('a wrong key is refused with AuthenticationError, and the manager serves on', async () => {
    await using m = await Manager.start({ authkey: 'right' });
    const err = await rejectionOf(Manager.connect(m.address, { authkey: 'wrong' }));
    assert.ok(err instanceof AuthenticationError, String(err));
    assert.match(err.message, /was refused: wrong authkey/);
    assert.equal(err.address, m.address);
    await assert.rejects(
      Manager.connect(m.address, {} as never),
      /Manager.connect\(address, \{ authkey \}\): the authkey is required/,
    );
    const d = await m.dict();
    assert.equal(await d.size(), 0);
  });

  it('a stranger sending junk is cut off without an answer, and the manager serves on', async () => {
    await using m = await Manager.start();
    const socket = connect(m.address.slice('unix:'.length));
    const received: Buffer[] = [];
    socket.on('data', (b: Buffer) => received.push(b));
    socket.write(Buffer.alloc(64, 'junk'));
    await new Promise((r) => socket.once('close', r));
    const got = Buffer.concat(received);
    // The challenge (40 bytes), then a single 0: refused, and nothing was deserialized.
    assert.equal(got.length, 41);
    assert.equal(got[40], 0);
    const l = await m.list([1]);
    assert.deepEqual(await l.toArray(), [1]);
  });

  it('a server that is not a manager is refused with AuthenticationError', async () => {
    const impostor = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'.padEnd(64)));
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
    const port = (impostor.address() as { port: number }).port;
    try {
      const err = await rejectionOf(Manager.connect({ host: '127.0.0.1', port }, { authkey: 'k' }));
      assert.ok(err instanceof AuthenticationError, String(err));
      assert.match(err.message, /not a Poolscope manager/);
    } finally {
      impostor.close();
    }
  });

  it('nothing listening: ManagerGoneError saying so', async () => {
    const err = await rejectionOf(
      Manager.connect('/tmp/poolscope-no-such-dir/manager.sock', { authkey: 'k' }),
    );
    assert.ok(err instanceof ManagerGoneError, String(err));
    assert.equal(err.reason, 'unreachable');
    assert.match(err.message, /could not connect to the manager at unix:.*ENOENT/);
  });
});

describe('a manager that goes away', () => {
  it('killed: every pending and later call fails with ManagerGoneError naming address and signal', async () => {
    const m = await Manager.start();
    const dir = socketDir(m);
    const e = await m.Event();
    const q = await m.Queue();
    const client = await Manager.connect(m.address, { authkey: m.authkey });
    const theirs = await seenBy(client, m, e);
    const pending = [e.wait(), q.get(), theirs.wait()];
    await until(() => true, 0);
    process.kill(m.pid!, 'SIGKILL');
    const errors = await Promise.all(pending.map((p) => rejectionOf(p)));
    for (const err of errors) assert.ok(err instanceof ManagerGoneError, String(err));
    const [waitErr, getErr, theirErr] = errors as ManagerGoneError[];
    assert.match(
      waitErr!.message,
      new RegExp(
        `^Event\\.wait\\(\\): the manager at ${m.address} \\(pid ${m.pid}\\) was killed by SIGKILL$`,
      ),
    );
    assert.equal(waitErr!.reason, 'killed');
    assert.equal(waitErr!.signal, 'SIGKILL');
    assert.equal(waitErr!.exitCode, -9);
    assert.match(getErr!.message, /^Queue\.get\(\):/);
    // Another client cannot know the signal, but says the process is gone.
    assert.match(theirErr!.message, /is gone \(its process no longer exists\)/);
    const later = await rejectionOf(q.qsize());
    assert.ok(later instanceof ManagerGoneError);
    assert.match(later.message, /was killed by SIGKILL/);
    await assert.rejects(m.dict(), ManagerGoneError);
    await until(() => !existsSync(dir));
    await m.stop();
    await client.close();
  });

  it('stopped: calls fail with ManagerGoneError; the server and its socket directory are gone', async () => {
    const m = await Manager.start();
    const dir = socketDir(m);
    const pid = m.pid!;
    const d = await m.dict();
    assert.ok(existsSync(dir));
    await m.stop();
    assert.equal(processExists(pid), false);
    assert.equal(existsSync(dir), false);
    const err = await rejectionOf(d.get('a'));
    assert.ok(err instanceof ManagerGoneError, String(err));
    assert.equal(err.reason, 'stopped');
    assert.match(err.message, /was stopped \(manager\.stop\(\)\)/);
  });
});

for (const backend of BACKENDS) {
  const where = backend === 'process' ? 'processes' : 'threads';
  describe(`Manager proxies in worker ${where}`, () => {
    it('proxies passed to tasks reconnect there; locked increments from two workers are exact', async () => {
      await using m = await Manager.start();
      await withPool({ module: tasks, backend, size: 2 }, async (pool) => {
        const v = await m.Value('i', 0);
        await Promise.all([
          pool.apply('lockedIncrements', [v, 200]),
          pool.apply('lockedIncrements', [v, 200]),
        ]);
        assert.equal(await v.get(), 400);
        const d = await m.dict();
        const l = await m.list();
        await Promise.all(['a', 'b', 'c'].map((k) => pool.apply('record', [d, l, k])));
        assert.deepEqual((await l.toArray()).sort(), ['a', 'b', 'c']);
        assert.equal(await d.size(), 3);
      });
    });

    it('a Process target that dies holding a manager Lock has it released', async () => {
      await using m = await Manager.start();
      const lock = await m.Lock();
      const started = await m.Event();
      const p = new Process({
        module: tasks,
        target: backend === 'process' ? 'holdLockAndDie' : 'holdLockAndExit',
        args: [lock, started],
        backend: backend as Backend,
      });
      p.start();
      assert.equal(await started.wait(10_000), true);
      await p.join();
      assert.equal(p.exitCode, backend === 'process' ? -9 : 3);
      assert.equal(await lock.acquire(true, 10_000), true);
      await lock.release();
    });

    it('a proxy of a dead manager fails in the worker with ManagerGoneError', async () => {
      const m = await Manager.start();
      const d = await m.dict();
      await withPool({ module: tasks, backend, size: 1 }, async (pool) => {
        await pool.apply('record', [d, await m.list(), 'warm']);
        process.kill(m.pid!, 'SIGKILL');
        await until(() => !processExists(m.pid!));
        const r = (await pool.apply('callDeadManager', [d])) as { name: string; reason: string };
        assert.equal(r.name, 'ManagerGoneError');
        assert.ok(['connection-lost', 'unreachable'].includes(r.reason), r.reason);
      });
      await m.stop();
    });
  });
}

describe('Manager in the trace', () => {
  it('started, operation counts per proxy type, and stopped, all valid protocol v1', () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(protocolJsonSchema());
    const events = traceOf(fixture('manager-trace-script.cjs')).map(
      (l) => JSON.parse(l) as Record<string, unknown>,
    );
    for (const e of events) assert.ok(validate(e), JSON.stringify(validate.errors));
    const started = events.find((e) => e.type === 'manager.started')!;
    assert.match(String(started.address), /^unix:/);
    const ops = events.filter((e) => e.type === 'manager.ops');
    const last = ops[ops.length - 1]!.ops as Record<string, number>;
    assert.equal(last.dict, 10);
    assert.equal(last.Lock, 2);
    assert.equal(last.Value, 5);
    const stopped = events.find((e) => e.type === 'manager.stopped')!;
    assert.equal(stopped.reason, 'stopped');
    assert.equal(stopped.manager, started.manager);
  });
});
