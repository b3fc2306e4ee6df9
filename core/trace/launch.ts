/**
 * Starts a user's script in its own `node` (or, for a `.py` script, `python3` with Poolscope's
 * tap, python/poolscope_tap) with a trace sink attached: the one launcher behind `poolscope run`
 * and the editor extension's runs. It owns the trace server, the `poolscope` module shim for
 * projects that lack the package, the TypeScript loader, and stopping the script's whole process
 * tree.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statSync, symlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { delimiter, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TraceEvent } from './protocol';
import { PROTOCOL_VERSION } from './version';
import { TraceServer } from './server';

/** Scripts `node` runs (and a Node debugging session can trace). */
export const RUNNABLE_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'];
/** Python `multiprocessing` programs, run unmodified under the tap. */
export const PYTHON_EXTENSIONS = ['.py'];
/** Every script `poolscope run` and the editor can start. */
export const LAUNCHABLE_EXTENSIONS = [...RUNNABLE_EXTENSIONS, ...PYTHON_EXTENSIONS];

export function isPythonScript(file: string): boolean {
  return PYTHON_EXTENSIONS.includes(extname(file));
}

/** A script that cannot be started, in words a user can act on. */
export class LaunchError extends Error {
  override name = 'LaunchError';
}

export interface LaunchOptions {
  script: string;
  args?: string[];
  cwd?: string;
  /** The whole environment of the script (the trace variables are added). */
  env?: NodeJS.ProcessEnv;
  /** The `node` to run it with: a path or a command looked up on PATH. */
  node?: string;
  /** The `python3` that runs a `.py` script: a path or a command looked up on PATH. */
  python?: string;
  /** The folder holding this package's `package.json` and `dist/`. */
  packageRoot: string;
  /**
   * Give the script its own process group (stop() then ends every process it started) and end
   * it if this process dies.
   */
  detached?: boolean;
  /** stdin of the script: inherited (terminal) or closed. */
  stdin?: 'inherit' | 'ignore';
  onLine(line: string): void;
  onProblem?(text: string): void;
  onOutput(stream: 'stdout' | 'stderr', chunk: Buffer): void;
}

export interface LaunchExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** 128+N for a signal, like a shell. */
  status: number;
}

export interface TracedRun {
  readonly runId: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** What runs the script: `node v20.20.2`, or the Python interpreter's path. */
  readonly runtime: string;
  /** Settles when the script has exited and the last trace lines are in. */
  readonly exited: Promise<LaunchExit>;
  /** SIGTERM to the script (its process group when detached), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<LaunchExit>;
}

/** The checks that give a clear message before anything starts. */
export function checkScript(script: string, cwd = process.cwd()): string {
  const file = resolve(cwd, script);
  if (!existsSync(file)) throw new LaunchError(`no such script: ${file}`);
  if (!statSync(file).isFile()) throw new LaunchError(`not a file: ${file}`);
  if (!LAUNCHABLE_EXTENSIONS.includes(extname(file))) {
    throw new LaunchError(
      `cannot run ${file}: expected a .js, .mjs, .cjs, .ts, .mts or .cts script, or a .py one`,
    );
  }
  return file;
}

/** `node` on PATH (or a given path) as an absolute file, or a LaunchError saying what to set. */
export function resolveNode(node: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolveCommand(node, 'node', env);
}

/**
 * A command on PATH (or a given path) as an absolute file, or a LaunchError saying what to set;
 * `what` names it in the message (`node`, `python3`).
 */
export function resolveCommand(
  command: string,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const candidates = command.includes('/')
    ? [resolve(command)]
    : (env.PATH ?? '').split(delimiter).flatMap((dir) => (dir ? [join(dir, command)] : []));
  for (const candidate of candidates) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // next
    }
  }
  throw new LaunchError(
    command.includes('/')
      ? `the ${what} executable ${resolve(command)} does not exist`
      : `no \`${command}\` on PATH (${env.PATH ?? 'unset'})`,
  );
}

/** An event the launcher itself emits (run.start, run.end, output), as a JSONL line. */
export function launcherEvent(
  run: string,
  pid: number,
  type: TraceEvent['type'],
  fields: Record<string, unknown>,
): string {
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    ts: performance.timeOrigin + performance.now(),
    pid,
    run,
    type,
    ...fields,
  });
}

export function newRunId(): string {
  return `run-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** `require('poolscope')` from a script whose project lacks it: NODE_PATH to a link to this copy. */
function moduleShim(dir: string, packageRoot: string): string {
  const nodeModules = join(dir, 'node_modules');
  mkdirSync(nodeModules);
  symlinkSync(packageRoot, join(nodeModules, 'poolscope'), 'dir');
  return nodeModules;
}

export interface TraceSink {
  server: TraceServer;
  /** What the traced program's environment needs: the sink's address and token, NODE_PATH. */
  env: Record<string, string>;
  /** Node flags for the traced program: the TypeScript and `poolscope` loader. */
  execArgv: string[];
}

/**
 * A trace server for a program someone else starts (a debugger, say): what to put in its
 * environment and on its command line so it reports here.
 */
export async function openTraceSink(
  runId: string,
  options: {
    packageRoot: string;
    baseEnv?: NodeJS.ProcessEnv;
    onLine(line: string): void;
    onProblem?(text: string): void;
  },
): Promise<TraceSink> {
  const server = await TraceServer.start({
    run: runId,
    onLine: options.onLine,
    ...(options.onProblem ? { onProblem: options.onProblem } : {}),
  });
  const nodePath = [moduleShim(server.dir, options.packageRoot), options.baseEnv?.NODE_PATH]
    .filter(Boolean)
    .join(delimiter);
  const register = pathToFileURL(join(options.packageRoot, 'dist', 'cli', 'register.mjs')).href;
  return { server, env: { ...server.env, NODE_PATH: nodePath }, execArgv: ['--import', register] };
}

export async function launchTraced(options: LaunchOptions, runId = newRunId()): Promise<TracedRun> {
  const cwd = options.cwd ?? process.cwd();
  const script = checkScript(options.script, cwd);
  const baseEnv = options.env ?? process.env;
  const python = isPythonScript(script);
  /** The interpreter that runs the script: `node`, or `python3` for a `.py` one. */
  const runner = python
    ? resolveCommand(options.python ?? 'python3', 'python3', baseEnv)
    : resolveNode(options.node ?? process.execPath, baseEnv);
  const {
    server,
    env: sinkEnv,
    execArgv,
  } = await openTraceSink(runId, {
    packageRoot: options.packageRoot,
    baseEnv,
    onLine: options.onLine,
    ...(options.onProblem ? { onProblem: options.onProblem } : {}),
  });
  const env: NodeJS.ProcessEnv = { ...baseEnv, ...sinkEnv };
  if (options.detached) env.POOLSCOPE_DIE_WITH_PARENT = '1';
  let argv = [...execArgv, script, ...(options.args ?? [])];
  if (python) {
    // The tap is importable from this package's python/ folder; output unbuffered, so that a
    // live view shows it as it happens (a pipe makes Python buffer it).
    env.PYTHONPATH = [join(options.packageRoot, 'python'), baseEnv.PYTHONPATH]
      .filter(Boolean)
      .join(delimiter);
    env.PYTHONUNBUFFERED ??= '1';
    argv = ['-m', 'poolscope_tap', script, ...(options.args ?? [])];
  }
  const child = spawn(runner, argv, {
    cwd,
    env,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const started = await new Promise<Error | undefined>((done) => {
    child.once('spawn', () => done(undefined));
    child.once('error', (err) => done(err));
  });
  if (started) {
    await server.close();
    throw new LaunchError(`cannot start ${runner}: ${started.message}`);
  }
  child.stdout!.on('data', (chunk: Buffer) => options.onOutput('stdout', chunk));
  child.stderr!.on('data', (chunk: Buffer) => options.onOutput('stderr', chunk));
  const pid = child.pid!;
  const signalTree = (signal: NodeJS.Signals): void => {
    try {
      if (options.detached) process.kill(-pid, signal);
      else child.kill(signal);
    } catch {
      // already gone
    }
  };
  const exited = new Promise<LaunchExit>((done) => {
    child.once('close', (code, signal) => {
      // What the script left behind in its own group has lost its parent: end it.
      if (options.detached) signalTree('SIGKILL');
      // Producers flush at exit; the server waits briefly for their last lines.
      void server.close().then(() =>
        done({
          code,
          signal,
          status: signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1),
        }),
      );
    });
  });
  let stopping: Promise<LaunchExit> | undefined;
  const stop = (graceMs = 2000): Promise<LaunchExit> => {
    stopping ??= (async () => {
      signalTree('SIGTERM');
      const timer = setTimeout(() => signalTree('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    })();
    return stopping;
  };
  const runtime = python || options.node !== undefined ? runner : `node ${process.version}`;
  return { runId, child, pid, runtime, exited, stop };
}
