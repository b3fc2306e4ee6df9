/** The shared-memory addon: segments really shared between processes, futexes that cross them. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sharedMemoryAddon } from 'poolscope/internal/shared/native';
import { fixture } from '../helpers';

describe('the shared-memory addon', () => {
  const addon = sharedMemoryAddon();

  it('builds from source and loads', () => {
    assert.ok(addon, 'native/build/Release/poolscope_shm.node did not load');
  });

  it('two processes add to one segment: the total is exact; futexes wake across processes', async () => {
    const shmBefore = readdirSync('/dev/shm');
    const fd = addon!.createSegment(4096);
    const words = new Int32Array(addon!.mapSegment(fd, 4096));
    const children = [0, 1].map(() =>
      spawn(
        process.execPath,
        [fixture('segment-child.cjs'), String(process.pid), String(fd), '250000'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      ),
    );
    const outputs = children.map(
      (child) =>
        new Promise<string>((resolve) => {
          let out = '';
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          child.on('close', () => resolve(out));
        }),
    );
    // Sleep on word 1 until both children have finished adding (a futex, not a busy loop).
    const deadline = Date.now() + 20_000;
    for (
      let seen = Atomics.load(words, 1);
      seen < 2 && Date.now() < deadline;
      seen = Atomics.load(words, 1)
    ) {
      addon!.futexWait(words, 1, seen, 1000);
    }
    assert.equal(Atomics.load(words, 0), 500_000);
    assert.equal(addon!.futexWait(words, 3, 1, 10), 'not-equal');
    assert.equal(addon!.futexWait(words, 3, 0, 20), 'timed-out');
    // Wake both children, who sleep in futexWait on word 2.
    Atomics.store(words, 2, 1);
    let woken = 0;
    for (let i = 0; i < 50 && woken < 2; i++) {
      woken += addon!.futexWake(words, 2, 2);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Each child was woken ('ok'), or saw the word set before it slept ('not-equal'); a futex
    // that did not cross processes would leave it 'timed-out'.
    for (const out of await Promise.all(outputs))
      assert.ok(out === 'ok' || out === 'not-equal', out);
    addon!.closeFd(fd);
    assert.deepEqual(readdirSync('/dev/shm'), shmBefore, 'segments never appear in /dev/shm');
  });

  it('refuses what it cannot do, with the reason', () => {
    assert.throws(() => addon!.createSegment(0), /segment size must be positive/);
    assert.throws(
      () => addon!.openSegment(process.pid, 987_654),
      /\/proc\/\d+\/fd\/987654: No such file/,
    );
    assert.throws(() => addon!.futexWait(new Int32Array(4), 9, 0, 1), /index out of range/);
    assert.throws(
      () => addon!.futexWake(new Float64Array(4) as never, 0, 1),
      /Int32Array is expected/,
    );
  });
});
