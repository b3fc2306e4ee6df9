/**
 * The Errors tree: every failed task, failing Process and callback that threw, grouped by error
 * name and message; each occurrence holds the structured error, with frames that open the source.
 */
import type * as vscode from 'vscode';
import type { ErrorEntry, RunModel } from '../../core/trace/store';
import type { RunSession } from '../run-session';
import { errorDetailNodes, errorText, errorTitle } from './error-nodes';
import { icon, SimpleNode, treeItem, type TreeNode } from './node';
import { runLabel } from './runs-tree';

const SOURCES: Record<ErrorEntry['source'], string> = {
  task: 'task failed',
  callback: 'callback threw',
  errorCallback: 'errorCallback threw',
  process: 'Process failed',
};

export function occurrenceLabel(entry: ErrorEntry): string {
  if (entry.source === 'process') return `Process ${entry.process ?? '?'}`;
  const task = entry.task !== undefined ? `task #${entry.task}` : 'task';
  return `${task}${entry.fn ? ` ${entry.fn}` : ''}`;
}

export class ErrorOccurrenceNode implements TreeNode {
  readonly id: string;

  constructor(
    readonly parent: TreeNode,
    readonly entry: ErrorEntry,
    index: number,
  ) {
    this.id = `${parent.id}/${index}`;
  }

  item(): vscode.TreeItem {
    const e = this.entry;
    const where = [
      SOURCES[e.source],
      e.pool ? `pool ${e.pool}` : '',
      e.worker !== undefined ? `worker ${e.worker}` : '',
    ]
      .filter(Boolean)
      .join(' · ');
    const item = treeItem(occurrenceLabel(e), {
      description: where,
      tooltip: errorText(e.error),
      icon: icon(
        e.source === 'task' ? 'testing-failed-icon' : 'warning',
        e.source === 'task' ? 'testing.iconFailed' : 'problemsWarningIcon.foreground',
      ),
      expandable: true,
      contextValue: 'error',
    });
    item.id = this.id;
    return item;
  }

  children(): TreeNode[] {
    return errorDetailNodes(this, this.id, this.entry.error);
  }
}

function groups(parent: TreeNode | undefined, base: string, run: RunModel): TreeNode[] {
  const byKey = new Map<string, ErrorEntry[]>();
  for (const entry of run.errors) {
    const key = `${entry.error.name}\u0000${entry.error.message}`;
    let list = byKey.get(key);
    if (!list) byKey.set(key, (list = []));
    list.push(entry);
  }
  return [...byKey.entries()].map(([key, entries]) => {
    const first = entries[0]!.error;
    const id = `${base}/group/${key}`;
    const node: TreeNode = new SimpleNode(
      parent,
      id,
      () =>
        treeItem(errorTitle(first), {
          description: `× ${entries.length}`,
          tooltip: errorText(first),
          icon: icon('error', 'errorForeground'),
          expandable: true,
          contextValue: 'errorGroup',
        }),
      () => entries.map((e, i) => new ErrorOccurrenceNode(node, e, i)),
    );
    return node;
  });
}

export function errorRoots(sessions: readonly RunSession[]): TreeNode[] {
  const runs = sessions.flatMap((s) => s.runs.map((run) => ({ s, run })));
  if (runs.length === 1) return groups(undefined, `errors/${runs[0]!.run.id}`, runs[0]!.run);
  return runs
    .filter(({ run }) => run.errors.length > 0)
    .map(({ s, run }) => {
      const id = `errors/${s.id}/${run.id}`;
      const node: TreeNode = new SimpleNode(
        undefined,
        id,
        () =>
          treeItem(runLabel(s, run), {
            description: `${run.errorCount} errors`,
            icon: icon('run-errors'),
            expandable: 'expanded',
          }),
        () => groups(node, id, run),
      );
      return node;
    });
}
