// Targets for the Process example: each ends in a different way.
export function works(name) {
  console.log(`  [${name}] hello from pid ${process.pid}`);
}

export function throws() {
  const err = new Error('the target gave up');
  err.code = 'E_GAVE_UP';
  throw err;
}

export function exits(code) {
  process.exit(code);
}

export async function hangs() {
  await new Promise(() => setInterval(() => {}, 1000));
}
