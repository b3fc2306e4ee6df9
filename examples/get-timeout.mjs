// AsyncResult.get(timeout), as in Python: a TimeoutError while the task keeps running,
// then the value once it is there.
import { Pool, TimeoutError, workerModule } from './backend.mjs';

const pool = new Pool({ module: workerModule, size: 1 });
const result = pool.applyAsync('slowSquare', [12, 500]);
try {
  await result.get(100);
} catch (err) {
  console.log(
    `get(100): ${err instanceof TimeoutError ? 'TimeoutError' : err.name}: ${err.message}`,
  );
}
console.log(`ready() = ${result.ready()}`);
console.log(`get() = ${await result.get()}`);
console.log(`ready() = ${result.ready()}, successful() = ${result.successful()}`);
pool.close();
await pool.join();
