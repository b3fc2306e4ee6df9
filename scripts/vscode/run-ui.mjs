// The person-like test: installs the packaged .vsix into a fresh code-server, then in headless
// Chromium opens the failing-tasks example, runs "Poolscope: Run Current File" from the command
// palette, opens the Poolscope container, expands the run, and checks what a person would read:
// a worker's exit code and a failed task's error. Screenshots go to test-artifacts/.
// usage: node scripts/vscode/run-ui.mjs <poolscope.vsix>      exit code 0 when all was seen
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  ensureHost,
  launchChromium,
  newScratch,
  removeScratch,
  ROOT,
  startCodeServer,
} from './host.mjs';
import { killLeftovers } from './leftovers.mjs';

const vsix = resolve(process.argv[2] ?? join(ROOT, 'poolscope.vsix'));
const ARTIFACTS = join(ROOT, 'test-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });
const t0 = Date.now();
const log = (...a) => console.log(`[ui ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const checks = [];
const check = (ok, what) => {
  checks.push({ ok, what });
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
};

ensureHost();
let cs;
let browser;
let page;
let failed = false;
try {
  cs = await startCodeServer({
    workspace: ROOT,
    vsix: [vsix],
    scratch: newScratch('ui'),
    // Keep the Poolscope views in the side bar when the debugger stops.
    settings: { 'debug.openDebug': 'neverOpen', 'debug.showInStatusBar': 'always' },
  });
  log(`code-server on ${cs.authority}, ${vsix} installed`);
  browser = await launchChromium(cs.tmp, cs.env);
  page = browser.pages()[0] ?? (await browser.newPage());
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  await page.goto(`http://${cs.authority}/?folder=${encodeURIComponent(ROOT)}`, {
    waitUntil: 'domcontentloaded',
  });
  await page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
  const container = page.locator('.activitybar [aria-label^="Poolscope"]').first();
  await container.waitFor({ timeout: 90_000 });
  log('workbench loaded; Poolscope container in the activity bar');

  const palette = async (text) => {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ timeout: 15_000 });
    await input.fill(text);
    await page.waitForTimeout(300);
    return input;
  };
  /** Runs a command from the palette, by its title. */
  const runCommand = async (title) => {
    await palette(`>${title}`);
    await page
      .locator('.quick-input-list .monaco-list-row', { hasText: title })
      .first()
      .waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
  };
  /** Opens a file by its path, as a person would: Quick Open, the path, Enter. */
  const openFile = async (path) => {
    const name = path.split('/').pop();
    const input = await palette(path);
    await input.fill(path);
    await page
      .locator('.quick-input-list .monaco-list-row', { hasText: name })
      .first()
      .waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
    await page.locator('.tab', { hasText: name }).first().waitFor({ timeout: 15_000 });
  };
  /** Folds (false) or unfolds (true) the side bar's views of these titles. */
  const setViews = async (titles, expanded) => {
    for (const title of titles) {
      const header = page.locator('.pane-header', { hasText: title }).first();
      if ((await header.getAttribute('aria-expanded')) !== String(expanded)) await header.click();
    }
  };
  /** The panel's webview frame, once its page has loaded. */
  const panelFrame = async () => {
    for (let i = 0; i < 150; i++) {
      for (const f of page.frames()) {
        try {
          if (await f.evaluate(() => Boolean(window.__poolscopePanel))) return f;
        } catch {
          // not ready or cross-origin
        }
      }
      await page.waitForTimeout(200);
    }
    throw new Error('the panel webview did not load');
  };
  // Open the example as a person would: Quick Open, type the path, Enter.
  await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } });
  await openFile('examples/failing-tasks.mjs');
  log('example open in the editor');
  // Nothing has run yet: the Runs view welcomes with a Run Current File button.
  await container.click();
  const welcome = page
    .locator('.pane-body .welcome-view-content', { hasText: 'No runs yet' })
    .first();
  await welcome.waitFor({ timeout: 15_000 });
  check(
    (await welcome.locator('a, .monaco-button', { hasText: 'Run Current File' }).count()) > 0,
    'the empty Runs view offers Run Current File',
  );
  await page.screenshot({ path: join(ARTIFACTS, 'ui-0-welcome.png') });

  await runCommand('Poolscope: Run Current File');
  log('ran Poolscope: Run Current File');

  // Show the Poolscope container unless it is showing (a click on its icon would hide it).
  if (!(await page.locator('.pane-header', { hasText: 'Runs' }).first().isVisible())) {
    await container.click();
  }
  const runRow = page
    .locator('.pane-body .monaco-list-row', { hasText: /failing-tasks\.mjs #1/ })
    .first();
  await runRow.waitFor({ timeout: 30_000 });
  await page
    .locator('.pane-body .monaco-list-row', { hasText: /exit 0/ })
    .first()
    .waitFor({ timeout: 60_000 });
  log('run finished');
  // Room to read: a wider side bar (drag its edge), and the other views folded.
  const sidebar = await page.locator('.part.sidebar').boundingBox();
  const sashes = page.locator('.monaco-sash.vertical');
  for (let i = 0; sidebar && i < (await sashes.count()); i++) {
    const box = await sashes.nth(i).boundingBox();
    if (!box || Math.abs(box.x + box.width / 2 - (sidebar.x + sidebar.width)) > 6) continue;
    const x = box.x + box.width / 2;
    const y = box.y + box.height / 2;
    await page.mouse.move(x, y);
    await page.mouse.down();
    await page.mouse.move(x + 300, y, { steps: 10 });
    await page.mouse.up();
    break;
  }
  await setViews(['Errors', 'Shared Memory', 'Processes'], false);
  // The run and pool rows start expanded; the worker that died is a row with its exit code.
  const workerRow = page
    .locator('.pane-body .monaco-list-row', { hasText: /exited, code 3/ })
    .first();
  await workerRow.waitFor({ timeout: 15_000 });
  const workerText = (await workerRow.innerText()).replace(/\s+/g, ' ');
  check(
    /worker \d+\s*pid \d+ · exited, code 3/.test(workerText),
    `worker row shows its exit code: "${workerText}"`,
  );
  await page.screenshot({ path: join(ARTIFACTS, 'ui-1-runs-tree.png') });

  // Expand a worker that ran the failing square roots, then the failed task.
  const workers = page.locator('.pane-body .monaco-list-row', { hasText: /worker \d+/ });
  for (let i = 0; i < (await workers.count()); i++) {
    const row = workers.nth(i);
    if ((await row.getAttribute('aria-expanded')) === 'false') await row.click();
  }
  const taskRow = page
    .locator('.pane-body .monaco-list-row', { hasText: 'checkedSqrt(-16)' })
    .first();
  await taskRow.waitFor({ timeout: 15_000 });
  await taskRow.click();
  const taskText = (await taskRow.innerText()).replace(/\s+/g, ' ');
  check(
    /failed · .*RangeError: cannot take the square root of -16/.test(taskText),
    `failed task shows its error: "${taskText}"`,
  );
  const codeRow = page.locator('.pane-body .monaco-list-row', { hasText: 'E_NEGATIVE' }).first();
  await codeRow.waitFor({ timeout: 15_000 });
  check(true, 'the failed task expands to its error code E_NEGATIVE');
  await page.screenshot({ path: join(ARTIFACTS, 'ui-2-failed-task.png') });

  // The Errors view lists the groups.
  const errorsHeader = page.locator('.pane-header', { hasText: 'Errors' }).first();
  if ((await errorsHeader.getAttribute('aria-expanded')) === 'false') await errorsHeader.click();
  const group = page
    .locator('.pane-body .monaco-list-row', { hasText: 'TypeError: record' })
    .first();
  await group.waitFor({ timeout: 15_000 });
  check(true, 'the Errors view groups the TypeError');
  const statusText = await page
    .locator('.statusbar-item', { hasText: 'failed' })
    .first()
    .innerText();
  check(/0 running · 4 failed/.test(statusText), `status bar: "${statusText.trim()}"`);
  await page.screenshot({ path: join(ARTIFACTS, 'ui-3-errors-view.png') });

  // Shared Memory and Processes, with Runs and Errors folded.
  await setViews(['Runs', 'Errors'], false);
  await setViews(['Shared Memory', 'Processes'], true);
  const value = page.locator('.pane-body .monaco-list-row', { hasText: "Value('i')" }).first();
  await value.waitFor({ timeout: 15_000 });
  const valueText = await value.locator('.label-description').first().innerText();
  check(
    /^3 · \d+ contended$/.test(valueText.trim()),
    `shared counter Value('i') = "${valueText.trim()}"`,
  );
  const exporter = page.locator('.pane-body .monaco-list-row', { hasText: 'exporter' }).first();
  await exporter.waitFor({ timeout: 15_000 });
  const exporterText = (await exporter.innerText()).replace(/\s+/g, ' ');
  check(/exit code 2/.test(exporterText), `Process row: "${exporterText}"`);
  await page.screenshot({ path: join(ARTIFACTS, 'ui-4-shared-processes.png') });

  // The concurrency panel: palette → Open Panel; the timeline fills in; click the failed task's
  // bar; the error inspector shows its error.
  await runCommand('Poolscope: Open Panel');
  const frame = await panelFrame();
  const stats = await frame.evaluate(async () => {
    for (let i = 0; i < 100; i++) {
      const s = window.__poolscopePanel.stats();
      const drawn = s.lanes.reduce((n, l) => n + l.visible, 0);
      if (s.bars >= 9 && drawn >= 9) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    return window.__poolscopePanel.stats();
  });
  const drawn = stats.lanes.reduce((n, l) => n + l.visible, 0);
  check(
    stats.bars === 9 && drawn === 9,
    `timeline: ${stats.lanes.length} lanes, ${drawn} of ${stats.bars} bars drawn`,
  );
  const exits = stats.lanes.map((l) => l.exit).filter(Boolean);
  check(
    exits.some((e) => /exit 3/.test(e)),
    `timeline marks the worker exit: ${exits.join(', ')}`,
  );
  await page.screenshot({ path: join(ARTIFACTS, 'ui-5-panel-timeline.png') });
  const pool = stats.lanes[0]?.pool;
  if (!pool) throw new Error('the timeline drew no lanes');
  // The bars of a 3-second run are a few pixels wide: zoom in with the wheel over the bar, as a
  // person would, then click it where it is on the page (the webview's iframes offset it).
  const frameBox = await (await frame.frameElement()).boundingBox();
  const barOnPage = async () => {
    const b = await frame.evaluate((ref) => window.__poolscopePanel.barBox(ref), { pool, task: 4 });
    if (!b) throw new Error('no bar for task #4 (checkedSqrt(-16)) on the timeline');
    return { ...b, x: frameBox.x + b.pageX + b.w / 2, y: frameBox.y + b.pageY + b.h / 2 };
  };
  let bar = await barOnPage();
  for (let i = 0; i < 30 && bar.w < 12; i++) {
    await page.mouse.move(bar.x, bar.y);
    await page.mouse.wheel(0, -400);
    await page.waitForTimeout(60);
    bar = await barOnPage();
  }
  await page.mouse.click(bar.x, bar.y);
  const inspector = frame.locator('.inspector');
  await inspector
    .getByText('cannot take the square root of -16')
    .first()
    .waitFor({ timeout: 10_000 });
  const inspected = (await inspector.innerText()).replace(/\s+/g, ' ');
  check(
    /RangeError/.test(inspected) && /E_NEGATIVE/.test(inspected),
    'clicking the failed bar shows RangeError E_NEGATIVE in the error inspector',
  );
  const treeSelected = await page
    .locator('.pane-body .monaco-list-row.selected', { hasText: 'checkedSqrt(-16)' })
    .first()
    .waitFor({ timeout: 10_000 })
    .then(
      () => true,
      () => false,
    );
  check(treeSelected, "the Runs tree follows the panel's selection");
  await page.screenshot({ path: join(ARTIFACTS, 'ui-6-panel-error.png') });

  // Debugging: a breakpoint in the worker's checkedSqrt (F9), F5 on the example, choose the
  // Poolscope debugger; the worker stops there while the Runs view shows the run going.
  await openFile('examples/workers/tasks.mjs');
  await page.waitForTimeout(500);
  await page.keyboard.press('Control+G');
  await page.waitForTimeout(300);
  await page.keyboard.type('11');
  await page.waitForTimeout(300);
  await page.keyboard.press('Enter');
  await page.waitForTimeout(300);
  await page.keyboard.press('F9');
  await page.locator('.codicon-debug-breakpoint').first().waitFor({ timeout: 10_000 });
  await page.locator('.tab', { hasText: 'failing-tasks.mjs' }).first().click();
  await page.keyboard.press('F5');
  const picker = page
    .locator('.quick-input-list .monaco-list-row', { hasText: 'Poolscope' })
    .first();
  await picker.waitFor({ timeout: 15_000 });
  await picker.click();
  await page
    .locator('.debug-top-stack-frame-column, .debug-top-stack-frame')
    .first()
    .waitFor({ timeout: 60_000 });
  await page.waitForTimeout(800);
  const pausedIn = (await page.locator('.tab.active', { hasText: 'tasks.mjs' }).count()) > 0;
  check(pausedIn, 'the debugger stopped in the worker module tasks.mjs');
  // Fold the first run so the debugged one is in view in the Runs pane.
  const runsPane = page.locator('.pane', {
    has: page.locator('.pane-header', { hasText: 'Runs' }),
  });
  const firstRun = runsPane
    .locator('.monaco-list-row', { hasText: /failing-tasks\.mjs #1/ })
    .first();
  if ((await firstRun.getAttribute('aria-expanded')) === 'true') {
    // After the tree followed the panel's selection down to a task, the run's row may be
    // scrolled up under the pane header, shown only as a sticky-scroll row: click that one.
    const sticky = runsPane
      .locator('.monaco-tree-sticky-row', { hasText: /failing-tasks\.mjs #1/ })
      .first();
    const target = (await sticky.count()) > 0 ? sticky : firstRun;
    await target.locator('.monaco-tl-twistie').click();
  }
  const debugRun = runsPane
    .locator('.monaco-list-row', { hasText: /failing-tasks\.mjs #2/ })
    .first();
  await debugRun.waitFor({ timeout: 15_000 });
  const debugText = (await debugRun.innerText()).replace(/\s+/g, ' ');
  check(/running/.test(debugText), `the Runs view shows the debugged run going: "${debugText}"`);
  await page.screenshot({ path: join(ARTIFACTS, 'ui-7-debug-paused-worker.png') });
  // Continue to the end: the run completes in the tree.
  await page.keyboard.press('F5');
  await page.waitForTimeout(500);
  await page.keyboard.press('F5');
  await page
    .locator('.pane-body .monaco-list-row', { hasText: /failing-tasks\.mjs #2.*exit 0/ })
    .first()
    .waitFor({ timeout: 60_000 })
    .catch(async () => {
      await page.keyboard.press('Shift+F5');
    });

  // An unmodified Python multiprocessing program, run the same way: its pool, a worker's
  // exception with its attributes, in the Runs view.
  // The debugged run ends first (continued above, or stopped with Shift+F5 a moment ago), so
  // that Clear Finished Runs leaves the Python run alone in the view.
  const stillRunning = runsPane.locator('.monaco-list-row', {
    hasText: /failing-tasks\.mjs #2.*running/,
  });
  for (let i = 0; i < 150 && (await stillRunning.count()) > 0; i++) await page.waitForTimeout(200);
  await runCommand('Poolscope: Clear Finished Runs');
  // Should it still be there, fold it: its rows would push the Python run's out of the list.
  // (The view refreshes a moment after the command: the row may be going as it is clicked.)
  await page.waitForTimeout(500);
  const debugged = runsPane.locator('.monaco-list-row', { hasText: /failing-tasks\.mjs #2/ });
  if ((await debugged.count()) > 0) {
    const row = debugged.first();
    if ((await row.getAttribute('aria-expanded').catch(() => null)) === 'true')
      await row
        .locator('.monaco-tl-twistie')
        .click({ timeout: 2000 })
        .catch(() => {});
  }
  await openFile('examples/python/pool_errors.py');
  await runCommand('Poolscope: Run Current File');
  log('ran examples/python/pool_errors.py');
  await setViews(['Errors', 'Shared Memory', 'Processes'], false);
  await setViews(['Runs'], true);
  const pyRun = runsPane.locator('.monaco-list-row', { hasText: /pool_errors\.py #\d+/ }).first();
  await pyRun.waitFor({ timeout: 30_000 });
  await runsPane
    .locator('.monaco-list-row', { hasText: /pool_errors\.py #\d+.*exit 0/ })
    .first()
    .waitFor({ timeout: 60_000 });
  const pyPool = runsPane
    .locator('.monaco-list-row', { hasText: /Pool \d+:1\s*process × 2 · 26 passed · 4 failed/ })
    .first();
  const pyPoolSeen = await pyPool.waitFor({ timeout: 15_000 }).then(
    () => true,
    () => false,
  );
  const shownRows = (await runsPane.locator('.monaco-list-row').allInnerTexts()).map((t) =>
    t.replace(/\s+/g, ' '),
  );
  check(
    pyPoolSeen,
    `the Python pool's row says 26 passed · 4 failed (rows: ${shownRows.slice(0, 4).join(' | ')})`,
  );
  const pyWorkers = runsPane.locator('.monaco-list-row', { hasText: /worker \d+/ });
  for (let i = 0; i < (await pyWorkers.count()); i++) {
    const row = pyWorkers.nth(i);
    if ((await row.getAttribute('aria-expanded')) === 'false') await row.click();
  }
  const pyTask = runsPane.locator('.monaco-list-row', { hasText: 'QuotaError' }).first();
  await pyTask.waitFor({ timeout: 15_000 });
  await pyTask.click();
  const pyTaskText = (await pyTask.innerText()).replace(/\s+/g, ' ');
  check(
    /failed · .*QuotaError: quota exceeded for task \d+/.test(pyTaskText),
    `the Python task's row shows the worker's exception: "${pyTaskText}"`,
  );
  await runsPane
    .locator('.monaco-list-row', { hasText: 'user' })
    .first()
    .waitFor({ timeout: 15_000 });
  check(true, "the Python task expands to the exception's attributes (user)");
  await page.screenshot({ path: join(ARTIFACTS, 'ui-8-python-run.png') });
  // The panel shows the active run, the Python one now: its tasks on its workers' lanes.
  await runCommand('Poolscope: Open Panel');
  const pyFrame = await panelFrame();
  const pyStats = await pyFrame.evaluate(async () => {
    for (let i = 0; i < 100; i++) {
      const s = window.__poolscopePanel.stats();
      if (s.bars >= 30) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    return window.__poolscopePanel.stats();
  });
  check(
    pyStats.bars === 30 && pyStats.lanes.length >= 2,
    `the panel shows the Python run: ${pyStats.lanes.length} lanes, ${pyStats.bars} bars`,
  );
  await page.screenshot({ path: join(ARTIFACTS, 'ui-9-python-panel.png') });
  writeFileSync(join(ARTIFACTS, 'ui-console.log'), consoleLines.join('\n'));
} catch (err) {
  failed = true;
  log('ERROR', err.stack ?? err);
  await page?.screenshot({ path: join(ARTIFACTS, 'ui-error.png') }).catch(() => {});
} finally {
  await browser?.close().catch(() => {});
  await cs?.stop();
  const left = cs ? await killLeftovers(cs.tmp) : [];
  if (left.length > 0) {
    failed = true;
    console.log(`ui: ${left.length} processes were left behind (now killed)`);
  }
  if (cs) removeScratch(cs.tmp, failed);
}
const ok = !failed && checks.length > 0 && checks.every((c) => c.ok);
console.log(
  `ui: ${checks.filter((c) => c.ok).length} passed, ${checks.filter((c) => !c.ok).length + (failed ? 1 : 0)} failed; screenshots in ${ARTIFACTS}`,
);
process.exit(ok ? 0 : 1);
