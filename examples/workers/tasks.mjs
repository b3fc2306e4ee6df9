// The worker module for the examples: every export is a task function the pool can run.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function square(x) {
  return x * x;
}

/** Fails for negative input, with a code and details the caller gets back intact. */
export function checkedSqrt(x) {
  if (x < 0) {
    const err = new RangeError(`cannot take the square root of ${x}`);
    err.code = 'E_NEGATIVE';
    err.detail = { input: x, hint: 'pass a number >= 0' };
    throw err;
  }
  return Math.sqrt(x);
}

export async function slowSquare(x, ms) {
  await sleep(ms);
  return x * x;
}

export async function longJob(ms) {
  await sleep(ms);
  return 'finished';
}

export async function whereAmI() {
  const { threadId } = await import('node:worker_threads');
  return { pid: process.pid, threadId };
}

/** Ends the worker it runs in, as a crashing native module or a stray process.exit would. */
export function exitWorker(code) {
  process.exit(code);
}

/** A small piece of work that fails now and then, for the live-view demo. */
export async function processItem(item) {
  await sleep(item % 7);
  if (item % 97 === 0) {
    const err = new Error(`item ${item} is corrupt`);
    err.code = 'E_CORRUPT';
    err.item = { id: item, checksum: item * 31 };
    throw err;
  }
  return item * 2;
}

/** Reads a record; a bad one fails with the low-level error as its cause. */
export function parseRecord(text, counter) {
  counter?.add(1);
  try {
    return JSON.parse(text);
  } catch (cause) {
    const err = new TypeError(`record ${JSON.stringify(text)} is not valid JSON`, { cause });
    err.code = 'E_BAD_RECORD';
    throw err;
  }
}
