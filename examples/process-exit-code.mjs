// Process, as Python's multiprocessing.Process: start, join, and the exit code that tells how it
// ended: 0 returned, 1 threw (the error arrives whole), n from process.exit(n), -N killed by signal N.
import { Process, threads } from './backend.mjs';

const module = new URL('./workers/targets.mjs', import.meta.url);
// [target, args, how long to wait for it]
const cases = [
  ['works', ['worker'], 10_000],
  ['throws', [], 10_000],
  ['exits', [7], 10_000],
  ['hangs', [], 500],
];
for (const [target, args, waitMs] of cases) {
  const p = new Process({ module, target, args });
  p.start();
  await p.join(waitMs);
  if (p.isAlive()) {
    console.log(`${target}: still alive after join(${waitMs}), killing it`);
    p.kill();
    await p.join();
  }
  const how = p.error ? ` error=${p.error.name}(${p.error.code}): ${p.error.message}` : '';
  console.log(`${target}: exitCode=${p.exitCode} signal=${p.signal}${how}`);
}
if (threads) console.log('(threads cannot be signalled: kill() stops the thread and reports -9)');
