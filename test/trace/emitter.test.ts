/** The emitter and the trace server: private, batched, bounded, and never fatal. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TraceServer } from 'poolscope/internal/trace/server';
import { Store } from 'poolscope/internal/trace/store';

const fixtures = join(__dirname, '..', '..', '..', 'test', 'fixtures');

function run(
  script: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(fixtures, script), ...args], {
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('live trace over a private socket', () => {
  it('every task end and the error arrive, even with process.exit() right after the last result', async () => {
    const store = new Store();
    const server = await TraceServer.start({ run: 'flood', onLine: (l) => store.applyLine(l) });
    try {
      assert.equal(statSync(server.dir).mode & 0o777, 0o700, 'the socket directory is private');
      const result = await run('flood-script.cjs', ['20000'], server.env);
      assert.equal(result.code, 0, result.stderr);
      await server.close();
      assert.deepEqual(store.problems, []);
      const pool = [...store.runs.get('flood')!.pools.values()][0]!;
      assert.equal(pool.counts.submitted, 20001);
      assert.equal(pool.counts.passed, 20000);
      assert.equal(pool.counts.failed, 1);
      assert.equal(store.runs.get('flood')!.errorCount, 1);
    } finally {
      await server.close();
    }
    assert.equal(existsSync(server.dir), false, 'the socket directory is removed');
  });

  it('refuses a connection without the run token', async () => {
    const problems: string[] = [];
    const lines: string[] = [];
    const server = await TraceServer.start({
      run: 'r',
      onLine: (l) => lines.push(l),
      onProblem: (p) => problems.push(p),
    });
    try {
      await new Promise<void>((resolve) => {
        const socket = connect(server.path, () => {
          socket.write('{"hello":1,"token":"guess"}\n{"v":1,"type":"run.start"}\n');
        });
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      });
      assert.deepEqual(lines, []);
      assert.match(problems.join('\n'), /refused a trace connection: wrong or missing token/);
    } finally {
      await server.close();
    }
  });

  it('hands lines over in slices, with event-loop turns between them, all of them in order', async () => {
    const taken: number[] = [];
    let turnsWhileTaking = 0;
    const server = await TraceServer.start({
      run: 'r',
      sliceMs: 5,
      onLine: (l) => {
        taken.push(Number(l));
        const until = performance.now() + 1; // a consumer that needs 1 ms a line
        while (performance.now() < until);
      },
    });
    const ticker = setInterval(() => {
      if (taken.length > 0 && taken.length < 200) turnsWhileTaking++;
    }, 1);
    try {
      const token = server.env.POOLSCOPE_TRACE_TOKEN;
      const lines = Array.from({ length: 200 }, (_, i) => `${i}\n`).join('');
      await new Promise<void>((resolve, reject) => {
        // One write: the 200 lines arrive together, as a fast producer's do.
        const socket = connect(server.path, () =>
          socket.end(`${JSON.stringify({ hello: 1, token })}\n${lines}`),
        );
        socket.on('close', () => resolve());
        socket.on('error', reject);
      });
      await server.close();
      assert.deepEqual(
        taken,
        Array.from({ length: 200 }, (_, i) => i),
      );
      assert.ok(
        turnsWhileTaking > 0,
        'the event loop got no turn while 200 ms of lines were taken',
      );
    } finally {
      clearInterval(ticker);
      await server.close();
    }
  });

  it('a sink that goes away never blocks or crashes the program', async () => {
    const server = await TraceServer.start({ run: 'gone', onLine: () => undefined });
    const env = server.env;
    await server.close();
    const result = await run('flood-script.cjs', ['2000'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /done/);
  });

  it('under a flood a slow reader cannot keep up with, low-value events are dropped and counted, task ends kept', async () => {
    // A reader that takes the connection but reads nothing for the first second.
    const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
    const path = join(dir, 'slow.sock');
    const store = new Store();
    const server = createServer((socket) => {
      socket.pause();
      setTimeout(() => {
        let buffered = '';
        socket.on('data', (d: Buffer) => {
          buffered += d.toString();
          const lines = buffered.split('\n');
          buffered = lines.pop()!;
          for (const line of lines) if (!line.includes('"hello"')) store.applyLine(line);
        });
        socket.resume();
      }, 1000);
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const env = {
        POOLSCOPE_TRACE: `unix:${path}`,
        POOLSCOPE_TRACE_TOKEN: 't',
        POOLSCOPE_RUN: 'slow',
      };
      // Task records are compact (about 27 bytes a task in a burst): 600k tasks are well past
      // 4 MiB.
      const result = await run('flood-script.cjs', ['600000'], env);
      assert.equal(result.code, 0, result.stderr);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(store.problems, []);
      const run_ = store.runs.get('slow')!;
      const pool = [...run_.pools.values()][0]!;
      assert.ok(run_.dropped > 0, 'some low-value events were dropped');
      assert.equal(pool.counts.passed, 600000, 'every task end arrived');
      assert.equal(pool.counts.failed, 1);
      assert.equal(run_.errorCount, 1);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
