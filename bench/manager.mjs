// The Manager, side by side with Python's multiprocessing Manager in one run: awaited single
// calls (Value get), locked increments through a manager Lock (acquire, get, set, release: four
// awaited calls each) from 2 processes and from 2 threads, Poolscope's atomic `Value.add` from 2
// processes, and calls pipelined many in flight. Rows marked "socket only" turn the shared-memory
// lane off (POOLSCOPE_MANAGER_LANE=0), to show what it brings. Medians of --reps runs, each in a fresh process.
//
//   node bench/manager.mjs [--reps 3] [--total 10000] [--pipelined 1000000]
//
// This file is also the worker module of its own pools (it exports the task functions).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';

const here = fileURLToPath(import.meta.url);
const root = resolve(here, '..', '..');

// ---- Tasks, run in the pools' workers

export async function lockedIncrements(v, lock, times) {
  for (let i = 0; i < times; i++) {
    await lock.acquire();
    await v.set((await v.get()) + 1);
    await lock.release();
  }
}

export async function atomicAdds(v, times) {
  for (let i = 0; i < times; i++) await v.add(1);
}

// ---- One measurement, in a fresh process: prints {"rate": ...}

async function measure(scenario, total) {
  const { Manager, Pool } = createRequire(import.meta.url)(join(root, 'dist/core/index.js'));
  const m = await Manager.start();
  const v = await m.Value('i', 0);
  const lock = await m.Lock();
  let seconds;
  if (scenario === 'get') {
    // Warm-up, as on Python's side: 1,000 calls (Node's JIT compiles the path meanwhile).
    for (let i = 0; i < 1000; i++) await v.get();
    const t0 = performance.now();
    for (let i = 0; i < total; i++) await v.get();
    seconds = (performance.now() - t0) / 1000;
  } else if (scenario === 'pipelined') {
    const window = 1000;
    const t0 = performance.now();
    for (let done = 0; done < total; done += window) {
      const calls = new Array(window);
      for (let i = 0; i < window; i++) calls[i] = v.add(1);
      await Promise.all(calls);
    }
    seconds = (performance.now() - t0) / 1000;
    if ((await v.get()) !== total) throw new Error('lost updates');
  } else {
    const [fn, backend] = scenario.split(':');
    const pool = new Pool({ module: here, size: 2, backend });
    // Warm-up: both workers up and connected to the manager.
    const warm = await m.Value('i', 0);
    await Promise.all([pool.apply('atomicAdds', [warm, 10]), pool.apply('atomicAdds', [warm, 10])]);
    const args = fn === 'lockedIncrements' ? [v, lock, total / 2] : [v, total / 2];
    const t0 = performance.now();
    await Promise.all([pool.apply(fn, args), pool.apply(fn, args)]);
    seconds = (performance.now() - t0) / 1000;
    await pool.terminate();
    if ((await v.get()) !== total) throw new Error(`lost updates: ${await v.get()}`);
  }
  await m.stop();
  console.log(JSON.stringify({ rate: total / seconds }));
}

// ---- The side-by-side run

async function main() {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' },
      total: { type: 'string', default: '10000' },
      pipelined: { type: 'string', default: '1000000' },
      measure: { type: 'string' },
    },
  });
  const total = Number(values.total);
  if (values.measure) return measure(values.measure, total);
  const reps = Number(values.reps);
  if (!existsSync(join(root, 'dist/core/index.js')))
    execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const poolscope = (scenario, n, env) => {
    const out = execFileSync(
      process.execPath,
      [here, '--measure', scenario, '--total', String(n)],
      { encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...env } },
    );
    return JSON.parse(out.trim().split('\n').pop()).rate;
  };
  const rows = [
    // [label, unit, Poolscope scenario, count, Python key to compare with, env]
    ['awaited Value get, 1 client', 'calls/s', 'get', total, 'get'],
    [
      'awaited Value get, 1 client, socket only (no lane)',
      'calls/s',
      'get',
      total,
      'get',
      { POOLSCOPE_MANAGER_LANE: '0' },
    ],
    [
      'locked increments, 2 processes',
      'increments/s',
      'lockedIncrements:process',
      total,
      'locked_processes',
    ],
    [
      'locked increments, 2 processes, socket only (no lane)',
      'increments/s',
      'lockedIncrements:process',
      total,
      'locked_processes',
      { POOLSCOPE_MANAGER_LANE: '0' },
    ],
    [
      'locked increments, 2 threads',
      'increments/s',
      'lockedIncrements:thread',
      total,
      'locked_threads',
    ],
    [
      'Value.add (atomic), 2 processes',
      'increments/s',
      'atomicAdds:process',
      total,
      'locked_processes',
    ],
    [
      'pipelined Value.add, 1,000 in flight',
      'calls/s',
      'pipelined',
      Number(values.pipelined),
      'get',
    ],
  ];
  const ours = rows.map(() => []);
  const python = {};
  let pythonVersion = 'n/a';
  for (let rep = 0; rep < reps; rep++) {
    rows.forEach(([, , scenario, n, , env], i) => ours[i].push(poolscope(scenario, n, env)));
    const py = spawnSync('python3', [join(root, 'bench/manager_py.py'), String(total)], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (py.status === 0) {
      const r = JSON.parse(py.stdout.trim());
      pythonVersion = r.python;
      for (const key of ['get', 'locked_processes', 'locked_threads'])
        (python[key] ??= []).push(r[key]);
    } else {
      process.stderr.write(`python3 bench/manager_py.py failed:\n${py.stderr}\n`);
    }
  }
  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  console.log(`# Manager: Poolscope vs Python's multiprocessing Manager (median of ${reps})\n`);
  console.log(`Node ${process.version}, Python ${pythonVersion}, ${new Date().toISOString()}`);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`${availableParallelism()} CPUs, load average ${load} at the end\n`);
  console.log('| operation | Poolscope | Python | Poolscope / Python |');
  console.log('|---|---:|---:|---:|');
  const pyLabel = {
    get: 'awaited `v.value`',
    locked_processes: '`with lock: v.value += 1`, 2 processes',
    locked_threads: '`with lock: v.value += 1`, 2 threads',
  };
  rows.forEach(([label, unit, , , key], i) => {
    const mine = median(ours[i]);
    const theirs = python[key] ? median(python[key]) : NaN;
    console.log(
      `| ${label} | ${fmt(mine)} ${unit} | ${Number.isNaN(theirs) ? 'n/a' : `${fmt(theirs)} (${pyLabel[key]})`} | ${(mine / theirs).toFixed(2)}x |`,
    );
  });
}

// A worker thread sees the main program's argv: only the main thread runs the benchmark.
if (process.argv[1] === here && isMainThread) await main();
