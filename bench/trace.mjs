// What tracing costs, and how big a trace the Store replays.
//
//   node bench/trace.mjs [--reps 5] [--tasks 20000] [--bursts 4] [--events 1000000]
//                        [--baseline DIST] [--baseline-sinks] [--skip overhead,replay]
//                        [--backends thread,process]
//
// 1. Emitter overhead: 20k tasks submitted at once (thread and process backends) with no sink,
//    with a file sink, and with a live socket sink whose lines a Store in this process consumes.
//    Each process runs --bursts bursts back to back after a 200-task warm-up: the first burst
//    (code still being compiled: what bench/run.mjs measures) and the median of the others (the
//    steady state, the warm-up excluded) are reported apart.
//    With --baseline DIST (a dist/ built from an older commit), also that build with no sink,
//    and with --baseline-sinks that build with each sink too (its ratios against its own no-sink
//    runs), so that before and after are measured interleaved on a noisy machine.
//    Each measurement is a fresh process; repetitions interleaved; medians and ratios printed.
// 2. Replay: a real trace of about --events events is recorded (a thread pool running small
//    tasks with a file sink), then `poolscope show` replays it; wall time and peak RSS printed.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { median, runBurst, scratchDir, writeBurstChild } from './lib/burst.mjs';

const root = resolve(new URL('..', import.meta.url).pathname);
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    tasks: { type: 'string', default: '20000' },
    events: { type: 'string', default: '1000000' },
    baseline: { type: 'string' },
    'baseline-sinks': { type: 'boolean', default: false },
    bursts: { type: 'string', default: '4' },
    backends: { type: 'string', default: 'thread,process' },
    skip: { type: 'string', default: '' },
  },
});
const reps = Number(values.reps);
const tasks = Number(values.tasks);
const bursts = Number(values.bursts);
if (!Number.isInteger(bursts) || bursts < 2) throw new Error('--bursts must be an integer >= 2');
if (!existsSync(join(root, 'dist/core/index.js')))
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')]);
const { TraceServer } = await import(join(root, 'dist/core/trace/server.js'));
const { Store } = await import(join(root, 'dist/core/trace/store.js'));

const scratch = scratchDir();
const burstChild = writeBurstChild(scratch, join(root, 'bench/workers/task.mjs'));

const dist = join(root, 'dist');
const variants = [
  { name: 'no sink', dist, sink: 'none' },
  { name: 'file sink', dist, sink: 'file' },
  { name: 'socket sink + Store', dist, sink: 'socket' },
];
if (values.baseline) {
  const old = resolve(values.baseline);
  variants.push({ name: 'baseline build, no sink', dist: old, sink: 'none', base: 'baseline' });
  if (values['baseline-sinks']) {
    variants.push({ name: 'baseline build, file sink', dist: old, sink: 'file', base: 'baseline' });
    variants.push({
      name: 'baseline build, socket sink + Store',
      dist: old,
      sink: 'socket',
      base: 'baseline',
    });
  }
}

if (!values.skip.includes('overhead')) {
  console.log(
    `# Tracing overhead: ${tasks} tasks submitted at once, 2 workers, median of ${reps} processes\n`,
  );
  console.log(
    `First burst: the first ${tasks} after a 200-task warm-up (code still compiling). Steady: ` +
      `the median of the ${bursts - 1} bursts after it in the same process.\n`,
  );
  console.log(
    '| backend | variant | first burst tasks/s | range | vs no sink | steady tasks/s | range | vs no sink |',
  );
  console.log('|---|---|---:|---|---:|---:|---|---:|');
  const cpuTables = [];
  for (const backend of values.backends.split(',')) {
    const rates = new Map(variants.map((v) => [v.name, []]));
    for (let rep = 0; rep < reps; rep++) {
      for (const v of variants) {
        let env = {};
        let server;
        let store;
        if (v.sink === 'file')
          env = { POOLSCOPE_TRACE: `file:${join(scratch, `t-${rep}.jsonl`)}`, POOLSCOPE_RUN: 'b' };
        if (v.sink === 'socket') {
          store = new Store();
          server = await TraceServer.start({ run: 'b', onLine: (l) => store.applyLine(l) });
          env = server.env;
        }
        // This process's CPU meanwhile: spawning the child, and for the socket sink, the server
        // and the Store reading it (the consumer).
        const c0 = process.cpuUsage();
        const run = await runBurst(burstChild, { dist: v.dist, backend, tasks, bursts, env });
        if (server) {
          await server.close();
          const pool = [...store.runs.get('b').pools.values()][0];
          if (pool.counts.passed !== tasks * bursts + 200)
            throw new Error(`the Store saw ${pool.counts.passed} tasks`);
        }
        const used = process.cpuUsage(c0);
        run.parent = (used.user + used.system) / (tasks * bursts + 200);
        rates.get(v.name).push(run);
        rmSync(join(scratch, `t-${rep}.jsonl`), { force: true });
      }
    }
    for (const v of variants) {
      // A baseline build's sinks against its own no-sink runs; its no-sink runs against ours.
      const against =
        v.base === 'baseline' && v.sink !== 'none' ? 'baseline build, no sink' : 'no sink';
      const cells = ['first', 'steady'].map((which) => {
        const base = median(rates.get(against).map((r) => r[which]));
        const xs = rates.get(v.name).map((r) => r[which]);
        const m = median(xs);
        const range = `${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))}`;
        return `${Math.round(m).toLocaleString('en-US')} | ${range} | ${(m / base).toFixed(2)}x`;
      });
      console.log(`| ${backend} | ${v.name} | ${cells.join(' | ')} |`);
    }
    cpuTables.push({ backend, rates });
  }
  // CPU is steadier than throughput on a noisy machine: what tracing adds per task, where.
  console.log(
    `\nCPU per task, µs (medians): the program's process (all its threads; with the process ` +
      `backend, not its workers), and this process reading the trace (the consumer: the socket's ` +
      `server and the Store, less what it spends on a run without a sink).\n`,
  );
  console.log(
    '| backend | variant | program, first burst | added | program, steady | added | consumer |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const { backend, rates } of cpuTables) {
    for (const v of variants) {
      const against =
        v.base === 'baseline' && v.sink !== 'none' ? 'baseline build, no sink' : 'no sink';
      const m = (name, key) => median(rates.get(name).map((r) => r[key]));
      const cell = (key) =>
        `${m(v.name, key).toFixed(2)} | ${(m(v.name, key) - m(against, key)).toFixed(2)}`;
      const consumer =
        v.sink === 'socket' ? (m(v.name, 'parent') - m(against, 'parent')).toFixed(2) : '–';
      console.log(
        `| ${backend} | ${v.name} | ${cell('cpuFirst')} | ${cell('cpuSteady')} | ${consumer} |`,
      );
    }
  }
}

if (!values.skip.includes('replay')) {
  const wanted = Number(values.events);
  const trace = join(scratch, 'big.jsonl');
  const n = Math.ceil(wanted / 3);
  const recorder = join(scratch, 'record.cjs');
  writeFileSync(
    recorder,
    `const { Pool } = require(${JSON.stringify(join(dist, 'core/index.js'))});
     const pool = new Pool({ module: ${JSON.stringify(join(root, 'bench/workers/task.mjs'))}, size: 2, backend: 'thread' });
     (async () => {
       for (let done = 0; done < ${n}; done += 50000) {
         const batch = [];
         for (let i = 0; i < Math.min(50000, ${n} - done); i++) batch.push(pool.applyAsync('inc', [i]));
         await Promise.all(batch);
       }
       await pool.terminate();
     })();`,
  );
  execFileSync(process.execPath, [recorder], {
    env: { ...process.env, POOLSCOPE_TRACE: `file:${trace}`, POOLSCOPE_RUN: 'replay' },
    stdio: 'inherit',
  });
  // Events as the Store counts them: a `tasks` line stands for many.
  const { expandEvent } = await import(join(dist, 'core/trace/task-batch.js'));
  const lines = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const events = lines.reduce((n, l) => n + expandEvent(JSON.parse(l)).length, 0);
  const size = statSync(trace).size;
  const t0 = performance.now();
  const shown = spawnSync(
    '/usr/bin/time',
    ['-f', 'peak RSS %M KB', process.execPath, join(dist, 'cli/main.js'), 'show', trace],
    {
      encoding: 'utf8',
    },
  );
  const ms = performance.now() - t0;
  const out = `${shown.stdout}\n${shown.stderr}`;
  console.log(`\n# Replay: poolscope show on a recorded trace\n`);
  console.log(
    `- events: ${events.toLocaleString('en-US')} in ${lines.length.toLocaleString('en-US')} lines (${(size / 1e6).toFixed(1)} MB, ${n.toLocaleString('en-US')} tasks)`,
  );
  console.log(
    `- wall time: ${(ms / 1000).toFixed(2)} s (${Math.round(events / (ms / 1000)).toLocaleString('en-US')} events/s)`,
  );
  console.log(`\n${out.trim()}`);
}
