// Shared state, side by side with Python in one run: 1,000,000 locked increments of one shared
// integer from 2 workers (Poolscope processes and threads: `lock = v.getLock(); lock.acquire();
// v.value += 1; lock.release()`; Python: `with v.get_lock(): v.value += 1` in 2 processes),
// unlocked atomic adds (`v.add(1)`), and Python's Manager for scale. Medians of --reps runs, each
// in a fresh process; ratios printed.
//
// Before the timed run the two workers do 1% of the work on another Value, so that V8 has
// compiled the loop (Python, an interpreter, has nothing to warm up; its processes are started
// before its timing too). `--cold` skips that, for the number with compilation included.
//
// The "no addon" rows run the same loops with POOLSCOPE_SHARED_MEMORY=sab: worker processes then
// reach the Value through the main process's server thread (the fallback), every access a round
// trip, so they do `--fallback-total` increments (like Python's Manager, which is in the same
// league).
//
//   node bench/shared.mjs [--reps 3] [--total 1000000] [--fallback-total 4000] [--cold]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(new URL('..', import.meta.url).pathname);
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    total: { type: 'string', default: '1000000' },
    'fallback-total': { type: 'string', default: '4000' },
    cold: { type: 'boolean', default: false },
  },
});
const reps = Number(values.reps);
const warm = !values.cold;
const total = Number(values.total);
const fallbackTotal = Number(values['fallback-total']);
if (!existsSync(join(root, 'dist/core/index.js')))
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const script = `
  const { Pool, Value } = require(${JSON.stringify(join(root, 'dist/core/index.js'))});
  const [backend, fn, total, warm] = process.argv.slice(1);
  (async () => {
    const pool = new Pool({ module: ${JSON.stringify(join(root, 'bench/workers/shared-tasks.mjs'))}, size: 2, backend });
    await pool.map('atomicAdds', [1, 1], 1); // both workers up
    if (warm === 'warm') {
      const w = new Value('i', 0);
      await Promise.all([pool.apply(fn, [w, Number(total) / 200]), pool.apply(fn, [w, Number(total) / 200])]);
    }
    const v = new Value('i', 0);
    const t0 = performance.now();
    await Promise.all([pool.apply(fn, [v, Number(total) / 2]), pool.apply(fn, [v, Number(total) / 2])]);
    const seconds = (performance.now() - t0) / 1000;
    if (v.value !== Number(total)) throw new Error('lost updates: ' + v.value);
    console.log(JSON.stringify({ rate: Number(total) / seconds }));
    await pool.terminate();
  })();`;

function poolscope(backend, fn, fallback = false) {
  const n = fallback ? fallbackTotal : total;
  const args = ['-e', script, backend, fn, String(n), warm ? 'warm' : 'cold'];
  const out = execFileSync(process.execPath, args, {
    encoding: 'utf8',
    timeout: 300_000,
    env: fallback ? { ...process.env, POOLSCOPE_SHARED_MEMORY: 'sab' } : process.env,
  });
  return JSON.parse(out.trim().split('\n').pop()).rate;
}

const rows = {
  'Poolscope processes, locked': [],
  'Poolscope threads, locked': [],
  'Poolscope processes, atomic add': [],
  'Poolscope threads, atomic add': [],
  'Poolscope processes, locked, no addon (server-backed)': [],
  'Poolscope processes, atomic add, no addon (server-backed)': [],
  'Python Value + get_lock()': [],
  'Python Manager Value + Lock': [],
};
let pythonVersion = 'n/a';
for (let rep = 0; rep < reps; rep++) {
  rows['Poolscope processes, locked'].push(poolscope('process', 'lockedIncrements'));
  rows['Poolscope threads, locked'].push(poolscope('thread', 'lockedIncrements'));
  rows['Poolscope processes, atomic add'].push(poolscope('process', 'atomicAdds'));
  rows['Poolscope threads, atomic add'].push(poolscope('thread', 'atomicAdds'));
  rows['Poolscope processes, locked, no addon (server-backed)'].push(
    poolscope('process', 'lockedIncrements', true),
  );
  rows['Poolscope processes, atomic add, no addon (server-backed)'].push(
    poolscope('process', 'atomicAdds', true),
  );
  const py = spawnSync('python3', [join(root, 'bench/shared_py.py'), String(total), '20000'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (py.status === 0) {
    const r = JSON.parse(py.stdout.trim());
    rows['Python Value + get_lock()'].push(r.value_lock);
    rows['Python Manager Value + Lock'].push(r.manager);
    pythonVersion = r.python;
  }
}
console.log(
  `# Shared state: ${total.toLocaleString('en-US')} increments from 2 workers (median of ${reps}${warm ? '' : ', cold'})\n`,
);
console.log(
  `No addon rows: ${fallbackTotal.toLocaleString('en-US')} increments; Python's Manager: 20,000.\n`,
);
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(
  `Node ${process.version}, Python ${pythonVersion}, ${availableParallelism()} CPUs, load average ${load}, ${new Date().toISOString()}\n`,
);
console.log('| mechanism | increments/s | vs Python Value + get_lock() |');
console.log('|---|---:|---:|');
const python = rows['Python Value + get_lock()'].length
  ? median(rows['Python Value + get_lock()'])
  : NaN;
for (const [name, xs] of Object.entries(rows)) {
  if (!xs.length) continue;
  const m = median(xs);
  console.log(
    `| ${name} | ${Math.round(m).toLocaleString('en-US')} | ${(m / python).toFixed(2)}x |`,
  );
}
