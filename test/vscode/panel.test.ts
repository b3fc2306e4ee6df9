// The concurrency panel's host side, inside a real VS Code: it opens on the active run, sends
// a snapshot then deltas, follows the tree's selection, reveals the panel's selection in the
// tree, and refuses malformed messages.
import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { waitFor } from './util';
import type { PoolscopeApi } from '../../extension/extension';
import type { RunSession } from '../../extension/run-session';
import type { TaskNode } from '../../extension/views/runs-tree';
import type { TreeNode } from '../../extension/views/node';
import type { HostMessage } from '../../webview/protocol';

const root = (): string => vscode.workspace.workspaceFolders![0]!.uri.fsPath;

suite('Poolscope concurrency panel', () => {
  let api: PoolscopeApi;

  suiteSetup(async () => {
    api = await vscode.extensions.getExtension<PoolscopeApi>('poolscope.poolscope')!.activate();
  });

  teardown(() => {
    api.panel()?.dispose();
    for (const s of api.registry.sessions) s.kill();
    api.registry.clearFinished();
  });

  test('opens on the run, sends a snapshot with bars, then follows the tree selection', async () => {
    const session = await vscode.commands.executeCommand<RunSession>(
      'poolscope.runCurrentFile',
      vscode.Uri.file(join(root(), 'examples', 'failing-tasks.mjs')),
    );
    await waitFor('the run to end', () => !session.running, 60_000);
    await vscode.commands.executeCommand('poolscope.openPanel');
    const panel = await waitFor('the panel', () => api.panel());
    assert.equal(panel.panel.webview.options.enableScripts, true);
    assert.match(panel.panel.webview.html, /default-src 'none'/);
    assert.match(panel.panel.webview.html, /<script nonce="[^"]+" src="/);
    // The webview loads and says ready; the host answers with a snapshot of this run.
    const snapshot = await waitFor('a snapshot', () =>
      panel.posted.find(
        (m): m is Extract<HostMessage, { type: 'snapshot' }> => m.type === 'snapshot',
      ),
    );
    assert.equal(snapshot.run.id, session.run!.id);
    const pool = snapshot.run.pools[0]!;
    assert.equal(pool.bars.task.length, 9, 'one bar per task');
    assert.equal(pool.bars.state.filter((s) => s === 3).length, 3, 'three failed bars');
    assert.equal(snapshot.run.errorCount, 4);
    assert.ok(snapshot.run.processes.some((p) => p.name === 'exporter' && p.exitCode === 2));

    // Hidden, the panel keeps no context; shown again, its page asks for a fresh snapshot.
    const snapshots = (): number => panel.posted.filter((m) => m.type === 'snapshot').length;
    const before = snapshots();
    const doc = await vscode.workspace.openTextDocument({ content: 'hide the panel' });
    await vscode.window.showTextDocument(doc, {
      viewColumn: panel.panel.viewColumn,
      preview: false,
    });
    await waitFor('the panel to be hidden', () => !panel.panel.visible);
    panel.panel.reveal(undefined, false);
    await waitFor('a fresh snapshot after the panel is shown again', () => snapshots() > before);

    // Selecting a failed task in the tree selects it in the panel.
    const runs = api.trees.runs;
    const find = (nodes: TreeNode[]): TaskNode | undefined => {
      for (const n of nodes) {
        if ((n as TaskNode).task?.error?.message === 'cannot take the square root of -16')
          return n as TaskNode;
        const inner = find(runs.getChildren(n));
        if (inner) return inner;
      }
      return undefined;
    };
    const node = find(runs.getChildren())!;
    assert.ok(node);
    await vscode.commands.executeCommand('poolscope.runs.focus');
    const view = api.runsView;
    await view.reveal(node, { select: true });
    const select = await waitFor('a select message', () =>
      panel.posted.find((m): m is Extract<HostMessage, { type: 'select' }> => m.type === 'select'),
    );
    assert.equal(select.ref?.task, node.task.id);

    // The panel's selection is revealed in the tree (a message as the webview would send it).
    const other = [...session.run!.pools.values()][0]!.tasks.get(2)!;
    panel.receiveForTest({ type: 'select', ref: { pool: pool.id, task: other.id } });
    await waitFor('the tree to select the task', () =>
      view.selection.some((n) => (n as TaskNode).task?.id === other.id),
    );
    // Malformed messages are refused, not acted on.
    panel.receiveForTest({ type: 'openFrame', file: 42 });
    panel.receiveForTest({ type: 'select', ref: { pool: pool.id, task: 'x' } });
    assert.equal(view.selection[0] && (view.selection[0] as TaskNode).task?.id, other.id);
  });

  test('Export to Perfetto writes Trace Event JSON of the run', async () => {
    const session = await vscode.commands.executeCommand<RunSession>(
      'poolscope.runCurrentFile',
      vscode.Uri.file(join(root(), 'examples', 'failing-tasks.mjs')),
    );
    await waitFor('the run to end', () => !session.running, 60_000);
    const out = vscode.Uri.file(join(root(), 'out', 'perfetto-test.json'));
    await vscode.commands.executeCommand('poolscope.exportPerfetto', session, out);
    const doc = JSON.parse(
      Buffer.from(await vscode.workspace.fs.readFile(out)).toString('utf8'),
    ) as {
      traceEvents: { name?: string; ph: string }[];
    };
    assert.ok(doc.traceEvents.some((e) => e.ph === 'X' && e.name?.startsWith('checkedSqrt')));
    await vscode.workspace.fs.delete(out);
  });
});
