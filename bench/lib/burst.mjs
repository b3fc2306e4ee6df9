// Bursts in a fresh process, for trace.mjs and first-burst.mjs: a Poolscope pool runs the
// warm-up run.mjs does (200 tasks), then `bursts` times `tasks` applyAsync at once, back to back.
// The child prints one JSON line: each burst's tasks/s, the CPU its process used per task (all
// its threads: the main thread, V8's, and thread workers; not the workers of the process
// backend), and the main thread's garbage collections during the first burst.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A scratch directory removed when this process exits. */
export function scratchDir() {
  const dir = mkdtempSync(join(tmpdir(), 'poolscope-bench-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes the child script into `dir`; `taskModule` is the worker module's path. */
export function writeBurstChild(dir, taskModule) {
  const file = join(dir, 'burst.cjs');
  writeFileSync(
    file,
    `const { PerformanceObserver, constants } = require('node:perf_hooks');
     const [dist, backend, n, bursts] = process.argv.slice(2);
     const { Pool } = require(dist + '/core/index.js');
     const gcs = [];
     new PerformanceObserver((list) => {
       for (const e of list.getEntries()) gcs.push([e.startTime, e.duration, e.detail.kind]);
     }).observe({ entryTypes: ['gc'] });
     const pool = new Pool({ module: ${JSON.stringify(taskModule)}, size: 2, backend });
     (async () => {
       await Promise.all(Array.from({ length: 200 }, (_, i) => pool.applyAsync('inc', [i])));
       const rates = [];
       const cpu = [];
       let first;
       for (let b = 0; b < Number(bursts); b++) {
         const t0 = performance.now();
         const c0 = process.cpuUsage();
         const results = [];
         for (let i = 0; i < Number(n); i++) results.push(pool.applyAsync('inc', [i]));
         await Promise.all(results);
         const t1 = performance.now();
         const c = process.cpuUsage(c0);
         rates.push(Number(n) / ((t1 - t0) / 1000));
         cpu.push((c.user + c.system) / Number(n));
         if (b === 0) first = [t0, t1];
       }
       await pool.terminate();
       // Entries arrive after the collections: wait a turn, then keep the first burst's.
       await new Promise((r) => setImmediate(r));
       const inFirst = gcs.filter(([at]) => at >= first[0] && at < first[1]);
       const of = (kind) => inFirst.filter((g) => g[2] === kind);
       const sum = (xs) => xs.reduce((s, g) => s + g[1], 0);
       const major = of(constants.NODE_PERFORMANCE_GC_MAJOR);
       const minor = of(constants.NODE_PERFORMANCE_GC_MINOR);
       console.log('BURSTS ' + JSON.stringify({ rates, cpu, major: major.length,
         majorMs: sum(major), minor: minor.length, minorMs: sum(minor) }));
     })();`,
  );
  return file;
}

/**
 * Runs the child once: `dist` is the build to load, `flags` Node's own, `env` added to this
 * process's. Resolves to the child's figures, with `first` and `steady` (the median of the bursts
 * after the first) tasks/s and `cpuFirst`, `cpuSteady` µs a task.
 */
export function runBurst(child, { dist, backend, tasks, bursts, env = {}, flags = [] }) {
  return new Promise((resolveRun, reject) => {
    const proc = spawn(
      process.execPath,
      [...flags, child, dist, backend, String(tasks), String(bursts)],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.on('close', (code) => {
      const line = /BURSTS (.+)/.exec(out);
      if (code !== 0 || !line) {
        reject(new Error(`burst failed (${code}): ${out}`));
        return;
      }
      const r = JSON.parse(line[1]);
      resolveRun({
        ...r,
        first: r.rates[0],
        steady: median(r.rates.slice(1)),
        cpuFirst: r.cpu[0],
        cpuSteady: median(r.cpu.slice(1)),
      });
    });
  });
}
