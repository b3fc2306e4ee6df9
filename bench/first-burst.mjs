// Where the first burst's time goes: V8's heap sizing at start, and Node flags that change it.
//
//   node bench/first-burst.mjs [--reps 5] [--tasks 20000] [--bursts 3] [--backends thread,process]
//
// bench/run.mjs times the first 20k-task burst after a 200-task warm-up, in a fresh process: the
// pool's code is still being compiled, and the heap still has the sizes V8 starts with. The young
// generation starts small and grows as the burst's tasks survive, and the old generation's first
// limit (about 15 MB here) is reached during that burst, so it holds V8's first full (mark-compact)
// collection. This script runs the same burst (then --bursts - 1 more in the same process) under
// Node flags that size the heap up front, in fresh processes, interleaved:
//   (none)                        what run.mjs measures
//   --min-semi-space-size=16      the young generation starts at its largest (16 MB), not at 1 MB
//   --initial-old-space-size=64   the first full collection comes later (not in the first burst)
//   both
// It prints each variant's first-burst and steady tasks/s with the ratio to no flags, and what the
// main thread's collections took in the first burst (PerformanceObserver 'gc': how many full and
// minor ones, and their pauses). Only the program's own flags change; the library does not and
// cannot set them (V8 sizes the heap when the process starts).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { median, runBurst, scratchDir, writeBurstChild } from './lib/burst.mjs';

const root = resolve(new URL('..', import.meta.url).pathname);
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    tasks: { type: 'string', default: '20000' },
    bursts: { type: 'string', default: '3' },
    backends: { type: 'string', default: 'thread,process' },
  },
});
const reps = Number(values.reps);
const tasks = Number(values.tasks);
const bursts = Number(values.bursts);
if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer');
if (!Number.isInteger(tasks) || tasks < 1) throw new Error('--tasks must be a positive integer');
if (!Number.isInteger(bursts) || bursts < 2) throw new Error('--bursts must be an integer >= 2');
if (!existsSync(join(root, 'dist/core/index.js')))
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });

const child = writeBurstChild(scratchDir(), join(root, 'bench/workers/task.mjs'));
const dist = join(root, 'dist');

const variants = [
  { name: '(none)', flags: [] },
  { name: '--min-semi-space-size=16', flags: ['--min-semi-space-size=16'] },
  { name: '--initial-old-space-size=64', flags: ['--initial-old-space-size=64'] },
  { name: 'both', flags: ['--min-semi-space-size=16', '--initial-old-space-size=64'] },
];

console.log(
  `# The first burst and V8's heap sizing: ${tasks} tasks submitted at once, 2 workers, median of ${reps} processes\n`,
);
console.log(
  `First burst: the first ${tasks} after a 200-task warm-up (what bench/run.mjs times). Steady: ` +
    `the median of the ${bursts - 1} after it. GC: the main thread's collections during the ` +
    `first burst (medians): full (mark-compact) and minor (scavenge), count and pause.\n`,
);
console.log(
  '| backend | node flags | first burst tasks/s | range | vs none | full GCs | full ms | minor GCs | minor ms | steady tasks/s | vs none |',
);
console.log('|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
for (const backend of values.backends.split(',')) {
  const runs = new Map(variants.map((v) => [v.name, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const v of variants) {
      process.stderr.write(`${backend} ${v.name} ${rep + 1}/${reps}\n`);
      runs
        .get(v.name)
        .push(await runBurst(child, { dist, backend, tasks, bursts, flags: v.flags }));
    }
  }
  const base = runs.get('(none)');
  for (const v of variants) {
    const rs = runs.get(v.name);
    const m = (key) => median(rs.map((r) => r[key]));
    const firsts = rs.map((r) => r.first);
    const fmt = (x) => Math.round(x).toLocaleString('en-US');
    const ratio = (key) => (m(key) / median(base.map((r) => r[key]))).toFixed(2);
    console.log(
      `| ${backend} | ${v.name} | ${fmt(m('first'))} | ${fmt(Math.min(...firsts))}–${fmt(Math.max(...firsts))} | ${ratio('first')}x | ` +
        `${m('major')} | ${m('majorMs').toFixed(1)} | ${m('minor')} | ${m('minorMs').toFixed(1)} | ${fmt(m('steady'))} | ${ratio('steady')}x |`,
    );
  }
}
