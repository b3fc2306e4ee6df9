// Runs the compiled tests with node's test runner, one file at a time (they spawn real workers
// on a 2-core machine). The no-leftovers check runs in a second pass, after everything else
// (node's runner orders the files it is given), and a last line sums up both passes.
import { spawn } from 'node:child_process';
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
// out/test/vscode holds the suites that run inside VS Code (scripts/vscode/run-suite.mjs).
const files = list(join(root, 'out/test'))
  .filter((f) => !f.includes('/out/test/vscode/'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
const last = files.filter((f) => f.endsWith('leftovers.test.js'));
const first = files.filter((f) => !last.includes(f));

function runPass(passFiles) {
  return new Promise((resolve) => {
    if (passFiles.length === 0) {
      resolve({ status: 0, pass: 0, fail: 0 });
      return;
    }
    const child = spawn(
      process.execPath,
      [
        '--test',
        '--test-concurrency=1',
        '--test-timeout=120000',
        '--test-reporter=spec',
        ...passFiles,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], cwd: root },
    );
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      process.stdout.write(chunk);
    });
    child.on('close', (status) => {
      const count = (label) => Number(new RegExp(`ℹ ${label} (\\d+)`).exec(out)?.[1] ?? 0);
      resolve({
        status: status ?? 1,
        pass: count('pass'),
        fail: count('fail') + count('cancelled'),
      });
    });
  });
}

const a = await runPass(first);
const b = await runPass(last);
console.log(`\ntests: ${a.pass + b.pass} passed, ${a.fail + b.fail} failed`);
process.exit(a.status !== 0 || b.status !== 0 ? 1 : 0);
