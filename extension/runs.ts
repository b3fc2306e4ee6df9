/**
 * The runs the editor knows about, and the one clock that tells the views to redraw: whatever
 * the event rate, views refresh at most once per `refreshIntervalMs`, and only when a Store
 * changed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseEnv } from 'node:util';
import * as vscode from 'vscode';
import { RunSession, type LaunchRequest } from './run-session';
import { readSettings } from './settings';

export class RunRegistry implements vscode.Disposable {
  private readonly list: RunSession[] = [];
  private readonly changed = new vscode.EventEmitter<void>();
  /** Coalesced: fires at most once per refresh interval. */
  readonly onDidChange = this.changed.event;
  private timer: NodeJS.Timeout | undefined;
  private seen = new Map<RunSession, number>();
  private dirty = false;
  /** How many coalesced refreshes have fired (tests and the benchmark read it). */
  refreshes = 0;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  get sessions(): readonly RunSession[] {
    return this.list;
  }

  /** The run the status bar follows: the newest running one, else the newest. */
  get active(): RunSession | undefined {
    for (let i = this.list.length - 1; i >= 0; i--) if (this.list[i]!.running) return this.list[i];
    return this.list[this.list.length - 1];
  }

  find(id: string): RunSession | undefined {
    return this.list.find((s) => s.id === id);
  }

  /** Builds the launch from settings (args, env, .env file) for a script in the workspace. */
  request(script: vscode.Uri): LaunchRequest {
    const folder = vscode.workspace.getWorkspaceFolder(script);
    const settings = readSettings(script);
    const cwd = folder?.uri.fsPath ?? dirname(script.fsPath);
    const vars = (text: string): string =>
      text
        .replaceAll('${workspaceFolder}', cwd)
        .replaceAll('${file}', script.fsPath)
        .replace(/\$\{env:([^}]+)\}/g, (_, name: string) => process.env[name] ?? '');
    const env: NodeJS.ProcessEnv = { ...process.env };
    // The extension host's own Node must not leak into the user's program.
    delete env.ELECTRON_RUN_AS_NODE;
    delete env.NODE_OPTIONS;
    const envFile = vars(settings.envFile);
    if (envFile && existsSync(envFile)) {
      Object.assign(env, parseEnv(readFileSync(envFile, 'utf8')));
      this.log.info(`env from ${envFile}`);
    } else if (settings.envFile !== '${workspaceFolder}/.env') {
      this.log.warn(`poolscope.envFile ${envFile} does not exist; ignored`);
    }
    for (const [k, v] of Object.entries(settings.env)) env[k] = vars(String(v));
    env.POOLSCOPE_SAMPLE_MS = String(settings.sampleIntervalMs);
    return {
      script: script.fsPath,
      args: settings.args.map(vars),
      cwd,
      env,
      node: settings.nodePath,
      python: settings.pythonPath,
      tasksPerPool: settings.tasksPerPool,
      timelineTasks: settings.timelineTasks,
    };
  }

  add(session: RunSession): void {
    this.list.push(session);
    session.onDidEnd(() => this.markDirty());
    this.markDirty();
    this.ensureTimer();
  }

  remove(session: RunSession): void {
    const i = this.list.indexOf(session);
    if (i !== -1) this.list.splice(i, 1);
    this.seen.delete(session);
    session.dispose();
    this.markDirty();
  }

  clearFinished(): number {
    const done = this.list.filter((s) => !s.running);
    for (const s of done) this.remove(s);
    return done.length;
  }

  markDirty(): void {
    this.dirty = true;
    this.ensureTimer();
  }

  private ensureTimer(): void {
    if (this.timer) return;
    const interval = readSettings().refreshIntervalMs;
    this.timer = setInterval(() => this.tick(), interval);
  }

  private tick(): void {
    let changed = this.dirty;
    for (const s of this.list) {
      if (this.seen.get(s) !== s.store.version) {
        this.seen.set(s, s.store.version);
        changed = true;
      }
    }
    this.dirty = false;
    if (changed) {
      this.refreshes++;
      this.changed.fire();
    } else if (!this.list.some((s) => s.running)) {
      // Nothing is running and nothing changed: the clock sleeps until the next run or edit.
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Fires the change now (after Clear, or for a test that wants the views current). */
  flush(): void {
    this.tick();
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    for (const s of this.list) s.dispose();
    this.list.length = 0;
    this.changed.dispose();
  }
}
