/**
 * Poolscope for VS Code: runs a worker script through the library with a trace sink attached and
 * shows its pools, errors, shared memory and processes live in the sidebar. Views render the
 * Store; only RunSession talks to processes.
 */
import { copyFileSync } from 'node:fs';
import * as vscode from 'vscode';
import { LaunchError, LAUNCHABLE_EXTENSIONS } from '../core/trace/launch';
import { registerDebugging } from './debug';
import { ErrorDiagnostics } from './diagnostics';
import { RunSession } from './run-session';
import { RunRegistry } from './runs';
import { readSettings } from './settings';
import { RunStatus } from './status';
import { errorText, openFrameCommand, userFrame } from './views/error-nodes';
import { errorRoots, ErrorOccurrenceNode } from './views/errors-tree';
import { NodeTreeProvider, type TreeNode } from './views/node';
import {
  PoolNode,
  RunNode,
  taskDescription,
  taskLabel,
  TaskNode,
  WorkerNode,
  type TaskListRef,
} from './views/runs-tree';
import { ConcurrencyPanel, exportSessionToPerfetto, PANEL_VIEW_TYPE } from './panel/panel';
import type { PanelViewState, TaskRef } from '../webview/protocol';
import { processRoots, sharedRoots } from './views/state-trees';
import type { ErrorInfo } from '../core/trace/protocol';

/** What `activate` returns: the extension's own tests read the views through it. */
export interface PoolscopeApi {
  registry: RunRegistry;
  trees: {
    runs: NodeTreeProvider;
    errors: NodeTreeProvider;
    shared: NodeTreeProvider;
    processes: NodeTreeProvider;
  };
  status: vscode.StatusBarItem;
  log: vscode.LogOutputChannel;
  runsView: vscode.TreeView<TreeNode>;
  /** The concurrency panel, when open. */
  panel(): ConcurrencyPanel | undefined;
  /** Starts a script as Run Current File would; resolves with its session. */
  run(script: vscode.Uri): Promise<RunSession | undefined>;
}

let registryForDeactivate: RunRegistry | undefined;

export function activate(context: vscode.ExtensionContext): PoolscopeApi {
  const log = vscode.window.createOutputChannel('Poolscope', { log: true });
  const registry = new RunRegistry(log);
  registryForDeactivate = registry;
  const trees = {
    runs: new NodeTreeProvider(() =>
      registry.sessions.flatMap((s) => s.runs.map((run) => new RunNode(s, run))),
    ),
    errors: new NodeTreeProvider(() => errorRoots(registry.sessions)),
    shared: new NodeTreeProvider(() => sharedRoots(registry.sessions)),
    processes: new NodeTreeProvider(() => processRoots(registry.sessions)),
  };
  const runsView = vscode.window.createTreeView('poolscope.runs', {
    treeDataProvider: trees.runs,
    showCollapseAll: true,
  });
  const diagnostics = new ErrorDiagnostics();
  const status = new RunStatus();
  context.subscriptions.push(
    log,
    registry,
    runsView,
    vscode.window.createTreeView('poolscope.errors', {
      treeDataProvider: trees.errors,
      showCollapseAll: true,
    }),
    vscode.window.registerTreeDataProvider('poolscope.shared', trees.shared),
    vscode.window.registerTreeDataProvider('poolscope.processes', trees.processes),
    diagnostics,
    status,
    ...Object.values(trees),
  );

  registry.onDidChange(() => {
    for (const tree of Object.values(trees)) tree.refresh();
    diagnostics.update(registry.sessions, readSettings().showDiagnostics);
    status.update(registry);
    void vscode.commands.executeCommand(
      'setContext',
      'poolscope.running',
      registry.sessions.some((s) => s.running),
    );
  });

  const run = async (script: vscode.Uri): Promise<RunSession | undefined> => {
    let session: RunSession;
    try {
      const request = registry.request(script);
      session = await RunSession.launch(request);
    } catch (err) {
      const message = err instanceof LaunchError ? err.message : String(err);
      log.error(`cannot run ${script.fsPath}: ${message}`);
      const setting = /python3/.test(message)
        ? 'poolscope.pythonPath'
        : /node/.test(message)
          ? 'poolscope.nodePath'
          : undefined;
      const fix = setting ? 'Open Settings' : undefined;
      void vscode.window
        .showErrorMessage(`Poolscope: ${message}`, ...(fix ? [fix] : []))
        .then((choice) => {
          if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', setting);
        });
      return undefined;
    }
    registry.add(session);
    log.info(`${session.label}: started ${script.fsPath} (pid ${session.pid})`);
    session.onDidEnd(() => {
      const exit = session.exit!;
      log.info(
        `${session.label}: ${exit.signal ? `killed by ${exit.signal}` : `exit ${exit.code}`}`,
      );
      if (exit.status !== 0 && session.state !== 'stopping' && !exit.signal) {
        const last = session.lastErrorLine();
        void vscode.window
          .showWarningMessage(
            `Poolscope: ${session.label} exited with code ${exit.code}${last ? `: ${last}` : ''}`,
            'Show Output',
          )
          .then((choice) => {
            if (choice) session.output.show(true);
          });
      }
    });
    return session;
  };

  const pickSession = async (
    filter: (s: RunSession) => boolean,
    placeHolder: string,
  ): Promise<RunSession | undefined> => {
    const candidates = registry.sessions.filter(filter);
    if (candidates.length <= 1) return candidates[0];
    const choice = await vscode.window.showQuickPick(
      candidates.map((s) => ({ label: s.label, description: s.source, session: s })),
      { placeHolder },
    );
    return choice?.session;
  };
  const sessionOf = (node: unknown): RunSession | undefined =>
    node instanceof RunNode ? node.session : node instanceof RunSession ? node : undefined;

  const isRunnable = (uri: vscode.Uri): boolean =>
    LAUNCHABLE_EXTENSIONS.some((ext) => uri.fsPath.endsWith(ext));

  const command = (id: string, fn: (...args: never[]) => unknown): void => {
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  };

  command('poolscope.runCurrentFile', async (uri?: vscode.Uri) => {
    const target = uri instanceof vscode.Uri ? uri : vscode.window.activeTextEditor?.document.uri;
    if (!target || target.scheme !== 'file') {
      void vscode.window.showErrorMessage(
        'Poolscope: open a .js, .mjs, .cjs, .ts or .py file to run it (or use Poolscope: Run Script…).',
      );
      return undefined;
    }
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target.toString());
    if (doc?.isDirty) await doc.save();
    return run(target);
  });
  command('poolscope.runScript', async () => {
    const picked = await vscode.window.showOpenDialog({
      canSelectMany: false,
      openLabel: 'Run',
      filters: { Scripts: LAUNCHABLE_EXTENSIONS.map((e) => e.slice(1)) },
      ...(vscode.workspace.workspaceFolders?.[0]
        ? { defaultUri: vscode.workspace.workspaceFolders[0].uri }
        : {}),
    });
    if (!picked?.[0]) return undefined;
    if (!isRunnable(picked[0])) {
      void vscode.window.showErrorMessage(
        `Poolscope: ${picked[0].fsPath} is not a script Poolscope can run.`,
      );
      return undefined;
    }
    return run(picked[0]);
  });
  command('poolscope.stopRun', async (node?: unknown) => {
    const session = sessionOf(node) ?? (await pickSession((s) => s.running, 'Stop which run?'));
    if (!session) return;
    await session.stop();
    registry.markDirty();
  });
  command('poolscope.rerun', async (node?: unknown) => {
    const session =
      sessionOf(node) ?? (await pickSession((s) => s.request !== undefined, 'Rerun which run?'));
    if (!session?.request) return undefined;
    if (session.running) await session.stop();
    return run(vscode.Uri.file(session.request.script));
  });
  command('poolscope.clearFinished', () => {
    const n = registry.clearFinished();
    registry.flush();
    log.info(`cleared ${n} finished runs`);
  });
  command('poolscope.openTrace', async (uri?: vscode.Uri) => {
    const file =
      uri instanceof vscode.Uri
        ? uri
        : (
            await vscode.window.showOpenDialog({
              canSelectMany: false,
              openLabel: 'Open Trace',
              filters: { 'Poolscope traces': ['jsonl'], 'All files': ['*'] },
            })
          )?.[0];
    if (!file) return undefined;
    try {
      const settings = readSettings();
      const session = await RunSession.replay(
        file.fsPath,
        settings.tasksPerPool,
        settings.timelineTasks,
      );
      registry.add(session);
      registry.flush();
      return session;
    } catch (err) {
      const message = (err as Error).message;
      log.error(`cannot open trace: ${message}`);
      void vscode.window.showErrorMessage(`Poolscope: ${message}`);
      return undefined;
    }
  });
  command('poolscope.saveTrace', async (node?: unknown, target?: vscode.Uri) => {
    const session =
      sessionOf(node) ?? (await pickSession(() => true, 'Save the trace of which run?'));
    if (!session) return undefined;
    const to =
      target ??
      (await vscode.window.showSaveDialog({
        filters: { 'Poolscope traces': ['jsonl'] },
        saveLabel: 'Save Trace',
      }));
    if (!to) return undefined;
    copyFileSync(session.traceFile, to.fsPath);
    log.info(`${session.label}: trace saved to ${to.fsPath}`);
    return to;
  });
  command('poolscope.showOutput', (node?: unknown) => {
    (sessionOf(node) ?? registry.active)?.output.show(true);
  });
  const errorOf = (node: unknown): ErrorInfo | undefined =>
    node instanceof ErrorOccurrenceNode
      ? node.entry.error
      : node instanceof TaskNode
        ? node.task.error
        : undefined;
  command('poolscope.copyError', async (node?: unknown) => {
    const error = errorOf(node);
    if (error) await vscode.env.clipboard.writeText(errorText(error));
  });
  command('poolscope.revealSource', async (node?: unknown) => {
    const error = errorOf(node);
    const where = error && userFrame(error);
    if (!where) {
      void vscode.window.showInformationMessage('Poolscope: no source location in this error.');
      return;
    }
    const open = openFrameCommand(where.frame, where.uri);
    await vscode.commands.executeCommand(open.command, ...(open.arguments ?? []));
  });
  command('poolscope.showAllTasks', async (ref?: TaskListRef) => {
    if (!ref) return;
    const tasks = [...ref.pool.pool.tasks.values()]
      .filter((t) => (ref.worker ? t.worker === ref.worker.worker.id : t.state === 'queued'))
      .reverse();
    const evicted = ref.pool.pool.evicted;
    const choice = await vscode.window.showQuickPick(
      tasks.map((t) => ({ label: taskLabel(t), description: taskDescription(t), task: t })),
      {
        matchOnDescription: true,
        placeHolder: `${tasks.length} tasks kept${
          evicted
            ? ` (${evicted} older ones counted but not kept: raise poolscope.tasksPerPool)`
            : ''
        }; type to filter`,
      },
    );
    if (!choice) return;
    const doc = await vscode.workspace.openTextDocument({
      language: 'json',
      content: JSON.stringify(choice.task, null, 2),
    });
    await vscode.window.showTextDocument(doc, { preview: true });
  });

  // The concurrency panel: opened by command, restored after a reload, selection in step with
  // the Runs tree.
  const openPanel = (session?: RunSession): ConcurrencyPanel => {
    const panel = ConcurrencyPanel.show(context.extensionUri, registry, log, session);
    wirePanel(panel);
    return panel;
  };
  const wired = new WeakSet<ConcurrencyPanel>();
  const wirePanel = (panel: ConcurrencyPanel): void => {
    if (wired.has(panel)) return;
    wired.add(panel);
    panel.onDidSelect(({ session, ref }) => void revealTask(session, ref));
  };
  const revealTask = async (session: RunSession, ref: TaskRef): Promise<void> => {
    for (const run of session.runs) {
      const pool = run.pools.get(ref.pool);
      const task = pool?.tasks.get(ref.task);
      if (!pool || !task) continue;
      const runNode = new RunNode(session, run);
      const poolNode = new PoolNode(runNode, pool);
      const worker = task.worker !== undefined ? pool.workers.get(task.worker) : undefined;
      const parent = worker ? new WorkerNode(poolNode, worker) : poolNode;
      try {
        await runsView.reveal(new TaskNode(parent, poolNode.id, task), {
          select: true,
          focus: false,
        });
      } catch (err) {
        log.info(`panel selection not shown in the tree: ${(err as Error).message}`);
      }
      return;
    }
  };
  context.subscriptions.push(
    runsView.onDidChangeSelection((e) => {
      const node = e.selection[0];
      const panel = ConcurrencyPanel.instance;
      if (!panel || !(node instanceof TaskNode)) return;
      let up: TreeNode | undefined = node.parent;
      while (up && !(up instanceof PoolNode)) up = up.parent;
      if (up instanceof PoolNode) {
        panel.select(up.parent.session, { pool: up.pool.id, task: node.task.id });
      }
    }),
    vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
      deserializeWebviewPanel: async (webviewPanel, state: unknown) => {
        const panel = ConcurrencyPanel.revive(
          webviewPanel,
          context.extensionUri,
          registry,
          log,
          (state ?? undefined) as PanelViewState | undefined,
        );
        wirePanel(panel);
      },
    }),
  );
  registerDebugging(context, registry, log);
  const setPause = async (on: boolean): Promise<void> => {
    await vscode.workspace
      .getConfiguration('poolscope')
      .update('pauseOnTaskError', on, vscode.ConfigurationTarget.Global);
    void vscode.commands.executeCommand('setContext', 'poolscope.pauseOnTaskError', on);
    log.info(`pause on task error: ${on ? 'on' : 'off'} (takes effect in the next debug session)`);
  };
  void vscode.commands.executeCommand(
    'setContext',
    'poolscope.pauseOnTaskError',
    readSettings().pauseOnTaskError,
  );
  command('poolscope.pauseOnTaskErrorOn', () => setPause(true));
  command('poolscope.pauseOnTaskErrorOff', () => setPause(false));
  command('poolscope.togglePauseOnTaskError', () => setPause(!readSettings().pauseOnTaskError));
  command('poolscope.openPanel', (node?: unknown) => openPanel(sessionOf(node)));
  command('poolscope.exportPerfetto', async (node?: unknown, target?: vscode.Uri) => {
    const session =
      sessionOf(node) ?? (await pickSession(() => true, 'Export which run to Perfetto?'));
    return session ? exportSessionToPerfetto(session, log, target) : undefined;
  });

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('poolscope')) registry.markDirty();
    }),
  );

  return {
    registry,
    trees,
    status: status.item,
    log,
    runsView,
    panel: () => ConcurrencyPanel.instance,
    run,
  };
}

/** Closing the window ends every run and every process it started. */
export function deactivate(): void {
  for (const s of registryForDeactivate?.sessions ?? []) s.kill();
}
