/**
 * From the Store's model of one run to the panel's messages: a whole snapshot, then deltas that
 * carry only what changed since the last message (bars by row version, new errors, samples and
 * marks by position). Pure: no `vscode`, so tests build panel messages from recorded traces.
 */
import type { BarTable } from '../../core/trace/bars';
import type { PoolModel, RunModel } from '../../core/trace/store';
import type {
  BarColumns,
  BarState,
  PanelDelta,
  PanelPool,
  PanelProcess,
  PanelRun,
  PanelShared,
  PanelWorker,
} from '../../webview/protocol';

/** Errors sent in a snapshot (the newest). */
const ERRORS_SENT = 500;

export interface RunInfo {
  label: string;
  state: PanelRun['state'];
}

function columns(bars: BarTable | undefined, rows?: number[]): BarColumns {
  const out: BarColumns = { task: [], worker: [], start: [], end: [], state: [], fn: [] };
  if (!bars) return out;
  const push = (r: number): void => {
    out.task.push(bars.task[r]!);
    out.worker.push(bars.worker[r]!);
    const start = bars.start[r]!;
    const end = bars.end[r]!;
    out.start.push(Number.isNaN(start) ? null : start);
    out.end.push(Number.isNaN(end) ? null : end);
    out.state.push(bars.state[r]! as BarState);
    out.fn.push(bars.fn[r]!);
  };
  if (rows) for (const r of rows) push(r);
  else for (let r = 0; r < bars.length; r++) push(r);
  return out;
}

function workers(pool: PoolModel): PanelWorker[] {
  return [...pool.workers.values()].map((w) => ({
    id: w.id,
    ...(w.pid !== undefined ? { pid: w.pid } : {}),
    ...(w.tid !== undefined ? { tid: w.tid } : {}),
    startedAt: w.startedAt,
    ...(w.exitedAt !== undefined ? { exitedAt: w.exitedAt } : {}),
    exitCode: w.exitCode,
    signal: w.signal,
    ...(w.reason !== undefined ? { reason: w.reason } : {}),
    tasksDone: w.tasksDone,
    tasksFailed: w.tasksFailed,
  }));
}

function poolHead(pool: PoolModel): Omit<PanelPool, 'bars' | 'fns' | 'workers' | 'barsDropped'> {
  return {
    id: pool.id,
    backend: pool.backend,
    size: pool.size,
    state: pool.state,
    createdAt: pool.createdAt,
    counts: { ...pool.counts },
  };
}

function processes(run: RunModel): PanelProcess[] {
  return [...run.processes.values()].map((p) => ({
    name: p.name,
    target: p.target,
    backend: p.backend,
    ...(p.processPid !== undefined ? { pid: p.processPid } : {}),
    ...(p.processTid !== undefined ? { tid: p.processTid } : {}),
    state: p.state,
    startedAt: p.startedAt,
    ...(p.exitedAt !== undefined ? { exitedAt: p.exitedAt } : {}),
    exitCode: p.exitCode,
    signal: p.signal,
    ...(p.error ? { error: p.error } : {}),
  }));
}

function sharedHead(run: RunModel): Omit<PanelShared, 'samples'>[] {
  return [...run.shared.values()].map((s) => ({
    id: s.id,
    kind: s.kind,
    ctype: s.ctype,
    length: s.length,
    lock: s.lock,
    ...(s.creator ? { creator: s.creator } : {}),
    contention: s.contention,
  }));
}

function ended(run: RunModel): Pick<PanelRun, 'endedAt' | 'exitCode' | 'signal'> {
  return {
    ...(run.endedAt !== undefined ? { endedAt: run.endedAt } : {}),
    ...(run.exitCode !== undefined ? { exitCode: run.exitCode } : {}),
    ...(run.signal !== undefined ? { signal: run.signal } : {}),
  };
}

/**
 * Builds the snapshot and then the deltas of one run for one panel. Call `snapshot()` first
 * (and again whenever the panel reloads or bars were dropped), then `delta()` at each refresh.
 */
export class RunFeed {
  private sentVersion = 0;
  private sentErrors = 0;
  private sentMarks = 0;
  private readonly sentFns = new Map<string, number>();
  private readonly sentDropped = new Map<string, number>();
  private readonly sentSamples = new Map<string, number>();

  constructor(
    readonly run: RunModel,
    private readonly info: () => RunInfo,
    private readonly version: () => number,
  ) {}

  snapshot(): PanelRun {
    const run = this.run;
    this.sentVersion = this.version();
    this.sentErrors = run.errorCount;
    this.sentMarks = run.marks.length;
    const pools = [...run.pools.values()].map((pool): PanelPool => {
      this.sentFns.set(pool.id, pool.bars?.fns.length ?? 0);
      this.sentDropped.set(pool.id, pool.bars?.dropped ?? 0);
      return {
        ...poolHead(pool),
        workers: workers(pool),
        fns: [...(pool.bars?.fns ?? [])],
        bars: columns(pool.bars),
        barsDropped: pool.bars?.dropped ?? 0,
      };
    });
    const shared = [...run.shared.values()].map((s) => {
      this.sentSamples.set(s.id, s.samples[s.samples.length - 1]?.ts ?? -Infinity);
      return { ...sharedHead(run).find((h) => h.id === s.id)!, samples: [...s.samples] };
    });
    const errors = run.errors.slice(-ERRORS_SENT);
    const first = run.errorCount - errors.length;
    return {
      id: run.id,
      ...this.info(),
      startedAt: run.startedAt,
      lastTs: run.lastTs,
      ...ended(run),
      pools,
      errors: errors.map((e, i) => ({ seq: first + i, ...e })),
      errorCount: run.errorCount,
      shared,
      processes: processes(run),
      marks: [...run.marks],
      events: run.events,
      dropped: run.dropped,
    };
  }

  /** True when a delta cannot express the change (bars were dropped): send a snapshot. */
  needsSnapshot(): boolean {
    for (const pool of this.run.pools.values()) {
      if ((pool.bars?.dropped ?? 0) !== (this.sentDropped.get(pool.id) ?? 0)) return true;
    }
    return this.run.marks.length < this.sentMarks;
  }

  /** What changed since the last message, or undefined when nothing did. */
  delta(): PanelDelta | undefined {
    const now = this.version();
    if (now === this.sentVersion) return undefined;
    const since = this.sentVersion;
    const run = this.run;
    const pools = [...run.pools.values()].map((pool) => {
      const bars = pool.bars;
      const rows: number[] = [];
      if (bars) for (let r = 0; r < bars.length; r++) if (bars.version[r]! > since) rows.push(r);
      const fnsSent = this.sentFns.get(pool.id) ?? 0;
      this.sentFns.set(pool.id, bars?.fns.length ?? 0);
      return {
        ...poolHead(pool),
        barsDropped: bars?.dropped ?? 0,
        fnsAdded: bars ? bars.fns.slice(fnsSent) : [],
        bars: columns(bars, rows),
        workers: workers(pool),
      };
    });
    const newErrors = Math.min(run.errorCount - this.sentErrors, run.errors.length);
    const errorsAdded = run.errors
      .slice(run.errors.length - newErrors)
      .map((e, i) => ({ seq: run.errorCount - newErrors + i, ...e }));
    const shared = sharedHead(run).map((head) => {
      const s = run.shared.get(head.id)!;
      const sentUpTo = this.sentSamples.get(head.id) ?? -Infinity;
      const added = s.samples.filter((x) => x.ts > sentUpTo);
      if (added.length > 0) this.sentSamples.set(head.id, added[added.length - 1]!.ts);
      return { ...head, samplesAdded: added };
    });
    const marksAdded = run.marks.slice(this.sentMarks);
    this.sentVersion = now;
    this.sentErrors = run.errorCount;
    this.sentMarks = run.marks.length;
    const info = this.info();
    return {
      runId: run.id,
      lastTs: run.lastTs,
      state: info.state,
      ...ended(run),
      pools,
      errorsAdded,
      errorCount: run.errorCount,
      shared,
      processes: processes(run),
      marksAdded,
      events: run.events,
      dropped: run.dropped,
    };
  }
}
