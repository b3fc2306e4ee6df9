/** The terminal view's lines, from a Store fed with events (no process needed). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { liveLines, plain, progressLines, RateMeter, summaryLines } from '#cli/render';
import { Store } from 'poolscope/internal/trace/store';

function storeWithRun(): Store {
  const store = new Store();
  let ts = 1_000;
  const e = (type: string, fields: Record<string, unknown>) =>
    store.apply({ v: 1, ts: ts++, pid: 7, run: 'r', type, ...fields } as never);
  e('pool.created', {
    pool: '7:1',
    backend: 'process',
    size: 2,
    module: '/x/tasks.mjs',
    options: {},
  });
  e('worker.started', { pool: '7:1', worker: 1, workerPid: 101 });
  e('worker.started', { pool: '7:1', worker: 2, workerPid: 102 });
  for (let i = 1; i <= 10; i++)
    e('task.submitted', {
      pool: '7:1',
      task: i,
      fn: 'work',
      kind: 'apply',
      args: `[ ${i} ]`,
      items: 1,
    });
  for (let i = 1; i <= 4; i++)
    e('task.succeeded', {
      pool: '7:1',
      task: i,
      fn: 'work',
      worker: 1,
      result: '1',
      durationMs: 2,
      queuedMs: 0,
    });
  e('task.started', { pool: '7:1', task: 5, worker: 1 });
  e('task.failed', {
    pool: '7:1',
    task: 6,
    fn: 'work',
    worker: 2,
    error: {
      thrown: 'error',
      name: 'WorkerExitError',
      message: 'worker 2 (pid 102) was killed by SIGKILL while running task #6 work()',
      frames: [
        { raw: 'at main (/x/main.mjs:3:5)', fn: 'main', file: '/x/main.mjs', line: 3, column: 5 },
      ],
      props: {},
    },
  });
  e('worker.exited', {
    pool: '7:1',
    worker: 2,
    exitCode: -9,
    signal: 'SIGKILL',
    reason: 'killed',
    lostTasks: [6],
  });
  return store;
}

describe('the terminal view', () => {
  it('live: a progress bar with counts, each worker, the latest error with its first frame', () => {
    const run = storeWithRun().runs.get('r')!;
    const lines = liveLines(run, plain, new RateMeter(), Date.now(), 200);
    assert.match(lines[0]!, /^pool 7:1 \(process ×2\) tasks\.mjs$/);
    assert.match(lines[1]!, /\[█{12}░{12}\]  50% 5\/10  ✓4 ✗0 ⚠1  queued 4 running 1/);
    assert.match(lines[2]!, /#1 pid 101 running task #5 ✓4/);
    assert.match(lines[3]!, /#2 pid 102 exited -9 SIGKILL \(killed\)/);
    assert.ok(lines.includes('errors (1), latest:'));
    assert.ok(
      lines.some((l) => /WorkerExitError: worker 2 \(pid 102\) was killed by SIGKILL/.test(l)),
    );
    assert.ok(lines.some((l) => l.trim() === 'at main (/x/main.mjs:3:5)'));
  });

  it('lines are clipped to the terminal width', () => {
    const run = storeWithRun().runs.get('r')!;
    for (const line of liveLines(run, plain, new RateMeter(), Date.now(), 40))
      assert.ok(line.length <= 40, line);
  });

  it('plain progress for logs, and the summary', () => {
    const run = storeWithRun().runs.get('r')!;
    assert.deepEqual(progressLines(run), [
      'poolscope: pool 7:1 5/10 done, 4 passed, 0 failed, 1 errored, 1 running, 4 queued',
    ]);
    const summary = summaryLines(run, plain).join('\n');
    assert.match(summary, /tasks 10: 4 passed, 0 failed, 1 errored, 5 unfinished/);
    assert.match(summary, /1× WorkerExitError: worker 2 \(pid 102\) was killed by SIGKILL/);
  });

  it('managers: address, server pid, clients, calls per proxy type; how they ended', () => {
    const store = storeWithRun();
    const e = (type: string, fields: Record<string, unknown>, pid = 7) =>
      store.apply({ v: 1, ts: 5_000, pid, run: 'r', type, ...fields } as never);
    e('manager.started', { manager: '7:1', address: 'unix:/tmp/m/manager.sock', serverPid: 300 });
    e(
      'manager.ops',
      { manager: '7:1', ops: { Lock: 40, dict: 1200, Value: 0 }, clients: 3, objects: 2 },
      300,
    );
    const run = store.runs.get('r')!;
    const live = liveLines(run, plain, new RateMeter(), Date.now(), 200);
    assert.ok(
      live.includes('manager 7:1 unix:/tmp/m/manager.sock (pid 300) running, 3 clients, 2 objects'),
      live.join('\n'),
    );
    assert.ok(live.includes('  calls 1,240: dict 1,200 · Lock 40'), live.join('\n'));
    e('manager.stopped', {
      manager: '7:1',
      address: 'unix:/tmp/m/manager.sock',
      reason: 'killed',
      exitCode: -9,
      signal: 'SIGKILL',
    });
    const summary = summaryLines(run, plain).join('\n');
    assert.match(summary, /manager 7:1 unix:\/tmp\/m\/manager\.sock \(pid 300\) killed by SIGKILL/);
  });
});
