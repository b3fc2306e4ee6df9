// Debugging through Poolscope inside a real VS Code: a `poolscope` debug session runs a script
// under the JavaScript debugger with the trace attached; a breakpoint in worker code is hit;
// Pause on Task Error stops a worker where its task's error is caught; stopping the session
// ends the run and leaves nothing running.
import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { alive, waitFor } from './util';
import type { PoolscopeApi } from '../../extension/extension';
import type { RunSession } from '../../extension/run-session';

interface Stop {
  session: vscode.DebugSession;
  threadId: number;
  reason: string;
}

suite('Poolscope in debugging sessions', () => {
  let api: PoolscopeApi;
  let dir: string;
  const stops: Stop[] = [];
  let tracker: vscode.Disposable;

  suiteSetup(async () => {
    api = await vscode.extensions.getExtension<PoolscopeApi>('poolscope.poolscope')!.activate();
    dir = mkdtempSync(join(tmpdir(), 'poolscope-debug-'));
    writeFileSync(
      join(dir, 'work.mjs'),
      [
        'export function double(x) {',
        '  const doubled = x * 2;', // line 2: the breakpoint
        '  return doubled;',
        '}',
        'export function fails(code) {',
        "  const err = new Error('the task failed on purpose');",
        '  err.code = code;',
        '  throw err;',
        '}',
        'export function forever() { for (;;) {} }',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'main.mjs'),
      [
        "import { Pool } from 'poolscope';",
        "const pool = new Pool({ module: new URL('./work.mjs', import.meta.url), size: 1 });",
        "console.log('doubled', await pool.apply('double', [21]));",
        "await pool.apply('fails', ['E_PURPOSE']).catch((e) => console.log('caught', e.code));",
        'pool.close(); await pool.join();',
        'process.exitCode = 3;',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'main-threads.mjs'),
      readFileSync(join(dir, 'main.mjs'), 'utf8').replace(
        "from 'poolscope'",
        "from 'poolscope/dummy'",
      ),
    );
    tracker = vscode.debug.registerDebugAdapterTrackerFactory('*', {
      createDebugAdapterTracker: (session) => ({
        onDidSendMessage: (m: {
          type?: string;
          event?: string;
          body?: { threadId?: number; reason?: string };
        }) => {
          if (m.type === 'event' && m.event === 'stopped') {
            stops.push({ session, threadId: m.body?.threadId ?? 0, reason: m.body?.reason ?? '' });
          }
        },
      }),
    });
  });

  suiteTeardown(async () => {
    tracker.dispose();
    await vscode.debug.stopDebugging();
    await vscode.workspace
      .getConfiguration('poolscope')
      .update('pauseOnTaskError', undefined, true);
    vscode.debug.removeBreakpoints(vscode.debug.breakpoints);
    rmSync(dir, { recursive: true, force: true });
  });

  setup(async () => {
    await vscode.debug.stopDebugging();
    vscode.debug.removeBreakpoints(vscode.debug.breakpoints);
    await vscode.commands.executeCommand('poolscope.pauseOnTaskErrorOff');
    stops.length = 0;
    for (const s of api.registry.sessions) s.kill();
    api.registry.clearFinished();
  });

  async function topFrame(stop: Stop): Promise<{ id: number; name: string; path: string }> {
    const trace = (await stop.session.customRequest('stackTrace', {
      threadId: stop.threadId,
      levels: 1,
    })) as { stackFrames: { id: number; name: string; source?: { path?: string } }[] };
    const f = trace.stackFrames[0]!;
    return { id: f.id, name: f.name, path: f.source?.path ?? '' };
  }

  const runOf = (script: string): RunSession | undefined =>
    api.registry.sessions.find((s) => s.source === script);

  for (const [backend, script] of [
    ['processes', 'main.mjs'],
    ['threads', 'main-threads.mjs'],
  ] as const) {
    test(`${backend}: a breakpoint in a worker task is hit; the run completes in the tree with its exit code`, async () => {
      const work = vscode.Uri.file(join(dir, 'work.mjs'));
      vscode.debug.addBreakpoints([
        new vscode.SourceBreakpoint(new vscode.Location(work, new vscode.Position(1, 0))),
      ]);
      const main = join(dir, script);
      const started = await vscode.debug.startDebugging(undefined, {
        type: 'poolscope',
        request: 'launch',
        name: 'Poolscope test',
        program: main,
      });
      assert.ok(started, 'the debug session started');
      const stop = await waitFor('the breakpoint in the worker', () =>
        stops.find((s) => s.reason === 'breakpoint'),
      );
      const frame = await topFrame(stop);
      assert.equal(frame.name, 'double');
      assert.match(frame.path, /work\.mjs$/);
      const run = await waitFor('the run in the tree', () => runOf(main));
      assert.equal(run.running, true);
      await stop.session.customRequest('continue', { threadId: stop.threadId });
      await waitFor('the run to end', () => !run.running);
      api.registry.flush();
      assert.equal(run.exit?.code, 3, 'the exit code the debugger saw');
      const model = run.run!;
      const pool = [...model.pools.values()][0]!;
      assert.equal(pool.counts.passed, 1);
      assert.equal(pool.counts.failed, 1);
      assert.ok(
        model.errors.some(
          (e) => e.error.props.code === 'E_PURPOSE' || e.error.code === 'E_PURPOSE',
        ),
      );
      vscode.debug.removeBreakpoints(vscode.debug.breakpoints);
    });

    test(`${backend}: Pause on Task Error stops the worker with the task in scope, before the pool hears of it`, async () => {
      await vscode.commands.executeCommand('poolscope.pauseOnTaskErrorOn');
      const main = join(dir, script);
      await vscode.debug.startDebugging(undefined, {
        type: 'poolscope',
        request: 'launch',
        name: 'Poolscope pause test',
        program: main,
      });
      // No breakpoints are set: the first stop must be the pause.
      const stop = await waitFor('the pause on the task error', () => stops[0]);
      const frame = await topFrame(stop);
      assert.equal(frame.name, 'pauseOnTaskError');
      const evaluated = (await stop.session.customRequest('evaluate', {
        expression: '`${task.fn} ${task.error.code} ${JSON.stringify(task.args)}`',
        frameId: frame.id,
        context: 'repl',
      })) as { result: string };
      assert.match(evaluated.result, /fails E_PURPOSE .*E_PURPOSE/);
      const run = runOf(main)!;
      const pool = [...run.run!.pools.values()][0]!;
      assert.equal(pool.counts.failed, 0, 'the pool has not heard of the error yet');
      await stop.session.customRequest('continue', { threadId: stop.threadId });
      await waitFor('the run to end', () => !run.running);
      assert.equal([...run.run!.pools.values()][0]!.counts.failed, 1);
      await vscode.commands.executeCommand('poolscope.pauseOnTaskErrorOff');
    });
  }

  test("with traceNodeSessions, the user's own node launch fills the views unchanged", async () => {
    const config = vscode.workspace.getConfiguration('poolscope');
    await config.update('traceNodeSessions', true, vscode.ConfigurationTarget.Global);
    try {
      const main = join(dir, 'main.mjs');
      await vscode.debug.startDebugging(undefined, {
        type: 'node',
        request: 'launch',
        name: 'my own launch',
        program: main,
      });
      const run = await waitFor('the run in the tree', () => runOf(main));
      await waitFor('the run to end', () => !run.running);
      assert.equal(run.exit?.code, 3);
      assert.equal([...run.run!.pools.values()][0]!.counts.failed, 1);
    } finally {
      await config.update('traceNodeSessions', undefined, vscode.ConfigurationTarget.Global);
    }
  });

  test('Stop Run ends the debug session and every process of the run', async () => {
    const hang = join(dir, 'hang.mjs');
    writeFileSync(
      hang,
      [
        "import { Pool } from 'poolscope';",
        "const pool = new Pool({ module: new URL('./work.mjs', import.meta.url), size: 1 });",
        "pool.applyAsync('forever');",
        'await new Promise(() => setInterval(() => {}, 1000));',
      ].join('\n'),
    );
    await vscode.debug.startDebugging(undefined, {
      type: 'poolscope',
      request: 'launch',
      name: 'Poolscope stop test',
      program: hang,
    });
    const run = await waitFor('the run', () => runOf(hang));
    const pid = await waitFor('a busy worker', () => {
      const pool = [...(run.run?.pools.values() ?? [])][0];
      const w = pool && [...pool.workers.values()].find((x) => x.current !== undefined && x.pid);
      return w?.pid;
    });
    const mainPid = [...run.run!.pools.values()][0]!.pid;
    await vscode.commands.executeCommand('poolscope.stopRun');
    await waitFor('the run to end', () => !run.running, 30_000);
    await waitFor(
      'the worker and the script to be gone',
      () => !alive(pid) && !alive(mainPid),
      10_000,
    );
  });
});
