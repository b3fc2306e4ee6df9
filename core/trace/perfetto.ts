/**
 * Protocol v1 events to the Chrome/Perfetto Trace Event Format (its JSON Object Format:
 * `{"traceEvents": [...], "displayTimeUnit": "ms", "metadata": {...}}`), for ui.perfetto.dev and
 * chrome://tracing.
 *
 * Streaming: `add()` takes one event at a time and the output is handed to a sink in chunks as it
 * is made, so a trace of millions of events converts in memory bounded by what is open at once
 * (tasks submitted and not ended, live workers) plus a small window that puts events arriving
 * slightly out of order (several processes writing one trace) back in time order.
 *
 * The layout:
 * - pid 1 is the program: a "run" thread (run.start/run.end as a slice, events.dropped as global
 *   instants) and one thread per `Process` (its life as a slice, its exit as an instant);
 * - pid 2, 3, ... is one pool each, named "pool <id> (<backend>, <size> workers) <module>":
 *   - tid N is worker N: one complete slice per task it ran (name = the function, cat = the
 *     outcome, args = task id, argument preview, result preview or error), an instant for each
 *     failure, and one for its exit (exit code, signal, reason);
 *   - tid <owner pid> is the pool's owner, where the pool itself lives: created/closed/terminated,
 *     callbacks that threw, `get()` timeouts, failures of tasks no worker ran, and the "tasks"
 *     counter (queued and running).
 * Times are microseconds from the first event. Tasks that never started (rejected while queued)
 * have no slice but are counted in the summary and the output's metadata.
 */
import { once } from 'node:events';
import { basename } from 'node:path';
import type { ErrorInfo, EventOf, TraceEvent } from './protocol';
import { expandTasks } from './task-batch';

/** One event of the Trace Event Format, as this converter writes them. */
export interface TraceFormatEvent {
  name: string;
  ph: 'X' | 'i' | 'C' | 'M';
  pid: number;
  tid: number;
  /** Microseconds from the first event. */
  ts: number;
  dur?: number;
  cat?: string;
  /** Scope of an instant: global, process or thread. */
  s?: 'g' | 'p' | 't';
  args?: Record<string, unknown>;
}

/** Receives the output, in order, a chunk at a time; the chunks joined are one JSON document. */
export type PerfettoSink = (chunk: string) => void;

export interface PerfettoOptions {
  /**
   * Events are put back in time order within this much trace time (ms): an event is converted
   * once one later than it by this much has been seen. 0 converts in arrival order. Default 1000.
   */
  reorderWindowMs?: number;
  /** At most this many events wait in that window; past it the earliest is converted. Default 4096. */
  reorderMaxEvents?: number;
  /** Characters collected before the sink is called. Default 65536. */
  chunkSize?: number;
}

/** What a conversion saw and wrote; also written into the output's `metadata.poolscope`. */
export interface PerfettoSummary {
  /** Protocol events taken. */
  events: number;
  /** Values given to `add()` that are not protocol events (unknown type, missing fields). */
  ignored: number;
  /** `output` events: not exported. */
  outputEvents: number;
  /** Events that arrived after later ones had been converted (out of order beyond the window). */
  late: number;
  /** Trace Event Format events written. */
  traceEvents: number;
  runs: string[];
  pools: number;
  tasks: {
    submitted: number;
    succeeded: number;
    failed: number;
    /** Ended without ever running (terminated while queued, unsendable), or still queued at the end. */
    neverStarted: number;
    /** Running when the trace ended: closed at the last event's time, `cat: "unfinished"`. */
    unfinished: number;
  };
  workerExits: number;
  /** Events the producers dropped, by their own `events.dropped` count. */
  droppedEvents: number;
  /** Epoch milliseconds of ts 0 (the first event); null for an empty trace. */
  originMs: number | null;
}

/** The state a converter holds, for tests and diagnostics: none of it grows with the trace. */
export interface PerfettoState {
  /** Tasks submitted or started and not ended, over all pools. */
  openTasks: number;
  /** Workers started and not exited. */
  workers: number;
  pools: number;
  /** Events waiting in the reorder window. */
  pending: number;
  /** `Process`es and runs started and not ended. */
  processes: number;
  runs: number;
  /** Keys of recently ended tasks and exited workers (a bounded ring). */
  recent: number;
}

const PROGRAM_PID = 1;
const RUN_TID = 1;
const RECENT_KEYS = 8192;
const MAX_RUNS_LISTED = 100;
const MAX_INTERNED = 10_000;

interface OpenTask {
  fn: string | undefined;
  kind: string | undefined;
  args: string | undefined;
  items: number | undefined;
  /** When it started on a worker; undefined while queued. */
  startTs: number | undefined;
  worker: number | undefined;
}

interface WorkerTrack {
  /** End (µs) of its last slice: slices on one track never overlap. */
  lastEndUs: number;
}

interface PoolTrack {
  id: string;
  pid: number;
  ownerTid: number;
  tasks: Map<number, OpenTask>;
  workers: Map<number, WorkerTrack>;
  queued: number;
  running: number;
}

interface OpenProcess {
  tid: number;
  ts: number;
  name: string;
  target: string;
  backend: string;
}

interface OpenRun {
  ts: number;
  argv: string[];
  cwd: string;
  runtime: string;
}

interface Pending {
  event: TraceEvent;
  seq: number;
}

type TaskEnd = EventOf<'task.succeeded'> | EventOf<'task.failed'>;

/** Insertion-ordered set that forgets its oldest keys past a capacity. */
class RecentKeys {
  private readonly keys = new Set<string>();
  constructor(private readonly capacity: number) {}
  add(key: string): void {
    this.keys.delete(key);
    this.keys.add(key);
    if (this.keys.size > this.capacity) this.keys.delete(this.keys.values().next().value!);
  }
  has(key: string): boolean {
    return this.keys.has(key);
  }
  get size(): number {
    return this.keys.size;
  }
}

const POOL_TYPES = new Set<string>([
  'pool.created',
  'pool.closed',
  'pool.terminated',
  'worker.started',
  'worker.exited',
  'task.submitted',
  'task.started',
  'task.succeeded',
  'task.failed',
  'callback.invoked',
  'result.timeout',
]);

const KNOWN_TYPES = new Set<string>([
  ...POOL_TYPES,
  'run.start',
  'run.end',
  'process.started',
  'process.exited',
  'output',
  'events.dropped',
]);

const positiveInt = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1;

/** Enough of the shape to convert without throwing; full validation is the schema's job. */
function isEvent(value: unknown): value is TraceEvent {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  // A type this version does not know is skipped (and counted), not guessed at.
  if ((e.v !== 1 && e.v !== 2) || typeof e.type !== 'string' || !KNOWN_TYPES.has(e.type))
    return false;
  if (typeof e.ts !== 'number') return false;
  if (!Number.isFinite(e.ts) || typeof e.run !== 'string' || !Number.isInteger(e.pid)) return false;
  if (POOL_TYPES.has(e.type)) {
    if (typeof e.pool !== 'string') return false;
    if (e.type.startsWith('worker.') && !positiveInt(e.worker)) return false;
    if (
      (e.type.startsWith('task.') ||
        e.type === 'callback.invoked' ||
        e.type === 'result.timeout') &&
      !positiveInt(e.task)
    )
      return false;
    if (e.type === 'task.failed' || e.type === 'callback.invoked') {
      if (e.error !== undefined && (typeof e.error !== 'object' || e.error === null)) return false;
      if (e.type === 'task.failed' && e.error === undefined) return false;
    }
  }
  if (e.type === 'process.started' || e.type === 'process.exited') {
    if (typeof e.name !== 'string') return false;
  }
  return true;
}

/** "12345:1" → 12345: the process that owns the pool. */
function ownerPid(pool: string, fallback: number): number {
  const pid = Number(pool.slice(0, pool.indexOf(':')));
  return Number.isInteger(pid) && pid > 0 ? pid : fallback > 0 ? fallback : 1;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function errorArgs(error: ErrorInfo): Record<string, unknown> {
  const args: Record<string, unknown> = { name: error.name, message: error.message };
  if (error.code !== undefined) args.code = error.code;
  const where = error.frames?.[0]?.raw;
  if (where) args.where = where;
  return args;
}

function exitDescription(exitCode: number | null, signal: string | null): string {
  return signal ? signal : exitCode === null ? 'no exit code' : `code ${exitCode}`;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * Converts a stream of protocol events to one Trace Event Format JSON document. Call `add()` for
 * each event (any order within the reorder window), then `finish()` once.
 */
export class PerfettoConverter {
  private readonly windowMs: number;
  private readonly maxPending: number;
  private readonly chunkSize: number;
  private buffer = '{"traceEvents":[\n';
  private written = 0;
  private done = false;

  private readonly heap: Pending[] = [];
  private seq = 0;
  private maxSeenTs = -Infinity;
  private origin: number | undefined;
  private lastTs = -Infinity;

  private readonly pools = new Map<string, PoolTrack>();
  private nextPid = PROGRAM_PID + 1;
  private programNamed = false;
  private runThreadNamed = false;
  private nextProgramTid = RUN_TID + 1;
  private readonly processes = new Map<string, OpenProcess>();
  private readonly openRuns = new Map<string, OpenRun>();
  private readonly recent = new RecentKeys(RECENT_KEYS);
  private readonly interned = new Map<string, string>();
  private readonly runIds = new Set<string>();

  private readonly stats: Omit<PerfettoSummary, 'traceEvents' | 'runs' | 'pools' | 'originMs'> = {
    events: 0,
    ignored: 0,
    outputEvents: 0,
    late: 0,
    tasks: { submitted: 0, succeeded: 0, failed: 0, neverStarted: 0, unfinished: 0 },
    workerExits: 0,
    droppedEvents: 0,
  };

  constructor(
    private readonly sink: PerfettoSink,
    options: PerfettoOptions = {},
  ) {
    this.windowMs = Math.max(0, options.reorderWindowMs ?? 1000);
    this.maxPending = Math.max(0, options.reorderMaxEvents ?? 4096);
    this.chunkSize = Math.max(1, options.chunkSize ?? 65_536);
  }

  /**
   * Takes one event; a `tasks` batch as the task events it stands for. Values that are not
   * protocol events are counted and skipped.
   */
  add(event: TraceEvent): void {
    if (this.done) throw new Error('PerfettoConverter: add() after finish()');
    if ((event as { type?: unknown } | null)?.type === 'tasks' && event.v === 2) {
      let expanded: TraceEvent[];
      try {
        expanded = expandTasks(event as EventOf<'tasks'>);
      } catch {
        this.stats.ignored++;
        return;
      }
      for (const e of expanded) this.add(e);
      return;
    }
    if (!isEvent(event)) {
      this.stats.ignored++;
      return;
    }
    this.stats.events++;
    if (this.runIds.size < MAX_RUNS_LISTED) this.runIds.add(event.run);
    if (this.windowMs === 0 || this.maxPending === 0) {
      this.convert(event);
      return;
    }
    this.push({ event, seq: this.seq++ });
    if (event.ts > this.maxSeenTs) this.maxSeenTs = event.ts;
    const horizon = this.maxSeenTs - this.windowMs;
    while (
      this.heap.length > 0 &&
      (this.heap.length > this.maxPending || this.heap[0]!.event.ts <= horizon)
    ) {
      this.convert(this.pop().event);
    }
  }

  /**
   * Converts what is still waiting, closes tasks, processes and runs still open at the last
   * event's time, writes the end of the document, and returns the summary.
   */
  finish(): PerfettoSummary {
    if (this.done) throw new Error('PerfettoConverter: finish() called twice');
    while (this.heap.length > 0) this.convert(this.pop().event);
    const end = this.lastTs;
    for (const pool of this.pools.values()) {
      for (const [id, task] of pool.tasks) {
        if (task.startTs === undefined) {
          this.stats.tasks.neverStarted++;
          continue;
        }
        this.stats.tasks.unfinished++;
        const name = task.fn ?? `task #${id}`;
        this.taskSlice(pool, id, name, task, task.worker, task.startTs, end, 'unfinished', {});
      }
      pool.tasks.clear();
    }
    for (const proc of this.processes.values()) {
      this.emit({
        name: proc.target,
        cat: 'unfinished',
        ph: 'X',
        pid: PROGRAM_PID,
        tid: proc.tid,
        ts: this.us(proc.ts),
        dur: round3(Math.max(0, this.us(end) - this.us(proc.ts))),
        args: { name: proc.name, target: proc.target, backend: proc.backend },
      });
    }
    this.processes.clear();
    for (const [run, open] of this.openRuns) this.runSlice(run, open, end, 'unfinished', {});
    this.openRuns.clear();
    const summary = this.summary();
    this.done = true;
    this.buffer += `\n],"displayTimeUnit":"ms","metadata":${JSON.stringify({
      source: 'poolscope',
      protocol: 1,
      runs: summary.runs,
      originEpochMs: summary.originMs,
      poolscope: summary,
    })}}\n`;
    this.flush();
    return summary;
  }

  /** Sizes of what the converter holds now. */
  state(): PerfettoState {
    let openTasks = 0;
    let workers = 0;
    for (const pool of this.pools.values()) {
      openTasks += pool.tasks.size;
      workers += pool.workers.size;
    }
    return {
      openTasks,
      workers,
      pools: this.pools.size,
      pending: this.heap.length,
      processes: this.processes.size,
      runs: this.openRuns.size,
      recent: this.recent.size,
    };
  }

  private summary(): PerfettoSummary {
    return {
      ...this.stats,
      tasks: { ...this.stats.tasks },
      traceEvents: this.written,
      runs: [...this.runIds],
      pools: this.pools.size,
      originMs: this.origin ?? null,
    };
  }

  // ---- Reorder window: a binary min-heap on (ts, arrival)

  private less(a: Pending, b: Pending): boolean {
    return a.event.ts < b.event.ts || (a.event.ts === b.event.ts && a.seq < b.seq);
  }

  private push(item: Pending): void {
    const heap = this.heap;
    let i = heap.push(item) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): Pending {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let min = i;
        if (l < heap.length && this.less(heap[l]!, heap[min]!)) min = l;
        if (r < heap.length && this.less(heap[r]!, heap[min]!)) min = r;
        if (min === i) break;
        [heap[i], heap[min]] = [heap[min]!, heap[i]!];
        i = min;
      }
    }
    return top;
  }

  // ---- Output

  /** Epoch ms to µs from the first event, never negative. */
  private us(ts: number): number {
    return Math.max(0, round3((ts - (this.origin ?? ts)) * 1000));
  }

  private emit(event: TraceFormatEvent): void {
    this.buffer += (this.written === 0 ? '' : ',\n') + JSON.stringify(event);
    this.written++;
    if (this.buffer.length >= this.chunkSize) this.flush();
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    const chunk = this.buffer;
    this.buffer = '';
    this.sink(chunk);
  }

  private meta(kind: 'process_name' | 'thread_name', pid: number, tid: number, name: string): void {
    this.emit({ name: kind, ph: 'M', pid, tid, ts: 0, args: { name } });
  }

  private instant(
    pid: number,
    tid: number,
    ts: number,
    name: string,
    args: Record<string, unknown>,
    scope: 'g' | 'p' | 't' = 't',
  ): void {
    this.emit({ name, ph: 'i', s: scope, pid, tid, ts: this.us(ts), args });
  }

  private intern(s: string): string {
    const known = this.interned.get(s);
    if (known !== undefined) return known;
    if (this.interned.size < MAX_INTERNED) this.interned.set(s, s);
    return s;
  }

  // ---- Tracks

  private program(): void {
    if (this.programNamed) return;
    this.programNamed = true;
    this.meta('process_name', PROGRAM_PID, RUN_TID, 'program');
  }

  private runThread(): void {
    this.program();
    if (this.runThreadNamed) return;
    this.runThreadNamed = true;
    this.meta('thread_name', PROGRAM_PID, RUN_TID, 'run');
  }

  private pool(event: { pool: string; pid: number }, named = true): PoolTrack {
    let pool = this.pools.get(event.pool);
    if (pool) return pool;
    pool = {
      id: event.pool,
      pid: this.nextPid++,
      ownerTid: ownerPid(event.pool, event.pid),
      tasks: new Map(),
      workers: new Map(),
      queued: 0,
      running: 0,
    };
    this.pools.set(event.pool, pool);
    if (named) this.meta('process_name', pool.pid, pool.ownerTid, `pool ${pool.id}`);
    this.meta('thread_name', pool.pid, pool.ownerTid, `pool (pid ${pool.ownerTid})`);
    return pool;
  }

  /** The worker's track, named "worker N" if worker.started has not named it (yet). */
  private worker(pool: PoolTrack, worker: number): WorkerTrack {
    let track = pool.workers.get(worker);
    if (track) return track;
    track = { lastEndUs: 0 };
    // A late event for an exited worker: its track is named already; keep no state for it.
    if (this.recent.has(`${pool.id}/${worker}`)) return track;
    pool.workers.set(worker, track);
    this.meta('thread_name', pool.pid, worker, `worker ${worker}`);
    return track;
  }

  private counter(pool: PoolTrack, ts: number): void {
    this.emit({
      name: 'tasks',
      ph: 'C',
      pid: pool.pid,
      tid: pool.ownerTid,
      ts: this.us(ts),
      args: { queued: pool.queued, running: pool.running },
    });
  }

  // ---- Conversion

  private convert(event: TraceEvent): void {
    if (this.origin === undefined) this.origin = event.ts;
    if (event.ts < this.lastTs) this.stats.late++;
    else this.lastTs = event.ts;
    switch (event.type) {
      case 'run.start':
        return this.runStart(event);
      case 'run.end':
        return this.runEnd(event);
      case 'pool.created':
        return this.poolCreated(event);
      case 'pool.closed':
      case 'pool.terminated': {
        const pool = this.pool(event);
        this.instant(pool.pid, pool.ownerTid, event.ts, event.type.replace('.', ' '), {
          pool: pool.id,
        });
        return;
      }
      case 'worker.started':
        return this.workerStarted(event);
      case 'worker.exited':
        return this.workerExited(event);
      case 'task.submitted':
        return this.taskSubmitted(event);
      case 'task.started':
        return this.taskStarted(event);
      case 'task.succeeded':
      case 'task.failed':
        return this.taskEnded(event);
      case 'callback.invoked': {
        if (!event.error) return;
        const pool = this.pool(event);
        this.instant(
          pool.pid,
          pool.ownerTid,
          event.ts,
          `${event.which} threw: ${event.error.name}`,
          { pool: pool.id, task: event.task, which: event.which, ...errorArgs(event.error) },
        );
        return;
      }
      case 'result.timeout': {
        const pool = this.pool(event);
        this.instant(pool.pid, pool.ownerTid, event.ts, 'get() timed out', {
          pool: pool.id,
          task: event.task,
          timeoutMs: event.timeoutMs,
        });
        return;
      }
      case 'process.started':
        return this.processStarted(event);
      case 'process.exited':
        return this.processExited(event);
      case 'output':
        this.stats.outputEvents++;
        return;
      case 'events.dropped':
        this.stats.droppedEvents += event.count;
        this.runThread();
        this.instant(
          PROGRAM_PID,
          RUN_TID,
          event.ts,
          `${plural(event.count, 'event')} dropped`,
          { count: event.count, types: event.types, pid: event.pid },
          'g',
        );
        return;
    }
  }

  private runStart(event: EventOf<'run.start'>): void {
    this.program();
    const argv = Array.isArray(event.argv) ? event.argv : [];
    const command = argv
      .slice(0, 8)
      .map((a, i) => (i < 2 ? basename(String(a)) : String(a)))
      .join(' ')
      .replace(/\s+/g, ' ');
    const shown = command.length > 80 ? `${command.slice(0, 80)}…` : command;
    this.meta('process_name', PROGRAM_PID, RUN_TID, `program ${shown} (run ${event.run})`);
    this.openRuns.set(event.run, {
      ts: event.ts,
      argv,
      cwd: event.cwd,
      runtime: event.runtime,
    });
  }

  private runEnd(event: EventOf<'run.end'>): void {
    const open = this.openRuns.get(event.run);
    this.openRuns.delete(event.run);
    const failed = event.exitCode !== 0 || event.signal !== null;
    this.runSlice(
      event.run,
      open ?? {
        ts: event.ts - (Number.isFinite(event.durationMs) ? event.durationMs : 0),
        argv: [],
        cwd: '',
        runtime: '',
      },
      event.ts,
      failed ? 'failed' : 'succeeded',
      { exitCode: event.exitCode, signal: event.signal, durationMs: event.durationMs },
    );
  }

  private runSlice(
    run: string,
    open: OpenRun,
    end: number,
    outcome: string,
    extra: Record<string, unknown>,
  ): void {
    this.runThread();
    const start = this.us(open.ts);
    this.emit({
      name: 'run',
      cat: outcome,
      ph: 'X',
      pid: PROGRAM_PID,
      tid: RUN_TID,
      ts: start,
      dur: round3(Math.max(0, this.us(end) - start)),
      args: { run, argv: open.argv, cwd: open.cwd, runtime: open.runtime, ...extra },
    });
  }

  private poolCreated(event: EventOf<'pool.created'>): void {
    const pool = this.pool(event, false);
    const module = typeof event.module === 'string' ? basename(event.module) : '';
    this.meta(
      'process_name',
      pool.pid,
      pool.ownerTid,
      `pool ${pool.id} (${event.backend}, ${plural(event.size, 'worker')}) ${module}`.trim(),
    );
    this.instant(pool.pid, pool.ownerTid, event.ts, 'pool created', {
      pool: pool.id,
      backend: event.backend,
      size: event.size,
      module: event.module,
      options: event.options,
    });
  }

  private workerStarted(event: EventOf<'worker.started'>): void {
    const pool = this.pool(event);
    if (!pool.workers.has(event.worker)) pool.workers.set(event.worker, { lastEndUs: 0 });
    const where =
      event.workerPid !== undefined
        ? ` (pid ${event.workerPid})`
        : event.workerTid !== undefined
          ? ` (thread ${event.workerTid})`
          : '';
    this.meta('thread_name', pool.pid, event.worker, `worker ${event.worker}${where}`);
  }

  private workerExited(event: EventOf<'worker.exited'>): void {
    const pool = this.pool(event);
    this.worker(pool, event.worker);
    this.stats.workerExits++;
    const args: Record<string, unknown> = {
      pool: pool.id,
      worker: event.worker,
      exitCode: event.exitCode,
      signal: event.signal,
      reason: event.reason,
      lostTasks: event.lostTasks,
    };
    if (event.stderrTail !== undefined) args.stderrTail = event.stderrTail;
    this.instant(
      pool.pid,
      event.worker,
      event.ts,
      `worker exited (${event.reason}, ${exitDescription(event.exitCode, event.signal)})`,
      args,
    );
    pool.workers.delete(event.worker);
    this.recent.add(`${pool.id}/${event.worker}`);
  }

  private taskSubmitted(event: EventOf<'task.submitted'>): void {
    const pool = this.pool(event);
    if (this.recent.has(`${pool.id}#${event.task}`)) return;
    this.stats.tasks.submitted++;
    const known = pool.tasks.get(event.task);
    const fn = typeof event.fn === 'string' ? this.intern(event.fn) : undefined;
    if (known) {
      // Its start arrived first (out of order): fill in what only the submission says.
      known.fn = fn;
      known.kind = event.kind;
      known.args = event.args;
      known.items = event.items;
      return;
    }
    pool.tasks.set(event.task, {
      fn,
      kind: event.kind,
      args: event.args,
      items: event.items,
      startTs: undefined,
      worker: undefined,
    });
    pool.queued++;
    this.counter(pool, event.ts);
  }

  private taskStarted(event: EventOf<'task.started'>): void {
    const pool = this.pool(event);
    if (this.recent.has(`${pool.id}#${event.task}`)) return;
    if (positiveInt(event.worker)) this.worker(pool, event.worker);
    let task = pool.tasks.get(event.task);
    if (task?.startTs !== undefined) return;
    if (task) {
      pool.queued = Math.max(0, pool.queued - 1);
    } else {
      // Its submission was dropped by the producer, or arrives later.
      task = {
        fn: undefined,
        kind: undefined,
        args: undefined,
        items: undefined,
        startTs: undefined,
        worker: undefined,
      };
      pool.tasks.set(event.task, task);
    }
    task.startTs = event.ts;
    task.worker = positiveInt(event.worker) ? event.worker : undefined;
    pool.running++;
    this.counter(pool, event.ts);
  }

  private taskEnded(event: TaskEnd): void {
    const pool = this.pool(event);
    const key = `${pool.id}#${event.task}`;
    if (this.recent.has(key)) return;
    this.recent.add(key);
    const task = pool.tasks.get(event.task);
    pool.tasks.delete(event.task);
    if (task) {
      if (task.startTs === undefined) pool.queued = Math.max(0, pool.queued - 1);
      else pool.running = Math.max(0, pool.running - 1);
      this.counter(pool, event.ts);
    }
    const failed = event.type === 'task.failed';
    if (failed) this.stats.tasks.failed++;
    else this.stats.tasks.succeeded++;

    // task.succeeded says worker 0 when the pool did not know it.
    const worker = positiveInt(event.worker) ? event.worker : task?.worker;
    const durationMs =
      typeof event.durationMs === 'number' && Number.isFinite(event.durationMs)
        ? event.durationMs
        : undefined;
    const start = task?.startTs ?? (durationMs !== undefined ? event.ts - durationMs : undefined);
    const ran = start !== undefined;
    // End events repeat the function's name (so a dropped submission loses nothing).
    const fn = task?.fn ?? (typeof event.fn === 'string' ? event.fn : undefined);
    const name = fn ?? `task #${event.task}`;

    if (ran) {
      const extra: Record<string, unknown> = {};
      if (durationMs !== undefined) extra.workerMs = durationMs;
      if (event.type === 'task.succeeded') {
        extra.result = event.result;
        if (typeof event.queuedMs === 'number') extra.queuedMs = event.queuedMs;
      } else {
        extra.error = errorArgs(event.error);
      }
      this.taskSlice(
        pool,
        event.task,
        name,
        task,
        worker,
        start,
        event.ts,
        event.type.slice(5),
        extra,
      );
    } else {
      this.stats.tasks.neverStarted++;
    }

    if (event.type === 'task.failed') {
      const onWorker = worker !== undefined;
      if (onWorker) this.worker(pool, worker);
      this.instant(
        pool.pid,
        onWorker ? worker : pool.ownerTid,
        event.ts,
        `${name} failed: ${event.error.name}`,
        {
          pool: pool.id,
          task: event.task,
          ...(ran ? {} : { neverStarted: true }),
          ...errorArgs(event.error),
        },
      );
    }
  }

  private taskSlice(
    pool: PoolTrack,
    id: number,
    name: string,
    task: OpenTask | undefined,
    worker: number | undefined,
    startTs: number,
    endTs: number,
    outcome: string,
    extra: Record<string, unknown>,
  ): void {
    let tid = pool.ownerTid;
    let startUs = this.us(startTs);
    let endUs = this.us(endTs);
    if (worker !== undefined) {
      tid = worker;
      const track = this.worker(pool, worker);
      // One worker runs one task at a time: keep its slices from overlapping even when the
      // producer's start and end times (taken in another process than the worker) say otherwise.
      startUs = Math.max(startUs, track.lastEndUs);
      endUs = Math.max(endUs, startUs);
      // The end as a reader computes it (ts + dur, in floating point), so the next slice cannot
      // start a rounding error before it.
      track.lastEndUs = startUs + round3(endUs - startUs);
    }
    const args: Record<string, unknown> = { task: id, pool: pool.id };
    if (task?.kind !== undefined && task.kind !== 'apply') args.kind = task.kind;
    if (task?.items !== undefined && task.items !== 1) args.items = task.items;
    if (task?.args !== undefined) args.args = task.args;
    if (worker === undefined) args.worker = 'unknown';
    this.emit({
      name,
      cat: outcome,
      ph: 'X',
      pid: pool.pid,
      tid,
      ts: startUs,
      dur: round3(endUs - startUs),
      args: { ...args, ...extra },
    });
  }

  private processStarted(event: EventOf<'process.started'>): void {
    this.program();
    const tid = this.nextProgramTid++;
    const where =
      event.processPid !== undefined
        ? ` (pid ${event.processPid})`
        : event.processTid !== undefined
          ? ` (thread ${event.processTid})`
          : '';
    this.meta('thread_name', PROGRAM_PID, tid, `process ${event.name}${where}`);
    this.processes.set(`${event.pid}/${event.name}`, {
      tid,
      ts: event.ts,
      name: event.name,
      target: typeof event.target === 'string' ? event.target : event.name,
      backend: event.backend,
    });
  }

  private processExited(event: EventOf<'process.exited'>): void {
    const key = `${event.pid}/${event.name}`;
    const open = this.processes.get(key);
    this.processes.delete(key);
    let tid: number;
    const exit: Record<string, unknown> = {
      name: event.name,
      exitCode: event.exitCode,
      signal: event.signal,
    };
    if (event.error) exit.error = errorArgs(event.error);
    if (open) {
      tid = open.tid;
      const start = this.us(open.ts);
      this.emit({
        name: open.target,
        cat: event.exitCode === 0 && event.signal === null ? 'succeeded' : 'failed',
        ph: 'X',
        pid: PROGRAM_PID,
        tid,
        ts: start,
        dur: round3(Math.max(0, this.us(event.ts) - start)),
        args: { target: open.target, backend: open.backend, ...exit },
      });
    } else {
      this.program();
      tid = this.nextProgramTid++;
      this.meta('thread_name', PROGRAM_PID, tid, `process ${event.name}`);
    }
    this.instant(
      PROGRAM_PID,
      tid,
      event.ts,
      `process exited (${exitDescription(event.exitCode, event.signal)})`,
      exit,
    );
  }
}

/** What `exportPerfetto` returns: the summary, and how many lines were not JSON. */
export interface PerfettoExportSummary extends PerfettoSummary {
  unreadableLines: number;
}

/**
 * Converts JSONL trace lines (e.g. `readline.createInterface({ input: createReadStream(path) })`)
 * to a Trace Event Format document written to `output`, waiting for it to drain as it goes, so
 * memory stays bounded whatever the trace's size. Does not end `output`.
 */
export async function exportPerfetto(
  lines: AsyncIterable<string> | Iterable<string>,
  output: NodeJS.WritableStream,
  options: PerfettoOptions = {},
): Promise<PerfettoExportSummary> {
  let drained: Promise<unknown> | undefined;
  const converter = new PerfettoConverter((chunk) => {
    if (!output.write(chunk) && !drained) {
      drained = once(output, 'drain').finally(() => (drained = undefined));
    }
  }, options);
  let unreadableLines = 0;
  for await (const line of lines) {
    const text = line.trim();
    if (text === '') continue;
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      unreadableLines++;
      continue;
    }
    converter.add(event as TraceEvent);
    if (drained) await drained;
  }
  const summary = converter.finish();
  if (drained) await drained;
  return { ...summary, unreadableLines };
}
