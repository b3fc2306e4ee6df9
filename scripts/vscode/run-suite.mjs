// Runs the mocha suite in out/test/vscode inside a real VS Code extension host (code-server),
// with this repository as the development extension and as the workspace.
// usage: node scripts/vscode/run-suite.mjs [grep]      exit code: 0 when every test passed
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ensureHost,
  launchChromium,
  newScratch,
  removeScratch,
  ROOT,
  startCodeServer,
} from './host.mjs';
import { killLeftovers } from './leftovers.mjs';

const TIMEOUT_MS = Number(process.env.POOLSCOPE_VSCODE_TIMEOUT_MS ?? 300_000);
const t0 = Date.now();
const log = (...a) => console.log(`[vscode ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

ensureHost();
const tests = join(ROOT, 'out/test/vscode/index.js');
if (!existsSync(tests) || !existsSync(join(ROOT, 'dist/extension/extension.js'))) {
  console.error('build first: npm run build');
  process.exit(2);
}
let exitCode = 1;
let cs;
let browser;
try {
  const scratch = newScratch('suite');
  const results = join(scratch, 'results.json');
  // The extension host inherits code-server's environment: this is how the suite reports back.
  process.env.POOLSCOPE_TEST_RESULTS = results;
  cs = await startCodeServer({
    workspace: ROOT,
    scratch,
    extraArgs: ['--vscode-option', 'enable-smoke-test-driver'],
  });
  log(`code-server on ${cs.authority} (pid ${cs.server.pid})`);
  const payload = [
    ['extensionDevelopmentPath', `vscode-remote://${cs.authority}${ROOT}`],
    ['extensionTestsPath', `vscode-remote://${cs.authority}${tests.replace(/\.js$/, '')}`],
    ['skipWelcome', 'true'],
  ];
  const url = `http://${cs.authority}/?folder=${encodeURIComponent(ROOT)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  browser = await launchChromium(cs.tmp, cs.env);
  const page = browser.pages()[0] ?? (await browser.newPage());
  const done = new Promise((resolve) =>
    page.exposeFunction('codeAutomationExit', (code) => resolve(code)),
  );
  page.on('console', (m) => {
    const t = m.text();
    if (/poolscope-test|\b\d+ (passing|failing|passed|failed)\b/.test(t))
      log('[ext host]', t.slice(0, 400));
  });
  await page.goto(url);
  const code = await Promise.race([
    done,
    new Promise((r) => setTimeout(() => r('timeout'), TIMEOUT_MS)),
  ]);
  if (code === 'timeout') {
    await page.screenshot({ path: join(cs.tmp, 'timeout.png') }).catch(() => {});
    log(`timed out after ${TIMEOUT_MS} ms`);
  }
  if (existsSync(results)) {
    const r = JSON.parse(readFileSync(results, 'utf8'));
    for (const t of r.results) {
      console.log(
        `  ${t.state === 'passed' ? 'ok  ' : 'FAIL'} ${t.title}${t.ms ? ` (${t.ms} ms)` : ''}`,
      );
      if (t.err) console.log(t.err.replace(/^/gm, '       '));
    }
    const passed = r.results.filter((t) => t.state === 'passed').length;
    console.log(
      `vscode: ${passed} passed, ${r.failures} failed (extension host: node ${r.host.node})`,
    );
    exitCode = code === 0 && r.failures === 0 && passed > 0 ? 0 : 1;
  } else {
    log('no results: the suite did not run; see', join(cs.tmp, 'server.log'));
  }
} catch (err) {
  log('ERROR', err.stack ?? err);
} finally {
  // End VS Code the hard way, as a crash would: no deactivate. The suite's last test leaves a
  // run going; the kernel's parent-death signal must end it and its workers.
  cs?.crash();
  await browser?.close().catch(() => {});
  const left = cs ? await killLeftovers(cs.tmp) : [];
  if (left.length > 0) {
    console.log(`vscode: ${left.length} processes were left behind (now killed):`);
    for (const p of left) console.log(`  ${p.pid} ${p.cmd.slice(0, 200)}`);
    exitCode = 1;
  }
  if (cs) {
    // On failure keep the server log and profile for a look; the cache folder is git-ignored.
    removeScratch(cs.tmp, exitCode !== 0);
  }
}
process.exit(exitCode);
