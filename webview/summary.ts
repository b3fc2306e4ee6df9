/// <reference lib="dom" />
/**
 * The summary: throughput, queue depth, failures, per-worker utilisation (busy time from the
 * bars over the worker's lifetime) and exit codes, per pool; the run's processes.
 */
import { fmtMs, fmtTime, h, replace } from './dom';
import { STATE_QUEUED, type PoolInfo, type RunData } from './model';

export class Summary {
  readonly element = h('section', { class: 'summary', 'aria-label': 'Summary' });

  render(run: RunData | undefined): void {
    if (!run) {
      replace(this.element, h('p', { class: 'muted' }, 'No run.'));
      return;
    }
    const end = run.endedAt ?? run.lastTs;
    const parts: Node[] = [
      h('h2', null, run.label),
      facts([
        [
          'state',
          run.state +
            (run.exitCode !== undefined && run.exitCode !== null ? ` (exit ${run.exitCode})` : '') +
            (run.signal ? ` ${run.signal}` : ''),
        ],
        ['started', fmtTime(run.startedAt)],
        ['duration', fmtMs(end - run.startedAt)],
        ['events', `${run.events}${run.dropped ? ` (${run.dropped} dropped)` : ''}`],
        ['errors', String(run.errorCount)],
      ]),
    ];
    for (const pool of run.pools.values()) parts.push(this.pool(run, pool));
    if (run.processes.length > 0) {
      parts.push(
        h('h3', null, 'Processes'),
        table(
          ['name', 'target', 'pid', 'state', 'exit code', 'signal'],
          run.processes.map((p) => [
            p.name,
            p.target,
            p.pid !== undefined ? String(p.pid) : p.tid !== undefined ? `thread ${p.tid}` : '',
            p.state,
            p.exitCode === null ? '' : String(p.exitCode),
            p.signal ?? '',
          ]),
        ),
      );
    }
    replace(this.element, ...parts);
  }

  private pool(run: RunData, pool: PoolInfo): HTMLElement {
    const b = pool.bars;
    const c = pool.counts;
    let first = Infinity;
    let last = -Infinity;
    let recent = 0;
    let finished = 0;
    let queued = 0;
    const busy = new Map<number, number>();
    const horizon = run.lastTs - 5000;
    for (let r = 0; r < b.n; r++) {
      if (b.state[r] === STATE_QUEUED) queued++;
      const s = b.start[r]!;
      if (Number.isNaN(s)) continue;
      const e = Number.isNaN(b.end[r]!) ? run.lastTs : b.end[r]!;
      if (s < first) first = s;
      if (!Number.isNaN(b.end[r]!)) {
        if (e > last) last = e;
        finished++;
        if (e >= horizon) recent++;
      }
      busy.set(b.worker[r]!, (busy.get(b.worker[r]!) ?? 0) + Math.max(0, e - s));
    }
    const done = c.passed + c.failed + c.errored;
    const span = last > first ? (last - first) / 1000 : 0;
    const rate = (n: number, s: number): string => (s > 0 ? `${(n / s).toFixed(1)}/s` : '—');
    const workers = [...pool.workers.values()].sort((a, z) => a.id - z.id);
    return h(
      'div',
      { class: 'pool-summary', 'data-pool': pool.id },
      h('h3', null, `Pool ${pool.id} · ${pool.backend} ×${pool.size} · ${pool.state}`),
      facts([
        ['submitted', String(c.submitted)],
        ['queue depth', `${c.queued}${queued !== c.queued ? ` (${queued} in kept bars)` : ''}`],
        ['running', String(c.running)],
        ['passed', String(c.passed)],
        ['failed', String(c.failed)],
        ['errored', String(c.errored)],
        [
          'throughput',
          `${rate(finished, span)} overall${run.state === 'running' ? `, ${rate(recent, 5)} over the last 5 s` : ''}`,
        ],
        ['failure rate', done > 0 ? `${(((c.failed + c.errored) / done) * 100).toFixed(1)}%` : '—'],
        ...(pool.barsDropped > 0
          ? [['bars dropped', String(pool.barsDropped)] as [string, string]]
          : []),
      ]),
      table(
        [
          'worker',
          'pid / thread',
          'tasks',
          'failed',
          'busy',
          'lifetime',
          'utilisation',
          'exit code',
          'signal',
          'reason',
        ],
        workers.map((w) => {
          const life = (w.exitedAt ?? run.lastTs) - w.startedAt;
          const bz = busy.get(w.id) ?? 0;
          return [
            String(w.id),
            w.pid !== undefined ? `pid ${w.pid}` : w.tid !== undefined ? `thread ${w.tid}` : '',
            String(w.tasksDone),
            String(w.tasksFailed),
            fmtMs(bz),
            fmtMs(life),
            life > 0 ? `${Math.min(100, (bz / life) * 100).toFixed(1)}%` : '—',
            w.exitedAt === undefined ? 'running' : w.exitCode === null ? '' : String(w.exitCode),
            w.signal ?? '',
            w.reason ?? '',
          ];
        }),
        'workers',
      ),
    );
  }
}

function facts(rows: [string, string][]): HTMLElement {
  const dl = h('dl', { class: 'facts' });
  for (const [k, v] of rows) dl.append(h('dt', null, k), h('dd', null, v));
  return dl;
}

function table(head: string[], rows: string[][], cls = ''): HTMLElement {
  return h(
    'table',
    { class: cls },
    h('thead', null, h('tr', null, ...head.map((x) => h('th', { 'data-col': x }, x)))),
    h('tbody', null, ...rows.map((r) => h('tr', null, ...r.map((x) => h('td', null, x))))),
  );
}
