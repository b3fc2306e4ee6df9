/// <reference lib="dom" />
/**
 * The concurrency panel's UI: a timeline, an error inspector and list, shared memory charts and a
 * summary for one run, fed by the host's snapshot and deltas (protocol.ts). View state (selection,
 * window, filters, tab) goes to `vscode.setState` and comes back at load.
 */
import 'uplot/dist/uPlot.min.css';
import './panel.css';
import { SharedCharts } from './charts';
import { h } from './dom';
import { errorText, ErrorList, firstLine, Inspector } from './inspector';
import { RunData } from './model';
import {
  BAR_STATES,
  type HostMessage,
  type PanelError,
  type PanelRequest,
  type PanelViewState,
  type TaskRef,
} from './protocol';
import { Summary } from './summary';
import { type Filter, Timeline } from './timeline';
import { fmtMs, fmtTime } from './dom';

interface VsCodeApi {
  postMessage(message: PanelRequest): void;
  getState(): PanelViewState | undefined;
  setState(state: PanelViewState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const post = (m: PanelRequest): void => vscode.postMessage(m);

const TABS = [
  ['timeline', 'Timeline'],
  ['errors', 'Errors'],
  ['shared', 'Shared memory'],
  ['summary', 'Summary'],
] as const;
type Tab = (typeof TABS)[number][0];

const restored: PanelViewState = vscode.getState() ?? {};
const view: {
  run: RunData | undefined;
  runs: { id: string; label: string }[];
  selected: TaskRef | null;
  filter: Filter;
  tab: Tab;
  /** The run id of the restored state, until its first snapshot. */
  restoreFor: string | undefined;
} = {
  run: undefined,
  runs: [],
  selected: restored.selected ?? null,
  filter: { ...(restored.filter ?? {}) },
  tab: TABS.some(([id]) => id === restored.tab) ? (restored.tab as Tab) : 'timeline',
  restoreFor: restored.runId,
};

// ---- State ----
let saveTimer = 0;
function saveState(): void {
  clearTimeout(saveTimer);
  saveTimer = window.setTimeout(() => {
    const s: PanelViewState = {
      ...(view.run ? { runId: view.run.id } : restored.runId ? { runId: restored.runId } : {}),
      selected: view.selected,
      view: { from: timeline.from, to: timeline.to },
      filter: view.filter,
      tab: view.tab,
    };
    vscode.setState(s);
  }, 80);
}

// ---- Components ----
const timeline = new Timeline({
  select: (ref) => select(ref, 'timeline'),
  viewChanged: () => saveState(),
  describe: (pool, task) => describeTask(pool, task),
});
const inspector = new Inspector({
  openFrame: (file, line, column) =>
    post({
      type: 'openFrame',
      file,
      ...(line !== undefined ? { line } : {}),
      ...(column !== undefined ? { column } : {}),
    }),
  select: (ref) => select(ref, 'inspector'),
});
const errorList = new ErrorList((e) => pickError(e));
const charts = new SharedCharts();
const summary = new Summary();

// ---- Layout ----
const runSelect = h('select', { 'aria-label': 'Run', class: 'run-select' });
const poolSelect = h('select', { 'aria-label': 'Filter by pool' });
const workerSelect = h('select', { 'aria-label': 'Filter by worker' });
const fnSelect = h('select', { 'aria-label': 'Filter by function' });
const outcomeSelect = h('select', { 'aria-label': 'Filter by outcome' });
const search = h('input', {
  type: 'search',
  placeholder: 'Search error text',
  'aria-label': 'Search by error text',
});
const button = (label: string, title: string, on: () => void): HTMLButtonElement => {
  const b = h('button', { type: 'button', title }, label);
  b.addEventListener('click', on);
  return b;
};
const toolbar = h(
  'header',
  { class: 'toolbar' },
  runSelect,
  h('span', { class: 'filters' }, poolSelect, workerSelect, fnSelect, outcomeSelect, search),
  h(
    'span',
    { class: 'actions' },
    button('Fit', 'Fit the whole run (F)', () => timeline.fit()),
    button('+', 'Zoom in (+)', () => timeline.zoom(1 / 1.5)),
    button('−', 'Zoom out (-)', () => timeline.zoom(1.5)),
    button('Save Trace', 'Save this run as a trace file', () => post({ type: 'saveTrace' })),
    button('Export Perfetto', 'Export to Perfetto / Chrome tracing', () =>
      post({ type: 'exportPerfetto' }),
    ),
  ),
);
const tabList = h('nav', { class: 'tabs', role: 'tablist', 'aria-label': 'Views' });
const tabButtons = new Map<Tab, HTMLButtonElement>();
const panels = new Map<Tab, HTMLElement>();
for (const [id, label] of TABS) {
  const b = h(
    'button',
    { type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `panel-${id}` },
    label,
  );
  b.addEventListener('click', () => setTab(id));
  b.addEventListener('keydown', (e) => {
    const i = TABS.findIndex(([t]) => t === id);
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const next = TABS[(i + step + TABS.length) % TABS.length]![0];
    setTab(next);
    tabButtons.get(next)!.focus();
  });
  tabButtons.set(id, b);
  tabList.append(b);
  panels.set(
    id,
    h('section', {
      class: `tab-panel panel-${id}`,
      id: `panel-${id}`,
      role: 'tabpanel',
      'aria-labelledby': `tab-${id}`,
    }),
  );
}
const statusBar = h('footer', { class: 'status', 'aria-live': 'off' });
const legend = h(
  'div',
  { class: 'legend', 'aria-hidden': 'true' },
  ...BAR_STATES.map((s) => h('span', { class: `key key-${s}` }, s)),
  h('span', { class: 'key key-exit' }, 'worker exit'),
  h('span', { class: 'key key-mark' }, 'callback marks'),
);
panels.get('timeline')!.append(legend, timeline.element);
panels.get('errors')!.append(errorList.element);
panels.get('shared')!.append(charts.element);
panels.get('summary')!.append(summary.element);
const app = document.getElementById('app') ?? document.body;
app.append(toolbar, tabList, ...panels.values(), statusBar);

// ---- Behaviour ----
function setTab(tab: Tab): void {
  view.tab = tab;
  for (const [id, b] of tabButtons) {
    b.setAttribute('aria-selected', String(id === tab));
    b.tabIndex = id === tab ? 0 : -1;
  }
  for (const [id, p] of panels) p.hidden = id !== tab;
  if (tab === 'timeline' || tab === 'errors') panels.get(tab)!.append(inspector.element);
  renderTab();
  saveState();
}

function renderTab(): void {
  const run = view.run;
  if (view.tab === 'timeline') timeline.invalidate();
  else if (view.tab === 'errors') errorList.render(run, errorMatches);
  else if (view.tab === 'shared') charts.render(run);
  else summary.render(run);
  tabButtons.get('errors')!.textContent = run ? `Errors (${run.errorCount})` : 'Errors';
}

function describeTask(pool: string, task: number): string {
  const run = view.run;
  const b = run?.pools.get(pool)?.bars;
  const r = b ? b.rowOfTask(task) : -1;
  if (!run || !b || r < 0) return `Task ${task}`;
  const s = b.start[r]!;
  const e = b.end[r]!;
  const w = run.pools.get(pool)!.workers.get(b.worker[r]!);
  const lines = [
    `Task ${task} · ${b.fns[b.fn[r]!] ?? '?'} · ${BAR_STATES[b.state[r]!]}`,
    Number.isNaN(s)
      ? 'not started'
      : `${fmtTime(s)} · ${Number.isNaN(e) ? `running ${fmtMs(run.lastTs - s)}` : fmtMs(e - s)}`,
    `worker ${b.worker[r]}${w?.pid !== undefined ? ` (pid ${w.pid})` : w?.tid !== undefined ? ` (thread ${w.tid})` : ''} · pool ${pool}`,
  ];
  const err = run.errorOfTask(pool, task);
  if (err) lines.push(`${err.error.name}: ${firstLine(err.error.message)}`);
  return lines.join('\n');
}

/** A task selected here (posted to the host), by the host (`from` 'host'), or restored. */
function select(ref: TaskRef | null, from: 'timeline' | 'inspector' | 'host' | 'restore'): void {
  view.selected = ref;
  timeline.select(ref, from !== 'timeline');
  showSelection();
  if (from === 'timeline' || from === 'inspector') post({ type: 'select', ref });
  saveState();
}

function showSelection(): void {
  if (view.run && view.selected) inspector.showTask(view.run, view.selected);
  else inspector.clear();
}

function pickError(e: PanelError): void {
  if (!view.run) return;
  if (e.pool !== undefined && e.task !== undefined) {
    view.selected = { pool: e.pool, task: e.task };
    timeline.select(view.selected, true);
    post({ type: 'select', ref: view.selected });
    saveState();
  }
  inspector.showError(view.run, e);
}

let textMatcher: ((e: PanelError) => boolean) | null = null;
function errorMatches(e: PanelError): boolean {
  const f = view.filter;
  if (f.pool && e.pool !== f.pool) return false;
  if (f.worker !== undefined && e.worker !== f.worker) return false;
  if (f.fn && e.fn !== f.fn) return false;
  return !textMatcher || textMatcher(e);
}

function applyFilter(): void {
  const f = view.filter;
  const text = f.text?.trim().toLowerCase();
  let matches: Map<string, Set<number>> | null = null;
  textMatcher = null;
  if (text) {
    const cache = new WeakMap<PanelError, string>();
    textMatcher = (e) => {
      let s = cache.get(e);
      if (s === undefined) {
        s = errorText(e.error).toLowerCase();
        cache.set(e, s);
      }
      return s.includes(text);
    };
    matches = new Map();
    for (const e of view.run?.errors ?? []) {
      if (e.pool === undefined || e.task === undefined || !textMatcher(e)) continue;
      let set = matches.get(e.pool);
      if (!set) matches.set(e.pool, (set = new Set()));
      set.add(e.task);
    }
  }
  timeline.setFilter(f, matches);
  renderTab();
}

function setOptions(
  sel: HTMLSelectElement,
  all: string,
  items: [string, string][],
  value: string,
): void {
  const wanted = [['', all], ...items];
  const same =
    sel.options.length === wanted.length &&
    wanted.every(([v, l], i) => sel.options[i]!.value === v && sel.options[i]!.text === l);
  if (!same) {
    sel.replaceChildren(...wanted.map(([v, l]) => h('option', { value: v }, l)));
  }
  sel.value = items.some(([v]) => v === value) ? value : '';
}

function refreshFilterOptions(): void {
  const run = view.run;
  const f = view.filter;
  const pools = run ? [...run.pools.keys()] : [];
  setOptions(
    poolSelect,
    'All pools',
    pools.map((p) => [p, `pool ${p}`]),
    f.pool ?? '',
  );
  const workers = new Set<number>();
  const fns = new Set<string>();
  for (const p of run?.pools.values() ?? []) {
    if (f.pool && p.id !== f.pool) continue;
    for (const w of p.workers.keys()) workers.add(w);
    for (const fn of p.bars.fns) if (fn !== '?') fns.add(fn);
  }
  setOptions(
    workerSelect,
    'All workers',
    [...workers].sort((a, b) => a - b).map((w) => [String(w), `worker ${w}`]),
    f.worker !== undefined ? String(f.worker) : '',
  );
  setOptions(
    fnSelect,
    'All functions',
    [...fns].sort().map((x) => [x, x]),
    f.fn ?? '',
  );
  setOptions(
    outcomeSelect,
    'All outcomes',
    [...BAR_STATES.map((s): [string, string] => [s, s]), ['failures', 'failed or errored']],
    f.outcome ?? '',
  );
  if (search.value !== (f.text ?? '') && document.activeElement !== search)
    search.value = f.text ?? '';
  setOptions(
    runSelect,
    'Run…',
    view.runs.map((r) => [r.id, r.label]),
    run?.id ?? '',
  );
}

const onFilter = (key: keyof Filter, el: HTMLSelectElement): void => {
  el.addEventListener('change', () => {
    const v = el.value;
    const f = { ...view.filter };
    if (v === '') delete f[key];
    else if (key === 'worker') f.worker = Number(v);
    else f[key] = v;
    view.filter = f;
    refreshFilterOptions();
    applyFilter();
    saveState();
  });
};
onFilter('pool', poolSelect);
onFilter('worker', workerSelect);
onFilter('fn', fnSelect);
onFilter('outcome', outcomeSelect);
let searchTimer = 0;
search.addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => {
    const f = { ...view.filter };
    if (search.value) f.text = search.value;
    else delete f.text;
    view.filter = f;
    applyFilter();
    saveState();
  }, 150);
});
runSelect.addEventListener('change', () => {
  if (runSelect.value && runSelect.value !== view.run?.id)
    post({ type: 'showRun', runId: runSelect.value });
});

function renderStatus(): void {
  const run = view.run;
  statusBar.textContent = run
    ? `${run.label} · ${run.state} · ${run.events} events${run.dropped ? ` · ${run.dropped} dropped` : ''} · ${[...run.pools.values()].reduce((n, p) => n + p.counts.submitted, 0)} tasks · ${run.errorCount} errors · last event ${fmtTime(run.lastTs)}`
    : 'No run yet.';
}

// Deltas arrive about four times a second: the DOM views refresh at most that often.
let domTimer = 0;
function scheduleDom(): void {
  if (domTimer) return;
  domTimer = window.setTimeout(() => {
    domTimer = 0;
    refreshFilterOptions();
    if (view.filter.text) applyFilter();
    else renderTab();
    renderStatus();
    if (view.tab !== 'errors' || errorList.selectedSeq < 0) showSelection();
  }, 200);
}

let lastMessageMs = 0;
window.addEventListener('message', (event: MessageEvent<HostMessage>) => {
  const msg = event.data;
  if (typeof msg !== 'object' || msg === null) return;
  const t0 = performance.now();
  onMessage(msg);
  lastMessageMs = performance.now() - t0;
});

function onMessage(msg: HostMessage): void {
  switch (msg.type) {
    case 'snapshot': {
      const same = view.run?.id === msg.run.id;
      const restoring = view.restoreFor === msg.run.id;
      view.runs = msg.runs;
      view.run = new RunData(msg.run);
      if (restoring && restored.view) timeline.setView(restored.view);
      if (!same && !restoring) {
        view.selected = null;
        errorList.selectedSeq = -1;
      }
      view.restoreFor = undefined;
      timeline.setRun(view.run, same || (restoring && !!restored.view));
      timeline.select(view.selected, restoring);
      refreshFilterOptions();
      applyFilter();
      renderStatus();
      showSelection();
      saveState();
      break;
    }
    case 'delta':
      if (view.run && msg.delta.runId === view.run.id) {
        view.run.applyDelta(msg.delta);
        timeline.invalidate();
        scheduleDom();
      }
      break;
    case 'select':
      select(msg.ref, 'host');
      break;
    case 'empty':
      view.runs = msg.runs;
      view.run = undefined;
      timeline.setRun(undefined, false);
      refreshFilterOptions();
      renderTab();
      renderStatus();
      inspector.clear();
      break;
  }
}

// Theme changes: VS Code swaps the body class and the variables on <html>.
const themeObserver = new MutationObserver(() => {
  timeline.readColors();
  charts.reset();
  renderTab();
});
themeObserver.observe(document.body, { attributes: true, attributeFilter: ['class'] });
themeObserver.observe(document.documentElement, {
  attributes: true,
  attributeFilter: ['style', 'class'],
});

// A debug hook for tests and measurements (read-only views of the panel's state).
(window as unknown as { __poolscopePanel: unknown }).__poolscopePanel = {
  frameTimes: () => [...timeline.frameTimes],
  resetFrameTimes: () => void timeline.frameTimes.splice(0),
  stats: () => ({
    lanes: timeline.laneStats,
    marks: timeline.marksDrawn,
    view: { from: timeline.from, to: timeline.to },
    selected: view.selected,
    tab: view.tab,
    filter: view.filter,
    bars: view.run ? [...view.run.pools.values()].reduce((n, p) => n + p.bars.n, 0) : 0,
    errors: view.run?.errors.length ?? 0,
  }),
  barBox: (ref: TaskRef) => {
    const box = timeline.barBox(ref);
    if (!box) return undefined;
    const r = timeline.canvas.getBoundingClientRect();
    return { ...box, pageX: r.left + box.x, pageY: r.top + box.y };
  },
  pixel: (x: number, y: number) => {
    const dpr = window.devicePixelRatio || 1;
    const ctx = timeline.canvas.getContext('2d')!;
    return [...ctx.getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data];
  },
  drawNow: () => timeline.draw(),
  zoom: (f: number, at?: number) => timeline.zoom(f, at),
  pan: (f: number) => timeline.pan(f),
  fit: () => timeline.fit(),
  setTab: (t: Tab) => setTab(t),
  setView: (v: { from: number; to: number }) => {
    timeline.setView(v);
    saveState();
  },
  lastMessageMs: () => lastMessageMs,
};

refreshFilterOptions();
setTab(view.tab);
applyFilter();
renderStatus();
if (view.selected) timeline.select(view.selected, false);
post({ type: 'ready' });
