// A pool with enough work to watch: 3,000 items, some failing, and one worker killed midway.
// Run it through the CLI to see it live: node dist/cli/main.js run examples/live-demo.mjs
import { Pool, threads, workerModule } from './backend.mjs';

const pool = new Pool({ module: workerModule, size: 4 });
const items = Array.from({ length: 3000 }, (_, i) => i + 1);
let failed = 0;
const results = items.map((item) =>
  pool.applyAsync('processItem', [item], { errorCallback: () => failed++ }),
);
setTimeout(() => pool.applyAsync('exitWorker', [3]), 400);
await Promise.allSettled(results);
console.log(
  `processed ${items.length} items on ${threads ? 'threads' : 'processes'}: ${failed} failed`,
);
pool.close();
await pool.join();
