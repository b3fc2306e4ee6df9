/// <reference lib="dom" />
/**
 * The timeline: a canvas with one lane per worker, grouped by pool, each task a bar from start
 * to end coloured by outcome; worker exits and callback marks on top. Drawn only when something
 * changed (one requestAnimationFrame at most per frame), and only what is visible: each lane's
 * rows are sorted by start and binary-searched for the window, and bars narrower than a pixel
 * are merged into one pixel column (coloured by the worst outcome in it), so a frame costs the
 * visible bars, bounded by the pixels, not the run's 100,000 tasks.
 */
import { cssVar, fmtMs, fmtTime } from './dom';
import { Lane, MARK_KINDS, RunData, STATE_ERRORED, STATE_FAILED, type PoolInfo } from './model';
import { BAR_STATES, type PanelViewState, type TaskRef } from './protocol';

const AXIS_H = 22;
const GROUP_H = 20;
const LANE_H = 20;
const LABEL_W = 140;
const BAR_PAD = 3;
const FRAMES_KEPT = 1000;
/** Which state wins a merged pixel: failed, errored, running, queued, passed. */
const PRIORITY = [1, 2, 0, 4, 3];

export type Filter = NonNullable<PanelViewState['filter']>;

interface Row {
  kind: 'group' | 'lane';
  pool: PoolInfo;
  lane?: Lane;
  worker?: number;
  y: number;
  label: string;
}

interface Colors {
  bg: string;
  fg: string;
  muted: string;
  grid: string;
  labelBg: string;
  focus: string;
  error: string;
  states: string[];
  marks: string[];
  font: string;
  contrast: string;
}

export interface LaneStats {
  pool: string;
  worker: number;
  label: string;
  /** Bars in the visible window (after filters). */
  visible: number;
  /** Rectangles drawn (merged sub-pixel bars count once). */
  drawn: number;
  /** The worker's exit marker, when drawn: its label. */
  exit?: string;
}

export interface TimelineCallbacks {
  select(ref: TaskRef | null): void;
  viewChanged(view: { from: number; to: number }): void;
  describe(pool: string, task: number): string;
}

export class Timeline {
  readonly element: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly tooltip: HTMLElement;
  private readonly status: HTMLElement;
  private readonly ctx: CanvasRenderingContext2D;
  private run: RunData | undefined;
  private filter: Filter = {};
  private textMatches: Map<string, Set<number>> | null = null;
  private rows: Row[] = [];
  from = 0;
  to = 1000;
  private hasView = false;
  selected: TaskRef | null = null;
  /** The keyboard cursor (or mouse hover): a task. */
  private cursor: TaskRef | null = null;
  private cursorLane = 0;
  private colors!: Colors;
  private stripe: CanvasPattern | null = null;
  private pending = 0;
  private width = 0;
  private height = 0;
  private dpr = 1;
  readonly frameTimes: number[] = [];
  laneStats: LaneStats[] = [];
  /** Marks drawn in the last frame, by kind. */
  marksDrawn: Record<string, number> = {};
  private drag: { x: number; from: number; to: number; moved: boolean } | null = null;

  constructor(private readonly cb: TimelineCallbacks) {
    this.element = document.createElement('div');
    this.element.className = 'timeline';
    this.canvas = document.createElement('canvas');
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute('role', 'img');
    this.canvas.setAttribute(
      'aria-label',
      'Timeline: arrow keys pan and move between lanes, Shift+arrows move between tasks, Enter selects, + and - zoom, F fits',
    );
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'tooltip';
    this.tooltip.hidden = true;
    this.status = document.createElement('div');
    this.status.className = 'sr-status';
    this.status.setAttribute('aria-live', 'polite');
    this.element.append(this.canvas, this.tooltip, this.status);
    this.ctx = this.canvas.getContext('2d', { alpha: false })!;
    this.readColors();
    new ResizeObserver(() => this.invalidate()).observe(this.element);
    this.listen();
  }

  readColors(): void {
    const fontFamily = cssVar('--vscode-font-family', 'system-ui, sans-serif');
    this.colors = {
      bg: cssVar('--vscode-editor-background', '#1e1e1e'),
      fg: cssVar('--vscode-foreground', '#cccccc'),
      muted: cssVar('--vscode-descriptionForeground', '#9d9d9d'),
      grid: cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', '#454545')),
      labelBg: cssVar(
        '--vscode-sideBar-background',
        cssVar('--vscode-editor-background', '#252526'),
      ),
      focus: cssVar('--vscode-focusBorder', '#007fd4'),
      error: cssVar('--vscode-errorForeground', '#f48771'),
      contrast: cssVar('--vscode-contrastBorder', ''),
      states: [
        cssVar('--vscode-testing-iconQueued', '#cca700'),
        cssVar('--vscode-charts-blue', '#3794ff'),
        cssVar('--vscode-testing-iconPassed', '#73c991'),
        cssVar('--vscode-testing-iconFailed', '#f14c4c'),
        cssVar('--vscode-testing-iconErrored', '#f14c4c'),
      ],
      marks: [
        cssVar('--vscode-charts-purple', '#b180d7'),
        cssVar('--vscode-charts-orange', '#d18616'),
        cssVar('--vscode-charts-red', '#f14c4c'),
        cssVar('--vscode-charts-yellow', '#cca700'),
      ],
      font: `11px ${fontFamily}`,
    };
    // Errored bars (the worker died under them) are striped, to tell them from failed ones.
    const tile = document.createElement('canvas');
    tile.width = 6;
    tile.height = 6;
    const t = tile.getContext('2d')!;
    t.strokeStyle = this.colors.bg;
    t.lineWidth = 1.5;
    t.beginPath();
    t.moveTo(0, 6);
    t.lineTo(6, 0);
    t.stroke();
    this.stripe = this.ctx.createPattern(tile, 'repeat');
    this.invalidate();
  }

  setRun(run: RunData | undefined, keepView: boolean): void {
    const changed = run !== this.run;
    this.run = run;
    if (run && changed && !(keepView && this.hasView)) this.fit();
    this.invalidate();
  }

  setFilter(filter: Filter, textMatches: Map<string, Set<number>> | null): void {
    this.filter = filter;
    this.textMatches = textMatches;
    this.invalidate();
  }

  setView(view: { from: number; to: number }): void {
    if (!(view.to > view.from)) return;
    this.from = view.from;
    this.to = view.to;
    this.hasView = true;
    this.invalidate();
  }

  fit(): void {
    if (!this.run) return;
    const { from, to } = this.run.extent();
    const pad = (to - from) * 0.02;
    this.setView({ from: from - pad, to: to + pad });
    this.cb.viewChanged({ from: this.from, to: this.to });
  }

  zoom(factor: number, anchor?: number): void {
    const span = this.to - this.from;
    const at = anchor ?? (this.from + this.to) / 2;
    const next = Math.min(Math.max(span * factor, 0.01), 1e10);
    const k = (at - this.from) / span;
    this.setView({ from: at - k * next, to: at - k * next + next });
    this.cb.viewChanged({ from: this.from, to: this.to });
  }

  pan(fraction: number): void {
    const dt = (this.to - this.from) * fraction;
    this.setView({ from: this.from + dt, to: this.to + dt });
    this.cb.viewChanged({ from: this.from, to: this.to });
  }

  /** Highlights a task; with `reveal`, brings it into view (pans, scrolls to its lane). */
  select(ref: TaskRef | null, reveal: boolean): void {
    this.selected = ref;
    if (ref) this.cursor = ref;
    if (ref && reveal) this.reveal(ref);
    this.invalidate();
  }

  private reveal(ref: TaskRef): void {
    const bar = this.barTimes(ref);
    if (!bar) return;
    const span = this.to - this.from;
    if (bar.end - bar.start > span * 0.9) {
      const pad = (bar.end - bar.start) * 0.1 + 0.01;
      this.setView({ from: bar.start - pad, to: bar.end + pad });
    } else if (bar.end < this.from || bar.start > this.to) {
      const mid = (bar.start + bar.end) / 2;
      this.setView({ from: mid - span / 2, to: mid + span / 2 });
    }
    this.cb.viewChanged({ from: this.from, to: this.to });
    this.layout();
    const row = this.rows.find(
      (r) => r.kind === 'lane' && r.pool.id === ref.pool && r.worker === bar.worker,
    );
    if (row) {
      const scroller = this.element;
      if (
        row.y < scroller.scrollTop + AXIS_H ||
        row.y + LANE_H > scroller.scrollTop + scroller.clientHeight
      )
        scroller.scrollTop = Math.max(0, row.y - scroller.clientHeight / 2);
      this.cursorLane = this.rows.indexOf(row);
    }
  }

  private barTimes(ref: TaskRef): { start: number; end: number; worker: number } | undefined {
    const pool = this.run?.pools.get(ref.pool);
    if (!pool) return undefined;
    const b = pool.bars;
    const r = b.rowOfTask(ref.task);
    if (r < 0 || Number.isNaN(b.start[r]!)) return undefined;
    const end = Number.isNaN(b.end[r]!) ? this.run!.lastTs : b.end[r]!;
    return { start: b.start[r]!, end: Math.max(end, b.start[r]!), worker: b.worker[r]! };
  }

  invalidate(): void {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.draw();
    });
  }

  private layout(): void {
    const rows: Row[] = [];
    let y = AXIS_H;
    const run = this.run;
    if (run) {
      for (const pool of run.pools.values()) {
        if (this.filter.pool && pool.id !== this.filter.pool) continue;
        rows.push({
          kind: 'group',
          pool,
          y,
          label: `pool ${pool.id} · ${pool.backend} ×${pool.size}`,
        });
        y += GROUP_H;
        const ids = new Set<number>([...pool.workers.keys(), ...pool.bars.lanes.keys()]);
        for (const id of [...ids].sort((a, b) => a - b)) {
          if (this.filter.worker !== undefined && id !== this.filter.worker) continue;
          const w = pool.workers.get(id);
          const who =
            w?.pid !== undefined && pool.backend !== 'thread'
              ? `pid ${w.pid}`
              : w?.tid !== undefined
                ? `thread ${w.tid}`
                : w?.pid !== undefined
                  ? `pid ${w.pid}`
                  : '';
          rows.push({
            kind: 'lane',
            pool,
            lane: pool.bars.lanes.get(id),
            worker: id,
            y,
            label: `w${id}${who ? ` · ${who}` : ''}`,
          });
          y += LANE_H;
        }
      }
    }
    this.rows = rows;
    this.height = Math.max(y + 4, 80);
  }

  private x(t: number): number {
    return LABEL_W + ((t - this.from) * (this.width - LABEL_W)) / (this.to - this.from);
  }

  private t(x: number): number {
    return this.from + ((x - LABEL_W) * (this.to - this.from)) / (this.width - LABEL_W);
  }

  /** Draws now (the rAF callback; tests may call it through the debug hook). */
  draw(): void {
    const t0 = performance.now();
    this.layout();
    const width = Math.max(this.element.clientWidth, 200);
    const dpr = window.devicePixelRatio || 1;
    if (
      width !== this.width ||
      dpr !== this.dpr ||
      this.canvas.height !== Math.round(this.height * dpr)
    ) {
      this.width = width;
      this.dpr = dpr;
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(this.height * dpr);
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${this.height}px`;
    }
    const ctx = this.ctx;
    const c = this.colors;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = c.bg;
    ctx.fillRect(0, 0, width, this.height);
    ctx.font = c.font;
    ctx.textBaseline = 'middle';
    this.drawAxis();
    const stats: LaneStats[] = [];
    for (let i = 0; i < this.rows.length; i++) {
      const row = this.rows[i]!;
      if (row.kind === 'group') continue;
      if (i === this.cursorLane && document.activeElement === this.canvas) {
        ctx.fillStyle = c.focus;
        ctx.fillRect(0, row.y, 3, LANE_H);
      }
      const s = this.drawLane(row);
      stats.push(s);
    }
    // Labels over everything on the left.
    ctx.fillStyle = c.labelBg;
    ctx.fillRect(0, AXIS_H, LABEL_W - 1, this.height - AXIS_H);
    ctx.fillStyle = c.grid;
    ctx.fillRect(LABEL_W - 1, 0, 1, this.height);
    for (const row of this.rows) {
      if (row.kind === 'group') {
        // A pool's header spans the width (its label is not clipped to the label column).
        ctx.fillStyle = c.labelBg;
        ctx.fillRect(0, row.y, width, GROUP_H);
        ctx.fillStyle = c.grid;
        ctx.fillRect(0, row.y + GROUP_H - 1, width, 1);
        ctx.fillStyle = c.fg;
        ctx.font = `bold ${c.font}`;
        ctx.fillText(clip(ctx, row.label, width - 12), 6, row.y + GROUP_H / 2);
        ctx.font = c.font;
      } else {
        ctx.fillStyle = c.fg;
        ctx.fillText(clip(ctx, row.label, LABEL_W - 20), 14, row.y + LANE_H / 2);
      }
    }
    this.drawMarks();
    if (!this.run || this.rows.length === 0) {
      ctx.fillStyle = c.muted;
      ctx.fillText(
        this.run ? 'No lanes match the filters.' : 'Waiting for a run…',
        LABEL_W + 10,
        AXIS_H + 20,
      );
    }
    this.laneStats = stats;
    const dt = performance.now() - t0;
    this.frameTimes.push(dt);
    if (this.frameTimes.length > FRAMES_KEPT) this.frameTimes.splice(0, FRAMES_KEPT / 2);
  }

  private drawAxis(): void {
    const ctx = this.ctx;
    const c = this.colors;
    const plotW = this.width - LABEL_W;
    const span = this.to - this.from;
    const target = span / Math.max(plotW / 110, 1);
    const pow = 10 ** Math.floor(Math.log10(target));
    const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= target) ?? 10 * pow;
    const origin = this.run?.startedAt ?? 0;
    ctx.fillStyle = c.muted;
    const first = Math.ceil((this.from - origin) / step) * step + origin;
    for (let t = first; t <= this.to; t += step) {
      const x = Math.round(this.x(t)) + 0.5;
      ctx.fillStyle = c.grid;
      ctx.globalAlpha = 0.5;
      ctx.fillRect(x, AXIS_H - 4, 1, this.height);
      ctx.globalAlpha = 1;
      ctx.fillStyle = c.muted;
      ctx.fillText(`+${fmtMs(t - origin)}`, x + 3, AXIS_H / 2);
    }
    ctx.fillStyle = c.grid;
    ctx.fillRect(0, AXIS_H - 1, this.width, 1);
  }

  private passes(pool: PoolInfo): ((row: number) => boolean) | null {
    const f = this.filter;
    const fn = f.fn !== undefined && f.fn !== '' ? pool.bars.fns.indexOf(f.fn) : -1;
    const fnWanted = f.fn !== undefined && f.fn !== '';
    const outcome = f.outcome ? (BAR_STATES as readonly string[]).indexOf(f.outcome) : -1;
    const failures = f.outcome === 'failures';
    const text = this.textMatches?.get(pool.id);
    if (!fnWanted && outcome < 0 && !failures && !this.textMatches) return null;
    const b = pool.bars;
    return (r) =>
      (!fnWanted || b.fn[r] === fn) &&
      (outcome < 0 || b.state[r] === outcome) &&
      (!failures || b.state[r] === STATE_FAILED || b.state[r] === STATE_ERRORED) &&
      (!this.textMatches || (text !== undefined && text.has(b.task[r]!)));
  }

  private drawLane(row: Row): LaneStats {
    const ctx = this.ctx;
    const c = this.colors;
    const stats: LaneStats = {
      pool: row.pool.id,
      worker: row.worker!,
      label: row.label,
      visible: 0,
      drawn: 0,
    };
    ctx.fillStyle = c.grid;
    ctx.globalAlpha = 0.35;
    ctx.fillRect(LABEL_W, row.y + LANE_H - 1, this.width - LABEL_W, 1);
    ctx.globalAlpha = 1;
    const lane = row.lane;
    const y0 = row.y + BAR_PAD;
    const bh = LANE_H - 2 * BAR_PAD;
    if (lane && lane.n > 0) {
      lane.sort();
      const b = row.pool.bars;
      const pass = this.passes(row.pool);
      const paths = [new Path2D(), new Path2D(), new Path2D(), new Path2D(), new Path2D()];
      const lastTs = this.run!.lastTs;
      const from = this.from;
      const end = lane.lowerBound(this.to);
      const left = LABEL_W - 2;
      const right = this.width + 2;
      let pendingPx = -1e9;
      let pendingState = -1;
      let selectedDrawn = false;
      const flush = (): void => {
        if (pendingState >= 0) {
          paths[pendingState]!.rect(pendingPx, y0, 1, bh);
          stats.drawn++;
        }
        pendingState = -1;
      };
      // The hot loop: plain locals, no calls but the filter (when one is set).
      const rows = lane.rows;
      const starts = b.start;
      const ends = b.end;
      const states = b.state;
      const k = (this.width - LABEL_W) / (this.to - this.from);
      const selRow =
        this.selected && this.selected.pool === b.id ? b.rowOfTask(this.selected.task) : -2;
      for (let i = lane.firstReaching(from); i < end; i++) {
        const r = rows[i]!;
        let e = ends[r]!;
        if (e !== e) e = lastTs; // NaN: running
        if (e < from) continue;
        if (pass !== null && !pass(r)) continue;
        stats.visible++;
        if (r === selRow) selectedDrawn = true;
        const st = states[r]!;
        // Subtract first: epoch milliseconds times a deep zoom's scale would lose pixels.
        let x0 = LABEL_W + (starts[r]! - from) * k;
        let x1 = LABEL_W + (e - from) * k;
        if (x0 < left) x0 = left;
        if (x1 > right) x1 = right;
        if (x1 - x0 < 1.5) {
          const px = x0 | 0;
          if (px === pendingPx) {
            if (PRIORITY[st]! > PRIORITY[pendingState]!) pendingState = st;
          } else {
            if (pendingState >= 0) {
              paths[pendingState]!.rect(pendingPx, y0, 1, bh);
              stats.drawn++;
            }
            pendingPx = px;
            pendingState = st;
          }
        } else {
          paths[st]!.rect(x0, y0, x1 - x0 >= 4 ? x1 - x0 - 1 : x1 - x0, bh);
          stats.drawn++;
        }
      }
      flush();
      for (let st = 0; st < 5; st++) {
        ctx.fillStyle = c.states[st]!;
        ctx.fill(paths[st]!);
      }
      if (this.stripe) {
        ctx.fillStyle = this.stripe;
        ctx.fill(paths[STATE_ERRORED]!);
      }
      if (c.contrast) {
        ctx.strokeStyle = c.contrast;
        ctx.lineWidth = 1;
        ctx.stroke(paths[STATE_FAILED]!);
        ctx.stroke(paths[STATE_ERRORED]!);
      }
      for (const [ref, style, lw] of [
        [this.cursor, c.fg, 1],
        [this.selected, c.focus, 2],
      ] as const) {
        if (!ref || ref.pool !== b.id) continue;
        const r = b.rowOfTask(ref.task);
        if (r < 0 || b.worker[r] !== row.worker || Number.isNaN(b.start[r]!)) continue;
        if (ref === this.selected && !selectedDrawn) continue;
        const e = Number.isNaN(b.end[r]!) ? lastTs : b.end[r]!;
        const x0 = Math.max(this.x(b.start[r]!), left);
        const x1 = Math.min(this.x(e), right);
        const w = Math.max(x1 - x0, 3);
        ctx.strokeStyle = style;
        ctx.lineWidth = lw;
        ctx.strokeRect(x0 - lw / 2 - 0.5, y0 - lw / 2 - 0.5, w + lw + 1, bh + lw + 1);
      }
    }
    // The worker's exit.
    const w = row.pool.workers.get(row.worker!);
    if (w && w.exitedAt !== undefined && w.exitedAt >= this.from && w.exitedAt <= this.to) {
      const x = Math.round(this.x(w.exitedAt)) + 0.5;
      const bad = (w.exitCode !== 0 && w.exitCode !== null) || w.signal !== null;
      ctx.fillStyle = bad ? c.error : c.muted;
      ctx.fillRect(x - 1, row.y + 1, 2, LANE_H - 2);
      ctx.beginPath();
      ctx.moveTo(x - 5, row.y + 1);
      ctx.lineTo(x + 5, row.y + 1);
      ctx.lineTo(x, row.y + 7);
      ctx.fill();
      const label = `exit ${w.exitCode ?? '–'}${w.signal ? ` ${w.signal}` : ''}${w.reason && w.reason !== 'normal' ? ` (${w.reason})` : ''}`;
      const tw = ctx.measureText(label).width;
      const lx = x + 4 + tw < this.width ? x + 4 : x - 4 - tw;
      ctx.fillStyle = c.bg;
      ctx.fillRect(lx - 1, row.y + 3, tw + 2, LANE_H - 6);
      ctx.fillStyle = bad ? c.error : c.muted;
      ctx.fillText(label, lx, row.y + LANE_H / 2);
      stats.exit = label;
    }
    return stats;
  }

  private drawMarks(): void {
    const run = this.run;
    if (!run) return;
    const m = run.marks;
    const ctx = this.ctx;
    const laneY = new Map<string, number>();
    const groupY = new Map<string, number>();
    for (const row of this.rows) {
      if (row.kind === 'lane') laneY.set(`${row.pool.id}/${row.worker}`, row.y);
      else groupY.set(row.pool.id, row.y);
    }
    let lastKey = '';
    const drawn: Record<string, number> = {};
    this.marksDrawn = drawn;
    for (let i = m.lowerBound(this.from), end = m.lowerBound(this.to); i < end; i++) {
      const poolId = m.pool[i]! >= 0 ? m.pools[m.pool[i]!]! : undefined;
      if (poolId === undefined) continue;
      const pool = run.pools.get(poolId);
      let y: number | undefined;
      if (pool && m.task[i]! >= 0) {
        const r = pool.bars.rowOfTask(m.task[i]!);
        if (r >= 0) {
          const pass = this.passes(pool);
          if (pass && !pass(r)) continue;
          y = laneY.get(`${poolId}/${pool.bars.worker[r]}`);
        }
      }
      const inGroup = y === undefined;
      y ??= groupY.get(poolId);
      if (y === undefined) continue;
      const x = Math.round(this.x(m.ts[i]!));
      const kind = m.kind[i]!;
      const key = `${x}/${y}/${kind}`;
      if (key === lastKey) continue;
      lastKey = key;
      drawn[MARK_KINDS[kind]!] = (drawn[MARK_KINDS[kind]!] ?? 0) + 1;
      ctx.fillStyle = this.colors.marks[kind]!;
      const top = inGroup ? y + GROUP_H - 6 : y;
      ctx.beginPath();
      // A small downward triangle at the top of the lane; a diamond when a callback threw.
      if (MARK_KINDS[kind] === 'callbackThrew') {
        ctx.moveTo(x, top);
        ctx.lineTo(x + 4, top + 4);
        ctx.lineTo(x, top + 8);
        ctx.lineTo(x - 4, top + 4);
      } else {
        ctx.moveTo(x - 3, top);
        ctx.lineTo(x + 3, top);
        ctx.lineTo(x, top + 5);
      }
      ctx.fill();
    }
  }

  /** The task under a point (canvas CSS pixels), within 3 px. */
  hit(px: number, py: number): TaskRef | null {
    if (px < LABEL_W) return null;
    const row = this.rows.find((r) => r.kind === 'lane' && py >= r.y && py < r.y + LANE_H);
    if (!row?.lane) return null;
    const lane = row.lane;
    lane.sort();
    const b = row.pool.bars;
    const t = this.t(px);
    const tol = ((this.to - this.from) / (this.width - LABEL_W)) * 3;
    const pass = this.passes(row.pool);
    let best = -1;
    let bestD = Infinity;
    for (let i = lane.firstReaching(t - tol), end = lane.lowerBound(t + tol); i < end; i++) {
      const r = lane.rows[i]!;
      if (pass && !pass(r)) continue;
      const s = b.start[r]!;
      const e = Number.isNaN(b.end[r]!) ? this.run!.lastTs : b.end[r]!;
      const d = t < s ? s - t : t > e ? t - e : 0;
      if (d <= tol && d < bestD) {
        bestD = d;
        best = r;
        if (d === 0) break;
      }
    }
    return best < 0 ? null : { pool: b.id, task: b.task[best]! };
  }

  /** A bar's box in canvas CSS pixels (for tests and the tooltip). */
  barBox(ref: TaskRef): { x: number; y: number; w: number; h: number } | undefined {
    const bar = this.barTimes(ref);
    if (!bar) return undefined;
    this.layout();
    const row = this.rows.find(
      (r) => r.kind === 'lane' && r.pool.id === ref.pool && r.worker === bar.worker,
    );
    if (!row) return undefined;
    const x0 = this.x(bar.start);
    const x1 = this.x(bar.end);
    return { x: x0, y: row.y + BAR_PAD, w: Math.max(x1 - x0, 1), h: LANE_H - 2 * BAR_PAD };
  }

  private showTip(ref: TaskRef | null, px: number, py: number): void {
    if (!ref) {
      this.tooltip.hidden = true;
      return;
    }
    this.tooltip.textContent = this.cb.describe(ref.pool, ref.task);
    this.tooltip.hidden = false;
    const maxX = this.element.clientWidth - this.tooltip.offsetWidth - 4;
    this.tooltip.style.left = `${Math.max(4, Math.min(px + 12, maxX))}px`;
    this.tooltip.style.top = `${py + 14}px`;
  }

  private listen(): void {
    const cv = this.canvas;
    const local = (e: MouseEvent): [number, number] => {
      const r = cv.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    cv.addEventListener('mousedown', (e) => {
      if (e.button !== 0) return;
      this.drag = { x: e.clientX, from: this.from, to: this.to, moved: false };
    });
    window.addEventListener('mousemove', (e) => {
      const d = this.drag;
      if (d) {
        const dx = e.clientX - d.x;
        if (Math.abs(dx) > 3) d.moved = true;
        if (d.moved) {
          const dt = (dx * (d.to - d.from)) / (this.width - LABEL_W);
          this.setView({ from: d.from - dt, to: d.to - dt });
          this.tooltip.hidden = true;
        }
      }
    });
    window.addEventListener('mouseup', (e) => {
      const d = this.drag;
      this.drag = null;
      if (!d) return;
      if (d.moved) {
        this.cb.viewChanged({ from: this.from, to: this.to });
        return;
      }
      if (e.target !== cv) return;
      const [px, py] = local(e);
      const ref = this.hit(px, py);
      this.select(ref, false);
      this.cb.select(ref);
    });
    cv.addEventListener('mousemove', (e) => {
      if (this.drag?.moved) return;
      const [px, py] = local(e);
      const ref = this.hit(px, py);
      cv.style.cursor = ref ? 'pointer' : 'default';
      this.showTip(ref, px, py);
    });
    cv.addEventListener('mouseleave', () => {
      this.tooltip.hidden = true;
    });
    cv.addEventListener(
      'wheel',
      (e) => {
        if (e.shiftKey) return; // let the lanes scroll
        e.preventDefault();
        const [px] = local(e);
        if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
          this.pan(e.deltaX / (this.width - LABEL_W));
          return;
        }
        this.zoom(Math.exp(e.deltaY * 0.002), px > LABEL_W ? this.t(px) : undefined);
      },
      { passive: false },
    );
    cv.addEventListener('focus', () => this.invalidate());
    cv.addEventListener('blur', () => this.invalidate());
    cv.addEventListener('keydown', (e) => this.key(e));
  }

  private key(e: KeyboardEvent): void {
    let handled = true;
    switch (e.key) {
      case 'ArrowLeft':
      case 'ArrowRight': {
        const dir = e.key === 'ArrowLeft' ? -1 : 1;
        if (e.shiftKey) this.stepTask(dir);
        else this.pan(dir * 0.1);
        break;
      }
      case 'ArrowUp':
      case 'ArrowDown':
        this.stepLane(e.key === 'ArrowUp' ? -1 : 1);
        break;
      case '+':
      case '=':
        this.zoom(1 / 1.5);
        break;
      case '-':
      case '_':
        this.zoom(1.5);
        break;
      case 'f':
      case 'F':
      case 'Home':
        this.fit();
        break;
      case 'Enter':
      case ' ':
        if (this.cursor) {
          this.select(this.cursor, true);
          this.cb.select(this.cursor);
        }
        break;
      case 'Escape':
        this.select(null, false);
        this.cb.select(null);
        break;
      default:
        handled = false;
    }
    if (handled) {
      e.preventDefault();
      this.invalidate();
    }
  }

  private laneRows(): number[] {
    this.layout();
    return this.rows.flatMap((r, i) => (r.kind === 'lane' ? [i] : []));
  }

  private stepLane(dir: number): void {
    const lanes = this.laneRows();
    if (lanes.length === 0) return;
    let k = lanes.indexOf(this.cursorLane);
    k = k < 0 ? 0 : Math.min(Math.max(k + dir, 0), lanes.length - 1);
    this.cursorLane = lanes[k]!;
    const row = this.rows[this.cursorLane]!;
    // Keep the cursor near the same time: the task nearest the view's middle in the new lane.
    this.cursor = this.nearest(row, this.cursor ? this.barTimes(this.cursor)?.start : undefined);
    this.announce();
  }

  private nearest(row: Row, t?: number): TaskRef | null {
    const lane = row.lane;
    if (!lane || lane.n === 0) return null;
    lane.sort();
    const at = t ?? (this.from + this.to) / 2;
    const pass = this.passes(row.pool);
    const b = row.pool.bars;
    let i = Math.min(lane.lowerBound(at), lane.n - 1);
    for (let k = 0; k < lane.n; k++) {
      for (const j of [i - k, i + k]) {
        if (j < 0 || j >= lane.n) continue;
        const r = lane.rows[j]!;
        if (!pass || pass(r)) return { pool: b.id, task: b.task[r]! };
      }
      if (i - k < 0 && i + k >= lane.n) break;
    }
    i = 0;
    return null;
  }

  private stepTask(dir: number): void {
    const lanes = this.laneRows();
    if (lanes.length === 0) return;
    if (!lanes.includes(this.cursorLane)) this.cursorLane = lanes[0]!;
    const row = this.rows[this.cursorLane]!;
    const lane = row.lane;
    if (!lane || lane.n === 0) return;
    lane.sort();
    const b = row.pool.bars;
    const pass = this.passes(row.pool);
    let idx = -1;
    if (this.cursor && this.cursor.pool === b.id) {
      const r = b.rowOfTask(this.cursor.task);
      if (r >= 0 && b.worker[r] === row.worker) {
        const at = lane.lowerBound(b.start[r]!);
        for (let j = at; j < lane.n; j++)
          if (lane.rows[j] === r) {
            idx = j;
            break;
          }
      }
    }
    if (idx < 0) {
      const n = this.nearest(row);
      if (n) this.cursor = n;
    } else {
      for (let j = idx + dir; j >= 0 && j < lane.n; j += dir) {
        const r = lane.rows[j]!;
        if (!pass || pass(r)) {
          this.cursor = { pool: b.id, task: b.task[r]! };
          break;
        }
      }
    }
    if (this.cursor) {
      const bar = this.barTimes(this.cursor);
      if (bar && (bar.end < this.from || bar.start > this.to)) this.reveal(this.cursor);
    }
    this.announce();
  }

  private announce(): void {
    this.status.textContent = this.cursor
      ? this.cb.describe(this.cursor.pool, this.cursor.task)
      : 'No task in this lane';
    this.invalidate();
  }

  describeCursor(): TaskRef | null {
    return this.cursor;
  }
}

function clip(ctx: CanvasRenderingContext2D, text: string, max: number): string {
  if (ctx.measureText(text).width <= max) return text;
  let s = text;
  while (s.length > 1 && ctx.measureText(`${s}…`).width > max) s = s.slice(0, -1);
  return `${s}…`;
}

export { fmtTime };
