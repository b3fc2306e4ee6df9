// The seed's shared-memory example, in TypeScript: Value, Array (of chars and of a Point struct)
// and a Lock, created here, modified by a Process, read back here.
//   node --import ./dist/cli/register.mjs examples/seed-shared.ts --threads
// (or: node dist/cli/main.js run examples/seed-shared.ts --threads)
// On processes (no --threads) it uses the shared-memory addon; without it (or with
// POOLSCOPE_SHARED_MEMORY=sab) the slower server-backed fallback, and prints the same.
/* eslint-disable @typescript-eslint/no-array-constructor -- `Array` is Poolscope's shared Array, named as in the seed */
const threads = process.argv.includes('--threads');
const { Array, Lock, Process, Struct, Value, c_double } = (await import(
  threads ? 'poolscope/dummy' : 'poolscope'
)) as typeof import('poolscope');

const Point = Struct('Point', { x: 'd', y: 'd' });

const lock = new Lock();
const n = new Value('i', 7);
const x = new Value(c_double, 1.0 / 3.0, { lock: false });
const s = new Array('c', 'hello world', { lock });
const A = new Array<{ x: number; y: number }>(
  Point,
  [
    [1.875, -6.25],
    [-5.75, 2.0],
    [2.375, 9.5],
  ],
  { lock },
);

const p = new Process({
  module: new URL('./workers/seed.ts', import.meta.url),
  target: 'modify',
  args: [n, x, s, A],
});
p.start();
await p.join();
if (p.exitCode !== 0) throw p.error ?? new Error(`the process exited with code ${p.exitCode}`);

/** Python's repr of a float: integral values keep their ".0". */
const py = (v: number): string => (Number.isInteger(v) ? v.toFixed(1) : String(v));

console.log('Ounput:');
console.log(n.value);
console.log(x.value);
console.log(s.value);
console.log(`[${[...A].map((a) => `(${py(a.x)}, ${py(a.y)})`).join(', ')}]`);
