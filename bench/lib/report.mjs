// Renders the saved results (see run.mjs) as markdown: machine header,
// performance table, Poolscope/anchor ratios, error and crash behaviour, notes.

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const pick = (r, field) => field.split('.').reduce((o, k) => o?.[k], r);

const fmtInt = (x) => (x == null ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const fmtMs = (x) =>
  x == null
    ? 'n/a'
    : x < 1
      ? x.toFixed(3)
      : x < 100
        ? x.toFixed(2)
        : Math.round(x).toLocaleString('en-US');
const fmtRatio = (x) => (x == null ? 'n/a' : `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}x`);
const fmtCount = (n) => n.toLocaleString('en-US');

export function render(data) {
  const { results, pools, params } = data;
  const runs = (key) => (results[key] ?? []).filter((r) => !r.error);
  const has = (key) => (results[key] ?? []).length > 0;
  const values = (key, field) =>
    runs(key)
      .map((r) => pick(r, field))
      .filter((x) => typeof x === 'number' && Number.isFinite(x));
  const med = (key, field) => median(values(key, field));
  // "median (min–max)" so the spread between repetitions stays visible.
  const cell = (key, field, fmt) => {
    if (!has(key)) return '–';
    const v = values(key, field);
    if (v.length === 0) return (results[key] ?? []).some((r) => r.error) ? '**failed**' : 'n/a';
    const m = fmt(median(v));
    return v.length === 1 ? m : `${m} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;
  };
  const yn = (key, field) => {
    const v = runs(key).map((r) => pick(r, field));
    if (v.length === 0) return has(key) ? '**failed**' : '–';
    const yes = v.filter((x) => x === true).length;
    return yes === v.length ? 'yes' : yes === 0 ? 'no' : `mixed (${yes}/${v.length} yes)`;
  };
  const first = (key, field) =>
    runs(key)
      .map((r) => pick(r, field))
      .find((x) => x != null);
  const k = (p, sc) => `${p.lib}|${p.mode}|${sc}`;
  const version = (p) =>
    ['throughput', 'errors', 'errlat', 'crash', 'map']
      .map((sc) => first(k(p, sc), 'version'))
      .find(Boolean) ?? '?';
  const isPS = (p) => p.lib === 'poolscope';

  const md = [];
  const m = data.machine;
  const ps = data.poolscope;
  md.push(
    `# Poolscope vs anchors${data.quick ? ' (--quick smoke run: small workloads, not for comparison)' : ''}`,
  );
  md.push('');
  md.push(`- Date: ${data.date}`);
  md.push(
    `- Machine: ${m.cpus} logical CPUs (availableParallelism ${m.availableParallelism}; ${m.cpuModel}), ${m.memGiB} GiB RAM, ${m.os}`,
  );
  md.push(
    `- Node ${m.node}; Python ${data.python ?? 'not found (Python anchors skipped)'}${data.pythonStartMethod ? ` (multiprocessing start method: ${data.pythonStartMethod})` : ''}`,
  );
  md.push(
    `- Poolscope ${ps.version} (commit ${ps.commit ?? '?'}${ps.coreDirty ? ', **uncommitted changes in core/**' : ''}; dist built ${ps.builtAt ?? '?'}; measured: ${ps.measured ?? 'dist/'}); anchors: ${Object.entries(
      data.anchorVersions,
    )
      .map(([n, v]) => `${n} ${v}`)
      .join(', ')}`,
  );
  md.push(
    `- Pool size 2 everywhere, 200-task warm-up excluded; ${data.reps} repetition(s) per measurement, each in a fresh process, repetitions interleaved across libraries; cells show median (min–max); total wall time ${Math.round(data.elapsedS)} s.`,
  );
  const all = Object.values(results).flat();
  const loads = all
    .flatMap((r) => [r.busyCoresBefore, r.busyCoresAfter])
    .filter((x) => typeof x === 'number');
  if (loads.length) {
    const t = data.quiet.threshold;
    const noisy = all.filter(
      (r) => (r.busyCoresBefore ?? 0) > t || (r.busyCoresAfter ?? 0) > t,
    ).length;
    md.push(
      `- Other load on the machine (busy cores sampled 0.3 s before/after each job while the harness was idle): median ${median(loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)}; ${noisy} of ${all.length} runs saw more than ${t}; the harness waited ${Math.round((data.quiet.waitedMs ?? 0) / 1000)} s in all for quiet (at most ${data.quiet.waitS} s per job, ${data.quiet.budgetS} s per run).`,
    );
    if (median(loads) > t) {
      md.push(
        `- **Warning: other processes kept about ${median(loads).toFixed(1)} of ${m.cpus} cores busy during most of the run** (see Notes). Every library ran on a loaded machine: absolute numbers are low and noisy, and even the ratios are only indicative. Rerun on a quiet machine.`,
      );
    }
  }
  md.push('');

  // ---- Performance
  md.push(`## Performance (median of ${data.reps}, range in parentheses)`);
  md.push('');
  md.push(
    `| Library | Version | Mode | Throughput, ${fmtCount(params.tasks)} x \`x+1\` (tasks/s) | Error path, ${fmtCount(params.tasks)} throws (tasks/s) | Error latency median (ms) | Error latency p99 (ms) | \`map\` over ${fmtCount(params.items)} items (items/s) |`,
  );
  md.push('|---|---|---|---:|---:|---:|---:|---:|');
  for (const p of pools) {
    if (!['throughput', 'errors', 'errlat', 'map'].some((sc) => has(k(p, sc)))) continue;
    const name = isPS(p) ? `**${p.label}**` : p.label;
    md.push(
      `| ${name} | ${version(p)} | ${p.mode} | ${cell(k(p, 'throughput'), 'tasksPerSec', fmtInt)} | ${cell(k(p, 'errors'), 'tasksPerSec', fmtInt)} | ${cell(k(p, 'errlat'), 'medianMs', fmtMs)} | ${cell(k(p, 'errlat'), 'p99Ms', fmtMs)} | ${cell(k(p, 'map'), 'itemsPerSec', fmtInt)} |`,
    );
  }
  md.push('');
  md.push(
    `Throughput / error path: all tasks submitted at once (one \`applyAsync\` / \`run\` / \`exec\` / \`apply_async\` per task), timed until the last result or rejection. Error latency: one failing task at a time, ${params.lat} sequential, submit to rejection. \`map\`: Poolscope \`pool.map\` and Python \`Pool.map\`, both with their default chunksize (the Node anchors have no map).`,
  );
  md.push('');

  // ---- Ratios
  const anchors = pools.filter((p) => !isPS(p));
  const metrics = [
    ['throughput', 'tasksPerSec', 'Throughput', false],
    ['errors', 'tasksPerSec', 'Error path', false],
    ['errlat', 'medianMs', 'Error latency median', true],
    ['errlat', 'p99Ms', 'Error latency p99', true],
    ['map', 'itemsPerSec', '`map` items/s', false],
  ];
  // Higher is better for every ratio: rates are Poolscope/anchor, latencies anchor/Poolscope.
  const ratio = (a, b, sc, field, lowerIsBetter) => {
    const x = med(k(a, sc), field);
    const y = med(k(b, sc), field);
    if (x == null || y == null || x === 0 || y === 0) return null;
    return lowerIsBetter ? y / x : x / y;
  };
  const headline = [];
  const rows = [];
  for (const p of pools.filter(isPS)) {
    for (const a of anchors) {
      const rs = metrics.map(([sc, f, , low]) => ratio(p, a, sc, f, low));
      if (rs.every((r) => r == null)) continue;
      const same = p.mode === a.mode;
      const who = `Poolscope (${p.mode})`;
      const vs = a.short ?? `${a.label} (${a.mode})`;
      rows.push(
        `| ${same ? `**${who}**` : who} | ${vs} | ${same ? 'yes' : 'no'} | ${rs.map((r) => (r == null ? '–' : fmtRatio(r))).join(' | ')} |`,
      );
      if (same) {
        const parts = metrics
          .map(([, , label], i) =>
            rs[i] == null ? null : `${label.replace(/`/g, '').toLowerCase()} ${fmtRatio(rs[i])}`,
          )
          .filter(Boolean);
        headline.push(`- Poolscope (${p.mode}) / ${vs}: ${parts.join(', ')}`);
      }
    }
  }
  if (rows.length) {
    md.push('## Poolscope relative to each anchor (same run, ratio of medians)');
    md.push('');
    md.push(
      'Every ratio is "higher is better for Poolscope": rates are Poolscope / anchor, latencies are anchor ms / Poolscope ms. 1.00x = equal; 0.50x = Poolscope at half the anchor\'s speed.',
    );
    md.push('');
    md.push(`| Poolscope | vs anchor | same kind | ${metrics.map(([, , l]) => l).join(' | ')} |`);
    md.push(`|---|---|---|${metrics.map(() => '---:').join('|')}|`);
    md.push(...rows);
    md.push('');
    md.push(
      'Like for like (processes vs processes, threads vs threads; same convention, > 1x = Poolscope better):',
    );
    md.push('');
    md.push(...headline);
    md.push('');
  }

  // ---- Error and crash behaviour
  md.push('## Error and crash behaviour');
  md.push('');
  md.push(
    '| Library | Mode | Worker stack reaches caller | `err.code` kept | nested `err.detail` kept | rejection is an `Error` | Crash (`process.exit(3)` / `os._exit(3)`): task outcome | Exit code in error | Pool serves 10 more tasks | Workers serving afterwards (of 2) |',
  );
  md.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const p of pools) {
    const ck = k(p, 'crash');
    if (!has(k(p, 'errors')) && !has(ck)) continue;
    const crashRuns = results[ck] ?? [];
    const outcomes = [...new Set(crashRuns.map((r) => (r.error ? 'failed' : r.crashOutcome)))].join(
      ' / ',
    );
    let outcome = outcomes || '–';
    const timeoutS = (first(ck, 'crashTimeoutMs') ?? params.crashTimeoutMs) / 1000;
    if (outcomes === 'rejected') outcome = `rejected after ${fmtMs(med(ck, 'crashMs'))} ms`;
    else if (outcomes === 'timeout')
      outcome = `**never settles** (pending at the ${timeoutS} s timeout)`;
    else if (outcomes === 'whole-process-exit')
      outcome = `**whole interpreter exits** (code ${first(ck, 'childReturnCode')})`;
    else if (outcomes.includes('failed')) outcome = `**${outcomes}**`;
    const gone = outcomes === 'whole-process-exit';
    const liveAfter =
      [...new Set(runs(ck).map((r) => r.liveWorkersAfter ?? 'none'))].join('/') || '–';
    const name = isPS(p) ? `**${p.label}**` : p.label;
    md.push(
      `| ${name} | ${p.mode} | ${yn(k(p, 'errors'), 'stackHasWorkerFrame')} | ${yn(k(p, 'errors'), 'customCodePreserved')} | ${yn(k(p, 'errors'), 'customObjectPreserved')} | ${yn(k(p, 'errors'), 'sample.isError')} | ${outcome} | ${gone ? 'n/a (caller gone)' : yn(ck, 'exitCodeInError')} | ${gone ? 'n/a (caller gone)' : yn(ck, 'poolWorksAfter')} | ${gone ? 'n/a' : liveAfter} |`,
    );
  }
  md.push('');
  md.push('Crash errors seen by the caller (first repetition):');
  md.push('');
  for (const p of pools) {
    const ck = k(p, 'crash');
    if (!has(ck)) continue;
    const msg = first(ck, 'crashMessage');
    const errName = first(ck, 'crashErrorName');
    const note = first(ck, 'note');
    const text = msg
      ? `\`${errName ? errName + ': ' : ''}${msg
          .split('\n')
          .map((s) => s.trim())
          .filter(Boolean)
          .join(' / ')
          .slice(0, 400)}\``
      : (note ??
        (runs(ck).length
          ? 'no error delivered (task still pending at the timeout)'
          : 'measurement failed'));
    md.push(`- ${p.label} (${p.mode}): ${text}`);
  }
  md.push('');

  // ---- Problems seen during the run
  const notes = [...(data.notes ?? [])];
  for (const [key, rs] of Object.entries(results)) {
    rs.forEach((r, i) => {
      const where = `\`${key}\` rep ${i + 1}`;
      if (r.error)
        notes.push(`${where}: **failed**: ${String(r.error).split('\n')[0].slice(0, 300)}`);
      if (r.leftoverProcesses)
        notes.push(
          `${where}: ${r.leftoverProcesses.length} process(es) still alive 2 s after the measurement process exited (killed by the harness): ${r.leftoverProcesses.map((x) => `${x.comm} ${x.pid}`).join(', ')}`,
        );
      if (r.teardown && r.teardown !== 'resolved')
        notes.push(
          `${where}: pool teardown (terminate/destroy) ${r.teardown === 'timeout' ? 'did not finish within 5 s' : r.teardown}`,
        );
    });
  }
  md.push('## Notes');
  md.push('');
  md.push(
    notes.length
      ? notes.map((n) => `- ${n}`).join('\n')
      : '- Every measurement completed; no process outlived its measurement.',
  );
  md.push('');
  return md.join('\n');
}
