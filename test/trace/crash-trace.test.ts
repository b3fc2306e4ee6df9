/**
 * A crashed worker in the trace: its task fails early, and the exit still names it as lost. And a
 * failed task's end is no later than the start of the task its worker ran next.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { expandEvent } from 'poolscope/internal/trace/task-batch';
import type { TraceEvent } from 'poolscope/internal/trace/protocol';
import { BACKENDS, fixture } from '../helpers';

/** Runs a fixture script with a file trace sink: its stdout and its events (batches expanded). */
function runTraced(script: string, backend: string): { stdout: string; events: TraceEvent[] } {
  const dir = mkdtempSync(join(tmpdir(), 'poolscope-trace-'));
  try {
    const file = join(dir, 'trace.jsonl');
    const run = spawnSync(process.execPath, [fixture(script), backend], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, POOLSCOPE_TRACE: `file:${file}` },
    });
    assert.equal(run.status, 0, run.stderr);
    const events = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .flatMap((line) => expandEvent(JSON.parse(line) as TraceEvent));
    return { stdout: run.stdout, events };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const backend of BACKENDS) {
  describe(`a worker crash in the trace (${backend})`, () => {
    it('the task fails with the exit code, and worker.exited lists it among the lost tasks', () => {
      const { stdout, events } = runTraced('crash-trace-script.cjs', backend);
      assert.match(stdout, /WorkerExitError 3/);
      const failed = events.find((e) => e.type === 'task.failed');
      assert.ok(failed?.type === 'task.failed', 'the task failed in the trace');
      const exited = events.find((e) => e.type === 'worker.exited' && e.exitCode === 3);
      assert.ok(exited?.type === 'worker.exited', 'the worker exit with code 3 is in the trace');
      assert.deepEqual(exited.lostTasks, [failed.task]);
      assert.equal(exited.reason, 'crash');
    });
  });
}

for (const backend of BACKENDS) {
  describe(`end and start times in the trace (${backend})`, () => {
    it("a failed task ends no later than its worker's next task starts, as a passed one does", () => {
      const { stdout, events } = runTraced('fail-then-run-script.cjs', backend);
      assert.equal(stdout.trim(), 'rejected fulfilled rejected fulfilled');
      const ends = new Map<number, number>();
      const starts = new Map<number, number>();
      for (const e of events) {
        if (e.type === 'task.failed' || e.type === 'task.succeeded') ends.set(e.task, e.ts);
        if (e.type === 'task.started') starts.set(e.task, e.ts);
      }
      // Tasks 2-5 ran on the one worker in that order: each ends before the next starts, or
      // when it starts (both read off the same report), so a viewer sorting by time never
      // sees two tasks running on one worker.
      for (let task = 2; task < 5; task++) {
        assert.ok(
          ends.get(task)! <= starts.get(task + 1)!,
          `task ${task} ended at ${ends.get(task)}, after task ${task + 1} started at ${starts.get(task + 1)}`,
        );
      }
    });
  });
}
