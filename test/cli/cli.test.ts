/** The `poolscope` command, run as a user runs it. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Ajv from 'ajv';
import { protocolJsonSchema } from 'poolscope/internal/trace/protocol';

const root = join(__dirname, '..', '..', '..');
const cliMain = join(root, 'dist', 'cli', 'main.js');
const fixture = (name: string): string => join(root, 'test', 'fixtures', 'cli', name);

function cli(
  args: string[],
  cwd = root,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliMain, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('poolscope run', () => {
  it('runs the failing-tasks example: its output, a summary, a valid trace, its exit code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
    try {
      const trace = join(dir, 'run.jsonl');
      const r = cli(['run', '--trace', trace, 'examples/apply-async-callbacks.mjs']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /errorCallback: RangeError E_NEGATIVE/);
      assert.match(r.stdout, /run run-\S+: exit code 0/);
      assert.match(r.stdout, /tasks 5: 3 passed, 2 failed, 0 errored/);
      assert.match(r.stdout, /#\d pid \d+ exited 0 \(normal\)/);
      assert.match(
        r.stdout,
        /errors \(2\):\n\s+\d× RangeError: cannot take the square root of -\d \[E_NEGATIVE\]/,
      );
      assert.match(r.stdout, /at checkedSqrt \(.*examples\/workers\/tasks\.mjs:\d+:\d+\)/);
      const validate = new Ajv({ strict: false }).compile(protocolJsonSchema());
      const events = readFileSync(trace, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      for (const e of events) assert.ok(validate(e), JSON.stringify(validate.errors));
      const types = events.map((e) => e.type);
      assert.equal(types[0], 'run.start');
      assert.equal(types.at(-1), 'run.end');
      assert.ok(types.includes('output'));
      const shown = cli(['show', trace]);
      assert.equal(shown.status, 0);
      assert.match(shown.stdout, /tasks 5: 3 passed, 2 failed, 0 errored/);
      const exported = cli(['export', trace, '--format', 'perfetto', '-o', join(dir, 'run.json')]);
      assert.equal(exported.status, 0, exported.stderr);
      assert.match(exported.stderr, /wrote .*run\.json: .* 3 tasks succeeded, 2 failed/);
      const perfetto = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as {
        traceEvents: { ph: string; name: string; cat?: string }[];
      };
      const slices = perfetto.traceEvents.filter((e) => e.ph === 'X' && e.name === 'checkedSqrt');
      assert.equal(slices.length, 5);
      assert.deepEqual(slices.map((e) => e.cat).sort(), [
        'failed',
        'failed',
        'succeeded',
        'succeeded',
        'succeeded',
      ]);
      const bad = cli(['export', trace, '--format', 'svg']);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /unknown export format 'svg'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits with the script exit code, and 128+N when the script is killed by signal N', () => {
    const r = cli(['run', fixture('exits-3.mjs')]);
    assert.equal(r.status, 3);
    assert.match(r.stdout, /exit code 3/);
    const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
    try {
      const script = join(dir, 'killed.mjs');
      writeFileSync(script, "process.kill(process.pid, 'SIGKILL');\n");
      const k = cli(['run', script]);
      assert.equal(k.status, 137);
      assert.match(k.stdout, /killed by SIGKILL/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a TypeScript script without a build step', () => {
    const r = cli(['run', fixture('typed.ts')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /areas 4,9/);
    assert.match(r.stdout, /tasks 2: 2 passed/);
  });

  it('finds poolscope for a script whose project does not install it (ESM and CommonJS)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
    try {
      copyFileSync(join(root, 'test', 'fixtures', 'tasks.mjs'), join(dir, 'tasks.mjs'));
      writeFileSync(
        join(dir, 'esm.mjs'),
        "import { Pool } from 'poolscope';\nconst p = new Pool({ module: new URL('./tasks.mjs', import.meta.url), size: 1 });\nconsole.log('esm', await p.apply('square', [4]));\nawait p.terminate();\n",
      );
      writeFileSync(
        join(dir, 'cjs.cjs'),
        "const { Pool } = require('poolscope/dummy');\nconst p = new Pool({ module: __dirname + '/tasks.mjs', size: 1 });\np.apply('square', [5]).then((v) => { console.log('cjs', v); return p.terminate(); });\n",
      );
      const esm = cli(['run', 'esm.mjs'], dir);
      assert.equal(esm.status, 0, esm.stderr);
      assert.match(esm.stdout, /esm 16/);
      const cjs = cli(['run', 'cjs.cjs'], dir);
      assert.equal(cjs.status, 0, cjs.stderr);
      assert.match(cjs.stdout, /cjs 25/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad input: a missing script, an unrunnable file, no script, an unknown command', () => {
    const missing = cli(['run', 'no/such/script.mjs']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /poolscope: no such script: .*no\/such\/script\.mjs/);
    const wrong = cli(['run', 'README.md']);
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr, /expected a \.js, \.mjs, \.cjs, \.ts/);
    assert.equal(cli(['run']).status, 2);
    const unknown = cli(['frobnicate']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });

  it('a script that throws at top level: its error, its exit code, and a summary that says no pool ran', () => {
    const r = cli(['run', fixture('throws.mjs')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /the script failed at top level/);
    assert.match(r.stdout, /no pool or Process was created/);
    const n = cli(['run', fixture('no-pool.mjs')]);
    assert.equal(n.status, 0);
    assert.match(n.stdout, /nothing to see/);
    assert.match(n.stdout, /no pool or Process was created/);
  });
});

describe('poolscope show', () => {
  it('reports corrupt lines and still summarises the rest; a file with no events is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
    try {
      const good = JSON.stringify({
        v: 1,
        ts: 1,
        pid: 1,
        run: 'r',
        type: 'pool.created',
        pool: '1:1',
        backend: 'thread',
        size: 2,
        module: '/m.mjs',
        options: {},
      });
      writeFileSync(join(dir, 'mixed.jsonl'), `${good}\n{broken\n\n[1,2]\n`);
      const mixed = cli(['show', join(dir, 'mixed.jsonl')]);
      assert.equal(mixed.status, 0);
      assert.match(mixed.stdout, /pool 1:1 \(thread ×2\)/);
      assert.match(mixed.stdout, /2 of 4 lines could not be used/);
      assert.match(mixed.stdout, /line 2: not JSON/);
      writeFileSync(join(dir, 'notes.txt'), 'just some text\n');
      const notes = cli(['show', join(dir, 'notes.txt')]);
      assert.equal(notes.status, 2);
      assert.match(notes.stderr, /holds no Poolscope events/);
      const missing = cli(['show', join(dir, 'missing.jsonl')]);
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /no such trace file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
