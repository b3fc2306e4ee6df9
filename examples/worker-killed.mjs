// A worker dying mid-task. Python's Pool would wait forever here (cpython gh-66587); this pool
// rejects the task with a WorkerExitError that says which worker died and how, calls the
// errorCallback, and starts a replacement.
import { Pool, WorkerExitError, threads, workerModule } from './backend.mjs';

const pool = new Pool({ module: workerModule, size: 1 });
const report = (err) => {
  if (!(err instanceof WorkerExitError)) throw err;
  console.log(`  rejected: ${err.message}`);
  console.log(`  exitCode=${err.exitCode} signal=${err.signal} reason=${err.reason}`);
};

if (!threads) {
  console.log('a worker process killed with SIGKILL from outside:');
  const { pid } = await pool.apply('whereAmI');
  const job = pool.applyAsync('longJob', [60_000], {
    errorCallback: (err) => console.log(`  errorCallback: ${err.name}`),
  });
  setTimeout(() => process.kill(pid, 'SIGKILL'), 200);
  await job.then(() => console.log('  (unexpected) finished'), report);
}

console.log('a task that ends its worker with process.exit(3):');
await pool.apply('exitWorker', [3]).then(() => console.log('  (unexpected) finished'), report);

const { pid, threadId } = await pool.apply('whereAmI');
console.log(
  `the pool has ${pool.stats().workers} worker again (${threads ? `thread ${threadId}` : `pid ${pid}`}) and serves:`,
);
console.log(`  square(7) = ${await pool.apply('square', [7])}`);
pool.close();
await pool.join();
