import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Process, PoolStateError, WorkerModuleError } from 'poolscope';
import { Process as ThreadProcess } from 'poolscope/dummy';
import { BACKENDS, fixture } from '../helpers';

const module = fixture('process-targets.mjs');

for (const backend of BACKENDS) {
  const make = (target: string, args: unknown[] = []): Process =>
    backend === 'process'
      ? new Process({ module, target, args })
      : (new ThreadProcess({ module, target, args }) as Process);

  describe(`Process on the ${backend} backend`, () => {
    it('runs its target and exits with code 0', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'poolscope-test-'));
      try {
        const p = make('succeed', [join(dir, 'out.txt'), 'written by the target']);
        assert.equal(p.backend, backend);
        assert.equal(p.exitCode, null);
        assert.equal(p.isAlive(), false);
        p.start();
        assert.equal(p.isAlive(), true);
        assert.equal(typeof p.pid, 'number');
        await p.join();
        assert.equal(p.isAlive(), false);
        assert.equal(p.exitCode, 0);
        assert.equal(p.signal, null);
        assert.equal(p.error, undefined);
        assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'written by the target');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a target that throws exits with code 1 and its error reaches the parent whole', async () => {
      const p = make('throwError');
      p.start();
      await p.join();
      assert.equal(p.exitCode, 1);
      assert.ok(p.error instanceof Error);
      assert.equal(p.error.message, 'target failed');
      assert.equal((p.error as Error & { code: string }).code, 'E_TARGET');
      assert.match(p.error.stack!, /process-targets\.mjs/);
    });

    it('process.exit(n) gives exit code n', async () => {
      const p = make('exitWith', [42]);
      p.start();
      await p.join();
      assert.equal(p.exitCode, 42);
    });

    it('join(timeout) returns while it still runs; terminate gives -15 and kill gives -9', async () => {
      const a = make('spin');
      a.start();
      await a.join(100);
      assert.equal(a.isAlive(), true);
      assert.equal(a.exitCode, null);
      a.terminate();
      await a.join();
      assert.equal(a.exitCode, -15);
      assert.equal(a.signal, 'SIGTERM');

      const b = make('spin');
      b.start();
      b.kill();
      await b.join();
      assert.equal(b.exitCode, -9);
      assert.equal(b.signal, 'SIGKILL');
    });

    it('cannot be started twice', async () => {
      const p = make('sleep', [1]);
      p.start();
      assert.throws(() => p.start(), PoolStateError);
      await p.join();
    });

    it('a module that fails to load gives exit code 1 and a WorkerModuleError', async () => {
      const p =
        backend === 'process'
          ? new Process({ module: fixture('throws-at-load.mjs'), target: 'x' })
          : new ThreadProcess({ module: fixture('throws-at-load.mjs'), target: 'x' });
      p.start();
      await p.join();
      assert.equal(p.exitCode, 1);
      assert.ok(p.error instanceof WorkerModuleError);
      assert.match(p.error.message, /throws-at-load\.mjs failed to load: Error: cannot start/);
    });
  });
}
