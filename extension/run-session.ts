/**
 * One run as the editor sees it: a launched script (or a replayed trace file), its Store, its
 * trace kept in a temporary JSONL file (for Save Trace As…), and its output channel. The session
 * talks to the process; the views only read `store`.
 */
import { mkdtempSync, rmSync, createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as vscode from 'vscode';
import {
  checkScript,
  isPythonScript,
  launcherEvent,
  launchTraced,
  newRunId,
  openTraceSink,
  type LaunchExit,
  type TraceSink,
  type TracedRun,
} from '../core/trace/launch';
import { readTrace } from '../core/trace/trace-file';
import type { TraceEvent } from '../core/trace/protocol';
import { Store, type RunModel } from '../core/trace/store';

export interface LaunchRequest {
  script: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  node: string;
  /** The `python3` that runs a `.py` script (under Poolscope's tap). */
  python: string;
  tasksPerPool: number;
  timelineTasks: number;
}

export type SessionState = 'running' | 'stopping' | 'exited' | 'replay';

let sessionCount = 0;

export class RunSession implements vscode.Disposable {
  readonly id: string;
  readonly label: string;
  readonly store: Store;
  readonly output: vscode.LogOutputChannel;
  /** The run's trace, as received, for Save Trace As… */
  readonly traceFile: string;
  state: SessionState;
  exit?: LaunchExit;
  startedAt = Date.now();
  private readonly dir: string;
  private readonly trace: WriteStream;
  private launched?: TracedRun;
  private sink?: TraceSink;
  /** For a run inside a debug session: ends that session. */
  stopDebugging?: () => Thenable<void>;
  private disposed = false;
  private partial = { stdout: '', stderr: '' };
  private readonly ended = new vscode.EventEmitter<RunSession>();
  /** Fires once, when the script has exited and its last events are in. */
  readonly onDidEnd = this.ended.event;

  private constructor(
    readonly request: LaunchRequest | undefined,
    readonly source: string,
    state: SessionState,
    tasksPerPool: number,
    timelineTasks: number,
  ) {
    this.id = newRunId();
    sessionCount++;
    this.label = `${basename(source)} #${sessionCount}`;
    this.store = new Store({ tasksPerPool, barsPerPool: timelineTasks });
    this.state = state;
    this.output = vscode.window.createOutputChannel(`Poolscope: ${this.label}`, { log: true });
    this.dir = mkdtempSync(join(tmpdir(), 'poolscope-session-'));
    this.traceFile = join(this.dir, 'trace.jsonl');
    this.trace = createWriteStream(this.traceFile);
    this.trace.on('error', (err) => {
      if (!this.disposed) this.output.warn(`cannot keep the trace: ${err.message}`);
    });
  }

  private static running(request: LaunchRequest): RunSession {
    return new RunSession(
      request,
      request.script,
      'running',
      request.tasksPerPool,
      request.timelineTasks,
    );
  }

  /** Starts the script; throws a LaunchError (no session left behind) when it cannot start. */
  static async launch(request: LaunchRequest): Promise<RunSession> {
    const session = RunSession.running(request);
    try {
      await session.start(request);
    } catch (err) {
      session.dispose();
      throw err;
    }
    return session;
  }

  /**
   * A run the JavaScript debugger starts: the trace sink is opened here, and the debug
   * configuration gets its environment and Node flags (`sink.env`, `sink.execArgv`).
   */
  static async forDebug(request: LaunchRequest): Promise<{ session: RunSession; sink: TraceSink }> {
    checkScript(request.script, request.cwd);
    const session = RunSession.running(request);
    try {
      session.sink = await openTraceSink(session.id, {
        packageRoot: PACKAGE_ROOT,
        baseEnv: request.env,
        onLine: (line) => session.take(line, 'trace'),
        onProblem: (text) => session.output.warn(text),
      });
    } catch (err) {
      session.dispose();
      throw err;
    }
    session.output.info(`debugging ${request.script} ${request.args.join(' ')}`);
    session.own('run.start', {
      argv: [request.script, ...request.args],
      cwd: request.cwd,
      runtime: `${request.node} (debug)`,
    });
    return { session, sink: session.sink };
  }

  /** Program output seen by the debugger (stdout or stderr), for the run's channel and trace. */
  debugOutput(stream: 'stdout' | 'stderr', text: string): void {
    this.onOutput(stream, Buffer.from(text));
  }

  /** The debug session ended: the run ends with the exit code the debugger saw, if any. */
  async debugEnded(exitCode: number | null): Promise<void> {
    if (!this.sink || this.state === 'exited') return;
    await this.sink.server.close();
    this.flushOutput();
    // The program reports its own exit code (POOLSCOPE_REPORT_EXIT); the debugger's is a fallback.
    const reported = this.run?.exitCode;
    const code = reported ?? exitCode;
    this.exit = { code, signal: null, status: code ?? 0 };
    this.state = 'exited';
    if (reported === undefined) {
      this.own('run.end', { exitCode: code, signal: null, durationMs: this.elapsed() });
    }
    this.output.info(`debug session ended${code !== null ? `, exit code ${code}` : ''}`);
    this.trace.end();
    this.ended.fire(this);
  }

  /** Replays a saved trace file; throws when it holds no Poolscope events. */
  static async replay(
    file: string,
    tasksPerPool: number,
    timelineTasks: number,
  ): Promise<RunSession> {
    const session = new RunSession(undefined, file, 'replay', tasksPerPool, timelineTasks);
    try {
      const lines = await readTrace(file, (line, n) => session.take(line, `line ${n}`));
      if (session.store.runs.size === 0) {
        throw new Error(
          `${file} holds no Poolscope events (${lines} lines${
            session.store.problems[0] ? `; first problem: ${session.store.problems[0]}` : ''
          }): is it a trace file?`,
        );
      }
      if (session.store.problemCount > 0) {
        session.output.warn(`${session.store.problemCount} of ${lines} lines could not be used:`);
        for (const p of session.store.problems.slice(0, 20)) session.output.warn(`  ${p}`);
      }
      session.output.info(`replayed ${lines} lines from ${file}`);
    } catch (err) {
      session.dispose();
      throw err;
    }
    session.trace.end();
    return session;
  }

  private async start(request: LaunchRequest): Promise<void> {
    const runner = isPythonScript(request.script) ? request.python : request.node;
    this.output.info(`starting ${runner} ${request.script} ${request.args.join(' ')}`);
    this.output.info(`cwd ${request.cwd}`);
    this.launched = await launchTraced(
      {
        script: request.script,
        args: request.args,
        cwd: request.cwd,
        env: request.env,
        node: request.node,
        python: request.python,
        packageRoot: PACKAGE_ROOT,
        detached: true,
        onLine: (line) => this.take(line, 'trace'),
        onProblem: (text) => this.output.warn(text),
        onOutput: (stream, chunk) => this.onOutput(stream, chunk),
      },
      this.id,
    );
    const pid = this.launched.pid;
    this.own('run.start', {
      argv: [request.script, ...request.args],
      cwd: request.cwd,
      runtime: this.launched.runtime,
    });
    this.output.info(`pid ${pid}`);
    void this.launched.exited.then((exit) => {
      this.flushOutput();
      this.exit = exit;
      this.state = 'exited';
      this.own('run.end', { exitCode: exit.code, signal: exit.signal, durationMs: this.elapsed() });
      const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
      (exit.status === 0 ? this.output.info : this.output.warn).call(this.output, how);
      this.trace.end();
      this.ended.fire(this);
    });
  }

  get run(): RunModel | undefined {
    return this.store.runs.get(this.id) ?? this.store.runs.values().next().value;
  }

  /** Every run model the session holds (a replayed trace may hold several). */
  get runs(): RunModel[] {
    return [...this.store.runs.values()];
  }

  get pid(): number | undefined {
    return this.launched?.pid;
  }

  get running(): boolean {
    return this.state === 'running' || this.state === 'stopping';
  }

  private elapsed(): number {
    return Date.now() - this.startedAt;
  }

  private take(line: string, where: string): void {
    this.store.applyLine(line, where);
    this.trace.write(`${line}\n`);
  }

  private own(type: TraceEvent['type'], fields: Record<string, unknown>): void {
    this.take(launcherEvent(this.id, this.launched?.pid ?? 0, type, fields), 'launcher');
  }

  private onOutput(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const text = this.partial[stream] + chunk.toString('utf8');
    const end = text.lastIndexOf('\n');
    this.partial[stream] = end === -1 ? text : text.slice(end + 1);
    if (end === -1) return;
    const complete = text.slice(0, end);
    this.own('output', {
      stream,
      text: complete.length > 4000 ? `${complete.slice(0, 4000)}…` : complete,
    });
    for (const line of complete.split('\n')) {
      if (stream === 'stdout') this.output.info(line);
      else this.output.error(line);
    }
  }

  private flushOutput(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream]) this.onOutput(stream, Buffer.from('\n'));
    }
  }

  /** The program's last error line on stderr (or its last stderr line), for a notification. */
  lastErrorLine(): string | undefined {
    const run = this.run;
    if (!run) return undefined;
    const lines = run.output
      .filter((o) => o.stream === 'stderr')
      .slice(-50)
      .flatMap((o) => o.text.split('\n'))
      .map((l) => l.trim())
      .filter(Boolean);
    for (let i = lines.length - 1; i >= 0; i--) {
      if (/^\w*Error\b|\berror:/.test(lines[i]!)) return lines[i];
    }
    return lines[lines.length - 1];
  }

  /** Ends the script and every process it started. */
  async stop(): Promise<void> {
    if (this.stopDebugging && this.running) {
      this.state = 'stopping';
      await this.stopDebugging();
      return;
    }
    if (!this.launched || !this.running) return;
    this.state = 'stopping';
    this.output.info('stopping: SIGTERM to the process group');
    await this.launched.stop();
  }

  /** Immediate, for deactivation: SIGKILL to the whole group. */
  kill(): void {
    if (this.launched && this.running) {
      try {
        process.kill(-this.launched.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  dispose(): void {
    this.disposed = true;
    this.kill();
    void this.sink?.server.close();
    this.trace.destroy();
    this.output.dispose();
    this.ended.dispose();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** dist/extension -> the package root, which holds dist/core and dist/cli for the script. */
const PACKAGE_ROOT = join(__dirname, '..', '..');
