/**
 * The panel's messages: what the extension host sends the webview (a snapshot of one run, then
 * deltas, batched at the refresh rate) and what the webview may ask of the host. Types only;
 * the host validates every message from the webview (`parsePanelRequest`).
 *
 * Times are milliseconds since the Unix epoch (the trace's clock). Task bars travel as columns
 * (one array per field) so a run of 100,000 tasks is a few typed arrays, not 100,000 objects.
 */
import type { ErrorInfo } from '../core/trace/protocol';

export type BarState = 0 | 1 | 2 | 3 | 4;
/** Bar state codes: the Store's task states, in this order. */
export const BAR_STATES = ['queued', 'running', 'passed', 'failed', 'errored'] as const;

/** Task bars of one pool, column-wise; row i is one task. */
export interface BarColumns {
  /** Task ids. */
  task: number[];
  /** Worker id that ran it, -1 when not started. */
  worker: number[];
  /** Start time; NaN when not started. JSON turns NaN into null: read null as NaN. */
  start: (number | null)[];
  /** End time; NaN while running. */
  end: (number | null)[];
  state: BarState[];
  /** Index into `PanelPool.fns`. */
  fn: number[];
}

export interface PanelWorker {
  id: number;
  pid?: number;
  tid?: number;
  startedAt: number;
  exitedAt?: number;
  exitCode: number | null;
  signal: string | null;
  reason?: string;
  tasksDone: number;
  tasksFailed: number;
}

export interface PanelCounts {
  submitted: number;
  queued: number;
  running: number;
  passed: number;
  failed: number;
  errored: number;
}

export interface PanelPool {
  id: string;
  backend: string;
  size: number;
  state: string;
  createdAt: number;
  counts: PanelCounts;
  workers: PanelWorker[];
  /** Function names, indexed by `BarColumns.fn`. Only grows. */
  fns: string[];
  /** Bars kept (the newest `barsPerPool`); `barsDropped` older ones are counted, not drawn. */
  bars: BarColumns;
  barsDropped: number;
}

export interface PanelError {
  /** Stable within a run: the error's sequence number. */
  seq: number;
  ts: number;
  source: 'task' | 'callback' | 'errorCallback' | 'process';
  pool?: string;
  task?: number;
  worker?: number;
  fn?: string;
  process?: string;
  error: ErrorInfo;
}

export interface PanelShared {
  id: string;
  kind: string;
  ctype: string;
  length: number;
  lock: boolean;
  creator?: string;
  contention: number;
  /** Samples, oldest first: a number for a Value, an array summary `{ length, window, min, max }`. */
  samples: { ts: number; value: unknown; contention?: number }[];
}

export interface PanelProcess {
  name: string;
  target: string;
  backend: string;
  pid?: number;
  tid?: number;
  state: 'running' | 'exited';
  startedAt: number;
  exitedAt?: number;
  exitCode: number | null;
  signal: string | null;
  error?: ErrorInfo;
}

/** Callback marks on the timeline. */
export interface PanelMark {
  ts: number;
  kind: 'callback' | 'errorCallback' | 'callbackThrew' | 'getTimeout';
  pool?: string;
  task?: number;
}

export interface PanelRun {
  id: string;
  label: string;
  state: 'running' | 'stopping' | 'exited' | 'replay';
  startedAt: number;
  /** The latest event's time (the timeline's right edge while running). */
  lastTs: number;
  endedAt?: number;
  exitCode?: number | null;
  signal?: string | null;
  pools: PanelPool[];
  /** The newest errors (bounded); `errorCount` counts them all. */
  errors: PanelError[];
  errorCount: number;
  shared: PanelShared[];
  processes: PanelProcess[];
  marks: PanelMark[];
  events: number;
  dropped: number;
}

/** Changes since the last message, for one run. Upserts by id; `bars` rows upsert by task id. */
export interface PanelDelta {
  runId: string;
  lastTs: number;
  state: PanelRun['state'];
  endedAt?: number;
  exitCode?: number | null;
  signal?: string | null;
  pools: (Omit<PanelPool, 'bars' | 'fns' | 'workers'> & {
    /** Names appended to `fns` since the last message. */
    fnsAdded: string[];
    /** New or changed bars. */
    bars: BarColumns;
    workers: PanelWorker[];
  })[];
  errorsAdded: PanelError[];
  errorCount: number;
  shared: (Omit<PanelShared, 'samples'> & { samplesAdded: PanelShared['samples'] })[];
  processes: PanelProcess[];
  marksAdded: PanelMark[];
  events: number;
  dropped: number;
}

/** A task selected somewhere (panel, tree): pool id and task id. */
export interface TaskRef {
  pool: string;
  task: number;
}

export type HostMessage =
  /** Replace everything: the panel shows this run. `runs` lists what can be chosen. */
  | { type: 'snapshot'; run: PanelRun; runs: { id: string; label: string }[] }
  | { type: 'delta'; delta: PanelDelta }
  /** The tree selected a task (or cleared the selection). */
  | { type: 'select'; ref: TaskRef | null }
  /** Nothing to show yet. */
  | { type: 'empty'; runs: { id: string; label: string }[] };

export type PanelRequest =
  /** The webview is loaded and listening (send a snapshot). */
  | { type: 'ready' }
  /** Show another run. */
  | { type: 'showRun'; runId: string }
  /** The user selected a task in the panel (the tree follows). */
  | { type: 'select'; ref: TaskRef | null }
  /** Open a stack frame's file at its line. */
  | { type: 'openFrame'; file: string; line?: number; column?: number }
  | { type: 'saveTrace' }
  | { type: 'exportPerfetto' };

/** What the webview keeps with `vscode.setState` (and the serializer restores). */
export interface PanelViewState {
  runId?: string;
  selected?: TaskRef | null;
  /** Visible time window. */
  view?: { from: number; to: number };
  filter?: { pool?: string; worker?: number; fn?: string; outcome?: string; text?: string };
  tab?: string;
}

/** The host's check of a message from the webview: the request, or undefined when malformed. */
export function parsePanelRequest(raw: unknown): PanelRequest | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  const isRef = (r: unknown): r is TaskRef =>
    typeof r === 'object' &&
    r !== null &&
    typeof (r as TaskRef).pool === 'string' &&
    (r as TaskRef).pool.length < 200 &&
    Number.isSafeInteger((r as TaskRef).task);
  const optInt = (v: unknown): boolean =>
    v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0);
  switch (m.type) {
    case 'ready':
    case 'saveTrace':
    case 'exportPerfetto':
      return { type: m.type };
    case 'showRun':
      return typeof m.runId === 'string' && m.runId.length < 200
        ? { type: 'showRun', runId: m.runId }
        : undefined;
    case 'select':
      return m.ref === null || isRef(m.ref)
        ? { type: 'select', ref: m.ref === null ? null : { pool: m.ref.pool, task: m.ref.task } }
        : undefined;
    case 'openFrame':
      return typeof m.file === 'string' &&
        m.file.length < 4096 &&
        optInt(m.line) &&
        optInt(m.column)
        ? {
            type: 'openFrame',
            file: m.file,
            ...(m.line !== undefined ? { line: m.line as number } : {}),
            ...(m.column !== undefined ? { column: m.column as number } : {}),
          }
        : undefined;
    default:
      return undefined;
  }
}
