// Runs inside a real VS Code extension host (code-server): the commands start real scripts,
// and the assertions read what the tree providers, diagnostics and status bar really hold.
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { alive, waitFor } from './util';
import type { PoolscopeApi } from '../../extension/extension';
import type { RunSession } from '../../extension/run-session';
import type { TreeNode, NodeTreeProvider } from '../../extension/views/node';

const EXTENSION_ID = 'poolscope.poolscope';
const root = (): string => vscode.workspace.workspaceFolders![0]!.uri.fsPath;
const example = (name: string): vscode.Uri => vscode.Uri.file(join(root(), 'examples', name));

let api: PoolscopeApi;
let scratch: string;

function label(tree: NodeTreeProvider, node: TreeNode): string {
  const l = tree.getTreeItem(node).label;
  return typeof l === 'string' ? l : (l?.label ?? '');
}

function description(tree: NodeTreeProvider, node: TreeNode): string {
  const d = tree.getTreeItem(node).description;
  return typeof d === 'string' ? d : '';
}

/** Every row of a tree, depth first, as "label — description" with its depth. */
function rows(tree: NodeTreeProvider, nodes = tree.getChildren(), depth = 0): string[] {
  return nodes.flatMap((n) => [
    `${'  '.repeat(depth)}${label(tree, n)} — ${description(tree, n)}`,
    ...rows(tree, tree.getChildren(n), depth + 1),
  ]);
}

function find(
  tree: NodeTreeProvider,
  test: (row: string) => boolean,
  nodes = tree.getChildren(),
): TreeNode | undefined {
  for (const n of nodes) {
    if (test(`${label(tree, n)} — ${description(tree, n)}`)) return n;
    const inner = find(tree, test, tree.getChildren(n));
    if (inner) return inner;
  }
  return undefined;
}

async function runToEnd(uri: vscode.Uri): Promise<RunSession> {
  const session = await vscode.commands.executeCommand<RunSession | undefined>(
    'poolscope.runCurrentFile',
    uri,
  );
  assert.ok(session, `the run of ${uri.fsPath} did not start`);
  await waitFor(`${uri.fsPath} to end`, () => !session.running, 60_000);
  api.registry.flush();
  return session;
}

suiteSetup(async () => {
  const ext = vscode.extensions.getExtension<PoolscopeApi>(EXTENSION_ID);
  assert.ok(ext, `${EXTENSION_ID} is not installed`);
  api = await ext.activate();
  scratch = mkdtempSync(join(tmpdir(), 'poolscope-vscode-test-'));
});

suiteTeardown(() => {
  rmSync(scratch, { recursive: true, force: true });
});

suite('Poolscope in VS Code', () => {
  setup(() => {
    for (const s of api.registry.sessions) s.kill();
    api.registry.clearFinished();
    api.registry.flush();
  });

  test('contributes its commands and views', async () => {
    const commands = await vscode.commands.getCommands(true);
    for (const id of [
      'poolscope.runCurrentFile',
      'poolscope.runScript',
      'poolscope.stopRun',
      'poolscope.rerun',
      'poolscope.clearFinished',
      'poolscope.openTrace',
      'poolscope.saveTrace',
    ]) {
      assert.ok(commands.includes(id), `missing command ${id}`);
    }
    await vscode.commands.executeCommand('poolscope.runs.focus');
    assert.deepEqual(api.trees.runs.getChildren(), [], 'an empty Runs tree shows the welcome view');
  });

  test('an unmodified Python multiprocessing program: its pool, errors whole, a Process, a Value', async () => {
    const session = await runToEnd(example('python/pool_errors.py'));
    assert.equal(session.exit?.code, 0);
    const runs = api.trees.runs;
    const all = rows(runs);
    const [run] = runs.getChildren();
    assert.ok(run);
    assert.match(label(runs, run), /^pool_errors\.py #\d+$/);
    assert.match(description(runs, run), /^exit 0 · 4 failed/);
    const [pool] = runs.getChildren(run);
    assert.ok(pool, all.join('\n'));
    assert.match(description(runs, pool), /^process × 2 · .*26 passed · 4 failed/, all.join('\n'));
    // The worker's exception, with the attributes it was raised with and its frame.
    const failed = find(runs, (r) => r.startsWith('#') && r.includes('QuotaError'));
    assert.ok(failed, all.join('\n'));
    assert.match(
      description(runs, failed),
      /^failed · .* · QuotaError: quota exceeded for task \d+$/,
    );
    const details = rows(runs, runs.getChildren(failed));
    assert.ok(details.includes('  user — "ana"'), details.join('\n'));
    assert.ok(
      details.some((d) => /^work — .*pool_errors\.py:\d+:\d+$/.test(d)),
      details.join('\n'),
    );
    const processes = rows(api.trees.processes);
    assert.ok(
      processes.some((p) => /helper/.test(p) && /exit code 0/.test(p)),
      processes.join('\n'),
    );
    const shared = rows(api.trees.shared);
    assert.ok(
      shared.some((v) => /^Value\('i'\) pool_errors\.py:\d+ — 16\b/.test(v)),
      shared.join('\n'),
    );
  });

  test('a run of the failing-tasks example fills every tree, the Problems view and the status bar', async () => {
    const session = await runToEnd(example('failing-tasks.mjs'));
    const runs = api.trees.runs;
    const all = rows(runs);
    const [run] = runs.getChildren();
    assert.ok(run);
    assert.match(label(runs, run), /^failing-tasks\.mjs #\d+$/);
    assert.match(description(runs, run), /^exit 0 · 4 failed/);
    const [pool] = runs.getChildren(run);
    assert.ok(pool, all.join('\n'));
    assert.match(description(runs, pool), /^process × 2 · .*5 passed · 3 failed · 1 errored/);
    // The worker that exited mid-task, with its code, among the pool's workers.
    const workers = runs
      .getChildren(pool)
      .map((w) => `${label(runs, w)} — ${description(runs, w)}`);
    assert.ok(
      workers.some((w) => /^worker \d+ — pid \d+ · exited, code 3/.test(w)),
      workers.join('\n'),
    );
    // A failed task carries its whole error: code and properties as children.
    const failed = find(runs, (r) => r.startsWith('#') && r.includes('checkedSqrt(-16)'));
    assert.ok(failed, all.join('\n'));
    assert.match(
      description(runs, failed),
      /^failed · .* · RangeError: cannot take the square root of -16$/,
    );
    const details = rows(runs, runs.getChildren(failed));
    assert.ok(details.includes('code — E_NEGATIVE'), details.join('\n'));
    assert.ok(
      details.some((d) => /^ {2}detail — \{"input":-16,/.test(d)),
      details.join('\n'),
    );
    assert.ok(
      details.some((d) => /^checkedSqrt — .*tasks\.mjs:\d+:\d+$/.test(d)),
      details.join('\n'),
    );

    // Errors: grouped by name and message, the cause chain under the TypeError.
    const errors = rows(api.trees.errors);
    for (const title of [
      'RangeError: cannot take the square root of -1 — × 1',
      'RangeError: cannot take the square root of -16 — × 1',
      'TypeError: record "{id:2}" is not valid JSON — × 1',
    ]) {
      assert.ok(errors.includes(title), `${title} not in\n${errors.join('\n')}`);
    }
    assert.ok(
      errors.some((e) => /^WorkerExitError: worker \d+ \(pid \d+\) exited with code 3/.test(e)),
    );
    assert.ok(
      errors.some((e) => /^ {4}cause: SyntaxError: /.test(e)),
      errors.join('\n'),
    );

    // Shared memory: the counter the workers bumped.
    const shared = rows(api.trees.shared);
    assert.ok(
      shared.some((s) => /^Value\('i'\) failing-tasks\.mjs:8 — 3 · \d+ contended$/.test(s)),
      shared.join('\n'),
    );
    // Processes: the exporter's exit code.
    const processes = rows(api.trees.processes);
    assert.ok(
      processes.some((p) => /^exporter — pid \d+ · exit code 2 · exits/.test(p)),
      processes.join('\n'),
    );

    // Problems: at the throwing lines in the worker module.
    const tasksFile = vscode.Uri.file(join(root(), 'examples', 'workers', 'tasks.mjs'));
    const source = readFileSync(tasksFile.fsPath, 'utf8').split('\n');
    const diagnostics = vscode.languages.getDiagnostics(tasksFile);
    const sqrt = diagnostics.find((d) =>
      d.message.startsWith('RangeError: cannot take the square root of -1 '),
    );
    assert.ok(sqrt, diagnostics.map((d) => d.message).join('\n'));
    assert.equal(sqrt.source, 'Poolscope');
    assert.equal(sqrt.code, 'E_NEGATIVE');
    assert.match(source[sqrt.range.start.line]!, /new RangeError/);

    // Status bar: the active run's counts.
    assert.equal(api.status.text, '$(error) 0 running · 4 failed');
    assert.ok(session.output, 'each run has its own output channel');

    // Clearing the run clears the Problems it put there.
    await vscode.commands.executeCommand('poolscope.clearFinished');
    assert.equal(vscode.languages.getDiagnostics(tasksFile).length, 0);
    assert.deepEqual(api.trees.runs.getChildren(), []);
  });

  test('Stop ends the script and every worker and Process it started', async () => {
    const script = join(scratch, 'hangs.mjs');
    writeFileSync(
      script,
      [
        "import { Pool, Process } from 'poolscope';",
        "const work = new URL('./work.mjs', import.meta.url);",
        'const pool = new Pool({ module: work, size: 2 });',
        "pool.applyAsync('forever'); pool.applyAsync('forever');",
        "const p = new Process({ module: work, target: 'forever', name: 'stuck' }); p.start();",
        "console.log('started');",
        'await new Promise(() => setInterval(() => {}, 1000));',
      ].join('\n'),
    );
    writeFileSync(join(scratch, 'work.mjs'), 'export function forever() { for (;;) {} }\n');
    const session = await vscode.commands.executeCommand<RunSession>(
      'poolscope.runCurrentFile',
      vscode.Uri.file(script),
    );
    assert.ok(session);
    const pids = await waitFor('two busy workers and a Process', () => {
      const run = session.run;
      if (!run) return false;
      const workers = [...run.pools.values()].flatMap((p) => [...p.workers.values()]);
      const busy = workers.filter((w) => w.current !== undefined && w.pid);
      const proc = [...run.processes.values()].find((p) => p.processPid);
      return busy.length === 2 && proc ? [...busy.map((w) => w.pid!), proc.processPid!] : false;
    });
    assert.equal(pids.length, 3);
    api.registry.flush();
    assert.match(
      description(api.trees.runs, api.trees.runs.getChildren()[0]!),
      /^running · pid \d+/,
    );
    await vscode.commands.executeCommand('poolscope.stopRun');
    assert.equal(session.running, false);
    assert.ok(!alive(session.pid!), 'the script is gone');
    await waitFor(
      'every worker and the Process to be gone',
      () => pids.every((p) => !alive(p)),
      5000,
    );
  });

  test('a missing script, a wrong node path, a syntax error: clear errors, nothing left running', async () => {
    const before = api.registry.sessions.length;
    const missing = await vscode.commands.executeCommand(
      'poolscope.runCurrentFile',
      vscode.Uri.file(join(scratch, 'nope.mjs')),
    );
    assert.equal(missing, undefined);
    assert.equal(api.registry.sessions.length, before);

    const config = vscode.workspace.getConfiguration('poolscope');
    await config.update('nodePath', '/no/such/node', vscode.ConfigurationTarget.Global);
    try {
      const wrongNode = await vscode.commands.executeCommand(
        'poolscope.runCurrentFile',
        example('failing-tasks.mjs'),
      );
      assert.equal(wrongNode, undefined);
      assert.equal(api.registry.sessions.length, before);
    } finally {
      await config.update('nodePath', undefined, vscode.ConfigurationTarget.Global);
    }

    const broken = join(scratch, 'broken.mjs');
    writeFileSync(
      broken,
      "import { Pool } from 'poolscope';\nconst pool = new Pool({ size: 1 );\n",
    );
    const session = await runToEnd(vscode.Uri.file(broken));
    assert.equal(session.exit?.code, 1);
    assert.match(session.lastErrorLine() ?? '', /SyntaxError/);
    assert.match(description(api.trees.runs, api.trees.runs.getChildren()[0]!), /^exit 1/);
  });

  test('Save Trace As and Open Trace File replay the same run; a corrupt file is refused', async () => {
    await runToEnd(example('failing-tasks.mjs'));
    const live = rows(api.trees.runs).slice(1);
    const [runNode] = api.trees.runs.getChildren();
    const saved = vscode.Uri.file(join(scratch, 'saved.jsonl'));
    await vscode.commands.executeCommand('poolscope.saveTrace', runNode, saved);
    assert.ok(existsSync(saved.fsPath));
    await vscode.commands.executeCommand('poolscope.clearFinished');

    const replay = await vscode.commands.executeCommand<RunSession>('poolscope.openTrace', saved);
    assert.ok(replay);
    api.registry.flush();
    const replayed = rows(api.trees.runs);
    assert.match(replayed[0]!, /^saved\.jsonl \(run-.*\) — exit 0 · 4 failed/);
    // The same pools, workers and tasks, row for row.
    assert.deepEqual(replayed.slice(1), live);

    const corrupt = vscode.Uri.file(join(scratch, 'corrupt.jsonl'));
    writeFileSync(corrupt.fsPath, 'not json\n{"also": "not an event"}\n');
    const refused = await vscode.commands.executeCommand('poolscope.openTrace', corrupt);
    assert.equal(refused, undefined);
  });
});
