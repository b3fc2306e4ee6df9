// The seed's first case: applyAsync with a callback and an errorCallback, some tasks failing.
// Every failure reaches errorCallback as the worker's own error: class, message, code, details.
import { Pool, threads, workerModule } from './backend.mjs';

const pool = new Pool({ module: workerModule, size: 2 });
console.log(`pool of ${pool.size} ${threads ? 'threads' : 'processes'}`);

const results = [];
for (const x of [16, -4, 81, -1, 9]) {
  results.push(
    pool.applyAsync('checkedSqrt', [x], {
      callback: (value) => console.log(`callback: sqrt(${x}) = ${value}`),
      errorCallback: (err) =>
        console.log(
          `errorCallback: ${err.name} ${err.code}: ${err.message} detail=${JSON.stringify(err.detail)}`,
        ),
    }),
  );
}
await Promise.allSettled(results);
console.log(`succeeded: ${results.filter((r) => r.successful()).length} of ${results.length}`);

pool.close();
await pool.join();
