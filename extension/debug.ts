/**
 * Poolscope in debugging sessions. A `poolscope` launch configuration resolves into a launch of
 * the built-in JavaScript debugger (`type: "node"`) with the trace sink attached, so the run
 * fills the views while breakpoints work in the main script and in workers (child processes and
 * worker threads attach through the JavaScript debugger). With `poolscope.traceNodeSessions`
 * on, the user's own `node` launch configurations get the sink too. "Pause on Task Error" makes
 * a worker stop in the debugger where its task's error is caught, before the pool hears of it.
 */
import { dirname } from 'node:path';
import * as vscode from 'vscode';
import { RUNNABLE_EXTENSIONS, resolveNode } from '../core/trace/launch';
import { RunSession } from './run-session';
import type { RunRegistry } from './runs';
import { readSettings } from './settings';

export const DEBUG_TYPE = 'poolscope';
/** Marks a resolved configuration as Poolscope's: the run it belongs to. */
const RUN_KEY = '__poolscopeRun';

interface PoolscopeLaunch extends vscode.DebugConfiguration {
  program?: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
  runtimeExecutable?: string;
  runtimeArgs?: string[];
  stopOnEntry?: boolean;
}

/** The variables a launch configuration commonly uses, as VS Code would substitute them. */
function substitution(folder: vscode.WorkspaceFolder | undefined): (text: string) => string {
  const file = vscode.window.activeTextEditor?.document.uri.fsPath ?? '';
  const root = folder?.uri.fsPath ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
  return (text) =>
    text
      .replaceAll('${file}', file)
      .replaceAll('${fileDirname}', dirname(file))
      .replaceAll('${workspaceFolder}', root)
      .replace(/\$\{env:([^}]+)\}/g, (_, name: string) => process.env[name] ?? '');
}

export function registerDebugging(
  context: vscode.ExtensionContext,
  registry: RunRegistry,
  log: vscode.LogOutputChannel,
): void {
  const byDebugSession = new Map<string, RunSession>();
  /** Per root debug session: the exit code seen nearest the root (the program, not a worker). */
  const exitCodes = new Map<string, { code: number; depth: number }>();

  /** The run a debug session (or one of its child sessions) belongs to. */
  const sessionFor = (s: vscode.DebugSession | undefined): RunSession | undefined => {
    for (let cur = s; cur; cur = cur.parentSession) {
      const run = byDebugSession.get(cur.id);
      if (run) return run;
      const id = cur.configuration[RUN_KEY] as string | undefined;
      if (id) return registry.find(id);
    }
    return undefined;
  };

  /** Creates the run and turns the configuration into a traced `node` launch. */
  const attach = async (
    folder: vscode.WorkspaceFolder | undefined,
    config: PoolscopeLaunch,
    program: string,
  ): Promise<vscode.DebugConfiguration | undefined> => {
    const uri = vscode.Uri.file(program);
    const request = registry.request(uri);
    if (config.cwd) request.cwd = config.cwd;
    else if (!folder) request.cwd = dirname(program);
    if (config.args) request.args = config.args;
    let created: Awaited<ReturnType<typeof RunSession.forDebug>>;
    try {
      created = await RunSession.forDebug(request);
    } catch (err) {
      void vscode.window.showErrorMessage(`Poolscope: ${(err as Error).message}`);
      log.error(`cannot debug ${program}: ${(err as Error).message}`);
      return undefined;
    }
    const { session, sink } = created;
    registry.add(session);
    const settings = readSettings(uri);
    const env: Record<string, string> = { ...(config.env ?? {}), ...sink.env };
    env.POOLSCOPE_SAMPLE_MS = String(settings.sampleIntervalMs);
    env.POOLSCOPE_REPORT_EXIT = '1';
    if (settings.pauseOnTaskError) env.POOLSCOPE_PAUSE_ON_TASK_ERROR = '1';
    for (const [k, v] of Object.entries(settings.env)) env[k] ??= v;
    let runtime: string;
    try {
      runtime = config.runtimeExecutable ?? resolveNode(settings.nodePath);
    } catch (err) {
      registry.remove(session);
      void vscode.window.showErrorMessage(`Poolscope: ${(err as Error).message}`);
      return undefined;
    }
    log.info(`${session.label}: debugging ${program}`);
    return {
      ...config,
      // A `poolscope` configuration becomes `node`; a user's own keeps the type the JavaScript
      // debugger gave it (`pwa-node` by this stage).
      type: config.type === DEBUG_TYPE ? 'node' : config.type,
      request: 'launch',
      name: config.name || `Poolscope: ${session.label}`,
      program,
      args: request.args,
      cwd: request.cwd,
      runtimeExecutable: runtime,
      runtimeArgs: [...sink.execArgv, ...(config.runtimeArgs ?? [])],
      env,
      autoAttachChildProcesses: true,
      console: 'internalConsole',
      outputCapture: 'std',
      [RUN_KEY]: session.id,
    };
  };

  const poolscopeProvider: vscode.DebugConfigurationProvider = {
    provideDebugConfigurations: () => [
      {
        type: DEBUG_TYPE,
        request: 'launch',
        name: 'Poolscope: Debug Current File',
        program: '${file}',
      },
    ],
    // The type changes to `node` here, in the first stage, so VS Code then runs the JavaScript
    // debugger's own resolver (and activates it); variables a `poolscope` configuration uses
    // in `program`, `cwd` and `args` are substituted here for that reason.
    resolveDebugConfiguration: async (folder, config: PoolscopeLaunch) => {
      // F5 without a launch.json: debug the current file.
      if (!config.type && !config.request && !config.name) {
        const file = vscode.window.activeTextEditor?.document.uri;
        if (!file || !RUNNABLE_EXTENSIONS.some((e) => file.fsPath.endsWith(e))) {
          void vscode.window.showErrorMessage(
            'Poolscope: open a .js, .mjs, .cjs or .ts file to debug it.',
          );
          return undefined;
        }
        config = {
          type: DEBUG_TYPE,
          request: 'launch',
          name: 'Poolscope: Debug Current File',
          program: file.fsPath,
        };
      }
      if (config.type !== DEBUG_TYPE) return config;
      if (!config.program) {
        void vscode.window.showErrorMessage(
          'Poolscope: the launch configuration needs a "program" (the script to debug).',
        );
        return undefined;
      }
      const vars = substitution(folder);
      return attach(
        folder,
        {
          ...config,
          ...(config.cwd ? { cwd: vars(config.cwd) } : {}),
          ...(config.args ? { args: config.args.map(vars) } : {}),
        },
        vars(config.program),
      );
    },
  };

  // Opt-in: the user's own `node` launches report to Poolscope too.
  const nodeProvider: vscode.DebugConfigurationProvider = {
    resolveDebugConfigurationWithSubstitutedVariables: async (folder, config: PoolscopeLaunch) => {
      if (config[RUN_KEY] || config.request !== 'launch' || !config.program) return config;
      if (!readSettings(folder?.uri).traceNodeSessions) return config;
      return (await attach(folder, config, config.program)) ?? config;
    },
  };

  context.subscriptions.push(
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, poolscopeProvider),
    vscode.debug.registerDebugConfigurationProvider(
      DEBUG_TYPE,
      poolscopeProvider,
      vscode.DebugConfigurationProviderTriggerKind.Dynamic,
    ),
    // The JavaScript debugger turns `node` into `pwa-node` as it resolves: watch both.
    vscode.debug.registerDebugConfigurationProvider('node', nodeProvider),
    vscode.debug.registerDebugConfigurationProvider('pwa-node', nodeProvider),
    vscode.debug.onDidStartDebugSession((s) => {
      const id = s.configuration[RUN_KEY] as string | undefined;
      if (!id || s.parentSession) return;
      const run = registry.find(id);
      if (!run) return;
      byDebugSession.set(s.id, run);
      run.stopDebugging = () => vscode.debug.stopDebugging(s);
    }),
    vscode.debug.onDidTerminateDebugSession((s) => {
      const run = byDebugSession.get(s.id);
      if (!run) return;
      byDebugSession.delete(s.id);
      void run.debugEnded(exitCodes.get(s.id)?.code ?? null).then(() => registry.markDirty());
      exitCodes.delete(s.id);
    }),
    // The debuggee's output and exit code, as the debug adapter reports them.
    vscode.debug.registerDebugAdapterTrackerFactory('*', {
      createDebugAdapterTracker: (s) => {
        if (!sessionFor(s)) return undefined;
        return {
          onDidSendMessage: (m: {
            type?: string;
            event?: string;
            body?: { category?: string; output?: string; exitCode?: number };
          }) => {
            if (m.type !== 'event') return;
            const run = sessionFor(s);
            if (!run) return;
            if (m.event === 'output' && m.body?.output) {
              const category = m.body.category;
              if (category === 'stdout' || category === 'stderr') {
                run.debugOutput(category, m.body.output);
              }
            } else if (m.event === 'exited' && typeof m.body?.exitCode === 'number') {
              // The program's own exit is the one nearest the root session (workers' and
              // Processes' exits, deeper, come with the trace anyway).
              let root = s;
              let depth = 0;
              while (root.parentSession) {
                root = root.parentSession;
                depth++;
              }
              const seen = exitCodes.get(root.id);
              if (!seen || depth <= seen.depth) {
                exitCodes.set(root.id, { code: m.body.exitCode, depth });
              }
            }
          },
        };
      },
    }),
  );
}
