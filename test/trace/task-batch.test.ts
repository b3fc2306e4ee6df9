/** Protocol v2's `tasks` batch: what the producer writes is exactly the v1 events it stands for. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tickToMs, Tracer } from 'poolscope/internal/trace/emitter';
import { preview } from 'poolscope/internal/trace/error-info';
import { PoolTrace } from 'poolscope/internal/trace/pool-trace';
import type { EventOf, TraceEvent } from 'poolscope/internal/trace/protocol';
import { Store, type StoreOptions } from 'poolscope/internal/trace/store';
import { expandEvent, expandTasks, TaskBatchWriter } from 'poolscope/internal/trace/task-batch';
import { traceOf } from '../helpers';

const fixtures = join(__dirname, '..', '..', '..', 'test', 'fixtures');
const examples = join(__dirname, '..', '..', '..', 'examples');

/** Events written by a real Tracer (file sink) through a PoolTrace, as parsed lines. */
function traced(write: (trace: PoolTrace, tracer: Tracer) => void): TraceEvent[] {
  const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
  try {
    const file = join(dir, 'trace.jsonl');
    const tracer = new Tracer('batch', `file:${file}`, undefined);
    write(new PoolTrace(tracer, 1), tracer);
    tracer.flushSync();
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as TraceEvent);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A Store's runs, for deepEqual, with each pool's `tasks` and `evicted` (read through getters,
 * which build the models of tasks the Store holds as columns).
 */
function model(store: Store): unknown {
  return [...store.runs.values()].map((run) => ({
    ...run,
    pools: [...run.pools].map(([id, pool]) => [
      id,
      { ...pool, tasks: [...pool.tasks], evicted: pool.evicted },
    ]),
  }));
}

/** Milliseconds since the epoch as the writer's whole microseconds (its origin is 0 here). */
const us = (ms: number): number => Math.round(ms * 1000);

describe('the tasks batch', () => {
  it('writes records a consumer reads back exactly', () => {
    const w = new TaskBatchWriter();
    const t0 = 1_700_000_000_000.25;
    assert.ok(w.submitted('9:1', us(t0), 1, 'inc', 0, 1, [41, -7, 0, 2147483647, -2147483648]));
    w.started('9:1', us(t0 + 0.002), 1, 2);
    w.submitted('9:2', us(t0 + 1), 1, 'other "fn" ✓', 1, 3, '[ { a: 1 } ]');
    w.succeeded('9:1', us(t0 + 2.5), 1, 'inc', 2, 42, 13, 12_346);
    w.succeeded('9:2', us(t0 + 3), 1, 'other "fn" ✓', 1, 'naïve "text"', 2_000_000_000, 0);
    w.succeeded('9:1', us(t0 - 1), 2, 'inc', 1, 'undefined', 0, 0);
    // Started and succeeded at one time on one worker: one record, two events.
    w.started('9:1', us(t0 + 4), 3, 1);
    w.succeeded('9:1', us(t0 + 4), 3, 'inc', 1, -5, 1, 500);
    w.started('9:1', us(t0 + 4.5), 6, 1);
    w.succeeded('9:1', us(t0 + 4.5), 6, 'inc', 1, 'undefined', 1, 500);
    // Started, then not that task: the started record stands alone.
    w.started('9:1', us(t0 + 5), 4, 1);
    w.succeeded('9:1', us(t0 + 5), 3, 'inc', 2, 0, 0, 0);
    w.submitted('9:1', us(t0 + 5.5), 7, 'inc', 0, 1, []);
    w.started('9:1', us(t0 + 6), 5, 2);
    // What 32 bits cannot hold is refused, for the caller to write as a v1 event.
    assert.equal(w.succeeded('9:1', us(t0 + 7), 5, 'inc', 2, 1, 3_000_000_000, 0), false);
    const line = w.close('{"v":2,', ',"pid":9,"tid":0,"run":"r"').join('');
    assert.ok(line.endsWith('}\n'));
    assert.equal(w.length, 0, 'closing empties the writer');
    const batch = JSON.parse(line) as EventOf<'tasks'>;
    assert.equal(batch.type, 'tasks');
    assert.equal(batch.ts, t0);
    assert.deepEqual(batch.pools, ['9:1', '9:2']);
    assert.deepEqual(batch.fns, ['inc', 'other "fn" ✓']);
    assert.deepEqual(batch.strings, ['[ { a: 1 } ]', 'naïve "text"', 'undefined']);
    const env = { v: 2, pid: 9, tid: 0, run: 'r' };
    const ended = (ts: number, task: number, fn: string, worker: number, result: string) => ({
      ...env,
      ts,
      type: 'task.succeeded',
      pool: fn === 'inc' ? '9:1' : '9:2',
      task,
      fn,
      worker,
      result,
    });
    const started = (ts: number, task: number, worker: number) => ({
      ...env,
      ts,
      type: 'task.started',
      pool: '9:1',
      task,
      worker,
    });
    assert.deepEqual(expandTasks(batch), [
      {
        ...env,
        ts: t0,
        type: 'task.submitted',
        pool: '9:1',
        task: 1,
        fn: 'inc',
        kind: 'apply',
        args: '[ 41, -7, 0, 2147483647, -2147483648 ]',
        items: 1,
      },
      started(t0 + 0.002, 1, 2),
      {
        ...env,
        ts: t0 + 1,
        type: 'task.submitted',
        pool: '9:2',
        task: 1,
        fn: 'other "fn" ✓',
        kind: 'map',
        args: '[ { a: 1 } ]',
        items: 3,
      },
      { ...ended(t0 + 2.5, 1, 'inc', 2, '42'), durationMs: 0.013, queuedMs: 12.346 },
      {
        ...ended(t0 + 3, 1, 'other "fn" ✓', 1, 'naïve "text"'),
        durationMs: 2_000_000,
        queuedMs: 0,
      },
      { ...ended(t0 - 1, 2, 'inc', 1, 'undefined'), durationMs: 0, queuedMs: 0 },
      started(t0 + 4, 3, 1),
      { ...ended(t0 + 4, 3, 'inc', 1, '-5'), durationMs: 0.001, queuedMs: 0.5 },
      started(t0 + 4.5, 6, 1),
      { ...ended(t0 + 4.5, 6, 'inc', 1, 'undefined'), durationMs: 0.001, queuedMs: 0.5 },
      started(t0 + 5, 4, 1),
      { ...ended(t0 + 5, 3, 'inc', 2, '0'), durationMs: 0, queuedMs: 0 },
      {
        ...env,
        ts: t0 + 5.5,
        type: 'task.submitted',
        pool: '9:1',
        task: 7,
        fn: 'inc',
        kind: 'apply',
        args: '[]',
        items: 1,
      },
      started(t0 + 6, 5, 2),
    ]);
  });

  it('writes a burst as runs: 2 values a submission and 3 a result, read back as the events', () => {
    const w = new TaskBatchWriter();
    const t0 = 1_700_000_000_000;
    const expected: Record<string, unknown>[] = [];
    const env = { v: 2, pid: 9, tid: 0, run: 'r' };
    const submit = (pool: string, at: number, task: number, fn: string, args: number[]) => {
      assert.ok(w.submitted(pool, us(at), task, fn, 0, 1, args));
      expected.push({
        ...env,
        ts: at,
        type: 'task.submitted',
        pool,
        task,
        fn,
        kind: 'apply',
        args: args.length ? `[ ${args.join(', ')} ]` : '[]',
        items: 1,
      });
    };
    const ran = (at: number, task: number, fn: string, worker: number, result: number | string) => {
      w.started('9:1', us(at), task, worker);
      assert.ok(w.succeeded('9:1', us(at), task, fn, worker, result, 7, 900 + task));
      expected.push(
        { ...env, ts: at, type: 'task.started', pool: '9:1', task, worker },
        {
          ...env,
          ts: at,
          type: 'task.succeeded',
          pool: '9:1',
          task,
          fn,
          worker,
          result: String(result),
          durationMs: 0.007,
          queuedMs: (900 + task) / 1000,
        },
      );
    };
    // 1000 submissions with one integer argument: one run, until something breaks it.
    for (let task = 1; task <= 1000; task++) submit('9:1', t0 + task / 1000, task, 'inc', [task]);
    submit('9:1', t0 + 1.5, 1001, 'inc', [1, 2]); // two arguments
    submit('9:1', t0 + 1.6, 1002, 'inc', [5]);
    submit('9:1', t0 + 1.7, 1004, 'inc', [6]); // not the next task
    submit('9:1', t0 + 1.8, 1005, 'dec', [7]); // another function
    submit('9:2', t0 + 1.9, 1, 'inc', [8]); // another pool
    submit('9:1', t0 + 2, 1006, 'dec', [9]);
    // A worker's results: one run per message (one time), per worker, while results are integers.
    for (let task = 1; task <= 500; task++) ran(t0 + 3, task, 'inc', 1, task + 1);
    for (let task = 501; task <= 1000; task++) ran(t0 + 3, task, 'inc', 2, task + 1);
    ran(t0 + 3, 1001, 'inc', 2, 'undefined');
    ran(t0 + 3, 1002, 'inc', 2, 6);
    ran(t0 + 4, 1003, 'inc', 2, 7);
    const line = w.close('{"v":2,', ',"pid":9,"tid":0,"run":"r"').join('');
    const batch = JSON.parse(line) as EventOf<'tasks'>;
    assert.deepEqual(expandTasks(batch), expected);
    // 1000 submissions as 2 values each, 1000 results as 3, and a few headers.
    const values = Buffer.from(batch.ops, 'base64').length / 4;
    assert.ok(values < 1000 * 5 + 100, `${values} values`);
  });

  it("reads a record's time back as the very number the same instant has as an event's ts", () => {
    // Times on the emitter's whole-microsecond grid. Read back as the batch's time plus the
    // record's microseconds, about one in four came out a ulp or more off (1796012679720.164
    // read as 1796012679720.1638), enough for a viewer to put a task's end after the start of
    // its worker's next task, written in the next batch with its own ts.
    for (let i = 0; i < 500; i++) {
      const base = Math.round((1_796_012_679_719.702 + i * 0.0173) * 1000) / 1000;
      const at = Math.round((base + 0.46 + i * 0.001) * 1000) / 1000;
      const w = new TaskBatchWriter();
      assert.ok(w.started('9:1', us(base), 1, 1));
      assert.ok(w.succeeded('9:1', us(at), 2, 'inc', 1, 0, 1, 0));
      const line = JSON.parse(w.close('{"v":2,', ',"pid":9,"run":"r"').join('')) as TraceEvent;
      const times = expandEvent(line).map((e) => e.ts);
      assert.deepEqual(times, [base, at], `batch at ${base}, record at ${at}`);
    }
  });

  it('a task event a record cannot hold is written as a v1 event, in its place', () => {
    const events = traced((trace) => {
      trace.submitted(1, 'f', 'apply', [1], 1, 1000);
      trace.started(1, 1, 1001);
      trace.succeeded(1, 'f', 1, 2, 40 * 60_000_000, 0, 1002);
      trace.submitted(2, 'f', 'apply', [2], 1, 1003);
    });
    assert.deepEqual(
      events.map((e) => e.type),
      ['tasks', 'task.succeeded', 'tasks'],
    );
    const ended = events[1] as EventOf<'task.succeeded'>;
    assert.equal(ended.durationMs, 40 * 60_000);
    assert.equal(ended.ts, tickToMs(1002));
    assert.deepEqual(
      events.flatMap(expandEvent).map((e) => e.type),
      ['task.submitted', 'task.started', 'task.succeeded', 'task.submitted'],
    );
  });

  it('previews of arguments and results are the ones v1 events carried', () => {
    const payloads: unknown[][] = [
      [],
      [1],
      [-0],
      [1.5, 2, 3],
      [1, 2, 3, 4, 5, 6, 7],
      [1, 2, 3, 4, 5, 6, 7, 8],
      [-1.2345678901234567e-300, -1.2345678901234567e-300, -1.2345678901234567e-300],
      [true, false, null],
      [undefined],
      ['text'],
      ['x'.repeat(500)],
      [NaN],
      [Infinity],
      [{ a: [1, 2] }],
      [10n],
      [new Map([[1, 2]])],
    ];
    const results: unknown[] = [
      7,
      -0,
      0.1 + 0.2,
      NaN,
      -Infinity,
      true,
      null,
      undefined,
      '',
      'é"\n',
      'y'.repeat(300),
      [1, 'a'],
      { nested: { deep: { deeper: 1 } } },
      10n,
      Symbol('s'),
    ];
    const events = traced((trace) => {
      payloads.forEach((p, i) => trace.submitted(i + 1, 'f', 'apply', p, 1, 1000 + i));
      results.forEach((r, i) => trace.succeeded(i + 1, 'f', 1, r, 5, 250, 2000 + i));
    });
    assert.ok(events.every((e) => e.type === 'tasks'));
    const expanded = events.flatMap(expandEvent);
    const args = expanded.filter((e) => e.type === 'task.submitted').map((e) => e.args);
    assert.deepEqual(
      args,
      payloads.map((p) => preview(p)),
    );
    const shown = expanded.filter((e) => e.type === 'task.succeeded').map((e) => e.result);
    assert.deepEqual(
      shown,
      results.map((r) => preview(r)),
    );
  });

  it('is closed before any other event, so the order of events is kept', () => {
    const events = traced((trace) => {
      trace.submitted(1, 'f', 'apply', [1], 1, 1000);
      trace.submitted(2, 'f', 'apply', [2], 1, 1000);
      trace.started(1, 1, 1001);
      trace.succeeded(1, 'f', 1, 2, 100, 1, 1002);
      trace.failed(2, 'f', 1, new Error('no'), 200);
      trace.succeeded(3, 'f', 1, 4, 100, 1, 1003);
      trace.closed();
    });
    assert.deepEqual(
      events.map((e) => e.type),
      ['tasks', 'task.failed', 'tasks', 'pool.closed'],
    );
    assert.deepEqual(
      events.flatMap(expandEvent).map((e) => e.type),
      [
        'task.submitted',
        'task.submitted',
        'task.started',
        'task.succeeded',
        'task.failed',
        'task.succeeded',
        'pool.closed',
      ],
    );
  });

  it('a malformed batch is reported and skipped, never fatal', () => {
    const store = new Store();
    const env = { v: 2, ts: 1, pid: 1, run: 'r', type: 'tasks', pools: ['1:1'], fns: ['f'] };
    const ops = (...ints: number[]) => Buffer.from(new Int32Array(ints).buffer).toString('base64');
    const bad = [
      { ...env, strings: [], ops: ops(1, 0, 1, 0, 0, 1, 0) }, // no pool record first
      { ...env, strings: [], ops: ops(0, 0, 9, 0, 1, 0) }, // unknown record type
      { ...env, strings: [], ops: ops(0, 0, 1, 0, 1, 0, 7, 1, 0) }, // kind out of range
      { ...env, strings: [], ops: ops(0, 0, 1, 0, 1, 0, 0, 1, -2) }, // args string missing
      { ...env, strings: [], ops: ops(0, 0, 1, 0, 1, 0, 0, 1, 3, 1) }, // cut short
      { ...env, strings: [], ops: ops(0, 0, 5, 0, 1, 0, 1, 0, 0, 0) }, // result string missing
      { ...env, strings: [], ops: 'AAA' }, // not whole int32 values
      { ...env, strings: [], ops: [1, 2] },
      { ...env, ops: ops(0, 0) }, // no strings
    ];
    for (const event of bad) store.applyLine(JSON.stringify(event));
    assert.equal(store.problemCount, bad.length);
    for (const p of store.problems) assert.match(p, /tasks event could not be applied: tasks:/);
  });
});

describe('the Store reads a batch as the v1 events it stands for', () => {
  const options: StoreOptions[] = [
    {},
    { tasksPerPool: 10 },
    { tasksPerPool: 100, barsPerPool: 500 },
    { barsPerPool: 100_000 },
  ];
  for (const [name, script, args] of [
    ['a flood of 20k tasks and a failure', join(fixtures, 'flood-script.cjs'), ['20000']],
    ['callbacks, failures, two workers', join(examples, 'apply-async-callbacks.mjs'), []],
    ['a killed worker', join(examples, 'worker-killed.mjs'), ['--threads']],
  ] as const) {
    it(`the same model: ${name}`, () => {
      const lines = traceOf(script, [...args], [], 'same');
      assert.ok(lines.some((l) => l.includes('"type":"tasks"')));
      for (const opts of options) {
        const batched = new Store(opts);
        const v1 = new Store(opts);
        lines.forEach((line, index) => {
          batched.applyLine(line);
          for (const e of expandEvent(JSON.parse(line) as TraceEvent))
            v1.applyLine(JSON.stringify({ ...e, v: 1 }));
          // A view reading the models now and then, in the middle of a burst too.
          if (index % 3 === 1) assert.deepEqual(model(batched), model(v1), `line ${index}`);
        });
        assert.deepEqual(batched.problems, []);
        assert.deepEqual(v1.problems, []);
        assert.equal(batched.version, v1.version, JSON.stringify(opts));
        assert.deepEqual(model(batched), model(v1), JSON.stringify(opts));
      }
    });
  }
});

describe('the Store builds the models of a burst when they are read, as its events would', () => {
  /** A small deterministic PRNG (mulberry32): the same streams on every run. */
  function random(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /**
   * Lines of a random run of one pool: tasks submitted, started on 2 or 3 workers in about the
   * order they came (a few before their submission), ending (often at the time the next starts,
   * one record), some failing; batches closed at random points, as flushes are.
   */
  function stream(seed: number): string[] {
    const rnd = random(seed);
    const w = new TaskBatchWriter();
    const lines: string[] = [];
    const close = () => {
      if (w.length !== 0) lines.push(w.close('{"v":2,', ',"pid":9,"tid":0,"run":"r"').join(''));
    };
    let at = 1_700_000_000_000_000;
    const queued: number[] = [];
    const running = new Map<number, number>();
    const workers = 2 + Math.floor(rnd() * 2);
    /** Tasks whose start (and maybe end) arrives before their submission, as from two processes. */
    const early = new Set<number>();
    let next = 1;
    for (let step = 0; step < 600; step++) {
      at += Math.floor(rnd() * 3);
      const r = rnd();
      if (r < 0.35 && next <= 200) {
        const args = rnd() < 0.9 ? [next] : [next, 2];
        w.submitted('9:1', at, next, rnd() < 0.9 ? 'inc' : 'dec', 0, 1, args);
        if (!early.has(next)) queued.push(next);
        next++;
        continue;
      }
      const worker = 1 + Math.floor(rnd() * workers);
      if (r < 0.38 && next < 200 && !running.has(worker)) {
        w.started('9:1', at, next + 1, worker);
        running.set(worker, next + 1);
        early.add(next + 1);
        continue;
      }
      const current = running.get(worker);
      if (current !== undefined) {
        running.delete(worker);
        if (rnd() < 0.1) {
          close();
          const failed = { pool: '9:1', task: current, fn: 'inc', worker };
          const error = { thrown: 'error', name: 'Error', message: 'no', frames: [], props: {} };
          lines.push(
            JSON.stringify({
              v: 2,
              ts: at / 1000,
              pid: 9,
              tid: 0,
              run: 'r',
              type: 'task.failed',
              ...failed,
              error,
            }),
          );
        } else {
          const result = rnd() < 0.9 ? current * 2 : 'undefined';
          w.succeeded('9:1', at, current, 'inc', worker, result, 5, 10);
        }
      }
      if (queued.length > 0 && rnd() < 0.9) {
        // Mostly the oldest queued task; now and then a later one (another worker's batch).
        const pick = rnd() < 0.8 ? 0 : Math.floor(rnd() * Math.min(queued.length, 8));
        const task = queued.splice(pick, 1)[0]!;
        w.started('9:1', at, task, worker);
        running.set(worker, task);
      }
      if (rnd() < 0.03) close();
    }
    close();
    return lines;
  }

  for (const tasksPerPool of [1, 2, 3, 5, 8, 40]) {
    it(`the same models, read at any time, keeping ${tasksPerPool}`, () => {
      for (let seed = 1; seed <= 40; seed++) {
        const lines = stream(seed * 7919 + tasksPerPool);
        const rnd = random(seed);
        const batched = new Store({ tasksPerPool, barsPerPool: seed % 2 ? 50 : 0 });
        const v1 = new Store({ tasksPerPool, barsPerPool: seed % 2 ? 50 : 0 });
        lines.forEach((line, index) => {
          batched.applyLine(line);
          for (const e of expandEvent(JSON.parse(line) as TraceEvent))
            v1.applyLine(JSON.stringify({ ...e, v: 1 }));
          if (rnd() < 0.3)
            assert.deepEqual(model(batched), model(v1), `seed ${seed}, line ${index}`);
        });
        assert.deepEqual(batched.problems, []);
        assert.deepEqual(model(batched), model(v1), `seed ${seed}`);
      }
    });
  }
});
