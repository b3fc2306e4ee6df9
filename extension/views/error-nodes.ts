/**
 * A structured error (protocol ErrorInfo) as tree rows: code, own properties (nested objects
 * expandable), the cause chain, AggregateError members, and stack frames that open the source
 * at the line. Shared by the Runs and Errors trees.
 */
import { existsSync, statSync } from 'node:fs';
import * as vscode from 'vscode';
import type { ErrorInfo, StackFrame } from '../../core/trace/protocol';
import { icon, preview, SimpleNode, taggedText, treeItem, type TreeNode } from './node';

export function errorTitle(info: ErrorInfo): string {
  if (info.thrown !== 'error') return `${info.thrown} thrown: ${preview(info.value, 60)}`;
  return info.message ? `${info.name}: ${info.message}` : info.name;
}

/** Where a frame points, when it is a file on this machine. */
export function frameUri(frame: StackFrame): vscode.Uri | undefined {
  const file = frame.file;
  if (!file) return undefined;
  const uri = file.startsWith('file://')
    ? vscode.Uri.parse(file)
    : file.startsWith('/')
      ? vscode.Uri.file(file)
      : undefined;
  return uri && existsSync(uri.fsPath) && statSync(uri.fsPath).isFile() ? uri : undefined;
}

/** The frame a user most likely wants: the first in their own code (not node:, not Poolscope). */
export function userFrame(info: ErrorInfo): { frame: StackFrame; uri: vscode.Uri } | undefined {
  for (const frame of info.frames) {
    const uri = frameUri(frame);
    if (!uri) continue;
    const path = uri.fsPath;
    if (path.includes('/node_modules/') || /\/dist\/(core|cli)\//.test(path)) continue;
    return { frame, uri };
  }
  return undefined;
}

export function openFrameCommand(frame: StackFrame, uri: vscode.Uri): vscode.Command {
  const line = Math.max(0, (frame.line ?? 1) - 1);
  const col = Math.max(0, (frame.column ?? 1) - 1);
  return {
    command: 'vscode.open',
    title: 'Open Source',
    arguments: [uri, { selection: new vscode.Range(line, col, line, col), preview: true }],
  };
}

/** The error as text, for Copy Error. */
export function errorText(info: ErrorInfo, indent = ''): string {
  const lines = [`${indent}${errorTitle(info)}`];
  if (info.code !== undefined) lines.push(`${indent}  code: ${String(info.code)}`);
  for (const [k, v] of Object.entries(info.props)) {
    if (!SHOWN_ELSEWHERE.has(k)) lines.push(`${indent}  ${k}: ${preview(v, 200)}`);
  }
  for (const f of info.frames) lines.push(`${indent}    ${f.raw}`);
  if (info.cause) lines.push(`${indent}  [cause]`, errorText(info.cause, `${indent}  `));
  for (const member of info.errors ?? []) lines.push(errorText(member, `${indent}  `));
  return lines.join('\n');
}

function valueNodes(parent: TreeNode, id: string, value: unknown): TreeNode[] {
  if (value === null || typeof value !== 'object') return [];
  const entries = Array.isArray(value)
    ? value.map((v, i) => [String(i), v] as const)
    : Object.entries(value as Record<string, unknown>);
  return entries.slice(0, 200).map(([k, v]) => propertyNode(parent, `${id}/${k}`, k, v));
}

function propertyNode(parent: TreeNode, id: string, key: string, value: unknown): TreeNode {
  const nested = value !== null && typeof value === 'object' && taggedText(value) === undefined;
  const node: TreeNode = new SimpleNode(
    parent,
    id,
    () =>
      treeItem(key, {
        description: preview(value),
        tooltip: preview(value, 2000),
        icon: icon(nested ? 'symbol-object' : 'symbol-field'),
        expandable: nested,
        contextValue: 'errorProperty',
      }),
    () => valueNodes(node, id, value),
  );
  return node;
}

/** Properties the rows show another way: the code row, and the stacks the frames come from. */
const SHOWN_ELSEWHERE = new Set(['code', 'workerStack', 'callerStack']);

/** The rows under an error: code, properties, value, cause, members, frames. */
export function errorDetailNodes(parent: TreeNode, id: string, info: ErrorInfo): TreeNode[] {
  const nodes: TreeNode[] = [];
  if (info.code !== undefined) {
    nodes.push(
      new SimpleNode(parent, `${id}/code`, () =>
        treeItem('code', { description: String(info.code), icon: icon('symbol-constant') }),
      ),
    );
  }
  const props = Object.entries(info.props).filter(([k]) => !SHOWN_ELSEWHERE.has(k));
  if (props.length > 0) {
    const holder: TreeNode = new SimpleNode(
      parent,
      `${id}/props`,
      () =>
        treeItem('properties', {
          description: `${props.length}`,
          icon: icon('symbol-object'),
          expandable: 'expanded',
        }),
      () => props.map(([k, v]) => propertyNode(holder, `${id}/props/${k}`, k, v)),
    );
    nodes.push(holder);
  }
  if (info.thrown !== 'error' && info.value !== undefined) {
    nodes.push(propertyNode(parent, `${id}/value`, 'value', info.value));
  }
  if (info.cause) {
    const cause = info.cause;
    const holder: TreeNode = new SimpleNode(
      parent,
      `${id}/cause`,
      () =>
        treeItem(`cause: ${errorTitle(cause)}`, {
          icon: icon('debug-stackframe-dot'),
          expandable: true,
          tooltip: errorText(cause),
        }),
      () => errorDetailNodes(holder, `${id}/cause`, cause),
    );
    nodes.push(holder);
  }
  (info.errors ?? []).forEach((member, i) => {
    const holder: TreeNode = new SimpleNode(
      parent,
      `${id}/errors/${i}`,
      () =>
        treeItem(`[${i}] ${errorTitle(member)}`, {
          icon: icon('error', 'errorForeground'),
          expandable: true,
        }),
      () => errorDetailNodes(holder, `${id}/errors/${i}`, member),
    );
    nodes.push(holder);
  });
  info.frames.forEach((frame, i) => {
    const uri = frameUri(frame);
    nodes.push(
      new SimpleNode(parent, `${id}/frame/${i}`, () => {
        const where = frame.file
          ? `${frame.file.replace(/^file:\/\//, '')}:${frame.line ?? '?'}:${frame.column ?? '?'}`
          : frame.raw;
        return treeItem(frame.fn || '<anonymous>', {
          description: where,
          tooltip: frame.raw,
          icon: icon(uri ? 'debug-stackframe' : 'debug-stackframe-focused'),
          contextValue: uri ? 'frame' : 'frame.external',
          ...(uri ? { command: openFrameCommand(frame, uri) } : {}),
        });
      }),
    );
  });
  return nodes;
}
