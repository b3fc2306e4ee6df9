/// <reference lib="dom" />
/**
 * The error inspector (the selected task's error, or one picked from the error list): name,
 * message, code, own properties as a tree, the cause chain, aggregate members, where it was
 * thrown, and the stack with frames that open the source. All the program's data is text.
 */
import type { ErrorInfo } from '../core/trace/protocol';
import { fmtMs, fmtTime, h, replace } from './dom';
import type { RunData } from './model';
import { BAR_STATES, type PanelError, type TaskRef } from './protocol';
import { preview, propertyNode } from './values';

export interface InspectorCallbacks {
  openFrame(file: string, line?: number, column?: number): void;
  select(ref: TaskRef): void;
}

const MAX_DEPTH = 8;

export class Inspector {
  readonly element = h('section', { class: 'inspector', 'aria-label': 'Error inspector' });

  constructor(private readonly cb: InspectorCallbacks) {
    this.clear();
  }

  clear(): void {
    replace(
      this.element,
      h('p', { class: 'muted' }, 'Select a task on the timeline or an error in the list.'),
    );
  }

  /** Shows a task (its bar's facts) and its error, if it threw. */
  showTask(run: RunData, ref: TaskRef): void {
    const pool = run.pools.get(ref.pool);
    const b = pool?.bars;
    const r = b ? b.rowOfTask(ref.task) : -1;
    const err = run.errorOfTask(ref.pool, ref.task);
    const facts: [string, string][] = [];
    if (b && r >= 0) {
      const start = b.start[r]!;
      const end = b.end[r]!;
      facts.push(['state', BAR_STATES[b.state[r]!] ?? '?']);
      facts.push(['function', b.fns[b.fn[r]!] ?? '?']);
      if (b.worker[r]! >= 0) facts.push(['worker', workerText(run, ref.pool, b.worker[r]!)]);
      if (!Number.isNaN(start))
        facts.push(['started', `${fmtTime(start)} (+${fmtMs(start - run.startedAt)})`]);
      if (!Number.isNaN(start))
        facts.push([
          'duration',
          Number.isNaN(end) ? `${fmtMs(run.lastTs - start)} so far` : fmtMs(end - start),
        ]);
    }
    replace(
      this.element,
      h('h2', null, `Task ${ref.task}`, h('span', { class: 'muted' }, ` · pool ${ref.pool}`)),
      factTable(facts),
      err
        ? this.errorView(run, err, false)
        : h('p', { class: 'muted' }, r < 0 ? 'This task is not in the kept bars.' : 'No error.'),
    );
  }

  showError(run: RunData, e: PanelError): void {
    replace(this.element, this.errorView(run, e, true));
  }

  /** An error with where it was thrown (`link`: with a link to its task). */
  private errorView(run: RunData, e: PanelError, link: boolean): HTMLElement {
    const where: [string, string][] = [['source', e.source]];
    if (e.pool !== undefined) where.push(['pool', e.pool]);
    if (e.worker !== undefined && e.pool !== undefined)
      where.push(['worker', workerText(run, e.pool, e.worker)]);
    if (e.fn !== undefined) where.push(['function', e.fn]);
    if (e.process !== undefined) where.push(['process', e.process]);
    where.push(['time', `${fmtTime(e.ts)} (+${fmtMs(e.ts - run.startedAt)})`]);
    const box = h('div', { class: 'error-view' });
    if (link && e.task !== undefined && e.pool !== undefined) {
      const ref = { pool: e.pool, task: e.task };
      const link = h('button', { class: 'link', type: 'button' }, `task ${e.task}`);
      link.addEventListener('click', () => this.cb.select(ref));
      box.append(h('div', { class: 'thrown-by' }, 'Thrown by ', link));
    }
    box.append(factTable(where), this.errorInfo(e.error, 0));
    return box;
  }

  /** One ErrorInfo, with its cause chain and aggregate members (recursively). */
  errorInfo(err: ErrorInfo, depth: number): HTMLElement {
    const el = h('div', { class: 'error-info', 'data-depth': String(depth) });
    el.append(
      h(
        'div',
        { class: 'error-head' },
        h('span', { class: 'error-name' }, err.name || '(no name)'),
        ': ',
        h('span', { class: 'error-message' }, err.message),
      ),
    );
    const facts: [string, string][] = [];
    const code = err.code ?? codeProp(err.props);
    if (code !== undefined) facts.push(['code', String(code)]);
    if (err.thrown !== 'error') facts.push(['thrown', err.thrown]);
    if (err.value !== undefined) facts.push(['value', preview(err.value)]);
    if (facts.length) el.append(factTable(facts, 'facts error-facts'));
    const props = Object.entries(err.props ?? {});
    if (props.length > 0) {
      const tree = h('div', { class: 'props', role: 'tree', 'aria-label': 'Properties' });
      for (const [k, v] of props)
        tree.append(propertyNode(k, v, (inner) => this.errorInfo(inner, depth + 1)));
      el.append(section('Properties', tree, true));
    }
    if (err.frames.length > 0 || err.stack)
      el.append(section('Stack', this.frames(err), depth === 0));
    if (depth < MAX_DEPTH && err.errors && err.errors.length > 0) {
      const list = h('ol', { class: 'aggregate' });
      for (const m of err.errors) list.append(h('li', null, this.errorInfo(m, depth + 1)));
      el.append(section(`Errors (${err.errors.length})`, list, true, 'aggregate-section'));
    }
    if (depth < MAX_DEPTH && err.cause) {
      el.append(section('Caused by', this.errorInfo(err.cause, depth + 1), true, 'cause'));
    }
    return el;
  }

  private frames(err: ErrorInfo): HTMLElement {
    const list = h('ol', { class: 'frames' });
    for (const f of err.frames) {
      const li = h('li');
      if (f.file) {
        const loc = `${f.file}${f.line !== undefined ? `:${f.line}` : ''}${f.column !== undefined ? `:${f.column}` : ''}`;
        const a = h(
          'button',
          { class: 'frame link', type: 'button', title: `Open ${loc}` },
          f.fn ? h('span', { class: 'frame-fn' }, f.fn) : null,
          h('span', { class: 'frame-loc' }, loc),
        );
        const file = f.file;
        a.addEventListener('click', () => this.cb.openFrame(file, f.line, f.column));
        li.append(a);
      } else {
        li.append(h('span', { class: 'frame raw' }, f.raw));
      }
      list.append(li);
    }
    if (err.frames.length === 0 && err.stack) list.append(h('li', null, h('pre', null, err.stack)));
    return list;
  }
}

function workerText(run: RunData, pool: string, worker: number): string {
  const w = run.pools.get(pool)?.workers.get(worker);
  const who =
    w?.pid !== undefined ? ` (pid ${w.pid})` : w?.tid !== undefined ? ` (thread ${w.tid})` : '';
  return `${worker}${who}`;
}

function factTable(rows: [string, string][], cls = 'facts'): HTMLElement {
  const dl = h('dl', { class: cls });
  for (const [k, v] of rows) dl.append(h('dt', null, k), h('dd', null, v));
  return dl;
}

function section(title: string, body: Node, open: boolean, cls = ''): HTMLElement {
  const d = h('details', { class: `section ${cls}` }, h('summary', null, title), body);
  d.open = open;
  return d;
}

/** The error list: newest first, searchable by error text; click to inspect. */
export class ErrorList {
  readonly element = h('section', { class: 'error-list', 'aria-label': 'Errors' });
  private readonly list = h('ul', { role: 'listbox', 'aria-label': 'Errors' });
  private readonly count = h('div', { class: 'muted count' });
  selectedSeq = -1;

  constructor(private readonly onPick: (e: PanelError) => void) {
    this.element.append(this.count, this.list);
  }

  render(run: RunData | undefined, matches: (e: PanelError) => boolean): void {
    this.list.replaceChildren();
    if (!run) return;
    let shown = 0;
    let matched = 0;
    for (let i = run.errors.length - 1; i >= 0; i--) {
      const e = run.errors[i]!;
      if (!matches(e)) continue;
      matched++;
      if (shown >= 300) continue;
      shown++;
      const li = h(
        'li',
        {
          role: 'option',
          tabIndex: 0,
          'aria-selected': String(e.seq === this.selectedSeq),
          'data-seq': String(e.seq),
        },
        h('span', { class: 'error-name' }, e.error.name),
        ': ',
        h('span', { class: 'error-message' }, firstLine(e.error.message)),
        h(
          'span',
          { class: 'muted' },
          `${e.source !== 'task' ? ` · ${e.source}` : ''}${e.task !== undefined ? ` · task ${e.task}` : ''}${e.worker !== undefined ? ` · worker ${e.worker}` : ''}${e.fn ? ` · ${e.fn}` : ''}${e.process ? ` · ${e.process}` : ''}`,
        ),
      );
      const pick = (): void => {
        this.selectedSeq = e.seq;
        for (const x of Array.from(this.list.children))
          x.setAttribute('aria-selected', String(x === li));
        this.onPick(e);
      };
      li.addEventListener('click', pick);
      li.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          pick();
        } else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
          ev.preventDefault();
          const next = (
            ev.key === 'ArrowDown' ? li.nextElementSibling : li.previousElementSibling
          ) as HTMLElement | null;
          next?.focus();
        }
      });
      this.list.append(li);
    }
    this.count.textContent = `${matched} of ${run.errorCount} errors${run.errorCount > run.errors.length ? ` (the newest ${run.errors.length} kept)` : ''}${matched > shown ? `, the newest ${shown} listed` : ''}`;
  }
}

export function firstLine(s: string): string {
  const i = s.indexOf('\n');
  const line = i < 0 ? s : s.slice(0, i);
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** All the text of an error (for the search). */
export function errorText(e: ErrorInfo, depth = 0): string {
  let s = `${e.name}\n${e.message}\n${e.code ?? ''}\n`;
  if (depth < 4) {
    if (e.cause) s += errorText(e.cause, depth + 1);
    for (const m of e.errors ?? []) s += errorText(m, depth + 1);
  }
  return s;
}

/** A `code` own property (string or number) when the error has no top-level `code`. */
function codeProp(props: ErrorInfo['props'] | undefined): string | number | undefined {
  const c = props?.code;
  return typeof c === 'string' || typeof c === 'number' ? c : undefined;
}
