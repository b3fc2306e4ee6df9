/**
 * The concurrency panel's host side: one WebviewPanel showing one run (the active one unless the
 * user picks another), fed a snapshot and then deltas at the views' refresh rate. Every message
 * from the webview is validated before use. The panel does not keep its context when hidden:
 * it asks for a snapshot when it comes back, and a serializer brings it back after a reload.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import * as vscode from 'vscode';
import { exportPerfetto } from '../../core/trace/perfetto';
import type { RunModel } from '../../core/trace/store';
import {
  parsePanelRequest,
  type HostMessage,
  type PanelViewState,
  type TaskRef,
} from '../../webview/protocol';
import type { RunSession } from '../run-session';
import type { RunRegistry } from '../runs';
import { frameUri } from '../views/error-nodes';
import { panelHtml } from './html';
import { RunFeed } from './snapshot';

export const PANEL_VIEW_TYPE = 'poolscope.panel';

interface Shown {
  session: RunSession;
  run: RunModel;
  feed: RunFeed;
}

export class ConcurrencyPanel implements vscode.Disposable {
  private static current: ConcurrencyPanel | undefined;
  private shown: Shown | undefined;
  private ready = false;
  private readonly disposables: vscode.Disposable[] = [];
  /** Messages posted to the webview (tests read the last ones). */
  readonly posted: HostMessage[] = [];
  private readonly selected = new vscode.EventEmitter<{ session: RunSession; ref: TaskRef }>();
  /** The user selected a task in the panel. */
  readonly onDidSelect = this.selected.event;

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly extensionUri: vscode.Uri,
    private readonly registry: RunRegistry,
    private readonly log: vscode.LogOutputChannel,
    private wantedRun?: string,
  ) {
    panel.webview.options = {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')],
    };
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'poolscope.svg');
    panel.webview.html = this.html();
    this.disposables.push(
      panel.webview.onDidReceiveMessage((raw: unknown) => this.receive(raw)),
      panel.onDidChangeViewState(() => {
        // Hidden panels lose their page; a visible one says `ready` again and gets a snapshot.
        if (!panel.visible) this.ready = false;
      }),
      registry.onDidChange(() => this.update()),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  static get instance(): ConcurrencyPanel | undefined {
    return ConcurrencyPanel.current;
  }

  /** Opens the panel (or reveals it) on a run: the given one, else the active one. */
  static show(
    extensionUri: vscode.Uri,
    registry: RunRegistry,
    log: vscode.LogOutputChannel,
    session?: RunSession,
  ): ConcurrencyPanel {
    const existing = ConcurrencyPanel.current;
    if (existing) {
      existing.panel.reveal(undefined, false);
      if (session) existing.showRun(session.id);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(
      PANEL_VIEW_TYPE,
      'Poolscope',
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false },
      {
        enableScripts: true,
        localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')],
      },
    );
    ConcurrencyPanel.current = new ConcurrencyPanel(
      panel,
      extensionUri,
      registry,
      log,
      session?.id,
    );
    return ConcurrencyPanel.current;
  }

  /** After a reload: the panel VS Code restored, with the state the webview had saved. */
  static revive(
    panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    registry: RunRegistry,
    log: vscode.LogOutputChannel,
    state: PanelViewState | undefined,
  ): ConcurrencyPanel {
    ConcurrencyPanel.current?.dispose();
    ConcurrencyPanel.current = new ConcurrencyPanel(
      panel,
      extensionUri,
      registry,
      log,
      state?.runId,
    );
    return ConcurrencyPanel.current;
  }

  private html(): string {
    const webview = this.panel.webview;
    const asset = (name: string): string =>
      webview
        .asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview', name))
        .toString();
    return panelHtml({
      cspSource: webview.cspSource,
      nonce: randomBytes(18).toString('base64url'),
      scriptUri: asset('panel.js'),
      styleUri: asset('panel.css'),
    });
  }

  private runList(): { id: string; label: string }[] {
    return this.registry.sessions.flatMap((s) =>
      s.runs.map((r) => ({ id: r.id, label: s.runs.length > 1 ? `${s.label} ${r.id}` : s.label })),
    );
  }

  /** The run to show: the one asked for while it exists, else the active session's. */
  private pick(): { session: RunSession; run: RunModel } | undefined {
    if (this.wantedRun) {
      for (const s of this.registry.sessions) {
        const run = s.runs.find((r) => r.id === this.wantedRun);
        if (run) return { session: s, run };
      }
    }
    const session = this.registry.active;
    const run = session?.run;
    return session && run ? { session, run } : undefined;
  }

  showRun(runId: string): void {
    this.wantedRun = runId;
    this.shown = undefined;
    this.update();
  }

  private post(message: HostMessage): void {
    this.posted.push(message);
    if (this.posted.length > 50) this.posted.splice(0, 25);
    void this.panel.webview.postMessage(message);
  }

  /** Sends what changed: a snapshot for a new run (or when a delta cannot say it), else a delta. */
  update(): void {
    if (!this.ready) return;
    const pick = this.pick();
    if (!pick) {
      if (this.shown || this.posted.length === 0)
        this.post({ type: 'empty', runs: this.runList() });
      this.shown = undefined;
      return;
    }
    if (!this.shown || this.shown.run !== pick.run || this.shown.feed.needsSnapshot()) {
      const { session, run } = pick;
      const feed = new RunFeed(
        run,
        () => ({ label: session.label, state: session.state }),
        () => session.store.version,
      );
      this.shown = { session, run, feed };
      this.post({ type: 'snapshot', run: feed.snapshot(), runs: this.runList() });
      return;
    }
    const delta = this.shown.feed.delta();
    if (delta) this.post({ type: 'delta', delta });
  }

  /** The tree selected a task: the panel follows. */
  select(session: RunSession, ref: TaskRef | null): void {
    if (ref && this.shown?.session !== session) this.showRun(session.run?.id ?? '');
    this.post({ type: 'select', ref });
  }

  /** For the extension's tests: handle a message as if the webview had sent it. */
  receiveForTest(raw: unknown): void {
    this.receive(raw);
  }

  private receive(raw: unknown): void {
    const request = parsePanelRequest(raw);
    if (!request) {
      this.log.warn(`panel: ignored a malformed message: ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    switch (request.type) {
      case 'ready':
        this.ready = true;
        this.shown = undefined;
        this.update();
        break;
      case 'showRun':
        this.showRun(request.runId);
        break;
      case 'select':
        if (request.ref && this.shown)
          this.selected.fire({ session: this.shown.session, ref: request.ref });
        break;
      case 'openFrame':
        void this.openFrame(request.file, request.line, request.column);
        break;
      case 'saveTrace':
        if (this.shown)
          void vscode.commands.executeCommand('poolscope.saveTrace', this.shown.session);
        break;
      case 'exportPerfetto':
        if (this.shown) void exportSessionToPerfetto(this.shown.session, this.log);
        break;
    }
  }

  private async openFrame(file: string, line?: number, column?: number): Promise<void> {
    const uri = frameUri({ file, raw: file });
    if (!uri) {
      void vscode.window.showInformationMessage(
        `Poolscope: ${file} is not a file on this machine.`,
      );
      return;
    }
    const l = Math.max(0, (line ?? 1) - 1);
    const c = Math.max(0, (column ?? 1) - 1);
    await vscode.window.showTextDocument(uri, {
      selection: new vscode.Range(l, c, l, c),
      viewColumn: vscode.ViewColumn.One,
    });
  }

  dispose(): void {
    if (ConcurrencyPanel.current === this) ConcurrencyPanel.current = undefined;
    this.selected.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
    this.panel.dispose();
  }
}

/** Export to Perfetto: the run's trace through the CLI's converter, to a file the user picks. */
export async function exportSessionToPerfetto(
  session: RunSession,
  log: vscode.LogOutputChannel,
  target?: vscode.Uri,
): Promise<vscode.Uri | undefined> {
  const to =
    target ??
    (await vscode.window.showSaveDialog({
      filters: { 'Trace Event JSON (Perfetto, chrome://tracing)': ['json'] },
      saveLabel: 'Export',
    }));
  if (!to) return undefined;
  const out = createWriteStream(to.fsPath);
  const lines = createInterface({
    input: createReadStream(session.traceFile),
    crlfDelay: Infinity,
  });
  const summary = await exportPerfetto(lines, out);
  await new Promise<void>((resolve) => out.end(resolve));
  log.info(
    `${session.label}: Perfetto trace written to ${to.fsPath}${
      summary.unreadableLines ? ` (${summary.unreadableLines} unreadable lines skipped)` : ''
    }`,
  );
  return to;
}
