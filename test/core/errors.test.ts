import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRequire } from 'node:module';
import { inspect, types } from 'node:util';
import { registerErrorClass, ThrownValueError, UnsendableValue } from 'poolscope';
import { decodeThrown, encodeThrown } from 'poolscope/internal/error-codec';
import { BACKENDS, fixture, rejectionOf, withPool } from '../helpers';

type Rich = Error & {
  code?: string;
  detail?: Record<string, unknown> & { parent?: unknown };
  self?: unknown;
  workerStack?: string;
  callerStack?: string;
};

class ValidationError extends Error {
  field?: string;
}

for (const backend of BACKENDS) {
  describe(`errors arrive whole on the ${backend} backend`, () => {
    const module = fixture('errors.mjs');

    it('keeps name, message, code, nested objects, Dates, Maps, Sets, cycles and the cause chain', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const err = (await rejectionOf(pool.apply('rich'))) as Rich;
        assert.ok(err instanceof Error);
        assert.equal(err.name, 'Error');
        assert.equal(err.message, 'rich failure');
        assert.equal(err.code, 'E_RICH');
        const detail = err.detail!;
        assert.deepEqual(detail.nested, { deep: { list: [1, 'two', { three: 3 }] } });
        assert.ok(detail.when instanceof Date);
        assert.equal((detail.when as Date).toISOString(), '2024-01-02T03:04:05.000Z');
        assert.ok(detail.map instanceof Map);
        assert.deepEqual((detail.map as Map<string, unknown>).get('k'), { v: 1 });
        assert.deepEqual(detail.set, new Set([1, 2, 3]));
        assert.equal(detail.big, 10n);
        assert.deepEqual(detail.bytes, new Uint8Array([1, 2, 3]));
        assert.ok(detail.re instanceof RegExp);
        assert.equal(err.self, err, 'a cycle through the error itself survives');
        assert.equal(detail.parent, detail, 'a cycle through a nested object survives');
        const cause = err.cause as Error;
        assert.ok(cause instanceof Error);
        assert.equal(cause.message, 'root cause');
        assert.ok(cause.cause instanceof TypeError);
        assert.equal((cause.cause as Error).message, 'deeper');
        assert.deepEqual(Object.keys(err).sort(), ['code', 'detail', 'self']);
        // It prints as the error it is.
        assert.ok(types.isNativeError(err));
        assert.match(inspect(err), /Error: rich failure\n {4}at rich/);
        assert.match(inspect(err), /code: 'E_RICH'/);
      });
    });

    it("has the worker's stack and the caller's stack", async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const err = (await rejectionOf(pool.apply('rich'))) as Rich;
        assert.match(err.workerStack!, /at rich \(file:.*errors\.mjs:\d+:\d+\)/);
        assert.match(err.callerStack!, /errors\.test\.js/);
        assert.match(err.stack!, /errors\.mjs[\s\S]*submitted at[\s\S]*errors\.test\.js/);
        assert.doesNotMatch(err.stack!, /worker[/\\]entry\.js/, 'no Poolscope frames in the stack');
      });
    });

    it("builds a lone failure's stacks on first read, through accessors every error shares", async () => {
      // A getter closure of each error's own gave each error a hidden class of its own, which
      // kept what the closure held alive through the main thread's minor garbage collections.
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const a = (await rejectionOf(pool.apply('rich'))) as Rich;
        const b = (await rejectionOf(pool.apply('rich'))) as Rich;
        for (const key of ['stack', 'callerStack']) {
          const da = Object.getOwnPropertyDescriptor(a, key)!;
          const db = Object.getOwnPropertyDescriptor(b, key)!;
          assert.equal(typeof da.get, 'function', `${key} is built on first read`);
          assert.equal(da.get, db.get, `${key}: one getter for both errors`);
          assert.equal(da.set, db.set, `${key}: one setter for both errors`);
          assert.equal(da.enumerable, false);
        }
        assert.match(a.stack!, /--- task #1 rich\(\) ran in worker/);
        assert.match(b.stack!, /--- task #2 rich\(\) ran in worker/);
        assert.equal(
          Object.getOwnPropertyDescriptor(a, 'stack')!.value,
          a.stack,
          'kept once built',
        );
        assert.match(b.callerStack!, /errors\.test\.js/);
        a.callerStack = 'replaced';
        assert.equal(a.callerStack, 'replaced');
        assert.deepEqual(Object.keys(a).sort(), ['code', 'detail', 'self']);
      });
    });

    it("cuts the pool's frames from a worker's stack when source maps are on too", async () => {
      // Source maps name the pool's frame after the file it was built from (entry.ts).
      await withPool(
        { module, backend, size: 1, execArgv: ['--enable-source-maps'] },
        async (pool) => {
          const err = (await rejectionOf(pool.apply('rich'))) as Rich;
          assert.match(err.workerStack!, /at rich \(file:.*errors\.mjs:\d+:\d+\)/);
          assert.doesNotMatch(err.workerStack!, /worker[/\\]entry\.(js|ts)/, err.workerStack);
          assert.doesNotMatch(err.stack!, /worker[/\\]entry\.(js|ts)/, err.stack);
        },
      );
    });

    it('names the submit site of each task; in a burst, later tasks share the last one recorded, and say so', async () => {
      const lineOf = (stack: string): string => /errors\.test\.js:(\d+)/.exec(stack)?.[1] ?? '';
      await withPool({ module, backend, size: 1 }, async (pool) => {
        // Two sites in one synchronous run: each of the first tasks gets its own stack.
        const first = pool.applyAsync('rich');
        const second = pool.applyAsync('rich');
        const burst = Array.from({ length: 20 }, () => pool.applyAsync('rich'));
        const errors = await Promise.all([first, second, ...burst].map((r) => rejectionOf(r)));
        const [a, b] = errors as Rich[];
        assert.notEqual(lineOf(a!.callerStack!), lineOf(b!.callerStack!));
        assert.match(a!.stack!, /; submitted at: ---/);
        // 8 tasks of one function per burst have their own; task #8 was the last of them.
        assert.match(errors[7]!.stack!, /; submitted at: ---/);
        for (const err of errors.slice(8) as Rich[]) {
          assert.match(err.stack!, /; submitted in the same burst as task #8, at: ---/);
          assert.equal(lineOf(err.callerStack!), lineOf((errors[7] as Rich).callerStack!));
        }
      });
      await withPool({ module, backend, size: 1, submitStacks: 'every' }, async (pool) => {
        const burst = Array.from({ length: 20 }, () => pool.applyAsync('rich'));
        for (const err of await Promise.all(burst.map((r) => rejectionOf(r)))) {
          assert.match((err as Rich).stack!, /; submitted at: ---/);
        }
      });
    });

    it('keeps AggregateError members and built-in error classes', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const agg = await rejectionOf(pool.apply('aggregate'));
        assert.ok(agg instanceof AggregateError);
        assert.equal(agg.message, 'two things failed');
        assert.equal(agg.errors.length, 2);
        assert.ok(agg.errors[1] instanceof RangeError);
        assert.equal(agg.errors[1].message, 'second');
        const typeError = await rejectionOf(pool.apply('typeError'));
        assert.ok(typeError instanceof TypeError);
        assert.match(typeError.message, /null/);
      });
    });

    it('keeps a custom class name and its properties, and its class once registered', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const err = (await rejectionOf(pool.apply('custom'))) as ValidationError;
        assert.equal(err.name, 'ValidationError');
        assert.equal(err.field, 'age');
        assert.ok(err instanceof Error);
        registerErrorClass(ValidationError, 'ValidationError');
        const again = await rejectionOf(pool.apply('custom'));
        assert.ok(again instanceof ValidationError);
        assert.equal((again as ValidationError).field, 'age');
      });
    });

    it('replaces what cannot be sent with visible markers and keeps the error', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const err = (await rejectionOf(pool.apply('unsendableProps'))) as Error &
          Record<string, unknown>;
        assert.equal(err.message, 'has a function');
        assert.ok(err.callback instanceof UnsendableValue);
        assert.equal(String(err.callback), '[unsendable function: onDone]');
        assert.ok(err.tag instanceof UnsendableValue);
        assert.match(String(err.tag), /Symbol\(tag\)/);
        assert.ok(err.weak instanceof UnsendableValue);
      });
    });

    it('says what kind of value was thrown when it was not an Error', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const cases: [string, string, unknown][] = [
          ['throwString', 'string', 'just a string'],
          ['throwNumber', 'number', 42],
          ['throwNull', 'null', null],
          ['throwUndefined', 'undefined', undefined],
          ['throwObject', 'object', { status: 503, reason: 'busy' }],
        ];
        for (const [fn, kind, value] of cases) {
          const err = await rejectionOf(pool.apply(fn));
          assert.ok(err instanceof ThrownValueError, fn);
          assert.ok(err instanceof Error);
          assert.equal(err.thrownKind, kind);
          assert.deepEqual(err.value, value);
          assert.match(err.message, new RegExp(`non-Error ${kind}`));
        }
      });
    });

    it("a thrown non-Error's stack is its message, then the caller's frames, none of the pool's", async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const submitFromHere = () => rejectionOf(pool.apply('throwNumber'));
        const err = (await submitFromHere()) as Rich;
        assert.ok((err as Error) instanceof ThrownValueError);
        const [head, ...rest] = err.stack!.split('\n');
        assert.equal(head, `ThrownValueError: ${err.message}`);
        // No frame of the pool's own code receiving the result (it used to be nine of them).
        assert.doesNotMatch(err.stack!, /onResults|decodeThrown|error-codec|backend[/\\]/);
        assert.match(rest[0]!, /^ {4}--- task #\d+ throwNumber\(\) ran in /);
        assert.match(err.stack!, /submitFromHere/);
        assert.equal(err.workerStack, head);
      });
    });

    it('a thrown value that cannot be read fails its task with what could be read; the worker lives on', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const worker = await pool.apply<string>('whoami');
        // A revoked proxy (an immer draft after its recipe): nothing of it can be read.
        const revoked = await rejectionOf(pool.apply('throwRevokedProxy'));
        assert.ok(revoked instanceof ThrownValueError, String(revoked));
        assert.equal(revoked.thrownKind, 'object');
        assert.ok(revoked.value instanceof UnsendableValue);
        assert.match(String(revoked.value), /revoked/);
        // An error with a revoked proxy in its detail and a constructor getter that throws: the
        // rest of it arrives.
        const parts = (await rejectionOf(pool.apply('hostileParts'))) as Rich;
        assert.equal(parts.message, 'hostile parts');
        assert.equal(parts.code, 'E_HOSTILE');
        assert.equal(parts.detail!.ok, 1);
        assert.ok(parts.detail!.draft instanceof UnsendableValue);
        assert.match(parts.workerStack!, /at hostileParts/);
        // An error behind a proxy whose ownKeys trap throws: its name, message and stack.
        const trapped = await rejectionOf(pool.apply('errorBehindTrap'));
        assert.equal(trapped.message, 'behind a proxy');
        assert.match((trapped as Rich).workerStack!, /at errorBehindTrap/);
        // A detached buffer cannot be cloned: marked, the rest kept.
        const detached = (await rejectionOf(pool.apply('detachedDetail'))) as Rich;
        assert.equal(detached.message, 'detached');
        assert.equal(detached.detail!.kept, 'yes');
        assert.ok(detached.detail!.buf instanceof UnsendableValue);
        assert.match(String(detached.detail!.buf), /ArrayBuffer.*cannot be sent.*detached/);
        // None of them cost the worker its life.
        assert.equal(await pool.apply('whoami'), worker);
      });
    });

    it('an async task that rejects arrives the same way through errorCallback', async () => {
      await withPool({ module, backend, size: 1 }, async (pool) => {
        const seen = await new Promise<Error>((resolve) => {
          pool.applyAsync('rejectAsync', [], { errorCallback: resolve });
        });
        assert.equal(seen.message, 'async failure');
        assert.equal((seen as Rich).code, 'E_ASYNC');
      });
    });
  });
}

describe('the error codec', () => {
  it("cuts the runner's frames before an error is sent: the record carries the user's only", () => {
    const err = new Error('boom');
    const user = 'Error: boom\n    at parse (/app/job.js:3:9)';
    err.stack = `${user}\n    at drain (/x/dist/core/worker/entry.js:200:5)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)`;
    const runner = ['/x/dist/core/worker/entry.js:', '/x/core/worker/entry.ts:'] as const;
    const record = encodeThrown(err, runner) as unknown[];
    assert.equal(record[0], '__poolscope_error__');
    assert.equal(record[3], user);
    // The frame named as the source it was built from (source maps on) is cut the same way.
    err.stack = `${user}\n    at drain (/x/core/worker/entry.ts:180:7)`;
    assert.equal(encodeThrown(err, runner)[3], user);
    // The error itself is untouched, and without runner frames its stack travels as it is.
    assert.match(err.stack, /entry\.ts/);
    assert.equal(encodeThrown(err)[3], err.stack);
  });

  it('keeps shared references among many objects, and does not take inherited names for classes', () => {
    // Forty objects, each reachable twice, one of them leading back to the error.
    const items = Array.from({ length: 40 }, (_, i) => ({ i }));
    const err = Object.assign(new Error('many'), {
      items,
      again: [...items].reverse(),
      inner: new RangeError('inner'),
    });
    (items[39] as Record<string, unknown>).back = err;
    const back = decodeThrown(structuredClone(encodeThrown(err))) as typeof err;
    assert.ok(back instanceof Error);
    assert.equal(back.items.length, 40);
    for (let i = 0; i < 40; i++) {
      assert.equal(back.items[i]!.i, i);
      assert.equal(back.again[39 - i], back.items[i], `item ${i} is one object in both arrays`);
    }
    assert.equal((back.items[39] as Record<string, unknown>).back, back);
    assert.ok(back.inner instanceof RangeError);
    // A class whose name differs from the error's name travels with both.
    class ParseError extends Error {}
    const named = Object.assign(new ParseError('bad'), { name: 'CustomName' });
    const revived = decodeThrown(structuredClone(encodeThrown(named)));
    assert.equal(revived.name, 'CustomName');
    assert.equal(revived.message, 'bad');
    // Names that are properties of every object are not taken for classes.
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const odd = Object.assign(new Error(`named ${name}`), { name });
      const got = decodeThrown(structuredClone(encodeThrown(odd)));
      assert.ok(got instanceof Error, name);
      assert.equal(Object.getPrototypeOf(got), Error.prototype, name);
      assert.equal(got.name, name);
      assert.equal(got.message, `named ${name}`);
    }
  });

  it("formats only the frames above the runner's, and leaves a program's own formatting alone", () => {
    const tasks = createRequire(__filename)(fixture('tasks.cjs')) as { fail(i: number): never };
    // This file plays the runner: its frames are cut, the fixture's frame is kept.
    const runner = [`${__filename}:`, '/nowhere/entry.ts:'] as const;
    const thrown = (): Error => {
      try {
        tasks.fail(1);
      } catch (err) {
        return err as Error;
      }
      throw new Error('tasks.fail returned');
    };
    const err = thrown();
    const hook = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace');
    const sent = (encodeThrown(err, runner) as unknown[])[3] as string;
    // Node's own formatting is back in place, as it was.
    assert.deepEqual(Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace'), hook);
    assert.match(sent, /^TypeError: cjs failed: 1\n {4}at .*tasks\.cjs:\d+:\d+\)$/);
    // V8 formatted the error's stack once, without this file's frames.
    assert.equal(err.stack, sent);
    // The same text as Node's own formatting cut at the runner's first frame.
    const formatted = thrown();
    assert.match(formatted.stack!, /errors\.test\.js/);
    assert.equal((encodeThrown(formatted, runner) as unknown[])[3], sent);
    // A program that formats stacks itself keeps its format (then cut as text).
    const own = Error.prepareStackTrace;
    Error.prepareStackTrace = (e: Error) => `custom: ${e.message}`;
    try {
      assert.equal((encodeThrown(thrown(), runner) as unknown[])[3], 'custom: cjs failed: 1');
    } finally {
      Error.prepareStackTrace = own;
    }
  });
});
