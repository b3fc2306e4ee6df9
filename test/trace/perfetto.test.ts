/** The Perfetto export: real traces and synthetic streams, checked against the Trace Event Format. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import {
  exportPerfetto,
  PerfettoConverter,
  type PerfettoOptions,
  type PerfettoSummary,
  type TraceFormatEvent,
} from 'poolscope/internal/trace/perfetto';
import type { ErrorInfo, TraceEvent } from 'poolscope/internal/trace/protocol';
import { expandEvent } from 'poolscope/internal/trace/task-batch';

const examples = join(__dirname, '..', '..', '..', 'examples');

interface TraceDocument {
  traceEvents: TraceFormatEvent[];
  displayTimeUnit: string;
  metadata: { poolscope: PerfettoSummary; [key: string]: unknown };
}

// ---- The Trace Event Format's rules, as the viewers read them

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Parses a whole output and checks every event; returns the parsed document. */
function validate(text: string): TraceDocument {
  const doc = JSON.parse(text) as TraceDocument;
  assert.equal(typeof doc, 'object');
  assert.ok(Array.isArray(doc.traceEvents), 'traceEvents is an array');
  assert.ok(['ms', 'ns'].includes(doc.displayTimeUnit), 'displayTimeUnit is ms or ns');
  assert.equal(typeof doc.metadata, 'object');
  for (const [i, e] of doc.traceEvents.entries()) {
    const at = `traceEvents[${i}] ${JSON.stringify(e)}`;
    assert.ok(['X', 'i', 'C', 'M'].includes(e.ph), `${at}: ph`);
    assert.ok(Number.isInteger(e.pid) && e.pid > 0, `${at}: pid`);
    assert.ok(Number.isInteger(e.tid) && e.tid > 0, `${at}: tid`);
    assert.ok(finite(e.ts) && e.ts >= 0, `${at}: ts`);
    assert.ok(typeof e.name === 'string' && e.name.length > 0, `${at}: name`);
    if (e.args !== undefined) assert.equal(typeof e.args, 'object', `${at}: args`);
    switch (e.ph) {
      case 'X':
        assert.ok(finite(e.dur) && e.dur >= 0, `${at}: dur`);
        break;
      case 'i':
        assert.ok(e.s !== undefined && ['g', 'p', 't'].includes(e.s), `${at}: s`);
        break;
      case 'M':
        assert.ok(['process_name', 'thread_name'].includes(e.name), `${at}: M name`);
        assert.equal(typeof e.args?.name, 'string', `${at}: M args.name`);
        break;
      case 'C': {
        const values = Object.values(e.args ?? {});
        assert.ok(values.length > 0 && values.every(finite), `${at}: C args`);
        break;
      }
    }
  }
  // Slices on one thread nest or follow each other; a viewer drops the ones that overlap.
  const tracks = new Map<string, TraceFormatEvent[]>();
  for (const e of doc.traceEvents) {
    if (e.ph !== 'X') continue;
    const key = `${e.pid}/${e.tid}`;
    const track = tracks.get(key) ?? [];
    track.push(e);
    tracks.set(key, track);
  }
  for (const [key, slices] of tracks) {
    slices.sort((a, b) => a.ts - b.ts || b.dur! - a.dur!);
    const open: number[] = [];
    for (const s of slices) {
      while (open.length > 0 && open.at(-1)! <= s.ts) open.pop();
      if (open.length > 0)
        assert.ok(s.ts + s.dur! <= open.at(-1)!, `${key}: ${s.name} overlaps its neighbour`);
      open.push(s.ts + s.dur!);
    }
  }
  return doc;
}

/** Converts events with a collecting sink; checks that the output is valid. */
function convert(
  events: Iterable<TraceEvent>,
  options?: PerfettoOptions,
): { doc: TraceDocument; summary: PerfettoSummary } {
  const chunks: string[] = [];
  const converter = new PerfettoConverter((chunk) => chunks.push(chunk), options);
  for (const event of events) converter.add(event);
  const summary = converter.finish();
  const doc = validate(chunks.join(''));
  assert.deepEqual(doc.metadata.poolscope, summary);
  assert.equal(doc.traceEvents.length, summary.traceEvents);
  return { doc, summary };
}

const by = (doc: TraceDocument, ph: TraceFormatEvent['ph']): TraceFormatEvent[] =>
  doc.traceEvents.filter((e) => e.ph === ph);
const processNames = (doc: TraceDocument): Map<number, string> =>
  new Map(
    by(doc, 'M').flatMap((e) => (e.name === 'process_name' ? [[e.pid, String(e.args!.name)]] : [])),
  );
const threadName = (doc: TraceDocument, pid: number, tid: number): string | undefined =>
  by(doc, 'M')
    .filter((e) => e.name === 'thread_name' && e.pid === pid && e.tid === tid)
    .map((e) => String(e.args!.name))
    .at(-1);

// ---- Real runs

/** Runs an example with a file sink, exports its trace through a stream, and returns both. */
async function exampleTrace(
  example: string,
  args: string[] = [],
): Promise<{ events: TraceEvent[]; doc: TraceDocument; summary: PerfettoSummary }> {
  const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
  try {
    const file = join(dir, 'trace.jsonl');
    const run = spawnSync(process.execPath, [join(examples, example), ...args], {
      env: { ...process.env, POOLSCOPE_TRACE: `file:${file}`, POOLSCOPE_RUN: 'perfetto-test' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, `${example} failed:\n${run.stdout}\n${run.stderr}`);
    const events = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .flatMap((line) => expandEvent(JSON.parse(line) as TraceEvent));
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    const summary = await exportPerfetto(lines, out, { chunkSize: 512 });
    assert.equal(summary.unreadableLines, 0);
    const text = Buffer.concat(chunks).toString('utf8');
    writeFileSync(join(dir, 'trace.json'), text);
    return { events, doc: validate(text), summary };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The slices the trace's task ends call for, and the ones the export has, by pool and task. */
function checkTaskSlices(events: TraceEvent[], doc: TraceDocument): void {
  const fnOf = new Map<string, string>();
  const ends: Array<{ key: string; fn: string; outcome: string }> = [];
  for (const e of events) {
    if (e.type === 'task.submitted') fnOf.set(`${e.pool}#${e.task}`, e.fn);
    if (e.type === 'task.succeeded' || e.type === 'task.failed') {
      const key = `${e.pool}#${e.task}`;
      ends.push({ key, fn: fnOf.get(key)!, outcome: e.type.slice(5) });
    }
  }
  const slices = by(doc, 'X').filter((s) => s.pid !== 1);
  assert.equal(slices.length, ends.length, 'one slice per task that ran');
  const got = new Map(slices.map((s) => [`${s.args!.pool}#${s.args!.task}`, s]));
  for (const end of ends) {
    const slice = got.get(end.key);
    assert.ok(slice, `slice for ${end.key}`);
    assert.equal(slice.name, end.fn);
    assert.equal(slice.cat, end.outcome);
  }
}

describe('perfetto export of real runs', () => {
  it('apply-async-callbacks: a slice per task with its outcome, failures as instants, counters', async () => {
    const { events, doc, summary } = await exampleTrace('apply-async-callbacks.mjs');
    checkTaskSlices(events, doc);
    assert.equal(summary.tasks.submitted, 5);
    assert.equal(summary.tasks.succeeded, 3);
    assert.equal(summary.tasks.failed, 2);
    assert.equal(summary.tasks.neverStarted, 0);
    assert.equal(summary.tasks.unfinished, 0);
    assert.deepEqual(summary.runs, ['perfetto-test']);

    const created = events.find((e) => e.type === 'pool.created')!;
    assert.equal(created.type, 'pool.created');
    const names = processNames(doc);
    const pid = [...names].find(([, name]) => name.startsWith(`pool ${created.pool} `))?.[0];
    assert.ok(pid !== undefined, `a process track for ${created.pool}: ${[...names.values()]}`);
    assert.equal(names.get(pid), `pool ${created.pool} (process, 2 workers) tasks.mjs`);
    for (const e of events) {
      if (e.type === 'worker.started')
        assert.equal(threadName(doc, pid, e.worker), `worker ${e.worker} (pid ${e.workerPid})`);
    }

    const slices = by(doc, 'X');
    assert.deepEqual(slices.map((s) => s.name).sort(), Array(5).fill('checkedSqrt'));
    const ok = slices.find((s) => s.args!.args === '[ 81 ]')!;
    assert.equal(ok.cat, 'succeeded');
    assert.equal(ok.args!.result, '9');
    const bad = slices.find((s) => s.args!.args === '[ -4 ]')!;
    assert.equal(bad.cat, 'failed');
    assert.deepEqual(
      { ...(bad.args!.error as Record<string, unknown>), where: undefined },
      {
        name: 'RangeError',
        message: 'cannot take the square root of -4',
        code: 'E_NEGATIVE',
        where: undefined,
      },
    );

    const failures = by(doc, 'i').filter((e) => e.name.startsWith('checkedSqrt failed'));
    assert.equal(failures.length, 2);
    for (const f of failures) {
      assert.equal(f.s, 't');
      assert.equal(f.name, 'checkedSqrt failed: RangeError');
      assert.match(String(f.args!.message), /cannot take the square root of -[41]/);
      assert.ok(f.tid >= 1 && f.tid <= 2, 'on a worker track');
    }

    const counters = by(doc, 'C').filter((c) => c.pid === pid);
    assert.ok(counters.length > 0);
    assert.ok(counters.every((c) => Number(c.args!.running) <= 2));
    assert.ok(
      counters.some((c) => c.args!.queued === 5),
      'all five queued before a worker ran',
    );
    assert.deepEqual(counters.at(-1)!.args, { queued: 0, running: 0 });
  });

  it('worker-killed on processes: exit instants with the exit code and the signal', async () => {
    const { events, doc, summary } = await exampleTrace('worker-killed.mjs');
    checkTaskSlices(events, doc);
    const exits = events.filter((e) => e.type === 'worker.exited');
    assert.equal(summary.workerExits, exits.length);
    const instants = by(doc, 'i').filter((e) => e.name.startsWith('worker exited'));
    assert.equal(instants.length, exits.length);
    for (const exit of exits) {
      const instant = instants.find((i) => i.tid === exit.worker)!;
      assert.ok(instant, `exit instant on worker ${exit.worker}'s track`);
      assert.equal(instant.s, 't');
      assert.equal(instant.args!.exitCode, exit.exitCode);
      assert.equal(instant.args!.signal, exit.signal);
      assert.equal(instant.args!.reason, exit.reason);
    }
    const killed = instants.find((i) => i.args!.signal === 'SIGKILL')!;
    assert.equal(killed.name, 'worker exited (killed, SIGKILL)');
    assert.equal(killed.args!.exitCode, -9);
    const crashed = instants.find((i) => i.args!.exitCode === 3)!;
    assert.equal(crashed.name, 'worker exited (crash, code 3)');
    assert.equal(crashed.args!.signal, null);

    const longJob = by(doc, 'X').find((s) => s.name === 'longJob')!;
    assert.equal(longJob.cat, 'failed');
    assert.equal(longJob.tid, killed.tid);
    assert.ok(longJob.dur! >= 100_000, `longJob ran ~200ms before the kill, got ${longJob.dur}µs`);
    assert.ok(
      by(doc, 'i').some(
        (i) => i.name === 'longJob failed: WorkerExitError' && i.tid === killed.tid,
      ),
    );
  });

  it('worker-killed on threads: workers named by thread id', async () => {
    const { events, doc } = await exampleTrace('worker-killed.mjs', ['--threads']);
    checkTaskSlices(events, doc);
    const pid = [...processNames(doc)].find(([, n]) => n.includes('(thread, 1 worker)'))?.[0];
    assert.ok(pid !== undefined);
    for (const e of events) {
      if (e.type === 'worker.started')
        assert.equal(threadName(doc, pid, e.worker), `worker ${e.worker} (thread ${e.workerTid})`);
    }
    const crash = by(doc, 'i').find((i) => i.name === 'worker exited (crash, code 3)');
    assert.ok(crash);
  });
});

// ---- Synthetic streams

const T0 = 1_800_000_000_000;
const POOL = '4242:1';

function error(name: string, message: string): ErrorInfo {
  return { thrown: 'error', name, message, frames: [], props: {} };
}

/** An event at T0 + `ms`, from the pool's process. */
function ev(ms: number, fields: Record<string, unknown>): TraceEvent {
  return { v: 1, ts: T0 + ms, pid: 4242, tid: 0, run: 'synthetic', ...fields } as TraceEvent;
}

const submitted = (ms: number, task: number, fn = 'work'): TraceEvent =>
  ev(ms, {
    type: 'task.submitted',
    pool: POOL,
    task,
    fn,
    kind: 'apply',
    args: `[ ${task} ]`,
    items: 1,
  });
const started = (ms: number, task: number, worker: number): TraceEvent =>
  ev(ms, { type: 'task.started', pool: POOL, task, worker });
const succeeded = (ms: number, task: number, worker: number, durationMs: number, fn = 'work') =>
  ev(ms, {
    type: 'task.succeeded',
    pool: POOL,
    task,
    fn,
    worker,
    result: String(task * 2),
    durationMs,
    queuedMs: 0,
  });

describe('perfetto export of synthetic streams', () => {
  it('puts out-of-order events back in order, derives a missing start, skips never-started tasks', () => {
    const inOrder: TraceEvent[] = [
      ev(0, {
        type: 'pool.created',
        pool: POOL,
        backend: 'process',
        size: 2,
        module: '/app/workers/jobs.mjs',
        options: {},
      }),
      submitted(1, 1, 'resize'),
      submitted(2, 2, 'resize'),
      submitted(3, 3, 'resize'),
      ev(4, { type: 'worker.started', pool: POOL, worker: 1, workerPid: 5001 }),
      ev(5, { type: 'worker.started', pool: POOL, worker: 2, workerPid: 5002 }),
      started(6, 1, 1),
      started(7, 2, 2),
      succeeded(16, 1, 1, 9.5, 'resize'),
      ev(20, {
        type: 'task.failed',
        pool: POOL,
        task: 2,
        fn: 'resize',
        worker: 2,
        error: error('TypeError', 'bad image'),
        durationMs: 12,
      }),
      succeeded(30, 3, 1, 4, 'resize'),
      ev(30.5, { type: 'callback.invoked', pool: POOL, task: 3, which: 'callback' }),
      ev(31, {
        type: 'callback.invoked',
        pool: POOL,
        task: 2,
        which: 'errorCallback',
        error: error('ReferenceError', 'log is not defined'),
      }),
      submitted(32, 4, 'resize'),
      ev(33, { type: 'events.dropped', count: 7, types: { 'task.submitted': 7 } }),
      ev(34, { type: 'pool.terminated', pool: POOL }),
      ev(35, {
        type: 'task.failed',
        pool: POOL,
        task: 4,
        fn: 'resize',
        error: error('PoolTerminatedError', 'task #4 resize() was not finished'),
      }),
      ev(36, {
        type: 'worker.exited',
        pool: POOL,
        worker: 1,
        exitCode: null,
        signal: 'SIGTERM',
        reason: 'terminated',
        lostTasks: [],
      }),
      ev(37, {
        type: 'worker.exited',
        pool: POOL,
        worker: 2,
        exitCode: 0,
        signal: null,
        reason: 'terminated',
        lostTasks: [],
      }),
    ];
    // Task 3 has no task.started. Neighbours swapped, as two processes' batches interleave.
    const shuffled = [...inOrder];
    for (const [a, b] of [
      [1, 2],
      [6, 7],
      [8, 9],
      [15, 16],
    ] as const) {
      [shuffled[a], shuffled[b]] = [shuffled[b]!, shuffled[a]!];
    }
    const { doc, summary } = convert(shuffled);
    assert.equal(summary.late, 0, 'the reorder window absorbed the swaps');

    // Times are µs from the first event, in order for the counters.
    const counters = by(doc, 'C');
    const ts = counters.map((c) => c.ts);
    assert.deepEqual(
      ts,
      [...ts].sort((a, b) => a - b),
    );
    assert.deepEqual(
      counters.map((c) => [c.ts, c.args!.queued, c.args!.running]),
      [
        [1000, 1, 0],
        [2000, 2, 0],
        [3000, 3, 0],
        [6000, 2, 1],
        [7000, 1, 2],
        [16000, 1, 1],
        [20000, 1, 0],
        [30000, 0, 0],
        [32000, 1, 0],
        [35000, 0, 0],
      ],
    );

    const slices = by(doc, 'X');
    const slice = (task: number) => slices.find((s) => s.args!.task === task)!;
    assert.equal(slices.length, 3, 'task 4 never started: no slice');
    assert.deepEqual(
      [slice(1).tid, slice(1).ts, slice(1).dur, slice(1).cat, slice(1).args!.result],
      [1, 6000, 10000, 'succeeded', '2'],
    );
    assert.deepEqual(
      [slice(2).tid, slice(2).ts, slice(2).dur, slice(2).cat],
      [2, 7000, 13000, 'failed'],
    );
    assert.deepEqual(slice(2).args!.error, { name: 'TypeError', message: 'bad image' });
    // No task.started for task 3: start = end - durationMs.
    assert.deepEqual([slice(3).tid, slice(3).ts, slice(3).dur], [1, 26000, 4000]);
    assert.equal(slice(3).name, 'resize');
    assert.equal(slice(3).args!.args, '[ 3 ]');
    assert.equal(slice(3).args!.workerMs, 4);

    assert.deepEqual(summary.tasks, {
      submitted: 4,
      succeeded: 2,
      failed: 2,
      neverStarted: 1,
      unfinished: 0,
    });
    assert.equal(summary.droppedEvents, 7);
    assert.equal(summary.originMs, T0);

    const instants = by(doc, 'i');
    const named = (name: string) => instants.filter((i) => i.name === name);
    assert.equal(named('resize failed: TypeError')[0]!.tid, 2);
    const terminated = named('resize failed: PoolTerminatedError')[0]!;
    assert.equal(terminated.tid, 4242, "a task no worker ran fails on the pool owner's track");
    assert.equal(terminated.args!.neverStarted, true);
    assert.equal(
      named('errorCallback threw: ReferenceError')[0]!.args!.message,
      'log is not defined',
    );
    assert.equal(named('callback threw: undefined').length, 0);
    const dropped = named('7 events dropped')[0]!;
    assert.equal(dropped.s, 'g');
    assert.deepEqual(dropped.args!.types, { 'task.submitted': 7 });
    assert.deepEqual(
      instants.filter((i) => i.name.startsWith('worker exited')).map((i) => [i.tid, i.name]),
      [
        [1, 'worker exited (terminated, SIGTERM)'],
        [2, 'worker exited (terminated, code 0)'],
      ],
    );

    const pid = slice(1).pid;
    assert.equal(processNames(doc).get(pid), `pool ${POOL} (process, 2 workers) jobs.mjs`);
    assert.equal(threadName(doc, pid, 1), 'worker 1 (pid 5001)');
    assert.equal(threadName(doc, pid, 4242), 'pool (pid 4242)');
  });

  it('survives what the window cannot fix: late events, a start after its end, open tasks at the end', () => {
    const { doc, summary } = convert(
      [
        submitted(100, 1),
        started(101, 1, 1),
        submitted(102, 2),
        started(103, 2, 2),
        succeeded(110, 1, 1, 8),
        // Far later: the window has moved past these.
        submitted(5000, 3),
        started(5001, 3, 1),
        submitted(5002, 4),
        // Late: before the first event, and a start after its task's end.
        ev(50, { type: 'worker.started', pool: POOL, worker: 1, workerPid: 7 }),
        started(104, 1, 1),
      ],
      { reorderWindowMs: 100 },
    );
    assert.equal(summary.late, 2);
    assert.equal(summary.tasks.unfinished, 2, 'tasks 2 and 3 were running at the end');
    assert.equal(summary.tasks.neverStarted, 1, 'task 4 was still queued');
    const slices = by(doc, 'X');
    assert.equal(slices.length, 3);
    const last = 5002;
    for (const task of [2, 3]) {
      const s = slices.find((x) => x.args!.task === task)!;
      assert.equal(s.cat, 'unfinished');
      assert.equal(s.ts + s.dur!, (last - 100) * 1000, 'closed at the last event');
    }
    assert.equal(threadName(doc, slices[0]!.pid, 1), 'worker 1 (pid 7)');
  });

  it('keeps slices on one worker from overlapping, and names tasks whose submission was dropped', () => {
    const { doc } = convert([
      // Two results in one batch: each ran 10ms in the worker, both reported at ~20ms (times in
      // binary fractions of a ms: epoch-ms doubles resolve ~0.25µs).
      started(0, 1, 1),
      succeeded(20, 1, 1, 10, 'first'),
      succeeded(20.125, 2, 1, 10, 'second'),
      ev(30, {
        type: 'task.succeeded',
        pool: POOL,
        task: 3,
        worker: 0,
        result: '1',
        durationMs: 1,
        queuedMs: 0,
      }),
    ]);
    const slices = by(doc, 'X');
    assert.deepEqual(
      slices.map((s) => [s.name, s.tid, s.ts, s.dur]),
      [
        ['first', 1, 0, 20000],
        ['second', 1, 20000, 125],
        ['task #3', 4242, 29000, 1000],
      ],
    );
    assert.equal(slices[2]!.args!.worker, 'unknown');
  });

  it('writes valid output for an empty stream and skips what is not an event', () => {
    const { doc, summary } = convert([
      { hello: 1 } as unknown as TraceEvent,
      ev(0, { type: 'some.future.event' }),
      ev(1, { type: 'output', stream: 'stdout', text: 'hi' }),
    ]);
    assert.equal(summary.ignored, 2);
    assert.equal(summary.outputEvents, 1);
    assert.deepEqual(doc.traceEvents, []);
    const empty = convert([]);
    assert.equal(empty.summary.originMs, null);
  });

  it('converts a 200,000-event stream with bounded state, whatever the output size', () => {
    const SIZE = 4;
    const TASKS_PER_WORKER = 50;
    let outputChars = 0;
    let chunks = 0;
    const converter = new PerfettoConverter(
      (chunk) => {
        outputChars += chunk.length;
        chunks++;
      },
      { reorderMaxEvents: 1000 },
    );
    const peak = { openTasks: 0, workers: 0, pending: 0, recent: 0 };
    let events = 0;
    let ms = 0;
    const add = (e: TraceEvent) => {
      converter.add(e);
      events++;
      if (events % 500 === 0) {
        const s = converter.state();
        for (const k of Object.keys(peak) as Array<keyof typeof peak>)
          peak[k] = Math.max(peak[k], s[k]);
      }
    };
    add(
      ev(0, {
        type: 'pool.created',
        pool: POOL,
        backend: 'thread',
        size: SIZE,
        module: '/m.mjs',
        options: {},
      }),
    );
    // Workers are recycled every 50 tasks (maxTasksPerChild), so worker numbers keep growing.
    const workers = Array.from({ length: SIZE }, (_, i) => ({ no: i + 1, done: 0 }));
    let nextWorker = SIZE + 1;
    for (const w of workers)
      add(ev(ms, { type: 'worker.started', pool: POOL, worker: w.no, workerTid: w.no }));
    let task = 0;
    while (events < 200_000) {
      // A wave: one task per worker, submitted, started, ended; every 7th fails.
      const wave = workers.map((w) => ({ w, id: ++task }));
      for (const { id } of wave) add(submitted((ms += 0.01), id, `fn${id % 3}`));
      for (const { w, id } of wave) add(started((ms += 0.01), id, w.no));
      for (const { w, id } of wave) {
        ms += 0.05;
        if (id % 7 === 0)
          add(
            ev(ms, {
              type: 'task.failed',
              pool: POOL,
              task: id,
              fn: `fn${id % 3}`,
              worker: w.no,
              error: error('Error', `task ${id}`),
              durationMs: 0.04,
            }),
          );
        else add(succeeded(ms, id, w.no, 0.04, `fn${id % 3}`));
        if (++w.done === TASKS_PER_WORKER) {
          add(
            ev((ms += 0.01), {
              type: 'worker.exited',
              pool: POOL,
              worker: w.no,
              exitCode: 0,
              signal: null,
              reason: 'recycled',
              lostTasks: [],
            }),
          );
          w.no = nextWorker++;
          w.done = 0;
          add(
            ev((ms += 0.01), { type: 'worker.started', pool: POOL, worker: w.no, workerTid: w.no }),
          );
        }
      }
    }
    const summary = converter.finish();
    assert.ok(events >= 200_000);
    assert.equal(summary.events, events);
    assert.equal(summary.tasks.submitted, task);
    assert.equal(summary.tasks.succeeded + summary.tasks.failed, task);
    assert.equal(summary.tasks.unfinished + summary.tasks.neverStarted, 0);
    assert.ok(nextWorker > 1000, `many workers came and went (${nextWorker})`);
    // State is what is open (a few tasks, four workers) plus the reorder window and a fixed ring,
    // while the output grew to megabytes and went straight to the sink.
    assert.ok(peak.openTasks <= 2 * SIZE, `open tasks ${peak.openTasks}`);
    assert.ok(peak.workers <= 2 * SIZE, `workers ${peak.workers}`);
    assert.ok(peak.pending <= 1000, `pending ${peak.pending}`);
    assert.ok(peak.recent <= 8192, `recent ${peak.recent}`);
    assert.deepEqual(converter.state(), {
      openTasks: 0,
      workers: SIZE,
      pools: 1,
      pending: 0,
      processes: 0,
      runs: 0,
      recent: 8192,
    });
    assert.ok(outputChars > 10_000_000, `output ${outputChars} chars`);
    assert.ok(chunks > 100, 'written as it went, in chunks');
  });
});

describe('perfetto export: run and Process tracks', () => {
  it('puts the run and each Process on the program track', () => {
    const { doc } = convert([
      ev(0, {
        type: 'run.start',
        argv: ['/usr/bin/node', '/app/main.mjs', '--fast'],
        cwd: '/app',
        runtime: 'node v20',
      }),
      ev(5, {
        type: 'process.started',
        name: 'Process-1',
        target: 'crunch',
        backend: 'process',
        processPid: 99,
      }),
      ev(25, {
        type: 'process.exited',
        name: 'Process-1',
        exitCode: 1,
        signal: null,
        error: error('Error', 'gave up'),
      }),
      ev(30, { type: 'run.end', exitCode: 0, signal: null, durationMs: 30 }),
    ]);
    assert.equal(processNames(doc).get(1), 'program node main.mjs --fast (run synthetic)');
    const [run, proc] = [...by(doc, 'X')].sort((a, b) => a.ts - b.ts);
    assert.deepEqual(
      [run!.name, run!.tid, run!.ts, run!.dur, run!.cat],
      ['run', 1, 0, 30000, 'succeeded'],
    );
    assert.deepEqual(
      [proc!.name, proc!.ts, proc!.dur, proc!.cat],
      ['crunch', 5000, 20000, 'failed'],
    );
    assert.equal(threadName(doc, 1, proc!.tid), 'process Process-1 (pid 99)');
    const exit = by(doc, 'i').find((i) => i.name === 'process exited (code 1)')!;
    assert.equal(exit.tid, proc!.tid);
    assert.deepEqual(exit.args!.error, { name: 'Error', message: 'gave up' });
  });
});
