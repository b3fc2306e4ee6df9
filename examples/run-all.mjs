// Runs every example, on processes and then on threads (`--threads`), and stops at the first
// one that fails.
import { spawnSync } from 'node:child_process';

const examples = [
  'apply-async-callbacks',
  'get-timeout',
  'worker-killed',
  'process-exit-code',
  'failing-tasks',
];
for (const flags of [[], ['--threads']]) {
  for (const name of examples) {
    console.log(`\n=== ${name}${flags.length ? ' --threads' : ''} ===`);
    const file = new URL(`./${name}.mjs`, import.meta.url).pathname;
    const run = spawnSync(process.execPath, [file, ...flags], {
      stdio: 'inherit',
      timeout: 60_000,
    });
    if (run.status !== 0) {
      console.error(`${name} failed (exit ${run.status ?? run.signal})`);
      process.exit(1);
    }
  }
}
