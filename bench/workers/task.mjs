// Worker module shared by Poolscope (both backends), piscina and tinypool
// (thread and child_process runtimes). Plain ESM: each export is a task.
// Poolscope calls them by name (applyAsync('inc', [x])); piscina and tinypool
// select them with run(arg, { name }).

export function inc(x) {
  return x + 1;
}

export function fail(x) {
  const err = new Error('task failed: ' + x);
  err.code = 'E_CUSTOM';
  err.detail = { x };
  throw err;
}

export function crash() {
  // In a worker thread this ends only that thread (exit code 3);
  // in a child process it ends the child process.
  process.exit(3);
}

// Used after a crash to count how many distinct workers still serve tasks.
export async function whoami(ms) {
  const { threadId } = await import('node:worker_threads');
  await new Promise((r) => setTimeout(r, ms));
  return process.pid + ':' + threadId;
}

export default inc;
