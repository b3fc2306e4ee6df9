// What the Python tap costs an unmodified multiprocessing program: the same script run by
// `python3` alone and by `poolscope run` (the tap, the trace socket, the Store and the CLI's
// summary), interleaved, each run a fresh process; medians and ratios printed.
//
//   node bench/python-tap.mjs [--reps 5] [--tasks 20000]
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(new URL('..', import.meta.url).pathname);
const { values } = parseArgs({
  options: { reps: { type: 'string', default: '5' }, tasks: { type: 'string', default: '20000' } },
});
const reps = Number(values.reps);
if (!existsSync(join(root, 'dist/cli/main.js')))
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')]);
const script = join(root, 'bench/python/burst.py');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function once(kind, tapped) {
  const argv = tapped
    ? [
        process.execPath,
        [join(root, 'dist/cli/main.js'), 'run', '--no-live', script, kind, values.tasks],
      ]
    : ['python3', [script, kind, values.tasks]];
  const out = execFileSync(argv[0], argv[1], { encoding: 'utf8', cwd: root });
  const m = /RATE \S+ apply (\d+)\/s map (\d+) items\/s/.exec(out);
  if (!m) throw new Error(`no RATE line in:\n${out}`);
  return { apply: Number(m[1]), map: Number(m[2]) };
}

console.log(
  `# The Python tap's cost: ${values.tasks} apply_async at once, and map over 1,000,000 items, ` +
    `2 workers, median of ${reps} processes\n`,
);
console.log(
  '| pool | python3 apply/s | poolscope run apply/s | ratio | python3 map items/s | poolscope run map items/s | ratio |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const kind of ['process', 'thread']) {
  const plain = [];
  const tapped = [];
  for (let rep = 0; rep < reps; rep++) {
    plain.push(once(kind, false));
    tapped.push(once(kind, true));
  }
  const cell = (xs, key) => median(xs.map((r) => r[key]));
  const row = ['apply', 'map'].flatMap((key) => {
    const a = cell(plain, key);
    const b = cell(tapped, key);
    return [a.toLocaleString('en-US'), b.toLocaleString('en-US'), `${(b / a).toFixed(2)}x`];
  });
  console.log(`| ${kind === 'process' ? 'Pool' : 'ThreadPool'} | ${row.join(' | ')} |`);
}
