// Tasks that fail in every way a pool sees, for the editor's views and the CLI: errors with a
// code, properties and a cause; a worker that exits mid-task; a shared counter the workers bump;
// a Process that ends with exit code 2. Each failure reaches its errorCallback whole.
// Run: node dist/cli/main.js run examples/failing-tasks.mjs   (or Poolscope: Run Current File)
import { Pool, Process, threads, workerModule } from './backend.mjs';

const { Value } = await import(threads ? 'poolscope/dummy' : 'poolscope');
const counter = new Value('i', 0);
const pool = new Pool({ module: workerModule, size: 2 });
const failures = [];
const errorCallback = (err) => failures.push(`${err.name}: ${err.message}`);

const roots = [4, -1, 9, -16, 25].map((x) =>
  pool.applyAsync('checkedSqrt', [x], { errorCallback }),
);
const records = ['{"id":1}', '{id:2}', '{"id":3}'].map((text) =>
  pool.applyAsync('parseRecord', [text, counter], { errorCallback }),
);
const crash = pool.applyAsync('exitWorker', [3], { errorCallback });
await Promise.allSettled([...roots, ...records, crash]);

const exporter = new Process({
  module: new URL('./workers/targets.mjs', import.meta.url),
  target: 'exits',
  args: [2],
  name: 'exporter',
});
exporter.start();
await exporter.join();
console.log(`process ${exporter.name} ended with exit code ${exporter.exitCode}`);
console.log(`records parsed by workers: ${counter.value}`);
console.log(`${failures.length} tasks failed:`);
for (const line of failures) console.log(`  ${line}`);
pool.close();
await pool.join();
