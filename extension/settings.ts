/** The extension's settings (`poolscope.*`), read fresh at each use. */
import * as vscode from 'vscode';

export interface Settings {
  nodePath: string;
  pythonPath: string;
  args: string[];
  env: Record<string, string>;
  envFile: string;
  tasksPerPool: number;
  timelineTasks: number;
  refreshIntervalMs: number;
  sampleIntervalMs: number;
  showDiagnostics: boolean;
  pauseOnTaskError: boolean;
  traceNodeSessions: boolean;
}

export function readSettings(scope?: vscode.ConfigurationScope): Settings {
  const c = vscode.workspace.getConfiguration('poolscope', scope);
  return {
    nodePath: c.get<string>('nodePath', 'node') || 'node',
    pythonPath: c.get<string>('pythonPath', 'python3') || 'python3',
    args: c.get<string[]>('args', []),
    env: c.get<Record<string, string>>('env', {}),
    envFile: c.get<string>('envFile', '${workspaceFolder}/.env'),
    tasksPerPool: Math.max(10, c.get<number>('tasksPerPool', 500)),
    timelineTasks: Math.max(1000, c.get<number>('timelineTasks', 200_000)),
    refreshIntervalMs: Math.max(50, c.get<number>('refreshIntervalMs', 250)),
    sampleIntervalMs: Math.max(10, c.get<number>('sampleIntervalMs', 100)),
    showDiagnostics: c.get<boolean>('showDiagnostics', true),
    pauseOnTaskError: c.get<boolean>('pauseOnTaskError', false),
    traceNodeSessions: c.get<boolean>('traceNodeSessions', false),
  };
}
