/**
 * The panel's copy of one run, fed by a snapshot and then deltas. Bars live in typed arrays per
 * pool (one row per task, found by task id), grouped into lanes (one per worker) whose row lists
 * are kept sorted by start time so the timeline can binary-search what is visible. Marks are
 * columns too; errors and samples are bounded lists.
 */
import { grown } from '../core/trace/columns';
import type {
  BarColumns,
  PanelDelta,
  PanelError,
  PanelMark,
  PanelPool,
  PanelProcess,
  PanelRun,
  PanelShared,
  PanelWorker,
} from './protocol';

export const STATE_QUEUED = 0;
export const STATE_RUNNING = 1;
export const STATE_PASSED = 2;
export const STATE_FAILED = 3;
export const STATE_ERRORED = 4;

/** Errors kept by the panel (the newest). */
export const ERRORS_KEPT = 2000;
/** Samples kept per shared object. */
export const SAMPLES_KEPT = 1000;
/** Marks kept (the newest). */
export const MARKS_KEPT = 20_000;

export const MARK_KINDS: PanelMark['kind'][] = [
  'callback',
  'errorCallback',
  'callbackThrew',
  'getTimeout',
];

/** One worker's lane: the rows it ran, sorted by start. */
export class Lane {
  rows = new Int32Array(64);
  n = 0;
  sorted = true;
  /** Longest finished bar, for the search's lower bound. */
  maxDur = 0;
  /** Rows still running (their bars grow to `lastTs`). */
  readonly running = new Set<number>();
  constructor(
    readonly pool: PoolBars,
    readonly worker: number,
  ) {}

  add(row: number): void {
    this.rows = grown(this.rows, this.n + 1);
    const start = this.pool.start;
    if (this.n > 0 && start[this.rows[this.n - 1]!]! > start[row]!) this.sorted = false;
    this.rows[this.n++] = row;
  }

  sort(): void {
    if (this.sorted) return;
    const start = this.pool.start;
    this.rows.subarray(0, this.n).sort((a, b) => start[a]! - start[b]!);
    this.sorted = true;
  }

  /** First index in `rows` whose bar starts at or after `t`. */
  lowerBound(t: number): number {
    const start = this.pool.start;
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (start[this.rows[mid]!]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First index whose bar may reach `t` (ends at or after it). */
  firstReaching(t: number): number {
    let from = t - this.maxDur;
    for (const r of this.running) from = Math.min(from, this.pool.start[r]!);
    return this.lowerBound(from);
  }
}

/** One pool's bars, column-wise. */
export class PoolBars {
  fns: string[] = [];
  n = 0;
  task = new Int32Array(256);
  worker = new Int32Array(256);
  start = new Float64Array(256);
  end = new Float64Array(256);
  state = new Uint8Array(256);
  fn = new Uint32Array(256);
  /** Whether the row is in its worker's lane. */
  laned = new Uint8Array(256);
  private rowOf = new Int32Array(256).fill(-1);
  private base = -1;
  readonly lanes = new Map<number, Lane>();

  constructor(readonly id: string) {}

  rowOfTask(task: number): number {
    const slot = task - this.base;
    if (this.base < 0 || slot < 0 || slot >= this.rowOf.length) return -1;
    return this.rowOf[slot]!;
  }

  lane(worker: number): Lane {
    let lane = this.lanes.get(worker);
    if (!lane) {
      lane = new Lane(this, worker);
      this.lanes.set(worker, lane);
    }
    return lane;
  }

  private index(task: number, row: number): void {
    if (this.base < 0) this.base = task;
    if (task < this.base) {
      // Re-base the index (an older task arrived late): rare.
      const shift = this.base - task;
      const next = new Int32Array(this.rowOf.length + shift).fill(-1);
      next.set(this.rowOf, shift);
      this.rowOf = next;
      this.base = task;
    }
    const slot = task - this.base;
    if (slot >= this.rowOf.length) {
      let size = this.rowOf.length;
      while (size <= slot) size *= 2;
      const next = new Int32Array(size).fill(-1);
      next.set(this.rowOf);
      this.rowOf = next;
    }
    this.rowOf[slot] = row;
  }

  upsert(cols: BarColumns): void {
    const count = cols.task.length;
    for (let i = 0; i < count; i++) {
      const task = cols.task[i]!;
      let row = this.rowOfTask(task);
      if (row < 0) {
        row = this.n++;
        const size = this.n;
        this.task = grown(this.task, size);
        this.worker = grown(this.worker, size);
        this.start = grown(this.start, size);
        this.end = grown(this.end, size);
        this.state = grown(this.state, size);
        this.fn = grown(this.fn, size);
        this.laned = grown(this.laned, size);
        this.task[row] = task;
        this.laned[row] = 0;
        this.index(task, row);
      }
      const start = cols.start[i] ?? NaN;
      const end = cols.end[i] ?? NaN;
      this.worker[row] = cols.worker[i]!;
      this.start[row] = start;
      this.end[row] = end;
      this.state[row] = cols.state[i]!;
      this.fn[row] = cols.fn[i]!;
      const worker = cols.worker[i]!;
      if (!Number.isNaN(start) && worker >= 0) {
        const lane = this.lane(worker);
        if (!this.laned[row]) {
          this.laned[row] = 1;
          lane.add(row);
        }
        if (Number.isNaN(end)) lane.running.add(row);
        else {
          lane.running.delete(row);
          if (end - start > lane.maxDur) lane.maxDur = end - start;
        }
      }
    }
  }
}

export interface PoolInfo {
  id: string;
  backend: string;
  size: number;
  state: string;
  createdAt: number;
  counts: PanelPool['counts'];
  workers: Map<number, PanelWorker>;
  barsDropped: number;
  bars: PoolBars;
}

export interface SharedInfo extends Omit<PanelShared, 'samples'> {
  samples: PanelShared['samples'];
}

/** Marks, column-wise, oldest first. */
export class Marks {
  n = 0;
  ts = new Float64Array(256);
  kind = new Uint8Array(256);
  task = new Int32Array(256);
  /** Index into `pools` (-1: none). */
  pool = new Int16Array(256);
  readonly pools: string[] = [];

  add(marks: PanelMark[]): void {
    for (const m of marks) {
      if (this.n >= MARKS_KEPT) this.dropOldestHalf();
      const i = this.n++;
      if (i >= this.ts.length) {
        this.ts = grown(this.ts, i + 1);
        this.kind = grown(this.kind, i + 1);
        this.task = grown(this.task, i + 1);
        this.pool = grown(this.pool, i + 1);
      }
      this.ts[i] = m.ts;
      this.kind[i] = Math.max(0, MARK_KINDS.indexOf(m.kind));
      this.task[i] = m.task ?? -1;
      let p = -1;
      if (m.pool !== undefined) {
        p = this.pools.indexOf(m.pool);
        if (p < 0) p = this.pools.push(m.pool) - 1;
      }
      this.pool[i] = p;
    }
  }

  private dropOldestHalf(): void {
    const keep = this.n >> 1;
    const from = this.n - keep;
    this.ts.copyWithin(0, from, this.n);
    this.kind.copyWithin(0, from, this.n);
    this.task.copyWithin(0, from, this.n);
    this.pool.copyWithin(0, from, this.n);
    this.n = keep;
  }

  /** First mark at or after `t` (marks arrive nearly in time order; close enough to search). */
  lowerBound(t: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ts[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export class RunData {
  id: string;
  label: string;
  state: PanelRun['state'];
  startedAt: number;
  lastTs: number;
  endedAt?: number;
  exitCode?: number | null;
  signal?: string | null;
  pools = new Map<string, PoolInfo>();
  errors: PanelError[] = [];
  errorCount: number;
  shared = new Map<string, SharedInfo>();
  processes: PanelProcess[];
  marks = new Marks();
  events: number;
  dropped: number;
  /** Bumped on every change (views redraw when it moves). */
  version = 0;

  constructor(run: PanelRun) {
    this.id = run.id;
    this.label = run.label;
    this.state = run.state;
    this.startedAt = run.startedAt;
    this.lastTs = run.lastTs;
    this.ended(run);
    for (const p of run.pools) {
      const info = this.pool(p);
      info.bars.fns = [...p.fns];
      info.bars.upsert(p.bars);
    }
    this.errors = run.errors.slice(-ERRORS_KEPT);
    this.errorCount = run.errorCount;
    for (const s of run.shared)
      this.shared.set(s.id, { ...s, samples: s.samples.slice(-SAMPLES_KEPT) });
    this.processes = run.processes;
    this.marks.add(run.marks);
    this.events = run.events;
    this.dropped = run.dropped;
  }

  private ended(r: Pick<PanelRun, 'endedAt' | 'exitCode' | 'signal'>): void {
    if (r.endedAt !== undefined) this.endedAt = r.endedAt;
    if (r.exitCode !== undefined) this.exitCode = r.exitCode;
    if (r.signal !== undefined) this.signal = r.signal;
  }

  private pool(p: Omit<PanelPool, 'bars' | 'fns'>): PoolInfo {
    let info = this.pools.get(p.id);
    if (!info) {
      info = {
        id: p.id,
        backend: p.backend,
        size: p.size,
        state: p.state,
        createdAt: p.createdAt,
        counts: p.counts,
        workers: new Map(),
        barsDropped: p.barsDropped,
        bars: new PoolBars(p.id),
      };
      this.pools.set(p.id, info);
    }
    info.backend = p.backend;
    info.size = p.size;
    info.state = p.state;
    info.counts = p.counts;
    info.barsDropped = p.barsDropped;
    for (const w of p.workers) info.workers.set(w.id, w);
    return info;
  }

  applyDelta(d: PanelDelta): void {
    this.lastTs = Math.max(this.lastTs, d.lastTs);
    this.state = d.state;
    this.ended(d);
    for (const p of d.pools) {
      const info = this.pool(p);
      info.bars.fns.push(...p.fnsAdded);
      info.bars.upsert(p.bars);
    }
    if (d.errorsAdded.length > 0) {
      this.errors.push(...d.errorsAdded);
      if (this.errors.length > ERRORS_KEPT) this.errors.splice(0, this.errors.length - ERRORS_KEPT);
    }
    this.errorCount = d.errorCount;
    for (const s of d.shared) {
      const prev = this.shared.get(s.id);
      const { samplesAdded, ...head } = s;
      const samples = prev ? prev.samples : [];
      samples.push(...samplesAdded);
      if (samples.length > SAMPLES_KEPT) samples.splice(0, samples.length - SAMPLES_KEPT);
      this.shared.set(s.id, { ...head, samples });
    }
    this.processes = d.processes;
    this.marks.add(d.marksAdded);
    this.events = d.events;
    this.dropped = d.dropped;
    this.version++;
  }

  /** The error a task threw (the newest, from its task), if kept. */
  errorOfTask(pool: string, task: number): PanelError | undefined {
    for (let i = this.errors.length - 1; i >= 0; i--) {
      const e = this.errors[i]!;
      if (e.pool === pool && e.task === task && e.source === 'task') return e;
    }
    for (let i = this.errors.length - 1; i >= 0; i--) {
      const e = this.errors[i]!;
      if (e.pool === pool && e.task === task) return e;
    }
    return undefined;
  }

  /** Time range covered by bars (and the run). */
  extent(): { from: number; to: number } {
    let from = Infinity;
    let to = -Infinity;
    for (const p of this.pools.values()) {
      const b = p.bars;
      for (const lane of b.lanes.values()) {
        if (lane.n === 0) continue;
        lane.sort();
        from = Math.min(from, b.start[lane.rows[0]!]!);
      }
      for (const w of p.workers.values()) {
        from = Math.min(from, w.startedAt);
        if (w.exitedAt !== undefined) to = Math.max(to, w.exitedAt);
      }
    }
    to = Math.max(to, this.lastTs);
    if (!Number.isFinite(from)) from = this.startedAt;
    if (!(to > from)) to = from + 1000;
    return { from, to };
  }
}
