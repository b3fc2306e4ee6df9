// The examples run on processes by default; `--threads` switches them to threads with one import,
// as `multiprocessing.dummy` does in Python.
export const threads = process.argv.includes('--threads');
export const { Pool, Process, WorkerExitError, TimeoutError, Manager } = await import(
  threads ? 'poolscope/dummy' : 'poolscope'
);
export const workerModule = new URL('./workers/tasks.mjs', import.meta.url);
