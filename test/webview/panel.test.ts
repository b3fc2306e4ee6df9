/**
 * The panel's UI in headless Chromium, on the exact page the extension serves (strict CSP),
 * fed with snapshots and deltas built by the host's feed from recorded traces.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import type { ErrorInfo } from '../../core/trace/protocol';
import type { PanelRun, PanelViewState } from '../../webview/protocol';
import {
  artifacts,
  feedOf,
  frames,
  hook,
  posted,
  send,
  setTheme,
  snapshotMsg,
  startHarness,
  type Harness,
} from './harness';

let harness: Harness;
before(async () => {
  harness = await startHarness();
});
after(async () => {
  await harness?.close();
});

const failing = (): PanelRun => feedOf('failing-tasks.jsonl').feed.snapshot();
const POOL = '11158:1';

async function openWith(run: PanelRun, opts?: Parameters<Harness['open']>[0]): Promise<Page> {
  const page = await harness.open(opts);
  await send(page, snapshotMsg(run));
  await frames(page);
  return page;
}

/** Started bars per worker, from the Store's own table. */
function barsPerWorker(name: string): Map<number, number> {
  const { model } = feedOf(name);
  const out = new Map<number, number>();
  for (const pool of model.pools.values()) {
    const b = pool.bars!;
    for (let r = 0; r < b.length; r++)
      if (!Number.isNaN(b.start[r]!)) out.set(b.worker[r]!, (out.get(b.worker[r]!) ?? 0) + 1);
  }
  return out;
}

/** Zooms the timeline onto a task of failing-tasks.jsonl (its bar a third of the width). */
async function showTask(page: Page, task: number): Promise<void> {
  const b = feedOf('failing-tasks.jsonl').model.pools.get(POOL)!.bars!;
  let r = 0;
  while (b.task[r] !== task) r++;
  const dur = b.end[r]! - b.start[r]!;
  await hook(page, 'setView', { from: b.start[r]! - dur, to: b.end[r]! + dur });
  await frames(page);
}

async function clickBar(page: Page, task: number): Promise<void> {
  const box = await hook(page, 'barBox', { pool: POOL, task });
  assert.ok(box, `task ${task} has a bar`);
  await page.mouse.click(box.pageX + Math.max(box.w / 2, 0.5), box.pageY + box.h / 2);
}

describe('timeline', () => {
  it('draws one lane per worker and every bar of the trace', async () => {
    for (const name of ['failing-tasks.jsonl', 'live-demo.jsonl']) {
      const page = await openWith(feedOf(name).feed.snapshot());
      const stats = await hook(page, 'stats');
      const expected = barsPerWorker(name);
      const { model } = feedOf(name);
      const workers = [...model.pools.values()].flatMap((p) => [...p.workers.keys()]);
      assert.deepEqual(
        stats.lanes.map((l) => l.worker),
        workers.sort((a, b) => a - b),
        `${name}: one lane per worker`,
      );
      for (const lane of stats.lanes) {
        assert.equal(
          lane.visible,
          expected.get(lane.worker) ?? 0,
          `${name}: worker ${lane.worker}`,
        );
        assert.ok(lane.drawn <= Math.max(lane.visible, 0));
        assert.match(lane.label, /^w\d+ · pid \d+$/);
      }
      const errs = (page as Page & { panelErrors?: string[] }).panelErrors;
      assert.deepEqual(errs, [], 'no errors on the page');
      await page.close();
    }
  });

  it('marks worker exits with code and signal, and callbacks', async () => {
    const page = await openWith(failing());
    const stats = await hook(page, 'stats');
    assert.deepEqual(
      stats.lanes.map((l) => [l.worker, l.exit]),
      [
        [1, 'exit 0'],
        [2, 'exit 3 (crash)'],
        [3, 'exit 0'],
      ],
    );
    const { model } = feedOf('failing-tasks.jsonl');
    const kinds = new Set(model.marks.map((m) => m.kind));
    assert.ok(kinds.has('errorCallback'));
    for (const k of kinds) assert.ok((stats.marks[k] ?? 0) > 0, `${k} marks drawn`);
    await page.close();
  });

  it("colours a failed task's bar red and a passed one green", async () => {
    const page = await openWith(failing());
    const px = async (task: number): Promise<number[]> => {
      await showTask(page, task);
      const box = (await hook(page, 'barBox', { pool: POOL, task }))!;
      return hook(page, 'pixel', box.x + box.w / 2, box.y + box.h / 2);
    };
    const [r, g, b] = await px(2); // RangeError
    assert.ok(r! > 180 && g! < 120 && b! < 120, `failed bar is red: ${[r, g, b]}`);
    const done = feedOf('failing-tasks.jsonl').model.pools.get(POOL)!.bars!;
    let passed = -1;
    for (let i = 0; i < done.length; i++) if (done.state[i] === 2) passed = done.task[i]!;
    const [r2, g2] = await px(passed);
    assert.ok(g2! > 150 && r2! < 150, `passed bar is green: ${[r2, g2]}`);
    await page.close();
  });
});

describe('selection', () => {
  it('clicking a bar posts select; a select from the host highlights and shows it', async () => {
    const page = await openWith(failing());
    await showTask(page, 7);
    const box = (await hook(page, 'barBox', { pool: POOL, task: 7 }))!;
    await page.mouse.move(box.pageX + box.w / 2, box.pageY + box.h / 2);
    const tip = page.locator('.tooltip');
    await tip.waitFor({ state: 'visible' });
    assert.match(await tip.innerText(), /Task 7 · parseRecord · failed[\s\S]*TypeError/);
    await clickBar(page, 7);
    const sent = (await posted(page)).filter((m) => m.type === 'select');
    assert.deepEqual(sent.at(-1), { type: 'select', ref: { pool: POOL, task: 7 } });
    assert.match(await page.locator('.inspector').innerText(), /TypeError/);
    assert.deepEqual((await hook(page, 'stats')).selected, { pool: POOL, task: 7 });

    await send(page, { type: 'select', ref: { pool: POOL, task: 4 } });
    await frames(page);
    assert.deepEqual((await hook(page, 'stats')).selected, { pool: POOL, task: 4 });
    assert.match(await page.locator('.inspector').innerText(), /square root of -16/);
    const after = (await posted(page)).filter((m) => m.type === 'select');
    assert.equal(after.length, sent.length, 'a host selection is not echoed back');
    await page.close();
  });

  it('keyboard: arrows move between lanes and tasks, Enter selects', async () => {
    const page = await openWith(failing());
    await page.locator('.timeline canvas').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Shift+ArrowRight');
    await page.keyboard.press('Enter');
    const sel = (await posted(page)).filter((m) => m.type === 'select').at(-1);
    assert.ok(sel && (sel.ref as { pool: string }).pool === POOL, JSON.stringify(sel));
    await page.close();
  });
});

/** The recorded task-2 error, made to carry every part an error can have. */
function structured(run: PanelRun): PanelRun {
  const e = run.errors.find((x) => x.task === 2)!;
  const member = (name: string, message: string): ErrorInfo => ({
    thrown: 'error',
    name,
    message,
    frames: [],
    props: {},
  });
  e.error = {
    ...e.error,
    code: 'E_NEGATIVE',
    props: {
      ...e.error.props,
      big: { $bigint: '10' },
      missing: { $undefined: true },
      nested: { level1: { level2: 'deep value' } },
    },
    errors: [member('TypeError', 'first member'), member('RangeError', 'second member')],
    cause: {
      ...member('Error', 'the outer cause'),
      cause: member('SyntaxError', 'the root cause'),
    },
  };
  return run;
}

describe('error inspector', () => {
  it('shows name, message, code, properties, cause chain, members, where it was thrown, frames', async () => {
    const page = await openWith(structured(failing()));
    await send(page, { type: 'select', ref: { pool: POOL, task: 2 } });
    const ins = page.locator('.inspector');
    const text = await ins.innerText();
    assert.match(text, /RangeError: cannot take the square root of -1/);
    assert.match(text, /code\s+E_NEGATIVE/);
    assert.match(text, /big: 10n/);
    assert.match(text, /missing: undefined/);
    assert.match(text, /hint: "pass a number >= 0"/);
    // Nested deeper than the first level: expand it.
    await ins.locator('summary', { hasText: /^level1:/ }).click();
    assert.match(await ins.innerText(), /level2: "deep value"/);
    assert.match(
      text,
      /Caused by[\s\S]*the outer cause[\s\S]*Caused by[\s\S]*SyntaxError: the root cause/,
    );
    assert.match(
      text,
      /Errors \(2\)[\s\S]*TypeError: first member[\s\S]*RangeError: second member/,
    );
    assert.match(text, /worker\s+2 \(pid 11209\)/);
    assert.match(text, /Task 2/);
    const frame = ins.locator('button.frame').first();
    assert.match(await frame.innerText(), /checkedSqrt/);
    await frame.click();
    assert.deepEqual((await posted(page)).at(-1), {
      type: 'openFrame',
      file: 'file:///work/main/examples/workers/tasks.mjs',
      line: 11,
      column: 17,
    });
    await page.close();
  });

  it('lists errors, searchable by text; picking one selects its task', async () => {
    const page = await openWith(failing());
    await page.locator('#tab-errors').click();
    const items = page.locator('.error-list li');
    assert.equal(await items.count(), 4);
    await page.locator('input[type=search]').fill('json');
    await page.waitForFunction(() => document.querySelectorAll('.error-list li').length === 1);
    await items.first().click();
    assert.match(
      await page.locator('.inspector').innerText(),
      /not valid JSON[\s\S]*Caused by[\s\S]*SyntaxError/,
    );
    assert.deepEqual((await posted(page)).at(-1), { type: 'select', ref: { pool: POOL, task: 7 } });
    // The timeline follows the text search: only task 7's lane has a bar.
    const lanes = (await hook(page, 'stats')).lanes;
    assert.equal(
      lanes.reduce((n, l) => n + l.visible, 0),
      1,
    );
    await page.close();
  });
});

describe('security', () => {
  it("renders the program's data as text: markup in messages and properties stays inert", async () => {
    const img = '<img src=x onerror=window.__pwned=1>';
    const script = '<script>window.__pwned=2</script>';
    const run = failing();
    for (const e of run.errors) {
      e.error.name = `${script}Error`;
      e.error.message = `${img} ${script}`;
      e.error.props = { [img]: script, [script]: { [img]: img }, code: img };
      e.error.frames = [{ raw: img, file: img, line: 1, fn: script }, { raw: `at ${script}` }];
      e.error.cause = { thrown: 'error', name: img, message: script, frames: [], props: {} };
      e.fn = img;
    }
    run.pools[0]!.fns = run.pools[0]!.fns.map(() => img);
    const page = await openWith(run, { width: 1200, height: 900 });
    await send(page, { type: 'select', ref: { pool: POOL, task: 2 } });
    await page.locator('.inspector summary').first().click(); // expand and collapse trees
    await page.locator('#tab-errors').click();
    await page.locator('.error-list li').first().click();
    await page.evaluate(() => {
      for (const d of Array.from(document.querySelectorAll('details'))) d.open = true;
    });
    await page.locator('#tab-summary').click();
    await page.waitForTimeout(200);
    const found = await page.evaluate(() => ({
      pwned: (window as unknown as { __pwned?: unknown }).__pwned,
      imgs: document.querySelectorAll('img').length,
      scripts: document.querySelectorAll('script').length,
      text: document.body.innerText,
    }));
    assert.equal(found.pwned, undefined);
    assert.equal(found.imgs, 0, 'no <img> from data');
    assert.equal(found.scripts, 1, "only the panel's own script");
    await page.locator('#tab-errors').click();
    const shown = await page.locator('.inspector').innerText();
    assert.ok(shown.includes(img), 'the markup is shown as text');
    assert.ok(shown.includes(script));
    await page.close();
  });
});

describe('deltas', () => {
  it('a snapshot then deltas equal one snapshot of the whole run', async () => {
    const name = 'live-demo.jsonl';
    const { store, feed, all } = feedOf(name, 2000);
    const live = await openWith(feed.snapshot());
    for (let at = 2000; at < all.length; at += 700) {
      for (const l of all.slice(at, at + 700)) store.applyLine(l);
      const d = feed.delta();
      if (d) await send(live, { type: 'delta', delta: d });
    }
    const whole = await openWith(feedOf(name).feed.snapshot());
    await hook(live, 'fit');
    await frames(live);
    await frames(whole);
    const a = await hook(live, 'stats');
    const b = await hook(whole, 'stats');
    assert.equal(a.bars, b.bars);
    assert.equal(a.bars, 3001);
    assert.equal(a.errors, b.errors);
    assert.deepEqual(
      a.lanes.map((l) => [l.worker, l.visible]),
      b.lanes.map((l) => [l.worker, l.visible]),
    );
    assert.deepEqual(a.view, b.view);
    await live.close();
    await whole.close();
  });
});

describe('view state', () => {
  it('is saved with setState and restored at load (selection, filters, window, tab)', async () => {
    const run = failing();
    const page = await openWith(run);
    await page.locator('select[aria-label="Filter by outcome"]').selectOption('failed');
    await showTask(page, 4);
    await clickBar(page, 4);
    await page.waitForFunction(() => {
      const s = (window as unknown as { __states: PanelViewState[] }).__states.at(-1);
      return s?.selected?.task === 4 && s.filter?.outcome === 'failed';
    });
    const saved = await page.evaluate(() =>
      (window as unknown as { __states: PanelViewState[] }).__states.at(-1)!,
    );
    assert.equal(saved.runId, run.id);
    assert.equal(saved.tab, 'timeline');
    const savedView = (await hook(page, 'stats')).view;
    await page.close();

    const again = await openWith(run, { state: saved });
    const stats = await hook(again, 'stats');
    assert.deepEqual(stats.selected, { pool: POOL, task: 4 });
    assert.equal(stats.filter.outcome, 'failed');
    assert.deepEqual(stats.view, savedView);
    assert.equal(
      await again.locator('select[aria-label="Filter by outcome"]').inputValue(),
      'failed',
    );
    assert.match(await again.locator('.inspector').innerText(), /square root of -16/);
    // Only failed bars are drawn.
    assert.equal(stats.lanes.reduce((n, l) => n + l.visible, 0) <= 3, true);
    await again.close();
  });
});

/** A synthetic run: `tasks` tasks on 2 pools of 8 workers, back to back, some failing. */
function synthetic(tasks: number): PanelRun {
  const t0 = 1_700_000_000_000;
  const pools: PanelRun['pools'] = [];
  const per = tasks / 2;
  let seed = 42;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let lastTs = t0;
  for (let p = 0; p < 2; p++) {
    const clock = new Array<number>(8).fill(t0 + 10);
    const bars = {
      task: [] as number[],
      worker: [] as number[],
      start: [] as (number | null)[],
      end: [] as (number | null)[],
      state: [] as (0 | 1 | 2 | 3 | 4)[],
      fn: [] as number[],
    };
    for (let i = 0; i < per; i++) {
      const w = i % 8;
      const start = clock[w]! + rnd() * 0.3;
      const dur = 0.5 + rnd() * 4;
      const fail = rnd() < 0.01;
      bars.task.push(i + 1);
      bars.worker.push(w + 1);
      bars.start.push(start);
      bars.end.push(start + dur);
      bars.state.push(fail ? 3 : 2);
      bars.fn.push(i % 3);
      clock[w] = start + dur;
      lastTs = Math.max(lastTs, start + dur);
    }
    pools.push({
      id: `9000:${p + 1}`,
      backend: p === 0 ? 'process' : 'thread',
      size: 8,
      state: 'closed',
      createdAt: t0,
      counts: { submitted: per, queued: 0, running: 0, passed: per, failed: 0, errored: 0 },
      workers: Array.from({ length: 8 }, (_, w) => ({
        id: w + 1,
        ...(p === 0 ? { pid: 20000 + w } : { tid: w + 1 }),
        startedAt: t0,
        exitCode: 0,
        signal: null,
        tasksDone: per / 8,
        tasksFailed: 0,
      })),
      fns: ['square', 'hash', 'resize'],
      bars,
      barsDropped: 0,
    });
  }
  return {
    id: 'synthetic',
    label: 'synthetic 100k',
    state: 'replay',
    startedAt: t0,
    lastTs,
    pools,
    errors: [],
    errorCount: 0,
    shared: [],
    processes: [],
    marks: [],
    events: tasks * 3,
    dropped: 0,
  };
}

const stat = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return `n=${s.length} median=${q(0.5).toFixed(2)}ms p95=${q(0.95).toFixed(2)}ms max=${(s.at(-1) ?? NaN).toFixed(2)}ms`;
};

describe('100,000 tasks', () => {
  it('renders, and pan/zoom frame times are measured', async () => {
    const run = synthetic(100_000);
    const page = await harness.open();
    const t0 = Date.now();
    await send(page, snapshotMsg(run));
    await frames(page);
    const loadMs = Date.now() - t0;
    const handled = await hook(page, 'lastMessageMs');
    const stats = await hook(page, 'stats');
    assert.equal(stats.bars, 100_000);
    assert.equal(stats.lanes.length, 16);
    assert.equal(
      stats.lanes.reduce((n, l) => n + l.visible, 0),
      100_000,
    );
    const drawnFit = stats.lanes.reduce((n, l) => n + l.drawn, 0);
    assert.ok(drawnFit < 100_000, 'sub-pixel bars are merged');

    const measure = async (
      label: string,
      step: () => Promise<void>,
      n: number,
    ): Promise<number[]> => {
      await hook(page, 'resetFrameTimes');
      for (let i = 0; i < n; i++) {
        await step();
        await frames(page);
      }
      const times = await hook(page, 'frameTimes');
      console.log(`  100k ${label}: ${stat(times)}`);
      return times;
    };
    const canvas = (await page.locator('.timeline canvas').boundingBox())!;
    await page.mouse.move(canvas.x + canvas.width / 2, canvas.y + 100);
    await measure('zoom in (wheel)', () => page.mouse.wheel(0, -120), 40);
    await measure(
      'pan (drag)',
      async () => {
        await page.mouse.down();
        await page.mouse.move(canvas.x + canvas.width / 2 - 40, canvas.y + 100, { steps: 4 });
        await page.mouse.up();
        await page.mouse.move(canvas.x + canvas.width / 2, canvas.y + 100);
      },
      20,
    );
    await measure('zoom out (wheel)', () => page.mouse.wheel(0, 120), 40);
    await hook(page, 'fit');
    await page.locator('.timeline canvas').focus();
    await measure('pan (arrow keys)', () => page.keyboard.press('ArrowRight'), 30);
    // Whole-window redraws, back to back (no input latency in the figure).
    await hook(page, 'fit');
    const redraw = await page.evaluate(() => {
      const h = (
        window as unknown as {
          __poolscopePanel: { drawNow(): void; frameTimes(): number[]; resetFrameTimes(): void };
        }
      ).__poolscopePanel;
      h.resetFrameTimes();
      for (let i = 0; i < 50; i++) h.drawNow();
      return h.frameTimes();
    });
    console.log(`  100k full-view redraw: ${stat(redraw)}`);
    console.log(
      `  100k snapshot (${(JSON.stringify(run).length / 1e6).toFixed(1)} MB of JSON): handled in ${handled.toFixed(1)} ms; sent, handled and drawn in ${loadMs} ms`,
    );
    const heap = await page.evaluate(
      () =>
        (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory
          ?.usedJSHeapSize ?? 0,
    );
    if (heap) console.log(`  100k JS heap: ${(heap / 1e6).toFixed(1)} MB`);
    await page.screenshot({ path: join(artifacts, 'webview-100k.png') });
    await page.close();
  });
});

describe('themes', () => {
  it('screenshots in light, dark and high contrast', async () => {
    mkdirSync(artifacts, { recursive: true });
    for (const theme of ['light', 'dark', 'hc'] as const) {
      const page = await harness.open({ theme, width: 1100, height: 760 });
      await send(page, snapshotMsg(structured(failing())));
      await send(page, { type: 'select', ref: { pool: POOL, task: 7 } });
      await frames(page);
      await page.screenshot({ path: join(artifacts, `webview-${theme}.png`) });
      await page.locator('#tab-errors').click();
      await page.locator('.error-list li').nth(2).click();
      await page.screenshot({ path: join(artifacts, `webview-${theme}-errors.png`) });
      await page.close();
    }
    const live = await harness.open({ theme: 'dark', width: 1100, height: 600 });
    await send(live, snapshotMsg(feedOf('live-demo.jsonl').feed.snapshot()));
    await frames(live);
    await live.screenshot({ path: join(artifacts, 'webview-dark-live-demo.png') });
    await live.locator('#tab-summary').click();
    await live.screenshot({ path: join(artifacts, 'webview-dark-summary.png') });
    await setTheme(live, 'light');
    await live.locator('#tab-timeline').click();
    await frames(live);
    await live.screenshot({ path: join(artifacts, 'webview-light-live-demo.png') });
    await live.close();
    const shared = await harness.open({ theme: 'dark', width: 1000, height: 900 });
    await send(shared, snapshotMsg(feedOf('seed-shared.jsonl').feed.snapshot()));
    await shared.locator('#tab-shared').click();
    await frames(shared);
    assert.ok((await shared.locator('.chart-card').count()) >= 4);
    await shared.screenshot({ path: join(artifacts, 'webview-dark-shared.png') });
    // uPlot under the strict CSP: no violations, no errors.
    assert.deepEqual((shared as Page & { panelErrors?: string[] }).panelErrors, []);
    await shared.close();
  });
});
