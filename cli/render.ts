/**
 * The terminal view of a run: pure functions from the Store's model to lines of text, used for
 * the live view, the plain progress lines of a non-TTY run, and the final summary.
 */
import { basename } from 'node:path';
import type { ErrorInfo } from '../core/trace/protocol';
import type { ManagerModel, PoolModel, RunModel, WorkerModel } from '../core/trace/store';

export interface Style {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
}

export const plain: Style = {
  bold: (t) => t,
  dim: (t) => t,
  red: (t) => t,
  green: (t) => t,
  yellow: (t) => t,
};

const sgr = (code: number, reset: number) => (t: string) => `\x1b[${code}m${t}\x1b[${reset}m`;
export const ansi: Style = {
  bold: sgr(1, 22),
  dim: sgr(2, 22),
  red: sgr(31, 39),
  green: sgr(32, 39),
  yellow: sgr(33, 39),
};

const number = new Intl.NumberFormat('en-US');
const fmt = (n: number): string => number.format(Math.round(n));

export function formatMs(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function ended(pool: PoolModel): number {
  return pool.counts.passed + pool.counts.failed + pool.counts.errored;
}

function bar(fraction: number, width: number): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
}

function poolTitle(pool: PoolModel, s: Style): string {
  const what = `${pool.backend} ×${pool.size}`;
  const state = pool.state === 'running' ? '' : ` ${s.dim(pool.state)}`;
  return `${s.bold(`pool ${pool.id}`)} (${what}) ${basename(pool.module)}${state}`;
}

function workerLine(w: WorkerModel, s: Style): string {
  const where = w.pid !== undefined ? `pid ${w.pid}` : w.tid !== undefined ? `thread ${w.tid}` : '';
  const counts = `${s.green(`✓${fmt(w.tasksDone)}`)}${w.tasksFailed ? ` ${s.red(`✗${fmt(w.tasksFailed)}`)}` : ''}`;
  if (w.state === 'exited') {
    const how = w.signal ? `${w.exitCode} ${w.signal}` : `${w.exitCode}`;
    const bad = w.reason !== 'normal' && w.reason !== 'recycled' && w.reason !== 'terminated';
    const text = `exited ${how} (${w.reason})`;
    return `#${w.id} ${where} ${bad ? s.red(text) : s.dim(text)} ${counts}`;
  }
  const doing = w.current !== undefined ? `running task #${w.current}` : 'idle';
  return `#${w.id} ${where} ${doing} ${counts}`;
}

export function firstFrame(error: ErrorInfo): string | undefined {
  const frame = error.frames.find((f) => f.file && !f.file.startsWith('node:'));
  if (!frame) return undefined;
  const file = frame.file!.replace(/^file:\/\//, '');
  return `at ${frame.fn ? `${frame.fn} ` : ''}(${file}:${frame.line}:${frame.column})`;
}

export function errorTitle(error: ErrorInfo): string {
  const code = error.code !== undefined ? ` [${error.code}]` : '';
  return `${error.name}: ${error.message.split('\n')[0]}${code}`;
}

/** Remembers the last sample of each pool, to show a current rate rather than an average. */
export class RateMeter {
  private samples = new Map<string, { at: number; ended: number; rate: number }>();

  rate(pool: PoolModel, at: number): number {
    const done = ended(pool);
    const last = this.samples.get(pool.id);
    if (!last) {
      this.samples.set(pool.id, { at, ended: done, rate: 0 });
      return 0;
    }
    if (at - last.at < 500) return last.rate;
    const rate = ((done - last.ended) * 1000) / (at - last.at);
    this.samples.set(pool.id, { at, ended: done, rate });
    return rate;
  }
}

function shortJson(value: unknown, max = 60): string {
  const text =
    typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Shared objects with their latest values (the most recently changed first). */
export function sharedLines(run: RunModel, s: Style, limit: number): string[] {
  if (run.shared.size === 0) return [];
  const all = [...run.shared.values()].sort((a, b) => (b.updatedAt ?? 0) - (a.updatedAt ?? 0));
  const lines = [s.bold(`shared memory (${run.shared.size}):`)];
  for (const sh of all.slice(0, limit)) {
    const what = `${sh.kind}${sh.ctype ? ` ${sh.ctype}` : ''}${sh.length > 1 ? `[${sh.length}]` : ''}`;
    const contention = sh.contention ? s.yellow(` contention ${sh.contention}`) : '';
    const where = sh.creator ? s.dim(` (${sh.creator.replace(/^file:\/\//, '')})`) : '';
    lines.push(`  ${what} = ${shortJson(sh.value)}${contention}${where}`);
  }
  if (all.length > limit) lines.push(s.dim(`  … ${all.length - limit} more`));
  return lines;
}

function managerState(m: ManagerModel, s: Style): string {
  switch (m.state) {
    case 'running':
      return `running, ${fmt(m.clients)} client${m.clients === 1 ? '' : 's'}, ${fmt(m.objects)} object${m.objects === 1 ? '' : 's'}`;
    case 'stopped':
      return s.dim('stopped');
    case 'killed':
      return s.red(`killed by ${m.signal ?? 'a signal'}`);
    case 'exited':
      return s.red(`exited ${m.exitCode}`);
  }
}

/** Each manager: where it listens, its state, and the calls it served per proxy type. */
export function managerLines(run: RunModel, s: Style): string[] {
  const lines: string[] = [];
  for (const m of run.managers.values()) {
    const pid = m.serverPid !== undefined ? ` (pid ${m.serverPid})` : '';
    lines.push(`${s.bold(`manager ${m.id}`)} ${m.address || '?'}${pid} ${managerState(m, s)}`);
    const kinds = Object.entries(m.ops)
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]);
    if (kinds.length > 0) {
      lines.push(
        `  calls ${fmt(m.totalOps)}: ${kinds.map(([kind, n]) => `${kind} ${fmt(n)}`).join(' · ')}`,
      );
    }
  }
  return lines;
}

/** The live view: per pool a progress bar and its workers, then the latest errors. */
export function liveLines(
  run: RunModel,
  s: Style,
  meter: RateMeter,
  now: number,
  width = 80,
): string[] {
  const lines: string[] = [];
  for (const pool of run.pools.values()) {
    const c = pool.counts;
    const done = ended(pool);
    const fraction = c.submitted ? done / c.submitted : 0;
    lines.push(poolTitle(pool, s));
    lines.push(
      `  [${bar(fraction, 24)}] ${String(Math.round(fraction * 100)).padStart(3)}% ` +
        `${fmt(done)}/${fmt(c.submitted)}  ${s.green(`✓${fmt(c.passed)}`)} ${s.red(`✗${fmt(c.failed)}`)} ` +
        `${s.yellow(`⚠${fmt(c.errored)}`)}  queued ${fmt(c.queued)} running ${fmt(c.running)}  ` +
        `${fmt(meter.rate(pool, now))}/s`,
    );
    const workers = [...pool.workers.values()];
    const shown = workers.slice(-8);
    if (workers.length > shown.length)
      lines.push(s.dim(`  … ${workers.length - shown.length} earlier workers`));
    for (const w of shown) lines.push(`  ${workerLine(w, s)}`);
  }
  for (const proc of run.processes.values()) {
    const state =
      proc.state === 'running'
        ? 'running'
        : `exited ${proc.exitCode}${proc.signal ? ` ${proc.signal}` : ''}`;
    lines.push(`${s.bold(`process ${proc.name}`)} ${proc.target}() ${state}`);
  }
  lines.push(...managerLines(run, s));
  lines.push(...sharedLines(run, s, 6));
  const latest = run.errors.slice(-3);
  if (latest.length > 0) {
    lines.push(s.bold(`errors (${fmt(run.errorCount)}), latest:`));
    for (const e of latest) {
      const where = e.task !== undefined ? `${e.fn ?? '?'} #${e.task}` : (e.process ?? e.source);
      lines.push(`  ${s.red(errorTitle(e.error))} ${s.dim(`(${where})`)}`);
      const frame = firstFrame(e.error);
      if (frame) lines.push(`    ${s.dim(frame)}`);
    }
  }
  if (lines.length === 0) lines.push(s.dim('waiting for the script to create a pool…'));
  return lines.map((l) => clip(l, width));
}

const ANSI = /\x1b\[[0-9;]*m/g;

function clip(line: string, width: number): string {
  const visible = line.replace(ANSI, '');
  if (visible.length <= width) return line;
  return `${visible.slice(0, width - 1)}…`;
}

/** One plain line per pool, for logs that are not a terminal. */
export function progressLines(run: RunModel): string[] {
  return [...run.pools.values()].map((pool) => {
    const c = pool.counts;
    return `poolscope: pool ${pool.id} ${fmt(ended(pool))}/${fmt(c.submitted)} done, ${fmt(c.passed)} passed, ${fmt(c.failed)} failed, ${fmt(c.errored)} errored, ${fmt(c.running)} running, ${fmt(c.queued)} queued`;
  });
}

/** The end-of-run summary: what each pool did, how each worker ended, errors grouped. */
export function summaryLines(run: RunModel, s: Style): string[] {
  const lines: string[] = [];
  const duration = (run.endedAt ?? run.lastTs) - run.startedAt;
  const exit =
    run.endedAt === undefined
      ? 'still running (or its end was not recorded)'
      : run.signal
        ? `killed by ${run.signal}`
        : `exit code ${run.exitCode}`;
  lines.push(s.bold(`run ${run.id}: ${exit}, ${formatMs(duration)}`));
  if (
    run.pools.size === 0 &&
    run.processes.size === 0 &&
    run.shared.size === 0 &&
    run.managers.size === 0
  ) {
    lines.push(
      s.yellow(
        '  no pool or Process was created: the script does not use poolscope, or ended before it did',
      ),
    );
  }
  for (const pool of run.pools.values()) {
    const c = pool.counts;
    lines.push(`  ${poolTitle(pool, s)}`);
    const mean = pool.durations.count ? pool.durations.totalMs / pool.durations.count : 0;
    const span = Math.max(1, pool.lastTs - pool.createdAt);
    lines.push(
      `    tasks ${fmt(c.submitted)}: ${s.green(`${fmt(c.passed)} passed`)}, ${c.failed ? s.red(`${fmt(c.failed)} failed`) : '0 failed'}, ` +
        `${c.errored ? s.yellow(`${fmt(c.errored)} errored`) : '0 errored'}` +
        (c.queued + c.running ? `, ${fmt(c.queued + c.running)} unfinished` : '') +
        `; mean ${formatMs(mean)}, max ${formatMs(pool.durations.maxMs)}; ${fmt((ended(pool) * 1000) / span)} tasks/s`,
    );
    for (const w of pool.workers.values()) lines.push(`    ${workerLine(w, s)}`);
  }
  for (const proc of run.processes.values()) {
    const how = proc.signal ? `${proc.exitCode} ${proc.signal}` : `${proc.exitCode}`;
    const error = proc.error ? ` ${s.red(errorTitle(proc.error))}` : '';
    lines.push(`  ${s.bold(`process ${proc.name}`)} ${proc.target}(): exit ${how}${error}`);
  }
  lines.push(...managerLines(run, s).map((l) => `  ${l}`));
  lines.push(...sharedLines(run, s, 20).map((l) => `  ${l}`));
  if (run.callbacks.invoked) {
    lines.push(
      `  callbacks: ${fmt(run.callbacks.invoked)} run, ${run.callbacks.threw ? s.red(`${run.callbacks.threw} threw`) : '0 threw'}`,
    );
  }
  if (run.getTimeouts) lines.push(`  get(timeout) timed out ${fmt(run.getTimeouts)} times`);
  if (run.dropped)
    lines.push(
      s.yellow(
        `  ${fmt(run.dropped)} low-value events were dropped under load (counts stay exact)`,
      ),
    );
  if (run.errorCount > 0) {
    lines.push(
      s.bold(
        `  errors (${fmt(run.errorCount)}${run.errors.length < run.errorCount ? `, last ${run.errors.length} grouped` : ''}):`,
      ),
    );
    const groups = new Map<string, { count: number; error: ErrorInfo }>();
    for (const e of run.errors) {
      // Messages that differ only in numbers ("item 97 is corrupt") are one kind of error.
      const key = `${e.error.name}\u0000${e.error.code ?? ''}\u0000${e.error.message.replace(/\d+/g, '#')}`;
      const g = groups.get(key);
      if (g) g.count++;
      else groups.set(key, { count: 1, error: e.error });
    }
    for (const { count, error } of [...groups.values()]
      .sort((a, b) => b.count - a.count)
      .slice(0, 10)) {
      lines.push(
        `    ${fmt(count)}× ${s.red(errorTitle(error))}${count > 1 ? s.dim(' (and similar)') : ''}`,
      );
      const frame = firstFrame(error);
      if (frame) lines.push(`       ${s.dim(frame)}`);
    }
    if (groups.size > 10) lines.push(s.dim(`    … ${groups.size - 10} more kinds`));
  }
  return lines;
}
