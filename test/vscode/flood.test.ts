// A run that floods the extension with events: the views keep up with coalesced refreshes, the
// Store's memory stays bounded, and every task is still counted. The figures (event-loop delay
// of the extension host, round trips to the workbench, memory) are printed, not asserted:
// bench/vscode-flood.mjs runs this with a million events and reports them.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as vscode from 'vscode';
import type { PoolscopeApi } from '../../extension/extension';
import type { RunSession } from '../../extension/run-session';

const TASKS = Number(process.env.POOLSCOPE_FLOOD_TASKS ?? 40_000);

/**
 * Waits until the extension host has been quiet (no event-loop delay over 50 ms) for two
 * half-second windows in a row, at most 30 s: the built-in extensions (git, JSON) start up in the
 * first seconds of a session, and their work is not the flood's.
 */
async function settle(): Promise<void> {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  let quiet = 0;
  for (let waited = 0; quiet < 2 && waited < 30_000; waited += 500) {
    lag.reset();
    lag.enable();
    await new Promise((r) => setTimeout(r, 500));
    lag.disable();
    quiet = lag.max / 1e6 < 50 ? quiet + 1 : 0;
  }
}

/** A CPU profile of the extension host (for bench/vscode-flood.mjs --profile); stop writes it. */
async function startProfile(): Promise<(file: string) => Promise<void>> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) =>
      session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  return async (file) => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/**
 * The same script run outside the extension (no trace sink), with the same probes: what the
 * machine's load alone does to the extension host's event loop and to round trips.
 */
async function untraced(script: string): Promise<Record<string, unknown>> {
  const register = join(__dirname, '..', '..', '..', 'dist', 'cli', 'register.mjs');
  const child = spawn('node', ['--import', register, script], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  let done = false;
  void exited.then(() => (done = true));
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const started = Date.now();
  const trips: number[] = [];
  let probe = 0;
  while (!done) {
    const t0 = performance.now();
    await vscode.commands.executeCommand('setContext', 'poolscope.probe', probe++);
    trips.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 200));
  }
  lag.disable();
  trips.sort((a, b) => a - b);
  const pct = (p: number): number => trips[Math.floor((trips.length - 1) * p)] ?? 0;
  return {
    exitCode: await exited,
    seconds: (Date.now() - started) / 1000,
    loopDelayMs: {
      p50: lag.percentile(50) / 1e6,
      p99: lag.percentile(99) / 1e6,
      max: lag.max / 1e6,
    },
    roundTripMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1), samples: trips.length },
  };
}

suite('Poolscope under a flood of events', () => {
  let api: PoolscopeApi;
  let scratch: string;

  suiteSetup(async () => {
    api = await vscode.extensions.getExtension<PoolscopeApi>('poolscope.poolscope')!.activate();
    scratch = mkdtempSync(join(tmpdir(), 'poolscope-flood-'));
  });

  suiteTeardown(() => {
    for (const s of api.registry.sessions) s.kill();
    api.registry.clearFinished();
    rmSync(scratch, { recursive: true, force: true });
  });

  test(`${TASKS.toLocaleString('en-US')} tasks: every one counted, memory bounded`, async function () {
    this.timeout(600_000);
    writeFileSync(join(scratch, 'work.mjs'), 'export function inc(x) { return x + 1; }\n');
    const script = join(scratch, 'flood.mjs');
    writeFileSync(
      script,
      [
        "import { Pool } from 'poolscope';",
        "const pool = new Pool({ module: new URL('./work.mjs', import.meta.url), size: 2 });",
        `const n = ${TASKS};`,
        'const batch = 20000;',
        'for (let i = 0; i < n; i += batch) {',
        "  const jobs = Array.from({ length: Math.min(batch, n - i) }, (_, j) => pool.applyAsync('inc', [i + j]));",
        '  await Promise.all(jobs);',
        '}',
        'pool.close(); await pool.join();',
      ].join('\n'),
    );
    api.registry.clearFinished();
    await settle();
    const heapBefore = process.memoryUsage().heapUsed;
    const refreshesBefore = api.registry.refreshes;
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const profile = process.env.POOLSCOPE_FLOOD_PROFILE ? await startProfile() : undefined;
    const roundTrips: number[] = [];
    let peakHeap = heapBefore;
    const started = Date.now();
    const session = await vscode.commands.executeCommand<RunSession>(
      'poolscope.runCurrentFile',
      vscode.Uri.file(script),
    );
    assert.ok(session);
    let probe = 0;
    while (session.running) {
      // A round trip to the workbench (setContext is handled there) while events pour in.
      const t0 = performance.now();
      await vscode.commands.executeCommand('setContext', 'poolscope.probe', probe++);
      roundTrips.push(performance.now() - t0);
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
      await new Promise((r) => setTimeout(r, 200));
    }
    const seconds = (Date.now() - started) / 1000;
    lag.disable();
    if (profile) await profile(process.env.POOLSCOPE_FLOOD_PROFILE!);
    const baseline = process.env.POOLSCOPE_FLOOD_BASELINE ? await untraced(script) : undefined;
    api.registry.flush();
    const run = session.run!;
    const pool = [...run.pools.values()][0]!;
    assert.equal(session.exit?.code, 0);
    assert.equal(pool.counts.passed, TASKS, 'every task counted as passed');
    assert.ok(pool.tasks.size <= 500, `tasks kept: ${pool.tasks.size} (bounded by tasksPerPool)`);
    const treeRows = api.trees.runs.getChildren(api.trees.runs.getChildren()[0]);
    assert.equal(treeRows.length, 1, 'one pool row');
    // A worker shows its latest tasks and one row for the rest, not thousands of rows.
    const tree = api.trees.runs;
    const worker = tree.getChildren(treeRows[0])[0]!;
    const taskRows = tree.getChildren(worker);
    assert.ok(taskRows.length <= 26, `${taskRows.length} rows under a worker`);
    const more = tree.getTreeItem(taskRows[taskRows.length - 1]!);
    assert.match(String(more.label), /^[\d,]+ earlier tasks…$/);
    assert.equal(more.command?.command, 'poolscope.showAllTasks');
    const heapGrowthMb = (peakHeap - heapBefore) / 2 ** 20;
    assert.ok(heapGrowthMb < 300, `extension host heap grew ${heapGrowthMb.toFixed(0)} MB`);
    roundTrips.sort((a, b) => a - b);
    const pct = (p: number): number => roundTrips[Math.floor((roundTrips.length - 1) * p)] ?? 0;
    const report = {
      tasks: TASKS,
      events: run.events,
      dropped: run.dropped,
      seconds,
      eventsPerSecond: Math.round(run.events / seconds),
      refreshes: api.registry.refreshes - refreshesBefore,
      loopDelayMs: {
        p50: lag.percentile(50) / 1e6,
        p99: lag.percentile(99) / 1e6,
        max: lag.max / 1e6,
      },
      roundTripMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1), samples: roundTrips.length },
      heapMb: { before: heapBefore / 2 ** 20, peak: peakHeap / 2 ** 20 },
      rssMb: process.memoryUsage().rss / 2 ** 20,
      baseline,
    };
    console.log(`poolscope-test flood ${JSON.stringify(report)}`);
    if (process.env.POOLSCOPE_FLOOD_REPORT) {
      writeFileSync(process.env.POOLSCOPE_FLOOD_REPORT, JSON.stringify(report, null, 2));
    }
  });
});
