/// <reference lib="dom" />
/**
 * Shared memory charts, one uPlot chart per shared object: a Value's value over time; an
 * Array's min, max and first elements (from the sampled summary, or computed from a sampled
 * numeric array); a Lock, Event or Semaphore as its state; lock contention on a second axis.
 */
import uPlot from 'uplot';
import { cssVar, h, replace } from './dom';
import type { RunData, SharedInfo } from './model';
import { preview } from './values';

interface Chart {
  plot: uPlot;
  key: string;
  value: HTMLElement;
}

type Extract = { names: string[]; get: (v: unknown) => (number | null)[] };

const num = (v: unknown): number | null => {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (typeof o.$bigint === 'string') return Number(o.$bigint);
    if (typeof o.$number === 'string') return null;
  }
  return null;
};

/** How to turn a shared object's samples into series (undefined: nothing numeric to chart). */
function extractor(s: SharedInfo): Extract | undefined {
  const last = s.samples[s.samples.length - 1]?.value;
  if (num(last) !== null) return { names: ['value'], get: (v) => [num(v)] };
  if (typeof last === 'object' && last !== null && !Array.isArray(last)) {
    const o = last as Record<string, unknown>;
    if ('min' in o || 'max' in o) {
      const win = Array.isArray(o.window) ? o.window.slice(0, 3) : [];
      const firsts = win.map((_, i) => `[${i}]`);
      return {
        names: ['min', 'max', ...firsts],
        get: (v) => {
          const x = (v ?? {}) as Record<string, unknown>;
          const w = Array.isArray(x.window) ? x.window : [];
          return [num(x.min), num(x.max), ...firsts.map((_, i) => num(w[i]))];
        },
      };
    }
    const keys = Object.keys(o).filter((k) => num(o[k]) !== null);
    if (keys.length > 0)
      return { names: keys, get: (v) => keys.map((k) => num((v as Record<string, unknown>)?.[k])) };
  }
  if (Array.isArray(last) && last.some((x) => num(x) !== null)) {
    const firsts = last.slice(0, 3).map((_, i) => `[${i}]`);
    return {
      names: ['min', 'max', ...firsts],
      get: (v) => {
        const a = Array.isArray(v) ? v.map(num).filter((x): x is number => x !== null) : [];
        const w = Array.isArray(v) ? v : [];
        return [
          a.length ? Math.min(...a) : null,
          a.length ? Math.max(...a) : null,
          ...firsts.map((_, i) => num(w[i])),
        ];
      },
    };
  }
  return undefined;
}

export class SharedCharts {
  readonly element = h('section', { class: 'shared', 'aria-label': 'Shared memory' });
  private charts = new Map<string, Chart>();
  private runId = '';

  constructor() {
    new ResizeObserver(() => {
      for (const c of this.charts.values()) c.plot.setSize(this.size());
    }).observe(this.element);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(this.element.clientWidth - 40, 240), height: 140 };
  }

  /** Drops the charts (theme change: colours are baked into the canvases). */
  reset(): void {
    for (const c of this.charts.values()) c.plot.destroy();
    this.charts.clear();
    this.element.replaceChildren();
  }

  render(run: RunData | undefined): void {
    if (!run || run.id !== this.runId) {
      this.reset();
      this.runId = run?.id ?? '';
    }
    if (!run) return;
    if (run.shared.size === 0) {
      replace(this.element, h('p', { class: 'muted' }, 'No shared objects in this run.'));
      return;
    }
    this.element.querySelector(':scope > p.muted')?.remove();
    for (const s of run.shared.values()) this.update(run, s);
  }

  private update(run: RunData, s: SharedInfo): void {
    const ex = extractor(s);
    const hasContention = s.lock || s.samples.some((x) => x.contention !== undefined);
    const key = `${ex?.names.join(',') ?? '-'}|${hasContention}`;
    let chart = this.charts.get(s.id);
    const latest = s.samples[s.samples.length - 1]?.value;
    if (chart && chart.key !== key) {
      chart.plot.destroy();
      chart.plot.root.parentElement?.parentElement?.remove();
      this.charts.delete(s.id);
      chart = undefined;
    }
    const xs = s.samples.map((x) => (x.ts - run.startedAt) / 1000);
    const series: (number | null)[][] = (ex?.names ?? []).map(() => []);
    for (const x of s.samples) {
      const vals = ex ? ex.get(x.value) : [];
      vals.forEach((v, i) => series[i]!.push(v));
    }
    const cont = s.samples.map((x) => x.contention ?? null);
    const data = [xs, ...series, ...(hasContention ? [cont] : [])] as uPlot.AlignedData;
    const valueText = `latest: ${preview(latest)} · contention ${s.contention}`;
    if (chart) {
      chart.value.textContent = valueText;
      chart.plot.setData(data);
      return;
    }
    const card = h(
      'div',
      { class: 'chart-card', 'data-shared': s.id },
      h(
        'h3',
        null,
        `${s.kind}${s.ctype ? ` ${s.ctype}` : ''}${s.length > 1 ? `[${s.length}]` : ''} `,
        h('span', { class: 'muted' }, `${s.id}${s.creator ? ` · ${s.creator}` : ''}`),
      ),
    );
    const value = h('div', { class: 'chart-value' }, valueText);
    const host = h('div', { class: 'chart' });
    card.append(value, host);
    this.element.append(card);
    const palette = ['blue', 'green', 'purple', 'yellow', 'orange'].map((c, i) =>
      cssVar(`--vscode-charts-${c}`, ['#3794ff', '#89d185', '#b180d7', '#cca700', '#d18616'][i]!),
    );
    const fg = cssVar('--vscode-descriptionForeground', '#9d9d9d');
    const grid = cssVar('--vscode-editorWidget-border', '#454545');
    const axis = (scale: string, side?: number): uPlot.Axis => ({
      scale,
      stroke: fg,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      ...(side !== undefined ? { side } : {}),
    });
    const opts: uPlot.Options = {
      ...this.size(),
      scales: {
        x: { time: false },
        ...(hasContention ? { c: { range: (_u, _a, max) => [0, Math.max(1, max)] } } : {}),
      },
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: 's' },
        ...(ex?.names ?? []).map((n, i) => ({
          label: n,
          stroke: palette[i % palette.length]!,
          width: 1.5,
          spanGaps: true,
        })),
        ...(hasContention
          ? [
              {
                label: 'contention',
                stroke: cssVar('--vscode-charts-red', '#f14c4c'),
                scale: 'c',
                width: 1,
                dash: [4, 3],
              },
            ]
          : []),
      ],
      axes: [
        axis('x'),
        axis('y'),
        ...(hasContention ? [{ ...axis('c', 1), grid: { show: false } }] : []),
      ],
    };
    const plot = new uPlot(opts, data, host);
    this.charts.set(s.id, { plot, key, value });
  }
}
