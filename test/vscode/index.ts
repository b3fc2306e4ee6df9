// The entry VS Code's extension host loads (extensionTestsPath): runs every *.test.js next to it
// with mocha and writes a JSON summary where the runner outside asked (POOLSCOPE_TEST_RESULTS).
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Mocha from 'mocha';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'tdd', color: false, timeout: 60_000 });
  const only = process.env.POOLSCOPE_VSCODE_GREP;
  if (only) mocha.grep(only);
  for (const f of readdirSync(__dirname).sort()) {
    if (f.endsWith('.test.js')) mocha.addFile(join(__dirname, f));
  }
  const results: { title: string; state: string; err?: string; ms?: number }[] = [];
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      const file = process.env.POOLSCOPE_TEST_RESULTS;
      if (file) {
        writeFileSync(
          file,
          JSON.stringify({ results, failures, host: { node: process.version, pid: process.pid } }),
        );
      }
      if (failures > 0) reject(new Error(`${failures} tests failed`));
      else resolve();
    });
    runner.on('pass', (t) =>
      results.push({ title: t.fullTitle(), state: 'passed', ms: t.duration }),
    );
    runner.on('fail', (t, err: Error) =>
      results.push({ title: t.fullTitle(), state: 'failed', err: String(err.stack ?? err) }),
    );
  });
}
