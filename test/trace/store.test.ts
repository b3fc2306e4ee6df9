import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TraceEvent } from 'poolscope/internal/trace/protocol';
import { Store } from 'poolscope/internal/trace/store';
import { traceOf } from '../helpers';

const examples = join(__dirname, '..', '..', '..', 'examples');

const base = { v: 1 as const, pid: 10, tid: 0, run: 'r' };
let clock = 1000;
function ev<T extends TraceEvent['type']>(type: T, fields: Record<string, unknown>): TraceEvent {
  return { ...base, ts: clock++, type, ...fields } as TraceEvent;
}
const failure = (name: string) => ({
  thrown: 'error',
  name,
  message: `${name} happened`,
  frames: [],
  props: {},
});

describe('the Store', () => {
  it('replays a real trace: counts, workers, errors and callbacks match the run', () => {
    const store = new Store();
    for (const line of traceOf(join(examples, 'apply-async-callbacks.mjs'))) store.applyLine(line);
    assert.deepEqual(store.problems, []);
    const run = store.runs.get('test-run')!;
    assert.equal(run.pools.size, 1);
    const pool = [...run.pools.values()][0]!;
    assert.equal(pool.backend, 'process');
    assert.equal(pool.size, 2);
    assert.equal(pool.state, 'closed');
    assert.deepEqual(pool.counts, {
      submitted: 5,
      queued: 0,
      running: 0,
      passed: 3,
      failed: 2,
      errored: 0,
    });
    assert.equal(pool.workers.size, 2);
    for (const w of pool.workers.values()) {
      assert.equal(w.state, 'exited');
      assert.equal(w.exitCode, 0);
      assert.equal(w.reason, 'normal');
      assert.equal(typeof w.pid, 'number');
    }
    assert.equal(run.errorCount, 2);
    assert.ok(
      run.errors.every((e) => e.error.name === 'RangeError' && e.error.code === 'E_NEGATIVE'),
    );
    assert.equal(run.errors[0]!.fn, 'checkedSqrt');
    assert.ok(run.errors[0]!.error.frames.some((f) => f.fn === 'checkedSqrt' && f.line! > 0));
    assert.deepEqual(run.callbacks, { invoked: 5, threw: 0 });
    const task = [...pool.tasks.values()].find((t) => t.state === 'passed')!;
    assert.equal(task.fn, 'checkedSqrt');
    assert.match(task.args, /^\[ \d+ \]$/);
    assert.ok(task.durationMs! >= 0);
  });

  it('replays a crash: the lost task is errored and the worker exit has its code and signal', () => {
    const store = new Store();
    for (const line of traceOf(join(examples, 'worker-killed.mjs'))) store.applyLine(line);
    const pool = [...store.runs.get('test-run')!.pools.values()][0]!;
    assert.equal(pool.counts.errored, 2);
    const exits = [...pool.workers.values()].filter(
      (w) => w.reason === 'killed' || w.reason === 'crash',
    );
    assert.deepEqual(
      exits.map((w) => [w.exitCode, w.signal, w.reason]),
      [
        [-9, 'SIGKILL', 'killed'],
        [3, null, 'crash'],
      ],
    );
  });

  it('takes events in any order and never moves a task backwards', () => {
    const store = new Store();
    store.apply(
      ev('task.succeeded', {
        pool: '10:1',
        task: 1,
        worker: 1,
        result: '4',
        durationMs: 2,
        queuedMs: 0,
      }),
    );
    store.apply(ev('task.started', { pool: '10:1', task: 1, worker: 1 }));
    store.apply(
      ev('task.submitted', {
        pool: '10:1',
        task: 1,
        fn: 'square',
        kind: 'apply',
        args: '[ 2 ]',
        items: 1,
      }),
    );
    store.apply(
      ev('pool.created', {
        pool: '10:1',
        backend: 'thread',
        size: 2,
        module: '/m.mjs',
        options: {},
      }),
    );
    const pool = store.runs.get('r')!.pools.get('10:1')!;
    assert.deepEqual(pool.counts, {
      submitted: 1,
      queued: 0,
      running: 0,
      passed: 1,
      failed: 0,
      errored: 0,
    });
    const task = pool.tasks.get(1)!;
    assert.equal(task.state, 'passed');
    assert.equal(task.fn, 'square');
    assert.equal(pool.backend, 'thread');
    assert.equal(pool.workers.get(1)!.tasksDone, 1);
  });

  it('tells failed (the task threw) from errored (the worker died, a timeout, terminate)', () => {
    const store = new Store();
    store.apply(
      ev('task.failed', { pool: 'p', task: 1, fn: 'f', worker: 1, error: failure('TypeError') }),
    );
    store.apply(
      ev('task.failed', {
        pool: 'p',
        task: 2,
        fn: 'f',
        worker: 1,
        error: failure('WorkerExitError'),
      }),
    );
    store.apply(
      ev('task.failed', { pool: 'p', task: 3, fn: 'f', error: failure('PoolTerminatedError') }),
    );
    const pool = store.runs.get('r')!.pools.get('p')!;
    assert.equal(pool.counts.failed, 1);
    assert.equal(pool.counts.errored, 2);
    assert.equal(store.runs.get('r')!.errorCount, 3);
  });

  it('keeps exact counts while evicting old task models', () => {
    const store = new Store({ tasksPerPool: 100 });
    for (let i = 1; i <= 10_000; i++) {
      store.apply(
        ev('task.submitted', { pool: 'p', task: i, fn: 'f', kind: 'apply', args: '[]', items: 1 }),
      );
    }
    for (let i = 1; i <= 10_000; i++) {
      if (i % 10 === 0)
        store.apply(
          ev('task.failed', { pool: 'p', task: i, fn: 'f', worker: 1, error: failure('Error') }),
        );
      else
        store.apply(
          ev('task.succeeded', {
            pool: 'p',
            task: i,
            worker: 1,
            result: '1',
            durationMs: 1,
            queuedMs: 0,
          }),
        );
    }
    const pool = store.runs.get('r')!.pools.get('p')!;
    assert.deepEqual(pool.counts, {
      submitted: 10_000,
      queued: 0,
      running: 0,
      passed: 9_000,
      failed: 1_000,
      errored: 0,
    });
    assert.ok(pool.tasks.size <= 100);
    assert.equal(pool.evicted, 10_000 - pool.tasks.size, 'each dropped task counted once');
    assert.equal(pool.durations.count, 9_000);
    assert.equal(pool.workers.get(1)!.tasksDone, 9_000);
    assert.equal(pool.workers.get(1)!.tasksFailed, 1_000);
    assert.equal(store.runs.get('r')!.errorCount, 1_000);
    assert.ok(store.runs.get('r')!.errors.length <= 500);
  });

  it('counts a dropped task once, however many of its events arrive after it was dropped', () => {
    // A burst: 300 tasks submitted at once, then each started and finished. Only 100 are kept;
    // the others' later events used to count them as dropped again, each time.
    const store = new Store({ tasksPerPool: 100 });
    for (let i = 1; i <= 300; i++)
      store.apply(
        ev('task.submitted', { pool: 'p', task: i, fn: 'f', kind: 'apply', args: '[]', items: 1 }),
      );
    for (let i = 1; i <= 300; i++) {
      store.apply(ev('task.started', { pool: 'p', task: i, worker: 1 }));
      store.apply(
        ev('task.succeeded', {
          pool: 'p',
          task: i,
          fn: 'f',
          worker: 1,
          result: '1',
          durationMs: 1,
          queuedMs: 0,
        }),
      );
    }
    const pool = store.runs.get('r')!.pools.get('p')!;
    assert.equal(pool.counts.passed, 300);
    assert.equal(pool.tasks.size, 100);
    assert.equal(pool.evicted, 200);
  });

  it('keeps each shared object with its latest value, contention and a bounded series', () => {
    const store = new Store({ samplesPerShared: 3 });
    store.apply(
      ev('shared.created', { id: '10:1', kind: 'Value', ctype: "'i'", length: 1, lock: true }),
    );
    for (let i = 1; i <= 5; i++)
      store.apply(ev('shared.sampled', { id: '10:1', value: i, contention: i * 2 }));
    const shared = store.runs.get('r')!.shared.get('10:1')!;
    assert.equal(shared.value, 5);
    assert.equal(shared.contention, 10);
    assert.deepEqual(
      shared.samples.map((x) => x.value),
      [3, 4, 5],
    );
  });

  it('keeps each manager: address, server pid, latest operation counts, how it ended', () => {
    const store = new Store();
    const ops = (counts: Record<string, number>, ts: number) =>
      ({
        ...ev('manager.ops', { manager: '10:1', ops: counts, clients: 2, objects: 3 }),
        pid: 99,
        ts,
      }) as TraceEvent;
    // The server's counts may arrive before the owner's started event, and out of order.
    store.apply(ops({ dict: 5 }, 2000));
    store.apply(
      ev('manager.started', { manager: '10:1', address: 'unix:/tmp/m.sock', serverPid: 99 }),
    );
    store.apply(ops({ dict: 9, Lock: 4 }, 3000));
    store.apply(ops({ dict: 7 }, 2500));
    const m = store.runs.get('r')!.managers.get('10:1')!;
    assert.equal(m.pid, 10);
    assert.equal(m.address, 'unix:/tmp/m.sock');
    assert.equal(m.serverPid, 99);
    assert.equal(m.state, 'running');
    assert.deepEqual(m.ops, { dict: 9, Lock: 4 });
    assert.equal(m.totalOps, 13);
    assert.equal(m.clients, 2);
    store.apply(
      ev('manager.stopped', {
        manager: '10:1',
        address: 'unix:/tmp/m.sock',
        reason: 'killed',
        exitCode: -9,
        signal: 'SIGKILL',
      }),
    );
    assert.equal(m.state, 'killed');
    assert.equal(m.signal, 'SIGKILL');
    assert.deepEqual(store.problems, []);
  });

  it('with more tasks queued than it keeps, it keeps the ones that run first', () => {
    const store = new Store({ tasksPerPool: 10 });
    for (let i = 1; i <= 100; i++) {
      store.apply(
        ev('task.submitted', {
          pool: 'p',
          task: i,
          fn: 'f',
          kind: 'apply',
          args: `[ ${i} ]`,
          items: 1,
        }),
      );
    }
    const pool = store.runs.get('r')!.pools.get('p')!;
    assert.deepEqual([...pool.tasks.keys()], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    store.apply(ev('task.started', { pool: 'p', task: 1, worker: 1 }));
    store.apply(
      ev('task.succeeded', {
        pool: 'p',
        task: 1,
        fn: 'f',
        worker: 1,
        result: '1',
        durationMs: 1,
        queuedMs: 0,
      }),
    );
    store.apply(ev('task.started', { pool: 'p', task: 11, worker: 1 }));
    assert.ok(pool.tasks.has(11), 'a task that starts comes into view');
    assert.equal(pool.tasks.get(11)!.state, 'running');
    assert.equal(pool.counts.queued, 98);
  });

  it("keeps a process's error and exit when its exit arrives before its start", () => {
    // A Python child reports its own exception on its own connection: it can overtake the
    // parent's process.started.
    const store = new Store();
    const error = failure('Invalid');
    store.apply(ev('process.exited', { name: 'p1', exitCode: 1, signal: null, error }));
    store.apply(ev('process.started', { name: 'p1', target: 'raises', backend: 'process' }));
    store.apply(ev('process.exited', { name: 'p1', exitCode: 1, signal: null }));
    const proc = store.runs.get('r')!.processes.get('p1')!;
    assert.equal(proc.state, 'exited');
    assert.equal(proc.exitCode, 1);
    assert.equal(proc.target, 'raises');
    assert.equal(proc.error?.name, 'Invalid');
    assert.equal(store.runs.get('r')!.errors.length, 1);
  });

  it('reports malformed lines and goes on', () => {
    const store = new Store();
    store.applyLine('{not json');
    store.applyLine('42');
    store.applyLine(JSON.stringify({ v: 3, type: 'run.start', run: 'r', ts: 1 }));
    store.applyLine(JSON.stringify({ v: 1, run: 'r' }));
    store.applyLine(JSON.stringify({ ...base, ts: 5, type: 'no.such.event' }));
    store.applyLine('');
    store.applyLine(
      JSON.stringify(
        ev('pool.created', { pool: 'p', backend: 'process', size: 1, module: '/m', options: {} }),
      ),
    );
    assert.equal(store.problemCount, 5);
    assert.match(store.problems[0]!, /not JSON/);
    assert.match(store.problems[2]!, /protocol version 3, expected 1 to 2/);
    assert.match(store.problems[4]!, /unknown event type no\.such\.event/);
    assert.equal(store.runs.get('r')!.pools.get('p')!.size, 1);
  });
});
