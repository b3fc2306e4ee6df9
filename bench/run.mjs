// Poolscope benchmark: Poolscope (process and thread backends) side by side
// with piscina, tinypool, workerpool and Python's multiprocessing pools, in one
// run, each measurement in a fresh process, repetitions interleaved.
//
//   node bench/run.mjs [--reps 3] [--only SUBSTR] [--out DIR] [--quick]
//                      [--python python3] [--timeout-s 120] [--rebuild] [--live]
//                      [--quiet-threshold 0.3] [--quiet-wait-s 30] [--quiet-budget-s 180]
//   node bench/run.mjs --from .bench/results/results.json   # re-render only
//
// See bench/README.md.

import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';
import {
  ANCHOR_VERSIONS,
  ensureAnchors,
  ensureBuilt,
  machineInfo,
  poolscopeRevision,
  pythonVersion,
  snapshotPoolscope,
} from './lib/setup.mjs';
import { busyCores, busyProcesses, killAll, runJob, waitForQuiet } from './lib/runner.mjs';
import { render } from './lib/report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const ANCHORS_DIR = path.join(ROOT, '.bench', 'anchors');
const SNAPSHOT_DIR = path.join(ROOT, '.bench', 'poolscope');

// ---- Options
const argv = process.argv.slice(2);
const flag = (name) => argv.includes('--' + name);
const opt = (name, def) => {
  const i = argv.indexOf('--' + name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : def;
};
if (flag('help') || flag('h')) {
  process.stdout.write(
    fs
      .readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .slice(0, 11)
      .join('\n') + '\n',
  );
  process.exit(0);
}
const QUICK = flag('quick');
const LIVE = flag('live');
const REPS = Number(opt('reps', QUICK ? 1 : 3));
const ONLY = opt('only', null);
const PY = opt('python', process.env.PYTHON || 'python3');
const TIMEOUT_S = Number(opt('timeout-s', 120));
const QUIET = {
  threshold: Number(opt('quiet-threshold', 0.3)),
  waitS: Number(opt('quiet-wait-s', QUICK ? 0 : 30)),
  budgetS: Number(opt('quiet-budget-s', 180)),
};
const FROM = opt('from', null);
const OUT = path.resolve(
  opt(
    'out',
    FROM ? path.dirname(FROM) : path.join(ROOT, '.bench', QUICK ? 'results-quick' : 'results'),
  ),
);
// Workload sizes (the anchor harness's definitions; --quick shrinks them). The isolated error
// is timed 1,000 times, not the harness's 200: the p99 of 200 samples is the second slowest,
// one garbage collection or background compile, and it moved by as much as its own value
// between runs.
const PARAMS = QUICK
  ? { tasks: 2000, lat: 50, items: 100_000, crashTimeoutMs: 3000 }
  : { tasks: 20_000, lat: 1000, items: 1_000_000, crashTimeoutMs: 10_000 };
if (!Number.isInteger(REPS) || REPS < 1) throw new Error('--reps must be a positive integer');

const log = (s) => process.stderr.write(s);

// ---- What is measured
const POOLS = [
  { lib: 'poolscope', mode: 'process', label: 'Poolscope', kind: 'node' },
  { lib: 'poolscope', mode: 'thread', label: 'Poolscope', kind: 'node' },
  { lib: 'piscina', mode: 'thread', label: 'piscina', kind: 'node' },
  { lib: 'tinypool', mode: 'thread', label: 'tinypool', kind: 'node' },
  { lib: 'tinypool', mode: 'process', label: 'tinypool', kind: 'node' },
  { lib: 'workerpool', mode: 'thread', label: 'workerpool', kind: 'node' },
  { lib: 'workerpool', mode: 'process', label: 'workerpool', kind: 'node' },
  {
    lib: 'python',
    mode: 'process',
    label: 'Python multiprocessing.Pool',
    short: 'Python Pool',
    kind: 'py',
  },
  {
    lib: 'python',
    mode: 'thread',
    label: 'Python multiprocessing.dummy.Pool (ThreadPool)',
    short: 'Python ThreadPool',
    kind: 'py',
  },
];
const SCENARIOS = ['throughput', 'errors', 'errlat', 'crash', 'map'];
const hasMap = (p) => p.lib === 'poolscope' || p.lib === 'python';

function command(p, scenario) {
  // The workload, the same for every library.
  const workload = [
    '--mode',
    p.mode,
    '--scenario',
    scenario,
    '--tasks',
    String(PARAMS.tasks),
    '--lat',
    String(PARAMS.lat),
    '--items',
    String(PARAMS.items),
  ];
  if (p.kind === 'py') {
    const args = [
      path.join(HERE, 'measure_py.py'),
      ...workload,
      '--crash-timeout-s',
      String(PARAMS.crashTimeoutMs / 1000),
    ];
    return { cmd: PY, args };
  }
  const args = [
    path.join(HERE, 'measure-node.mjs'),
    '--lib',
    p.lib,
    ...workload,
    '--crash-timeout-ms',
    String(PARAMS.crashTimeoutMs),
    '--watchdog-s',
    String(Math.max(10, TIMEOUT_S - 10)),
  ];
  return { cmd: process.execPath, args };
}

// Scenario-major, so one scenario's libraries run close together in time; the
// library order rotates with every repetition so nobody is always first.
function jobsForRep(rep, pools) {
  const jobs = [];
  for (const sc of SCENARIOS) {
    const ps = pools.filter((p) => sc !== 'map' || hasMap(p));
    const shift = ps.length ? (rep - 1) % ps.length : 0;
    for (const p of [...ps.slice(shift), ...ps.slice(0, shift)]) {
      const key = `${p.lib}|${p.mode}|${sc}`;
      if (!ONLY || key.includes(ONLY)) jobs.push({ key, ...command(p, sc) });
    }
  }
  return jobs;
}

// ---- Run
async function measure() {
  const notes = [];
  const python = pythonVersion(PY);
  if (!python) {
    const note = `\`${PY}\` not found: Python measurements skipped.`;
    notes.push(note);
    log(note + '\n');
  }
  const pools = POOLS.filter((p) => p.kind !== 'py' || python);
  const wanted = jobsForRep(1, pools);
  if (wanted.length === 0) throw new Error(`--only ${ONLY} matches no measurement`);
  if (wanted.some((j) => /^(piscina|tinypool|workerpool)\|/.test(j.key)))
    ensureAnchors(ANCHORS_DIR, log);
  ensureBuilt(ROOT, flag('rebuild'), log);
  // Measure one fixed copy of the build (see snapshotPoolscope), unless --live.
  const poolscope = LIVE
    ? poolscopeRevision(ROOT)
    : await snapshotPoolscope(ROOT, SNAPSHOT_DIR, log);
  poolscope.measured = LIVE
    ? 'dist/ of the repository (--live)'
    : 'a copy of dist/ taken at the start';

  // Whatever else keeps the machine busy distorts every number: name it.
  const busyAtStart = QUICK ? [] : busyProcesses();
  if (busyAtStart.length) {
    notes.push(
      `Busy processes outside the harness at the start: ${busyAtStart.map((b) => `\`${b}\``).join('; ')}`,
    );
  }

  const env = { ...process.env, BENCH_ANCHORS_DIR: ANCHORS_DIR };
  if (!LIVE) env.BENCH_POOLSCOPE_DIR = SNAPSHOT_DIR;
  else delete env.BENCH_POOLSCOPE_DIR;
  const results = Object.fromEntries(wanted.map((j) => [j.key, []]));
  const t0 = Date.now();
  for (let rep = 1; rep <= REPS; rep++) {
    const jobs = jobsForRep(rep, pools);
    jobs.forEach((job, i) => (job.n = i + 1));
    for (const job of jobs) {
      log(`[rep ${rep}/${REPS}, ${job.n}/${jobs.length}] ${job.key} ... `);
      // Between jobs the harness is idle, so CPU busy time seen then is someone
      // else's: wait (bounded) for a quiet machine, and record what was seen.
      const before = QUICK ? null : await waitForQuiet(QUIET, log);
      const res = await runJob({ ...job, cwd: ROOT, env, timeoutMs: TIMEOUT_S * 1000 });
      if (!QUICK) {
        res.busyCoresBefore = before;
        res.busyCoresAfter = await busyCores();
      }
      results[job.key].push(res);
      const extra = res.leftoverProcesses
        ? ` (${res.leftoverProcesses.length} leftover process(es) killed)`
        : '';
      log(
        res.error
          ? `ERROR ${String(res.error).split('\n')[0]}${extra}\n`
          : `ok ${(res.wallMs / 1000).toFixed(1)} s${extra}\n`,
      );
    }
  }
  const pyRun = Object.entries(results)
    .find(([key]) => key.startsWith('python|'))?.[1]
    .find((r) => r.startMethod);
  return {
    date: new Date(t0).toISOString(),
    quick: QUICK,
    reps: REPS,
    params: PARAMS,
    elapsedS: (Date.now() - t0) / 1000,
    machine: machineInfo(),
    python,
    pythonStartMethod: pyRun?.startMethod ?? null,
    poolscope,
    anchorVersions: ANCHOR_VERSIONS,
    quiet: QUIET,
    pools,
    notes,
    results,
  };
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    log(`\n${sig}: stopped; running measurements killed\n`);
    process.exit(130);
  });
}
process.on('exit', killAll);

const data = FROM ? JSON.parse(fs.readFileSync(FROM, 'utf8')) : await measure();
const text = render(data);
fs.mkdirSync(OUT, { recursive: true });
if (!FROM) fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify(data, null, 2) + '\n');
fs.writeFileSync(path.join(OUT, 'results.md'), text);
process.stdout.write(text + '\n');
log(`\nWrote ${path.join(OUT, 'results.md')}${FROM ? '' : ' and results.json'}\n`);
