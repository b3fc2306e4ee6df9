// One Node measurement per process, so that libraries never share a heap, JIT
// state or event loop. Started by bench/run.mjs; prints one line
// "RESULT {json}" and exits.
//
//   node bench/measure-node.mjs --lib poolscope|piscina|tinypool|workerpool \
//        --mode process|thread --scenario throughput|errors|errlat|crash|map|queued \
//        [--tasks 20000] [--lat 200] [--items 1000000] [--crash-timeout-ms 10000]
//
// The anchors are resolved from BENCH_ANCHORS_DIR (the scratch dir run.mjs
// installs them into); Poolscope is imported as 'poolscope' / 'poolscope/dummy'
// through the repository's package self-reference.

import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith('--')) args[a.slice(2)] = process.argv[i + 1];
}

const N_TASKS = Number(args.tasks ?? 20000);
const N_LAT = Number(args.lat ?? 200);
const N_MAP_ITEMS = Number(args.items ?? 1_000_000);
const N_QUEUED = Number(args.queued ?? 1_000_000);
const CRASH_TIMEOUT_MS = Number(args['crash-timeout-ms'] ?? 10000);
const WATCHDOG_S = Number(args['watchdog-s'] ?? 110);
const N_WARMUP = 200;
const POOL_SIZE = 2;

const taskPath = fileURLToPath(new URL('./workers/task.mjs', import.meta.url));
const wpWorkerPath = fileURLToPath(new URL('./workers/wp-worker.mjs', import.meta.url));
const ANCHORS = process.env.BENCH_ANCHORS_DIR;

function emit(obj) {
  process.stdout.write('RESULT ' + JSON.stringify(obj) + '\n');
}

// In-process watchdog (run.mjs also kills the whole process group later).
setTimeout(() => {
  emit({ error: `watchdog: measurement exceeded ${WATCHDOG_S} s` });
  process.exit(2);
}, WATCHDOG_S * 1000).unref();

// ---------------------------------------------------------------------------
// Loading the libraries
// ---------------------------------------------------------------------------
function anchorRequire() {
  if (!ANCHORS) throw new Error('BENCH_ANCHORS_DIR is not set (run through bench/run.mjs)');
  return createRequire(path.join(ANCHORS, 'package.json'));
}

// Through the scratch dir's load.mjs (see lib/setup.mjs), so the package's
// ESM entry point is used, as in a user's `import 'piscina'`.
async function importAnchor(pkg) {
  anchorRequire(); // checks BENCH_ANCHORS_DIR
  const { load } = await import(pathToFileURL(path.join(ANCHORS, 'load.mjs')).href);
  return load(pkg);
}

// Some packages (piscina) do not export ./package.json: walk up from the entry point.
function anchorVersion(pkg) {
  try {
    let dir = path.dirname(anchorRequire().resolve(pkg));
    for (;;) {
      const f = path.join(dir, 'package.json');
      if (fs.existsSync(f)) {
        const j = JSON.parse(fs.readFileSync(f, 'utf8'));
        if (j.name === pkg) return j.version;
      }
      const up = path.dirname(dir);
      if (up === dir) return 'unknown';
      dir = up;
    }
  } catch {
    return 'unknown';
  }
}

// run.mjs measures a copy of the build (BENCH_POOLSCOPE_DIR, see
// lib/setup.mjs); without it, the repository's own dist/ by self-reference.
async function importPoolscope(name) {
  const dir = process.env.BENCH_POOLSCOPE_DIR;
  if (!dir) return import(name);
  const { load } = await import(pathToFileURL(path.join(dir, 'load.mjs')).href);
  return load(name);
}

function poolscopeVersion() {
  const dir = process.env.BENCH_POOLSCOPE_DIR;
  const file = dir ? path.join(dir, 'package.json') : new URL('../package.json', import.meta.url);
  return JSON.parse(fs.readFileSync(file, 'utf8')).version;
}

// ---------------------------------------------------------------------------
// Pool adapters: { inc(x), fail(x), crash(), whoami(ms), map?(items), destroy() }
// each call returns something awaitable.
// ---------------------------------------------------------------------------
async function makePool(lib, mode) {
  if (lib === 'poolscope') {
    // The import a user writes: 'poolscope' for processes, 'poolscope/dummy' for threads.
    const mod = await importPoolscope(mode === 'process' ? 'poolscope' : 'poolscope/dummy');
    const Pool = mod.Pool ?? mod.default?.Pool;
    const pool = new Pool({ module: taskPath, size: POOL_SIZE });
    if (pool.backend !== undefined && pool.backend !== mode) {
      throw new Error(`asked for a ${mode} pool, got backend ${pool.backend}`);
    }
    return {
      inc: (x) => pool.applyAsync('inc', [x]),
      fail: (x) => pool.applyAsync('fail', [x]),
      crash: () => pool.applyAsync('crash', []),
      whoami: (ms) => pool.applyAsync('whoami', [ms]),
      map: (items) => pool.map('inc', items),
      destroy: () => pool.terminate(),
    };
  }
  if (lib === 'piscina') {
    if (mode !== 'thread') throw new Error('piscina supports only worker_threads');
    const { Piscina } = await importAnchor('piscina');
    const pool = new Piscina({
      filename: pathToFileURL(taskPath).href,
      minThreads: POOL_SIZE,
      maxThreads: POOL_SIZE,
    });
    return runAdapter(pool, () => pool.destroy());
  }
  if (lib === 'tinypool') {
    const { default: Tinypool } = await importAnchor('tinypool');
    const pool = new Tinypool({
      filename: pathToFileURL(taskPath).href,
      minThreads: POOL_SIZE,
      maxThreads: POOL_SIZE,
      runtime: mode === 'process' ? 'child_process' : 'worker_threads',
    });
    return runAdapter(pool, () => pool.destroy());
  }
  if (lib === 'workerpool') {
    const { default: workerpool } = await importAnchor('workerpool');
    const pool = workerpool.pool(wpWorkerPath, {
      minWorkers: POOL_SIZE,
      maxWorkers: POOL_SIZE,
      workerType: mode, // 'thread' | 'process'
    });
    // workerpool returns its own Promise type; wrap in native promises.
    return {
      inc: (x) => Promise.resolve(pool.exec('inc', [x])),
      fail: (x) => Promise.resolve(pool.exec('fail', [x])),
      crash: () => Promise.resolve(pool.exec('crash', [])),
      whoami: (ms) => Promise.resolve(pool.exec('whoami', [ms])),
      destroy: () => pool.terminate(true),
    };
  }
  throw new Error('unknown lib ' + lib);
}

// piscina and tinypool share the run(arg, { name }) API.
function runAdapter(pool, destroy) {
  return {
    inc: (x) => pool.run(x, { name: 'inc' }),
    fail: (x) => pool.run(x, { name: 'fail' }),
    crash: () => pool.run(0, { name: 'crash' }),
    whoami: (ms) => pool.run(ms, { name: 'whoami' }),
    destroy,
  };
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------
async function warmup(pool) {
  const ps = [];
  for (let i = 0; i < N_WARMUP; i++) ps.push(pool.inc(i));
  await Promise.all(ps);
}

// Settles to { status: 'resolved' | 'rejected' | 'timeout', value | err, ms }.
function withTimeout(p, ms) {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ status: 'timeout', ms: performance.now() - t0 }), ms);
    Promise.resolve(p).then(
      (value) => {
        clearTimeout(timer);
        resolve({ status: 'resolved', value, ms: performance.now() - t0 });
      },
      (err) => {
        clearTimeout(timer);
        resolve({ status: 'rejected', err, ms: performance.now() - t0 });
      },
    );
  });
}

function pct(sorted, p) {
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[idx];
}

function inspectError(err, workerFileName) {
  const stack = typeof err?.stack === 'string' ? err.stack : '';
  return {
    isError: err instanceof Error,
    ctor: err?.constructor?.name,
    message: err?.message,
    // The caller-side stack mentions the worker's throwing function and file.
    stackHasWorkerFrame: stack.includes('fail') && stack.includes(workerFileName),
    code: err?.code,
    customCodePreserved: err?.code === 'E_CUSTOM',
    customObjectPreserved:
      err?.detail != null && typeof err.detail === 'object' && 'x' in err.detail,
    detail: JSON.stringify(err?.detail),
    stackSample: stack.split('\n').slice(0, 4).join(' | '),
  };
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------
async function scThroughput(pool) {
  await warmup(pool);
  const ps = new Array(N_TASKS);
  const t0 = performance.now();
  for (let i = 0; i < N_TASKS; i++) ps[i] = pool.inc(i);
  const res = await Promise.all(ps);
  const ms = performance.now() - t0;
  for (let i = 0; i < N_TASKS; i++) {
    if (res[i] !== i + 1) throw new Error(`wrong result at ${i}: ${res[i]}`);
  }
  return { tasks: N_TASKS, ms, tasksPerSec: N_TASKS / (ms / 1000) };
}

async function scErrors(pool, workerFileName) {
  await warmup(pool);
  const ps = new Array(N_TASKS);
  const t0 = performance.now();
  for (let i = 0; i < N_TASKS; i++) ps[i] = pool.fail(i);
  const settled = await Promise.allSettled(ps);
  const ms = performance.now() - t0;
  const rejected = settled.filter((s) => s.status === 'rejected').length;
  if (rejected !== N_TASKS)
    throw new Error(`only ${rejected} of ${N_TASKS} failing tasks rejected`);
  const info = inspectError(settled[0].reason, workerFileName);
  const info2 = inspectError(settled[N_TASKS - 1].reason, workerFileName);
  return {
    tasks: N_TASKS,
    rejected,
    ms,
    tasksPerSec: N_TASKS / (ms / 1000),
    stackHasWorkerFrame: info.stackHasWorkerFrame && info2.stackHasWorkerFrame,
    customCodePreserved: info.customCodePreserved && info2.customCodePreserved,
    customObjectPreserved: info.customObjectPreserved && info2.customObjectPreserved,
    sample: info,
  };
}

async function scErrLat(pool) {
  await warmup(pool);
  for (let i = 0; i < 20; i++) await Promise.resolve(pool.fail(i)).catch(() => {});
  const lat = [];
  for (let i = 0; i < N_LAT; i++) {
    const t0 = performance.now();
    let ok = false;
    try {
      await pool.fail(i);
      ok = true;
    } catch {
      // expected
    }
    if (ok) throw new Error('a failing task resolved');
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);
  return {
    runs: N_LAT,
    medianMs: pct(lat, 0.5),
    p99Ms: pct(lat, 0.99),
    maxMs: lat[lat.length - 1],
  };
}

async function scCrash(pool) {
  await warmup(pool);
  const r = await withTimeout(pool.crash(), CRASH_TIMEOUT_MS);
  const out = { crashOutcome: r.status, crashMs: r.ms, crashTimeoutMs: CRASH_TIMEOUT_MS };
  if (r.status === 'rejected') {
    const msg = String(r.err?.message ?? r.err);
    out.crashMessage = msg;
    out.crashErrorName = r.err?.name;
    out.crashErrorProps =
      r.err && typeof r.err === 'object'
        ? Object.fromEntries(Object.keys(r.err).map((k) => [k, String(r.err[k]).slice(0, 300)]))
        : {};
    out.exitCodeInError = /\b3\b/.test(msg) || Object.values(r.err ?? {}).some((v) => v === 3);
  } else {
    out.exitCodeInError = false;
  }
  // Does the pool keep working? Submit 10 more tasks.
  const after = await withTimeout(
    Promise.all(Array.from({ length: 10 }, (_, i) => pool.inc(i))),
    CRASH_TIMEOUT_MS,
  );
  out.afterOutcome = after.status;
  out.afterMs = after.ms;
  out.poolWorksAfter = after.status === 'resolved' && after.value.every((v, i) => v === i + 1);
  if (after.status === 'rejected') out.afterMessage = String(after.err?.message ?? after.err);
  // 4 concurrent 100 ms tasks on a healthy pool of 2 are served by 2 distinct workers.
  const who = await withTimeout(
    Promise.all([0, 1, 2, 3].map(() => pool.whoami(100))),
    CRASH_TIMEOUT_MS,
  );
  out.liveWorkersAfter = who.status === 'resolved' ? new Set(who.value).size : null;
  out.whoamiMs = who.ms;
  out.whoamiOutcome = who.status;
  return out;
}

// 1M tasks submitted at once (node --expose-gc): heap held per queued task, measured right after
// submitting (nothing has run yet: the loop is synchronous), then the time to drain them all.
async function scQueued(pool) {
  if (typeof globalThis.gc !== 'function') throw new Error('queued needs node --expose-gc');
  await warmup(pool);
  const n = N_QUEUED;
  const held = new Array(n);
  globalThis.gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) held[i] = pool.inc(i);
  globalThis.gc();
  const after = process.memoryUsage().heapUsed;
  // The caller's own array of n results is not the pool's: 8 bytes a slot.
  const bytesPerTask = (after - before - 8 * n) / n;
  const t0 = performance.now();
  let peak = after;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 50);
  const values = await Promise.all(held);
  clearInterval(sampler);
  const ms = performance.now() - t0;
  for (let i = 0; i < n; i += 9973) {
    if (values[i] !== i + 1) throw new Error(`wrong result at ${i}: ${values[i]}`);
  }
  return { queued: n, bytesPerTask, heapPeakMb: peak / 2 ** 20, drainMs: ms };
}

async function scMap(pool) {
  if (!pool.map) throw new Error('this library has no map()');
  await warmup(pool);
  const items = Array.from({ length: N_MAP_ITEMS }, (_, i) => i);
  const t0 = performance.now();
  const res = await pool.map(items);
  const ms = performance.now() - t0;
  if (res.length !== N_MAP_ITEMS) throw new Error(`map returned ${res.length} items`);
  for (let i = 0; i < N_MAP_ITEMS; i++) {
    if (res[i] !== i + 1) throw new Error(`wrong map result at ${i}: ${res[i]}`);
  }
  return { items: N_MAP_ITEMS, ms, itemsPerSec: N_MAP_ITEMS / (ms / 1000) };
}

// ---------------------------------------------------------------------------
async function main() {
  const { lib, scenario } = args;
  const mode = args.mode ?? 'thread';
  const version = lib === 'poolscope' ? poolscopeVersion() : anchorVersion(lib);
  const pool = await makePool(lib, mode);
  const workerFileName = lib === 'workerpool' ? 'wp-worker.mjs' : 'task.mjs';
  let res;
  if (scenario === 'throughput') res = await scThroughput(pool);
  else if (scenario === 'errors') res = await scErrors(pool, workerFileName);
  else if (scenario === 'errlat') res = await scErrLat(pool);
  else if (scenario === 'crash') res = await scCrash(pool);
  else if (scenario === 'map') res = await scMap(pool);
  else if (scenario === 'queued') res = await scQueued(pool);
  else throw new Error('unknown scenario ' + scenario);
  // A broken pool's teardown must not hang the run: record how it went.
  const t = await withTimeout(
    Promise.resolve().then(() => pool.destroy()),
    5000,
  );
  return {
    node: process.version,
    lib,
    version,
    mode,
    scenario,
    ...res,
    teardown: t.status,
    teardownMs: t.ms,
  };
}

main().then(
  (r) => {
    emit(r);
    process.exit(0);
  },
  (e) => {
    emit({ error: String(e?.stack ?? e) });
    process.exit(1);
  },
);
