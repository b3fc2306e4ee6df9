/** Every event the library emits is valid protocol v2, checked against the JSON Schema. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Ajv from 'ajv';
import { protocolJsonSchema, type TraceEvent } from 'poolscope/internal/trace/protocol';
import { expandEvent } from 'poolscope/internal/trace/task-batch';
import { traceOf } from '../helpers';

const root = join(__dirname, '..', '..', '..');

describe('protocol v2', () => {
  const validate = new Ajv({ strict: false, allErrors: true }).compile(protocolJsonSchema());

  it('the JSON Schema published in docs is the one the code defines', () => {
    const published = JSON.parse(readFileSync(join(root, 'docs', 'protocol.schema.json'), 'utf8'));
    assert.deepEqual(published, JSON.parse(JSON.stringify(protocolJsonSchema())));
  });

  for (const [example, args] of [
    ['apply-async-callbacks.mjs', []],
    ['apply-async-callbacks.mjs', ['--threads']],
    ['worker-killed.mjs', []],
    ['get-timeout.mjs', []],
    ['process-exit-code.mjs', []],
    ['process-exit-code.mjs', ['--threads']],
  ] as const) {
    it(`every event of examples/${example} ${args.join(' ')} is valid`, () => {
      const lines = traceOf(join(root, 'examples', example), [...args], [], 'schema');
      const types = new Set<string>();
      for (const line of lines) {
        const event = JSON.parse(line) as { type: string; v: number; run: string; pid: number };
        types.add(event.type);
        assert.ok(validate(event), `${line}\n${JSON.stringify(validate.errors, null, 1)}`);
        assert.equal(event.v, 2);
        // A batch stands for task events that are valid events too.
        for (const e of expandEvent(event as TraceEvent)) {
          assert.ok(validate(e), `${JSON.stringify(e)}\n${JSON.stringify(validate.errors)}`);
          types.add(e.type);
        }
        assert.equal(event.run, 'schema');
        assert.equal(typeof event.pid, 'number');
      }
      assert.ok(types.size >= 2, `few event types: ${[...types]}`);
    });
  }

  for (const backend of ['process', 'thread']) {
    it(`events from a pool inside a ${backend} worker reach the same sink`, () => {
      const events = traceOf(join(root, 'test', 'fixtures', 'nested-pools-script.mjs'), [
        backend,
      ]).flatMap((l) => expandEvent(JSON.parse(l) as TraceEvent));
      const started = events.find((e) => e.type === 'process.started')!;
      const inner = events.find((e) => e.type === 'pool.created')!;
      assert.ok(inner, 'the inner pool was traced');
      if (backend === 'process') assert.notEqual(inner.pid, started.pid, 'from the child process');
      else assert.notEqual(inner.tid, 0, 'from the worker thread');
      assert.ok(events.some((e) => e.type === 'task.succeeded'));
      assert.ok(events.some((e) => e.type === 'process.exited'));
    });
  }

  it('shared objects are announced and sampled; the last sample has the final values', () => {
    const lines = traceOf(
      join(root, 'examples', 'seed-shared.ts'),
      ['--threads'],
      ['--import', join(root, 'dist', 'cli', 'register.mjs')],
    );
    const events = lines.map(
      (l) => JSON.parse(l) as { type: string; id?: string; kind?: string; value?: unknown },
    );
    for (const e of events) assert.ok(validate(e), JSON.stringify(validate.errors));
    const created = events.filter((e) => e.type === 'shared.created');
    assert.deepEqual(
      created.map((e) => e.kind),
      ['Lock', 'Value', 'Value', 'Array', 'Array'],
    );
    const last = new Map<string, unknown>();
    for (const e of events) if (e.type === 'shared.sampled') last.set(e.id!, e.value);
    const n = created[1]!.id!;
    const s = created[3]!.id!;
    assert.equal(last.get(n), 49);
    assert.equal(last.get(s), 'HELLO WORLD');
  });

  it('a callback that throws anything, undefined or an unreadable proxy too, is traced as having thrown', () => {
    const invoked = traceOf(join(root, 'test', 'fixtures', 'callback-throws-script.cjs'))
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'callback.invoked')
      .sort((a, b) => a.task - b.task);
    assert.equal(invoked.length, 3);
    for (const e of invoked) assert.ok(validate(e), JSON.stringify(validate.errors));
    const [undef, proxy, error] = invoked.map((e) => e.error);
    assert.equal(undef?.thrown, 'undefined');
    assert.equal(proxy?.thrown, 'object');
    assert.match(proxy.message, /cannot be read: reading it threw TypeError: .*revoked/);
    assert.equal(error?.thrown, 'error');
    assert.equal(error.message, 'callback bug');
  });

  it('a structured error keeps code, own properties, cause chain, aggregate members and frames', () => {
    const lines = traceOf(join(root, 'test', 'fixtures', 'error-tasks-script.cjs')).map((l) =>
      JSON.parse(l),
    );
    const failures = lines.filter((e) => e.type === 'task.failed');
    assert.equal(failures.length, 3);
    for (const f of failures) assert.ok(validate(f), JSON.stringify(validate.errors));
    const rich = failures.find((f) => f.fn === 'rich').error;
    assert.equal(rich.code, 'E_RICH');
    assert.equal(rich.cause.message, 'root cause');
    assert.equal(rich.cause.cause.name, 'TypeError');
    assert.deepEqual(rich.props.detail.when, { $date: '2024-01-02T03:04:05.000Z' });
    assert.deepEqual(rich.props.detail.parent, { $cycle: '$.detail' });
    assert.deepEqual(rich.props.self, { $cycle: '$' });
    assert.equal(rich.frames[0].fn, 'rich');
    assert.match(rich.frames[0].file, /errors\.mjs$/);
    const aggregate = failures.find((f) => f.fn === 'aggregate').error;
    assert.deepEqual(
      aggregate.errors.map((e: { name: string }) => e.name),
      ['Error', 'RangeError'],
    );
    const thrown = failures.find((f) => f.fn === 'throwString').error;
    assert.equal(thrown.thrown, 'string');
    assert.equal(thrown.value, 'just a string');
  });
});
