/**
 * The Runs tree: run → pools → workers → tasks, from the Store. States use the Testing API's
 * icons (queued, running, passed, failed, errored); running rows spin. A worker shows its latest
 * tasks and, past that, one "show all" row that opens a searchable list instead of growing
 * the tree.
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import type {
  PoolModel,
  RunModel,
  TaskModel,
  TaskState,
  WorkerModel,
} from '../../core/trace/store';
import type { RunSession } from '../run-session';
import { errorDetailNodes, errorTitle } from './error-nodes';
import { duration, icon, SimpleNode, treeItem, type TreeNode } from './node';

/** Tasks listed under a worker before the "show all" row. */
export const TASKS_SHOWN = 25;

export const TASK_ICONS: Record<TaskState, [string, string?]> = {
  queued: ['testing-queued-icon', 'testing.iconQueued'],
  running: ['sync~spin'],
  passed: ['testing-passed-icon', 'testing.iconPassed'],
  failed: ['testing-failed-icon', 'testing.iconFailed'],
  errored: ['testing-error-icon', 'testing.iconErrored'],
};

export function runLabel(session: RunSession, run: RunModel): string {
  if (session.state === 'replay') return `${basename(session.source)} (${run.id})`;
  return session.label;
}

export function runDescription(session: RunSession, run: RunModel): string {
  const failed = [...run.pools.values()].reduce(
    (n, p) => n + p.counts.failed + p.counts.errored,
    0,
  );
  const parts: string[] = [];
  if (session.running) {
    parts.push(session.state === 'stopping' ? 'stopping' : 'running');
    if (session.pid) parts.push(`pid ${session.pid}`);
  } else if (run.exitCode !== undefined || run.signal) {
    parts.push(run.signal ? `killed by ${run.signal}` : `exit ${run.exitCode}`);
  } else if (session.state === 'replay') {
    parts.push('trace');
  }
  if (failed > 0) parts.push(`${failed} failed`);
  const end = run.endedAt ?? (session.running ? Date.now() : run.lastTs);
  parts.push(duration(Math.max(0, end - run.startedAt)));
  return parts.join(' · ');
}

export function runIcon(session: RunSession, run: RunModel): vscode.ThemeIcon {
  if (session.running) return icon('sync~spin');
  if (run.signal || (run.exitCode !== undefined && run.exitCode !== 0 && run.exitCode !== null))
    return icon('testing-failed-icon', 'testing.iconFailed');
  if (run.exitCode === 0) return icon('testing-passed-icon', 'testing.iconPassed');
  return icon('history');
}

export function poolLabel(pool: PoolModel): string {
  return `Pool ${pool.id}`;
}

export function poolDescription(pool: PoolModel): string {
  const c = pool.counts;
  const parts = [`${pool.backend} × ${pool.size}`];
  if (c.running) parts.push(`${c.running} running`);
  if (c.queued) parts.push(`${c.queued} queued`);
  parts.push(`${c.passed} passed`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.errored) parts.push(`${c.errored} errored`);
  if (pool.state !== 'running') parts.push(pool.state);
  return parts.join(' · ');
}

export function workerLabel(worker: WorkerModel): string {
  return `worker ${worker.id}`;
}

export function workerDescription(worker: WorkerModel): string {
  const parts: string[] = [];
  if (worker.pid !== undefined && worker.tid === undefined) parts.push(`pid ${worker.pid}`);
  else if (worker.tid !== undefined) parts.push(`thread ${worker.tid}`);
  if (worker.state === 'exited') {
    parts.push(
      worker.signal
        ? `exited, signal ${worker.signal}`
        : `exited, code ${worker.exitCode === null ? '?' : worker.exitCode}`,
    );
    if (worker.reason) parts.push(worker.reason);
  } else {
    parts.push(worker.current !== undefined ? `running #${worker.current}` : 'idle');
  }
  parts.push(`${worker.tasksDone} done`);
  if (worker.tasksFailed) parts.push(`${worker.tasksFailed} failed`);
  return parts.join(' · ');
}

/** `[ -16 ]` → `-16`: the argument list as it would be written in the call. */
function argList(preview: string): string {
  if (preview === '[]') return '';
  return preview.startsWith('[ ') && preview.endsWith(' ]') ? preview.slice(2, -2) : preview;
}

export function taskLabel(task: TaskModel): string {
  const list = argList(task.args);
  const args = list.length > 60 ? `${list.slice(0, 59)}…` : list;
  return `#${task.id} ${task.fn}(${args})`;
}

export function taskDescription(task: TaskModel): string {
  const parts: string[] = [task.state];
  if (task.durationMs !== undefined) parts.push(duration(task.durationMs));
  if (task.error) parts.push(errorTitle(task.error));
  return parts.join(' · ');
}

export class TaskNode implements TreeNode {
  readonly id: string;

  constructor(
    readonly parent: TreeNode,
    base: string,
    readonly task: TaskModel,
  ) {
    this.id = `${base}/task/${task.id}`;
  }

  item(): vscode.TreeItem {
    const task = this.task;
    const error = task.error;
    const [codicon, color] = TASK_ICONS[task.state];
    const item = treeItem(taskLabel(task), {
      description: taskDescription(task),
      tooltip: [
        taskLabel(task),
        `state: ${task.state}`,
        task.worker !== undefined ? `worker: ${task.worker}` : '',
        task.queuedMs !== undefined ? `queued: ${duration(task.queuedMs)}` : '',
        task.durationMs !== undefined ? `ran: ${duration(task.durationMs)}` : '',
        task.result !== undefined ? `result: ${task.result}` : '',
        error ? `error: ${errorTitle(error)}` : '',
      ]
        .filter(Boolean)
        .join('\n'),
      icon: icon(codicon, color),
      expandable: Boolean(error),
      contextValue: error ? 'task.failed' : 'task',
    });
    item.id = this.id;
    return item;
  }

  children(): TreeNode[] {
    return this.task.error ? errorDetailNodes(this, `${this.id}/error`, this.task.error) : [];
  }
}

export class RunNode implements TreeNode {
  readonly parent = undefined;
  readonly id: string;

  constructor(
    readonly session: RunSession,
    readonly run: RunModel,
  ) {
    this.id = `run/${session.id}/${run.id}`;
  }

  item(): vscode.TreeItem {
    const item = treeItem(runLabel(this.session, this.run), {
      description: runDescription(this.session, this.run),
      tooltip: [
        this.session.source,
        this.run.argv ? `argv: ${this.run.argv.join(' ')}` : '',
        this.run.cwd ? `cwd: ${this.run.cwd}` : '',
        this.run.runtime ? `node: ${this.run.runtime}` : '',
        `${this.run.events} events`,
      ]
        .filter(Boolean)
        .join('\n'),
      icon: runIcon(this.session, this.run),
      expandable: 'expanded',
      contextValue: this.session.running
        ? 'run.running'
        : this.session.state === 'replay'
          ? 'run.replay'
          : 'run.finished',
    });
    item.id = this.id;
    return item;
  }

  children(): TreeNode[] {
    return [...this.run.pools.values()].map((pool) => new PoolNode(this, pool));
  }
}

export class PoolNode implements TreeNode {
  readonly id: string;

  constructor(
    readonly parent: RunNode,
    readonly pool: PoolModel,
  ) {
    this.id = `${parent.id}/pool/${pool.id}`;
  }

  item(): vscode.TreeItem {
    const item = treeItem(poolLabel(this.pool), {
      description: poolDescription(this.pool),
      tooltip: `${this.pool.module}\n${JSON.stringify(this.pool.options)}`,
      icon: this.pool.counts.running > 0 ? icon('sync~spin') : icon('server-process'),
      expandable: 'expanded',
      contextValue: 'pool',
    });
    item.id = this.id;
    return item;
  }

  children(): TreeNode[] {
    const nodes: TreeNode[] = [...this.pool.workers.values()]
      .sort((a, b) => a.id - b.id)
      .map((w) => new WorkerNode(this, w));
    const queued = [...this.pool.tasks.values()].filter((t) => t.state === 'queued');
    if (this.pool.counts.queued > 0) {
      const holder: TreeNode = new SimpleNode(
        this,
        `${this.id}/queued`,
        () =>
          treeItem('queued', {
            description: `${this.pool.counts.queued}`,
            icon: icon('testing-queued-icon', 'testing.iconQueued'),
            expandable: true,
          }),
        () => listed(holder, this.id, queued, this.pool.counts.queued, { pool: this }),
      );
      nodes.push(holder);
    }
    return nodes;
  }
}

export class WorkerNode implements TreeNode {
  readonly id: string;

  constructor(
    readonly parent: PoolNode,
    readonly worker: WorkerModel,
  ) {
    this.id = `${parent.id}/worker/${worker.id}`;
  }

  item(): vscode.TreeItem {
    const w = this.worker;
    const abnormal = w.state === 'exited' && (w.signal !== null || (w.exitCode ?? 0) !== 0);
    const item = treeItem(workerLabel(w), {
      description: workerDescription(w),
      icon:
        w.state === 'exited'
          ? abnormal
            ? icon('debug-stop', 'testing.iconFailed')
            : icon('circle-slash')
          : w.current !== undefined
            ? icon('sync~spin')
            : icon('circle-outline'),
      expandable: w.tasksDone + w.tasksFailed > 0 || w.current !== undefined,
      contextValue: w.state === 'exited' ? 'worker.exited' : 'worker',
    });
    item.id = this.id;
    return item;
  }

  tasks(): TaskModel[] {
    return [...this.parent.pool.tasks.values()].filter((t) => t.worker === this.worker.id);
  }

  children(): TreeNode[] {
    const tasks = this.tasks();
    return listed(this, this.id, tasks, tasks.length, { pool: this.parent, worker: this });
  }
}

export interface TaskListRef {
  pool: PoolNode;
  worker?: WorkerNode;
}

/** The newest TASKS_SHOWN tasks, newest first, then one row for the rest. */
function listed(
  parent: TreeNode,
  base: string,
  tasks: TaskModel[],
  total: number,
  ref: TaskListRef,
): TreeNode[] {
  const newest = tasks.slice(-TASKS_SHOWN).reverse();
  const nodes: TreeNode[] = newest.map((t) => new TaskNode(parent, ref.pool.id, t));
  const hidden = total - newest.length;
  if (hidden > 0) {
    nodes.push(
      new SimpleNode(parent, `${base}/more`, () =>
        treeItem(`${hidden.toLocaleString('en-US')} earlier tasks…`, {
          description: 'show all',
          icon: icon('list-flat'),
          contextValue: 'moreTasks',
          command: {
            command: 'poolscope.showAllTasks',
            title: 'Show All Tasks',
            arguments: [ref],
          },
        }),
      ),
    );
  }
  return nodes;
}

export function runNodes(sessions: readonly RunSession[]): RunNode[] {
  return sessions.flatMap((s) => s.runs.map((run) => new RunNode(s, run)));
}
