/**
 * Browser harness for the panel: the exact page the extension serves (`panelHtml`, strict CSP)
 * from a tiny local server over dist/webview, a stubbed `acquireVsCodeApi` that records what
 * the panel posts and saves, theme variables resembling VS Code's, and snapshots built from
 * recorded traces with the host's own feed.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Store } from '../../core/trace/store';
import { panelHtml } from '../../extension/panel/html';
import { RunFeed } from '../../extension/panel/snapshot';
import type { HostMessage, PanelRun, PanelViewState } from '../../webview/protocol';

export const root = join(__dirname, '..', '..', '..');
const dist = join(root, 'dist', 'webview');
export const traces = join(root, 'test', 'fixtures', 'traces');
export const artifacts = join(root, 'test-artifacts');

export const lines = (name: string): string[] =>
  readFileSync(join(traces, name), 'utf8').split('\n').filter(Boolean);

/** A store fed with a recorded trace, its first run, and the host's feed for it. */
export function feedOf(name: string, upTo?: number) {
  const all = lines(name);
  const store = new Store({ barsPerPool: 200_000 });
  for (const l of all.slice(0, upTo ?? all.length)) store.applyLine(l);
  const model = [...store.runs.values()][0]!;
  const feed = new RunFeed(
    model,
    () => ({ label: name, state: 'replay' }),
    () => store.version,
  );
  return { store, model, feed, all };
}

export function snapshotMsg(run: PanelRun): HostMessage {
  return { type: 'snapshot', run, runs: [{ id: run.id, label: run.label }] };
}

export const THEMES: Record<
  'light' | 'dark' | 'hc',
  { body: string; vars: Record<string, string> }
> = {
  dark: {
    body: 'vscode-dark',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", monospace',
      '--vscode-editor-font-size': '12px',
      '--vscode-editor-background': '#1e1e1e',
      '--vscode-foreground': '#cccccc',
      '--vscode-descriptionForeground': '#9d9d9d',
      '--vscode-errorForeground': '#f48771',
      '--vscode-focusBorder': '#007fd4',
      '--vscode-panel-border': '#80808059',
      '--vscode-editorWidget-border': '#454545',
      '--vscode-sideBar-background': '#252526',
      '--vscode-button-background': '#0e639c',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-hoverBackground': '#1177bb',
      '--vscode-button-secondaryBackground': '#3a3d41',
      '--vscode-button-secondaryForeground': '#ffffff',
      '--vscode-button-secondaryHoverBackground': '#45494e',
      '--vscode-dropdown-background': '#3c3c3c',
      '--vscode-dropdown-foreground': '#f0f0f0',
      '--vscode-dropdown-border': '#3c3c3c',
      '--vscode-input-background': '#3c3c3c',
      '--vscode-input-foreground': '#cccccc',
      '--vscode-input-placeholderForeground': '#a6a6a6',
      '--vscode-list-hoverBackground': '#2a2d2e',
      '--vscode-list-activeSelectionBackground': '#04395e',
      '--vscode-list-activeSelectionForeground': '#ffffff',
      '--vscode-textLink-foreground': '#3794ff',
      '--vscode-textLink-activeForeground': '#3794ff',
      '--vscode-editorHoverWidget-background': '#252526',
      '--vscode-editorHoverWidget-border': '#454545',
      '--vscode-panelTitle-activeBorder': '#e7e7e7',
      '--vscode-panelTitle-activeForeground': '#e7e7e7',
      '--vscode-panelTitle-inactiveForeground': '#e7e7e799',
      '--vscode-testing-iconPassed': '#73c991',
      '--vscode-testing-iconFailed': '#f14c4c',
      '--vscode-testing-iconErrored': '#f14c4c',
      '--vscode-testing-iconQueued': '#cca700',
      '--vscode-charts-blue': '#3794ff',
      '--vscode-charts-green': '#89d185',
      '--vscode-charts-red': '#f14c4c',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-yellow': '#cca700',
      '--vscode-charts-purple': '#b180d7',
      '--vscode-debugTokenExpression-string': '#ce9178',
      '--vscode-debugTokenExpression-number': '#b5cea8',
      '--vscode-debugTokenExpression-boolean': '#4e94ce',
      '--vscode-symbolIcon-propertyForeground': '#9cdcfe',
    },
  },
  light: {
    body: 'vscode-light',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", monospace',
      '--vscode-editor-font-size': '12px',
      '--vscode-editor-background': '#ffffff',
      '--vscode-foreground': '#616161',
      '--vscode-descriptionForeground': '#717171',
      '--vscode-errorForeground': '#a1260d',
      '--vscode-focusBorder': '#0090f1',
      '--vscode-panel-border': '#80808059',
      '--vscode-editorWidget-border': '#c8c8c8',
      '--vscode-sideBar-background': '#f3f3f3',
      '--vscode-button-background': '#007acc',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-hoverBackground': '#0062a3',
      '--vscode-button-secondaryBackground': '#5f6a79',
      '--vscode-button-secondaryForeground': '#ffffff',
      '--vscode-button-secondaryHoverBackground': '#4c5561',
      '--vscode-dropdown-background': '#ffffff',
      '--vscode-dropdown-foreground': '#616161',
      '--vscode-dropdown-border': '#cecece',
      '--vscode-input-background': '#ffffff',
      '--vscode-input-foreground': '#616161',
      '--vscode-input-border': '#cecece',
      '--vscode-input-placeholderForeground': '#767676',
      '--vscode-list-hoverBackground': '#e8e8e8',
      '--vscode-list-activeSelectionBackground': '#0060c0',
      '--vscode-list-activeSelectionForeground': '#ffffff',
      '--vscode-textLink-foreground': '#006ab1',
      '--vscode-textLink-activeForeground': '#006ab1',
      '--vscode-editorHoverWidget-background': '#f3f3f3',
      '--vscode-editorHoverWidget-border': '#c8c8c8',
      '--vscode-panelTitle-activeBorder': '#424242',
      '--vscode-panelTitle-activeForeground': '#424242',
      '--vscode-panelTitle-inactiveForeground': '#424242bf',
      '--vscode-testing-iconPassed': '#388a34',
      '--vscode-testing-iconFailed': '#e51400',
      '--vscode-testing-iconErrored': '#e51400',
      '--vscode-testing-iconQueued': '#bf8803',
      '--vscode-charts-blue': '#1a85ff',
      '--vscode-charts-green': '#388a34',
      '--vscode-charts-red': '#e51400',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-yellow': '#bf8803',
      '--vscode-charts-purple': '#652d90',
      '--vscode-debugTokenExpression-string': '#a31515',
      '--vscode-debugTokenExpression-number': '#098658',
      '--vscode-debugTokenExpression-boolean': '#0000ff',
      '--vscode-symbolIcon-propertyForeground': '#424242',
    },
  },
  hc: {
    body: 'vscode-high-contrast',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", monospace',
      '--vscode-editor-font-size': '12px',
      '--vscode-editor-background': '#000000',
      '--vscode-foreground': '#ffffff',
      '--vscode-descriptionForeground': '#ffffffb3',
      '--vscode-errorForeground': '#f48771',
      '--vscode-focusBorder': '#f38518',
      '--vscode-contrastBorder': '#6fc3df',
      '--vscode-contrastActiveBorder': '#f38518',
      '--vscode-panel-border': '#6fc3df',
      '--vscode-editorWidget-border': '#6fc3df',
      '--vscode-sideBar-background': '#000000',
      '--vscode-button-background': '#000000',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-border': '#6fc3df',
      '--vscode-button-secondaryBackground': '#000000',
      '--vscode-button-secondaryForeground': '#ffffff',
      '--vscode-dropdown-background': '#000000',
      '--vscode-dropdown-foreground': '#ffffff',
      '--vscode-dropdown-border': '#6fc3df',
      '--vscode-input-background': '#000000',
      '--vscode-input-foreground': '#ffffff',
      '--vscode-input-border': '#6fc3df',
      '--vscode-input-placeholderForeground': '#ffffffb3',
      '--vscode-list-hoverBackground': '#000000',
      '--vscode-list-activeSelectionBackground': '#000000',
      '--vscode-list-activeSelectionForeground': '#ffffff',
      '--vscode-list-focusOutline': '#f38518',
      '--vscode-textLink-foreground': '#21a6ff',
      '--vscode-textLink-activeForeground': '#21a6ff',
      '--vscode-editorHoverWidget-background': '#0c141f',
      '--vscode-editorHoverWidget-border': '#6fc3df',
      '--vscode-panelTitle-activeBorder': '#6fc3df',
      '--vscode-panelTitle-activeForeground': '#ffffff',
      '--vscode-panelTitle-inactiveForeground': '#ffffff',
      '--vscode-testing-iconPassed': '#73c991',
      '--vscode-testing-iconFailed': '#f14c4c',
      '--vscode-testing-iconErrored': '#f14c4c',
      '--vscode-testing-iconQueued': '#cca700',
      '--vscode-charts-blue': '#3794ff',
      '--vscode-charts-green': '#89d185',
      '--vscode-charts-red': '#f14c4c',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-yellow': '#ffd700',
      '--vscode-charts-purple': '#b180d7',
      '--vscode-debugTokenExpression-string': '#ce9178',
      '--vscode-debugTokenExpression-number': '#b5cea8',
      '--vscode-debugTokenExpression-boolean': '#4e94ce',
      '--vscode-symbolIcon-propertyForeground': '#ffffff',
    },
  },
};

export interface Harness {
  browser: Browser;
  server: Server;
  origin: string;
  /** A fresh page with the panel loaded (and `getState` returning `state`). */
  open(opts?: {
    state?: PanelViewState;
    theme?: keyof typeof THEMES;
    width?: number;
    height?: number;
  }): Promise<Page>;
  close(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const nonce = randomBytes(16).toString('base64');
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/' || url.pathname === '/panel.html') {
      const origin = `http://${req.headers.host}`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        panelHtml({
          cspSource: origin,
          nonce,
          scriptUri: `${origin}/panel.js`,
          styleUri: `${origin}/panel.css`,
        }),
      );
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const file = normalize(join(dist, url.pathname));
    if (!file.startsWith(dist)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = readFileSync(file);
      const type = file.endsWith('.js')
        ? 'text/javascript'
        : file.endsWith('.css')
          ? 'text/css'
          : 'application/octet-stream';
      res.writeHead(200, { 'content-type': type });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  return {
    browser,
    server,
    origin,
    async open(opts = {}) {
      const page = await browser.newPage({
        viewport: { width: opts.width ?? 1200, height: opts.height ?? 800 },
      });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      (page as Page & { panelErrors?: string[] }).panelErrors = errors;
      const theme = THEMES[opts.theme ?? 'dark'];
      await page.addInitScript(
        ({ state, theme }) => {
          const w = window as unknown as Record<string, unknown>;
          w.__posted = [];
          w.__states = [];
          w.acquireVsCodeApi = () => ({
            postMessage: (m: unknown) => (w.__posted as unknown[]).push(m),
            setState: (s: unknown) => (w.__states as unknown[]).push(s),
            getState: () => state,
          });
          // VS Code puts the theme variables on <html> and the theme kind on <body>.
          document.addEventListener('DOMContentLoaded', () => {
            for (const [k, v] of Object.entries(theme.vars))
              document.documentElement.style.setProperty(k, v);
            document.body.className = theme.body;
          });
        },
        { state: opts.state, theme },
      );
      await page.goto(`${origin}/panel.html`);
      await page.waitForFunction(() =>
        ((window as unknown as { __posted: { type: string }[] }).__posted ?? []).some(
          (m) => m.type === 'ready',
        ),
      );
      return page;
    },
    async close() {
      await browser.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sets a theme on a loaded page (as VS Code does when the user switches). */
export async function setTheme(page: Page, theme: keyof typeof THEMES): Promise<void> {
  const t = THEMES[theme];
  await page.evaluate((t) => {
    const root = document.documentElement;
    for (const k of Array.from(root.style))
      if (k.startsWith('--vscode-')) root.style.removeProperty(k);
    for (const [k, v] of Object.entries(t.vars)) root.style.setProperty(k, v);
    document.body.className = t.body;
  }, t);
}

/** Sends a host message, as JSON travels (NaN becomes null). */
export async function send(page: Page, msg: HostMessage): Promise<void> {
  // As a string parsed in the page: JSON's own rules, and fast for 100,000-row columns.
  await page.evaluate((json) => window.postMessage(JSON.parse(json), '*'), JSON.stringify(msg));
}

/** Waits for the next two animation frames (a scheduled draw has run). */
export async function frames(page: Page): Promise<void> {
  await page.evaluate(
    () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(null)))),
  );
}

export interface PanelHook {
  frameTimes(): number[];
  resetFrameTimes(): void;
  stats(): {
    lanes: {
      pool: string;
      worker: number;
      label: string;
      visible: number;
      drawn: number;
      exit?: string;
    }[];
    marks: Record<string, number>;
    view: { from: number; to: number };
    selected: { pool: string; task: number } | null;
    tab: string;
    filter: Record<string, unknown>;
    bars: number;
    errors: number;
  };
  barBox(ref: {
    pool: string;
    task: number;
  }): { x: number; y: number; w: number; h: number; pageX: number; pageY: number } | undefined;
  pixel(x: number, y: number): number[];
  drawNow(): void;
  zoom(f: number, at?: number): void;
  pan(f: number): void;
  fit(): void;
  setTab(t: string): void;
  setView(v: { from: number; to: number }): void;
  lastMessageMs(): number;
}

/** Calls one of the panel's debug hook methods (`window.__poolscopePanel`). */
export async function hook<K extends keyof PanelHook>(
  page: Page,
  name: K,
  ...args: Parameters<PanelHook[K]>
): Promise<Awaited<ReturnType<PanelHook[K]>>> {
  return page.evaluate(
    ({ name, args }) => {
      const h = (window as unknown as { __poolscopePanel: Record<string, Function> })
        .__poolscopePanel;
      return h[name]!(...args);
    },
    { name, args: args as unknown[] },
  ) as Promise<Awaited<ReturnType<PanelHook[K]>>>;
}

export async function posted(page: Page): Promise<{ type: string; [k: string]: unknown }[]> {
  return page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted);
}
