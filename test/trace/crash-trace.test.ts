/** A crashed worker in the trace: its task fails early, and the exit still names it as lost. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BACKENDS, fixture } from '../helpers';

for (const backend of BACKENDS) {
  describe(`a worker crash in the trace (${backend})`, () => {
    it('the task fails with the exit code, and worker.exited lists it among the lost tasks', () => {
      const dir = mkdtempSync(join(tmpdir(), 'poolscope-crash-trace-'));
      try {
        const file = join(dir, 'trace.jsonl');
        const run = spawnSync(process.execPath, [fixture('crash-trace-script.cjs'), backend], {
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, POOLSCOPE_TRACE: `file:${file}` },
        });
        assert.equal(run.status, 0, run.stderr);
        assert.match(run.stdout, /WorkerExitError 3/);
        const events = readFileSync(file, 'utf8')
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        const failed = events.find((e) => e.type === 'task.failed')!;
        assert.ok(failed, 'the task failed in the trace');
        const exited = events.find((e) => e.type === 'worker.exited' && e.exitCode === 3)!;
        assert.ok(exited, 'the worker exit with code 3 is in the trace');
        assert.deepEqual(exited.lostTasks, [failed.task]);
        assert.equal(exited.reason, 'crash');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
