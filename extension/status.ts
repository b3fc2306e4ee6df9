/** The status bar item: running and failed task counts of the active run. */
import * as vscode from 'vscode';
import type { RunRegistry } from './runs';

export class RunStatus implements vscode.Disposable {
  readonly item = vscode.window.createStatusBarItem(
    'poolscope.status',
    vscode.StatusBarAlignment.Left,
    50,
  );

  constructor() {
    this.item.name = 'Poolscope';
    this.item.command = 'poolscope.runs.focus';
  }

  update(registry: RunRegistry): void {
    const session = registry.active;
    if (!session) {
      this.item.hide();
      return;
    }
    let running = 0;
    let failed = 0;
    let passed = 0;
    for (const run of session.runs) {
      for (const pool of run.pools.values()) {
        running += pool.counts.running;
        failed += pool.counts.failed + pool.counts.errored;
        passed += pool.counts.passed;
      }
    }
    const head = session.running ? '$(sync~spin)' : failed > 0 ? '$(error)' : '$(check)';
    this.item.text = `${head} ${running} running · ${failed} failed`;
    this.item.tooltip = `Poolscope: ${session.label}: ${running} running, ${passed} passed, ${failed} failed${
      session.exit
        ? ` · ${session.exit.signal ? `killed by ${session.exit.signal}` : `exit ${session.exit.code}`}`
        : ''
    }`;
    this.item.backgroundColor =
      failed > 0 ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
