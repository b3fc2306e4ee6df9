/**
 * The trees' common shape: each row is a node that knows its tree item, its children and its
 * parent (for reveal). Nodes are rebuilt from the Store on every refresh; stable ids keep the
 * user's expansion and selection across refreshes.
 */
import * as vscode from 'vscode';

export interface TreeNode {
  readonly id: string;
  readonly parent: TreeNode | undefined;
  /** What the node shows; `contextValue` drives its menus. */
  item(): vscode.TreeItem;
  children(): TreeNode[];
}

/** A node defined by plain values: enough for most rows. */
export class SimpleNode implements TreeNode {
  constructor(
    readonly parent: TreeNode | undefined,
    readonly id: string,
    private readonly make: () => vscode.TreeItem,
    private readonly kids: () => TreeNode[] = () => [],
  ) {}

  item(): vscode.TreeItem {
    const item = this.make();
    item.id = this.id;
    return item;
  }

  children(): TreeNode[] {
    return this.kids();
  }
}

export function treeItem(
  label: string | vscode.TreeItemLabel,
  options: {
    description?: string;
    tooltip?: string | vscode.MarkdownString;
    icon?: vscode.ThemeIcon;
    expandable?: boolean | 'expanded';
    contextValue?: string;
    command?: vscode.Command;
  } = {},
): vscode.TreeItem {
  const state =
    options.expandable === 'expanded'
      ? vscode.TreeItemCollapsibleState.Expanded
      : options.expandable
        ? vscode.TreeItemCollapsibleState.Collapsed
        : vscode.TreeItemCollapsibleState.None;
  const item = new vscode.TreeItem(label, state);
  if (options.description !== undefined) item.description = options.description;
  if (options.tooltip !== undefined) item.tooltip = options.tooltip;
  if (options.icon) item.iconPath = options.icon;
  if (options.contextValue) item.contextValue = options.contextValue;
  if (options.command) item.command = options.command;
  return item;
}

/** A TreeDataProvider over nodes, refreshed whole when the Store changes. */
export class NodeTreeProvider implements vscode.TreeDataProvider<TreeNode> {
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly roots: () => TreeNode[]) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    return node.item();
  }

  getChildren(node?: TreeNode): TreeNode[] {
    return node ? node.children() : this.roots();
  }

  getParent(node: TreeNode): TreeNode | undefined {
    return node.parent;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export function icon(id: string, color?: string): vscode.ThemeIcon {
  return new vscode.ThemeIcon(id, color ? new vscode.ThemeColor(color) : undefined);
}

/** A protocol tagged value (`{"$undefined": true}`, `{"$bigint": "10"}`…) as JavaScript. */
export function taggedText(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  const tag = keys[0];
  if (!tag?.startsWith('$')) return undefined;
  const v = (value as Record<string, unknown>)[tag];
  switch (tag) {
    case '$undefined':
      return 'undefined';
    case '$bigint':
      return `${String(v)}n`;
    case '$number':
    case '$regexp':
      return String(v);
    case '$date':
      return `Date(${String(v)})`;
    case '$bytes':
      return `${String(v)}(${String((value as { length?: number }).length ?? '?')})`;
    case '$unsendable':
      return `<unsendable ${String(v)}>`;
    case '$cycle':
      return `<cycle ${String(v)}>`;
    case '$more':
      return `… ${String(v)} more`;
    default:
      return undefined;
  }
}

/** A JSON-ish value in one short line. */
export function preview(value: unknown, max = 80): string {
  const tagged = taggedText(value);
  if (tagged !== undefined) return tagged;
  let text: string;
  try {
    text =
      typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function duration(ms: number | undefined): string {
  if (ms === undefined) return '';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
