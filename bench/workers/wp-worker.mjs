// The same task functions for workerpool (workerType 'thread' and 'process'),
// registered with workerpool.worker(). workerpool is installed in the bench's
// scratch dir, not in the repository, so it is resolved from there
// (BENCH_ANCHORS_DIR is set by bench/run.mjs and inherited by the workers).
import { createRequire } from 'node:module';
import path from 'node:path';

const anchors = process.env.BENCH_ANCHORS_DIR;
if (!anchors) throw new Error('BENCH_ANCHORS_DIR is not set (run through bench/run.mjs)');
const workerpool = createRequire(path.join(anchors, 'package.json'))('workerpool');

function inc(x) {
  return x + 1;
}

function fail(x) {
  const err = new Error('task failed: ' + x);
  err.code = 'E_CUSTOM';
  err.detail = { x };
  throw err;
}

function crash() {
  process.exit(3);
}

async function whoami(ms) {
  const { threadId } = await import('node:worker_threads');
  await new Promise((r) => setTimeout(r, ms));
  return process.pid + ':' + threadId;
}

workerpool.worker({ inc, fail, crash, whoami });
