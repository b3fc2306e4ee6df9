/**
 * Worker errors as Problems: each failed task's error at the first frame in the user's own code,
 * one diagnostic per place and message, cleared with its run.
 */
import * as vscode from 'vscode';
import type { RunSession } from './run-session';
import { errorTitle, userFrame } from './views/error-nodes';

export class ErrorDiagnostics implements vscode.Disposable {
  private readonly collection = vscode.languages.createDiagnosticCollection('poolscope');
  private lastKey = '';

  update(sessions: readonly RunSession[], enabled: boolean): void {
    const key = enabled
      ? sessions.map((s) => `${s.id}:${s.runs.reduce((n, r) => n + r.errorCount, 0)}`).join(',')
      : 'off';
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.collection.clear();
    if (!enabled) return;
    const byFile = new Map<
      string,
      { uri: vscode.Uri; list: vscode.Diagnostic[]; seen: Set<string> }
    >();
    for (const session of sessions) {
      for (const run of session.runs) {
        for (const entry of run.errors) {
          const where = userFrame(entry.error);
          if (!where) continue;
          const line = Math.max(0, (where.frame.line ?? 1) - 1);
          const col = Math.max(0, (where.frame.column ?? 1) - 1);
          const message = `${errorTitle(entry.error)}${
            entry.fn ? ` (in ${entry.fn}, ${session.label})` : ` (${session.label})`
          }`;
          let file = byFile.get(where.uri.toString());
          if (!file)
            byFile.set(
              where.uri.toString(),
              (file = { uri: where.uri, list: [], seen: new Set() }),
            );
          const dedupe = `${line}:${col}:${message}`;
          if (file.seen.has(dedupe)) continue;
          file.seen.add(dedupe);
          const d = new vscode.Diagnostic(
            new vscode.Range(line, col, line, Number.MAX_SAFE_INTEGER),
            message,
            vscode.DiagnosticSeverity.Error,
          );
          d.source = 'Poolscope';
          if (entry.error.code !== undefined) d.code = String(entry.error.code);
          file.list.push(d);
        }
      }
    }
    for (const { uri, list } of byFile.values()) this.collection.set(uri, list);
  }

  dispose(): void {
    this.collection.dispose();
  }
}
