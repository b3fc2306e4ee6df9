// Runs the compiled tests with node's test runner, one file at a time (they spawn real workers
// on a 2-core machine), then checks that nothing they started is still running.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const list = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? list(join(dir, e.name))
      : e.name.endsWith('.test.js')
        ? [join(dir, e.name)]
        : [],
  );
const only = process.argv.slice(2);
const files = list(join(root, 'out/test'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort(
    (a, b) => Number(a.endsWith('leftovers.test.js')) - Number(b.endsWith('leftovers.test.js')),
  );
const run = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-timeout=120000', '--test-reporter=spec', ...files],
  { stdio: 'inherit', cwd: root },
);
process.exit(run.status ?? 1);
