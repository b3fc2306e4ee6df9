/**
 * The Python tap: unmodified `multiprocessing` programs run by `poolscope run`, with real
 * `python3` processes (fork and spawn), workers really killed, and every event checked against
 * the protocol's schema.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { eventually, processesWith } from '../helpers';
import Ajv from 'ajv';
import { protocolJsonSchema, type TraceEvent } from 'poolscope/internal/trace/protocol';
import { expandEvent } from 'poolscope/internal/trace/task-batch';

const root = join(__dirname, '..', '..', '..');
const cliMain = join(root, 'dist', 'cli', 'main.js');
const fixture = (name: string): string => join(root, 'test', 'fixtures', 'python', name);
const validate = new Ajv({ strict: false, allErrors: true }).compile(protocolJsonSchema());

interface Event {
  type: string;
  pid: number;
  [key: string]: unknown;
}

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
  events: Event[];
  /** `tasks` lines in the trace. */
  batches: number;
}

/** `poolscope run --trace … <script> [args]`: its output and its trace, every event valid. */
/** Python's own temporary directories (a manager's listening socket lives in one). */
const pythonTemp = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('pymp-'));

function run(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Ran {
  const before = new Set(pythonTemp());
  const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
  try {
    const trace = join(dir, 'run.jsonl');
    const r = spawnSync(process.execPath, [cliMain, 'run', '--trace', trace, script, ...args], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, ...env },
    });
    let lines: Event[] = [];
    try {
      lines = readFileSync(trace, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Event);
    } catch {
      // no trace: the run never started
    }
    for (const e of lines)
      assert.ok(validate(e), `${JSON.stringify(e)}: ${JSON.stringify(validate.errors)}`);
    // Task events travel in `tasks` batches: each as the event it stands for.
    const events = lines.flatMap(
      (e) => expandEvent(e as unknown as TraceEvent) as unknown as Event[],
    );
    // Nothing left in the temp dir, a killed manager server's included.
    const left = pythonTemp().filter((n) => !before.has(n));
    assert.deepEqual(left, [], `Python temp dirs left: ${left.join(', ')}`);
    const batches = lines.filter((e) => e.type === 'tasks').length;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, events, batches };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ofType = (events: Event[], type: string): Event[] => events.filter((e) => e.type === type);

describe('the Python tap', () => {
  it('shows an unmodified program: tasks, errors whole with their frames, callbacks, a Value, a Process', () => {
    const r = run('examples/python/pool_errors.py');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /done 16, failed 4, counter 16/);
    assert.match(r.stdout, /pool \d+:1 \(process ×2\) pool_errors\.py/);
    assert.match(r.stdout, /tasks 30: 26 passed, 4 failed, 0 errored/);
    assert.match(r.stdout, /process helper square\(\): exit 0/);
    assert.match(r.stdout, /Value i = 16 \(.*examples\/python\/pool_errors\.py:\d+\)/);
    assert.match(r.stdout, /callbacks: 20 run, 0 threw/);
    assert.match(r.stdout, /4× QuotaError: quota exceeded for task 5/);
    assert.match(r.stdout, /at work \(.*examples\/python\/pool_errors\.py:\d+:\d+\)/);
    assert.equal(r.events[0]!.type, 'run.start');
    assert.ok(r.batches > 0, 'task events travel in tasks batches');
    assert.match(String(r.events[0]!.runtime), /python3/);
    // The error as the worker raised it: class, message, own attributes, traceback frames.
    const failed = ofType(r.events, 'task.failed');
    assert.equal(failed.length, 4);
    const error = failed[0]!.error as {
      name: string;
      props: Record<string, unknown>;
      frames: { fn: string; file: string; line: number }[];
      stack: string;
    };
    assert.equal(error.name, 'QuotaError');
    assert.equal(error.props.user, 'ana');
    assert.equal(typeof error.props.limit, 'number');
    assert.equal(error.frames[0]!.fn, 'work');
    assert.match(error.frames[0]!.file, /pool_errors\.py$/);
    assert.match(error.stack, /^Traceback \(most recent call last\):/);
    // The worker told it (its own pid), not the parent: the parent only gets a pickled copy.
    const parent = r.events.find((e) => e.type === 'pool.created')!.pid;
    assert.notEqual(failed[0]!.pid, parent);
    // A map chunk is one task: 100 items in chunks of 10.
    const chunks = ofType(r.events, 'task.submitted').filter((e) => e.kind === 'map');
    assert.deepEqual(
      chunks.map((e) => e.items),
      Array(10).fill(10),
    );
    const exited = ofType(r.events, 'process.exited').find((e) => e.name === 'helper');
    assert.equal(exited?.exitCode, 0);
  });

  for (const method of ['fork', 'spawn']) {
    it(`a worker killed mid-task (${method}): its lost task, which Python never settles, is shown with why`, () => {
      const r = run(fixture('killed_worker.py'), [method]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /task 3 never settled/);
      // Every task the workers finished is in, the one before the kill too (nothing unfinished).
      assert.match(r.stdout, /tasks 5: 4 passed, 0 failed, 1 errored;/);
      assert.match(r.stdout, /#\d pid \d+ exited -9 SIGKILL \(killed\)/);
      const killed = ofType(r.events, 'worker.exited').find((e) => e.signal === 'SIGKILL');
      assert.ok(killed, 'a worker.exited event for the killed worker');
      assert.equal((killed.lostTasks as number[]).length, 1);
      const lost = ofType(r.events, 'task.failed').find(
        (e) => e.task === (killed.lostTasks as number[])[0],
      );
      const error = lost?.error as { name: string; message: string } | undefined;
      assert.equal(error?.name, 'WorkerExitError');
      assert.match(error!.message, /killed by SIGKILL while running this task/);
      assert.match(error!.message, /never settles/);
      assert.equal(lost?.fn, 'slow');
      // The replacement worker is traced too.
      assert.equal(ofType(r.events, 'worker.started').length, 3);
    });
  }

  it('ThreadPool and every way to submit: kinds, thread workers, an argument pickle cannot send', () => {
    const r = run(fixture('kinds.py'));
    assert.equal(r.status, 0, r.stderr);
    const pools = ofType(r.events, 'pool.created');
    assert.deepEqual(
      pools.map((p) => p.backend),
      ['thread', 'process'],
    );
    const kinds = new Set(ofType(r.events, 'task.submitted').map((e) => e.kind));
    assert.deepEqual([...kinds].sort(), ['apply', 'imap', 'imapUnordered', 'map', 'starmap']);
    const threads = ofType(r.events, 'worker.started').filter((e) => e.pool === pools[0]!.pool);
    assert.equal(threads.length, 3);
    assert.ok(threads.every((e) => typeof e.workerTid === 'number' && e.workerPid === undefined));
    // maxtasksperchild=2: recycled workers, and their replacements.
    assert.ok(ofType(r.events, 'worker.exited').some((e) => e.reason === 'recycled'));
    // The lambda argument fails in the parent before any worker sees it: no worker in the event.
    const pickling = ofType(r.events, 'task.failed').find(
      (e) => (e.error as { name: string }).name === 'PicklingError',
    );
    assert.ok(pickling, 'a task.failed for the argument that cannot be pickled');
    assert.equal(pickling.worker, undefined);
    assert.match(r.stdout, /1× ValueError: seven/);
    assert.match(r.stdout, /callbacks: 1 run, 0 threw/);
  });

  it('Processes that raise, exit and are killed; a result that cannot be sent fails its task', () => {
    const r = run(fixture('processes.py'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /process raiser raises\(\): exit 1 Invalid: bad row 7/);
    assert.match(r.stdout, /process exiter exits\(\): exit 3/);
    assert.match(r.stdout, /process sleeper sleeps\(\): exit -9 SIGKILL/);
    const raised = ofType(r.events, 'process.exited').find(
      (e) => e.name === 'raiser' && e.error !== undefined,
    );
    const error = raised?.error as { name: string; props: Record<string, unknown> } | undefined;
    assert.equal(error?.name, 'Invalid');
    assert.equal(error?.props.row, 7);
    assert.match(r.stdout, /apply raised MaybeEncodingError/);
    // The worker ran the task without error, but Python could not send its result: failed.
    assert.equal(ofType(r.events, 'task.succeeded').length, 0);
    const failed = ofType(r.events, 'task.failed');
    assert.equal(failed.length, 1);
    assert.equal((failed[0]!.error as { name: string }).name, 'MaybeEncodingError');
  });

  it('a Manager: its server, the calls it served by object type, how it ended (stopped, killed)', () => {
    const r = run(fixture('manager.py'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /total 55/);
    assert.match(
      r.stdout,
      /manager \d+:1 unix:\S+ \(pid \d+\) stopped\n\s+calls 41: dict 21 · lock 20/,
    );
    assert.match(r.stdout, /manager \d+:2 unix:\S+ \(pid \d+\) killed by SIGKILL/);
    const started = ofType(r.events, 'manager.started');
    assert.equal(started.length, 2);
    // Its server is the manager, not a Process of the program.
    assert.equal(ofType(r.events, 'process.started').length, 0);
    const ops = ofType(r.events, 'manager.ops').at(-1);
    assert.equal(ops?.pid, started[0]!.serverPid, 'the counts come from the server process');
  });

  it('a Queue: how many items wait in it, sampled while it fills and drains', () => {
    const r = run(fixture('queue_pipeline.py'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /drained True/);
    assert.match(r.stdout, /Queue = 0 \(.*queue_pipeline\.py:\d+\)/);
    const [queue] = ofType(r.events, 'shared.created');
    assert.equal(queue?.kind, 'Queue');
    const values = ofType(r.events, 'shared.sampled').map((e) => e.value);
    assert.ok(values.includes(5), `samples: ${values.join(', ')}`);
    assert.equal(values.at(-1), 0);
  });

  it('a ProcessPoolExecutor: map chunks, a failing future, a dead worker that breaks the executor', () => {
    const r = run(fixture('executor.py'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /boom: ValueError/);
    assert.match(r.stdout, /broken 5/);
    assert.match(
      r.stdout,
      /pool \d+:1 \(process ×2\) executor\.py closed\n\s+tasks 5: 4 passed, 1 failed, 0 errored;/,
    );
    // Every future the executor failed is errored (the machinery's failure, not the task's).
    assert.match(
      r.stdout,
      /pool \d+:2 \(process ×2\) executor\.py closed\n\s+tasks 5: 0 passed, 0 failed, 5 errored;/,
    );
    assert.match(r.stdout, /#\d pid \d+ exited -9 SIGKILL \(killed\)/);
    assert.match(r.stdout, /at boom \(.*executor\.py:\d+:\d+\)/);
    const chunks = ofType(r.events, 'task.submitted').filter((e) => e.kind === 'map');
    assert.deepEqual(
      chunks.map((e) => [e.fn, e.items]),
      [
        ['square', 3],
        ['square', 3],
        ['square', 3],
        ['square', 1],
      ],
    );
    const killed = ofType(r.events, 'worker.exited').find((e) => e.signal === 'SIGKILL');
    const lost = ofType(r.events, 'task.failed').find(
      (e) => e.task === (killed?.lostTasks as number[] | undefined)?.[0] && e.pool === killed?.pool,
    );
    assert.equal(lost?.fn, 'die');
    assert.match(
      (lost?.error as { message: string }).message,
      /every pending one fail with BrokenProcessPool/,
    );
    // The other four: BrokenProcessPool, or lost with the worker the executor then terminated
    // (whether that worker had taken a task yet is the machine's timing).
    const names = ofType(r.events, 'task.failed')
      .filter((e) => e.pool === killed?.pool && e !== lost)
      .map((e) => (e.error as { name: string }).name);
    assert.equal(names.length, 4, names.join(', '));
    assert.ok(names.filter((n) => n === 'BrokenProcessPool').length >= 3, names.join(', '));
    assert.ok(names.every((n) => n === 'BrokenProcessPool' || n === 'WorkerExitError'));
  });

  it("a Lock, a semaphore and an Event the program made (not the pool's own), sampled", () => {
    const r = run(fixture('locks.py'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /done 2 True/);
    const created = ofType(r.events, 'shared.created');
    assert.deepEqual(
      created.map((e) => e.kind),
      ['Lock', 'BoundedSemaphore', 'Event'],
    );
    const values = (kind: string): unknown[] => {
      const id = created.find((e) => e.kind === kind)!.id;
      return ofType(r.events, 'shared.sampled')
        .filter((e) => e.id === id)
        .map((e) => e.value);
    };
    assert.deepEqual(values('Lock'), [{ locked: false }, { locked: true }, { locked: false }]);
    assert.equal(values('BoundedSemaphore').at(-1), 2);
    assert.deepEqual(values('Event').at(-1), { set: true });
    assert.match(r.stdout, /Lock = \{"locked":false\} \(.*locks\.py:\d+\)/);
  });

  it('a pool that can deliver no more results is explained, and stopping the hung program leaves nothing', async () => {
    const cli = spawn(process.execPath, [cliMain, 'run', fixture('unpicklable_error.py')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    cli.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((done) => cli.on('close', (code) => done(code)));
    // It hangs, as Python does: wait for the explanation, then stop it as a user would.
    const until = Date.now() + 30_000;
    while (!/result handler thread died/.test(stderr) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    cli.kill('SIGTERM');
    const status = await closed;
    assert.equal(status, 143, stderr);
    // (Whether `first: 1` was printed first is the order Python's results came back in.)
    assert.match(stdout, /killed by SIGTERM/);
    assert.match(stdout, /pool \d+:1 \(process ×2\) unpicklable_error\.py/);
    assert.match(
      stderr,
      /poolscope: pool \d+:1's result handler thread died \(TypeError: QuotaError\.__init__\(\) missing 1 required positional argument: 'user'\)/,
    );
    assert.match(stderr, /give them all to super\(\)\.__init__/);
    const left = await eventually(
      () => processesWith((cmdline) => cmdline.includes('unpicklable_error.py')),
      5000,
    );
    assert.deepEqual(left, [], `processes left: ${left.join(', ')}`);
  });

  it('a run the editor started ends whole when the editor dies: program, workers, Process, manager', async () => {
    const tempBefore = new Set(pythonTemp());
    const launcher = spawn(
      process.execPath,
      [fixture('launcher.cjs'), root, fixture('sleepers.py')],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    launcher.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const until = Date.now() + 30_000;
    while (!out.includes('started') && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /started/);
    const running = processesWith((cmdline) => cmdline.includes('sleepers.py'));
    assert.ok(running.length >= 4, `program, 2 workers, a Process (and a manager): ${running}`);
    // The trace socket's directory, which a killed launcher cannot remove: this test does.
    const sink = running
      .map((pid) => {
        try {
          return /POOLSCOPE_TRACE=unix:([^\0]+)\/trace\.sock/.exec(
            readFileSync(`/proc/${pid}/environ`, 'utf8'),
          )?.[1];
        } catch {
          return undefined;
        }
      })
      .find(Boolean);
    // What a crashing extension host does: nothing more.
    launcher.kill('SIGKILL');
    const left = await eventually(
      () => processesWith((cmdline) => cmdline.includes('sleepers.py')),
      5000,
    );
    assert.deepEqual(left, [], `processes left: ${left.join(', ')}`);
    assert.ok(sink?.startsWith(tmpdir()), `the run's socket directory: ${sink}`);
    if (sink) rmSync(sink, { recursive: true, force: true });
    // The manager server's listening directory: killed with the rest, it cannot remove it, and
    // nobody is left to (a limit of a run the editor's death ends; docs/python.md).
    for (const name of pythonTemp().filter((n) => !tempBefore.has(n)))
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
  });

  it('bad input: a missing interpreter, a syntax error, no sink', () => {
    const missing = run(fixture('kinds.py'), [], { POOLSCOPE_PYTHON: '/nonexistent/python3' });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /the python3 executable \/nonexistent\/python3 does not exist/);
    const syntax = run(fixture('syntax_error.py'));
    assert.equal(syntax.status, 1);
    assert.match(syntax.stderr, /SyntaxError/);
    assert.match(syntax.stderr, /syntax_error\.py", line 3/);
    assert.doesNotMatch(syntax.stderr, /runpy|poolscope_tap/);
    // Without a sink the tap installs nothing: the program runs on Python's own classes.
    const plain = spawnSync(
      'python3',
      [
        '-c',
        'import poolscope_tap, multiprocessing.pool as p; print(poolscope_tap.install(), p.Pool.apply_async.__module__)',
      ],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          PYTHONPATH: join(root, 'python'),
          POOLSCOPE_TRACE: '',
          POOLSCOPE_RUN: '',
        },
      },
    );
    assert.equal(plain.stdout.trim(), 'False multiprocessing.pool');
  });
});
