/** The Shared Memory and Processes trees: live values with lock contention; Process exits. */
import type { ProcessModel, RunModel, SharedModel } from '../../core/trace/store';
import type { RunSession } from '../run-session';
import { errorDetailNodes, errorTitle } from './error-nodes';
import { icon, preview, SimpleNode, treeItem, type TreeNode } from './node';
import { runLabel } from './runs-tree';

interface ArraySummary {
  length: number;
  window: unknown[];
  min?: unknown;
  max?: unknown;
}

function isArraySummary(v: unknown): v is ArraySummary {
  return typeof v === 'object' && v !== null && Array.isArray((v as ArraySummary).window);
}

/** `file:///…/main.mjs:8:17` or `/…/main.mjs:8:17` → `main.mjs:8`. */
function shortPlace(creator: string | undefined): string | undefined {
  const m = creator && /([^/\\]+?):(\d+)(?::\d+)?\)?$/.exec(creator);
  return m ? `${m[1]}:${m[2]}` : undefined;
}

export function sharedLabel(s: SharedModel): string {
  const type = s.ctype ? `(${s.ctype.length === 1 ? `'${s.ctype}'` : s.ctype})` : '';
  return `${s.kind}${type} ${shortPlace(s.creator) ?? s.id}`;
}

export function sharedDescription(s: SharedModel): string {
  const parts: string[] = [];
  const v = s.value;
  if (isArraySummary(v)) {
    parts.push(
      `[${v.window.map((x) => preview(x, 20)).join(', ')}${v.length > v.window.length ? ', …' : ''}]`,
    );
    parts.push(`length ${v.length}`);
    if (v.min !== undefined) parts.push(`min ${preview(v.min, 20)} max ${preview(v.max, 20)}`);
  } else if (v !== undefined) {
    parts.push(preview(v, 60));
  } else {
    parts.push('not sampled yet');
  }
  if (s.lock) parts.push(`${s.contention} contended`);
  return parts.join(' · ');
}

function sharedNode(parent: TreeNode | undefined, base: string, s: SharedModel): TreeNode {
  const id = `${base}/shared/${s.id}`;
  const v = s.value;
  const node: TreeNode = new SimpleNode(
    parent,
    id,
    () =>
      treeItem(sharedLabel(s), {
        description: sharedDescription(s),
        tooltip: [sharedLabel(s), s.creator ? `created at ${s.creator}` : '', `lock: ${s.lock}`]
          .filter(Boolean)
          .join('\n'),
        icon: icon(/Lock|Semaphore|Condition|Event/.test(s.kind) ? 'lock' : 'symbol-variable'),
        expandable: isArraySummary(v),
        contextValue: 'shared',
      }),
    () =>
      isArraySummary(v)
        ? v.window.map(
            (x, i) =>
              new SimpleNode(node, `${id}/${i}`, () =>
                treeItem(`[${i}]`, { description: preview(x), icon: icon('symbol-field') }),
              ),
          )
        : [],
  );
  return node;
}

export function processLabel(p: ProcessModel): string {
  return p.name;
}

export function processDescription(p: ProcessModel): string {
  const parts = [
    p.backend === 'thread' ? `thread ${p.processTid ?? '?'}` : `pid ${p.processPid ?? '?'}`,
  ];
  if (p.state === 'running') parts.push('running');
  else parts.push(`exit code ${p.exitCode === null ? '?' : p.exitCode}`);
  if (p.signal) parts.push(p.signal);
  parts.push(p.target);
  if (p.error) parts.push(errorTitle(p.error));
  return parts.join(' · ');
}

function processNode(parent: TreeNode | undefined, base: string, p: ProcessModel): TreeNode {
  const id = `${base}/process/${p.name}/${p.startedAt}`;
  const failed = p.state === 'exited' && (p.exitCode !== 0 || p.signal !== null);
  const node: TreeNode = new SimpleNode(
    parent,
    id,
    () =>
      treeItem(processLabel(p), {
        description: processDescription(p),
        icon:
          p.state === 'running'
            ? icon('sync~spin')
            : failed
              ? icon('testing-failed-icon', 'testing.iconFailed')
              : icon('testing-passed-icon', 'testing.iconPassed'),
        expandable: Boolean(p.error),
        contextValue: 'process',
      }),
    () => (p.error ? errorDetailNodes(node, `${id}/error`, p.error) : []),
  );
  return node;
}

/** One run: its rows directly; several: a row per run holding them. */
function perRun(
  sessions: readonly RunSession[],
  view: string,
  has: (run: RunModel) => boolean,
  rows: (parent: TreeNode | undefined, base: string, run: RunModel) => TreeNode[],
  count: (run: RunModel) => string,
): TreeNode[] {
  const runs = sessions.flatMap((s) => s.runs.map((run) => ({ s, run })));
  if (runs.length === 1) return rows(undefined, `${view}/${runs[0]!.run.id}`, runs[0]!.run);
  return runs
    .filter(({ run }) => has(run))
    .map(({ s, run }) => {
      const id = `${view}/${s.id}/${run.id}`;
      const node: TreeNode = new SimpleNode(
        undefined,
        id,
        () =>
          treeItem(runLabel(s, run), {
            description: count(run),
            icon: icon('run'),
            expandable: 'expanded',
          }),
        () => rows(node, id, run),
      );
      return node;
    });
}

export function sharedRoots(sessions: readonly RunSession[]): TreeNode[] {
  return perRun(
    sessions,
    'shared',
    (run) => run.shared.size > 0,
    (parent, base, run) => [...run.shared.values()].map((s) => sharedNode(parent, base, s)),
    (run) => `${run.shared.size} objects`,
  );
}

export function processRoots(sessions: readonly RunSession[]): TreeNode[] {
  return perRun(
    sessions,
    'processes',
    (run) => run.processes.size > 0,
    (parent, base, run) => [...run.processes.values()].map((p) => processNode(parent, base, p)),
    (run) => `${run.processes.size} processes`,
  );
}
