/** Timeline bars in the Store, and the panel's snapshot + delta feed built from them. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Store } from '../../core/trace/store';
import { RunFeed } from '../../extension/panel/snapshot';
import { parsePanelRequest } from '../../webview/protocol';

const traces = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'traces');
const lines = (name: string): string[] =>
  readFileSync(join(traces, name), 'utf8').split('\n').filter(Boolean);

describe('timeline bars', () => {
  it('keep one row per task with worker, times, state and function', () => {
    const store = new Store({ barsPerPool: 1000 });
    for (const l of lines('failing-tasks.jsonl')) store.applyLine(l);
    const run = [...store.runs.values()][0]!;
    const pool = [...run.pools.values()][0]!;
    const bars = pool.bars!;
    assert.equal(bars.length, 9);
    const states = Array.from(bars.state.subarray(0, bars.length)).sort();
    assert.deepEqual(states, [2, 2, 2, 2, 2, 3, 3, 3, 4]); // 5 passed, 3 failed, 1 errored
    for (let r = 0; r < bars.length; r++) {
      assert.ok(bars.end[r]! >= bars.start[r]!, `row ${r} ends after it starts`);
      assert.ok(bars.worker[r]! > 0);
    }
    assert.deepEqual([...bars.fns].sort(), ['?', 'checkedSqrt', 'exitWorker', 'parseRecord']);
    assert.ok(run.marks.some((m) => m.kind === 'errorCallback'));
  });

  it('stay bounded: past capacity the oldest half is dropped and counted', () => {
    const store = new Store({ barsPerPool: 1000 });
    for (const l of lines('live-demo.jsonl')) store.applyLine(l);
    const pool = [...[...store.runs.values()][0]!.pools.values()][0]!;
    assert.equal(pool.counts.submitted, 3001);
    assert.ok(pool.bars!.length <= 1000);
    assert.equal(pool.bars!.length + pool.bars!.dropped, 3001);
    // The kept rows are the newest tasks.
    assert.equal(Math.max(...pool.bars!.task.subarray(0, pool.bars!.length)), 3001);
  });

  it('are not kept unless asked for (the CLI does not pay for them)', () => {
    const store = new Store();
    for (const l of lines('failing-tasks.jsonl')) store.applyLine(l);
    const pool = [...[...store.runs.values()][0]!.pools.values()][0]!;
    assert.equal(pool.bars, undefined);
  });
});

describe('panel feed', () => {
  it('sends a snapshot, then deltas with only what changed', () => {
    const all = lines('live-demo.jsonl');
    const store = new Store({ barsPerPool: 10_000 });
    const half = Math.floor(all.length / 2);
    for (const l of all.slice(0, half)) store.applyLine(l);
    const run = [...store.runs.values()][0]!;
    const feed = new RunFeed(
      run,
      () => ({ label: 'demo', state: 'running' }),
      () => store.version,
    );
    const snap = feed.snapshot();
    const sentRows = snap.pools[0]!.bars.task.length;
    assert.ok(sentRows > 0);
    assert.equal(feed.delta(), undefined, 'nothing changed');
    for (const l of all.slice(half)) store.applyLine(l);
    const delta = feed.delta()!;
    const changed = delta.pools[0]!.bars.task;
    assert.ok(changed.length > 0);
    assert.ok(changed.length < 3001 + sentRows, 'a delta is not a snapshot');
    assert.equal(delta.pools[0]!.counts.submitted, 3001);
    assert.equal(delta.errorCount, run.errorCount);
    assert.equal(snap.errors.length + delta.errorsAdded.length, run.errorCount);
    assert.equal(JSON.parse(JSON.stringify(delta)).pools[0].bars.task.length, changed.length);
  });

  it('validates every message from the webview', () => {
    assert.deepEqual(parsePanelRequest({ type: 'ready' }), { type: 'ready' });
    assert.deepEqual(parsePanelRequest({ type: 'select', ref: { pool: '1:1', task: 3 } }), {
      type: 'select',
      ref: { pool: '1:1', task: 3 },
    });
    for (const bad of [
      null,
      'ready',
      { type: 'eval', code: '1' },
      { type: 'select', ref: { pool: 1, task: 3 } },
      { type: 'select', ref: { pool: 'p', task: 1.5 } },
      { type: 'openFrame', file: 42 },
      { type: 'openFrame', file: '/x', line: -1 },
      { type: 'showRun', runId: 'x'.repeat(500) },
    ]) {
      assert.equal(parsePanelRequest(bad), undefined, JSON.stringify(bad));
    }
  });
});
