/**
 * No leftovers: whatever way the main program ends, no worker process outlives it. This file
 * runs last, and also checks that the whole suite left no worker processes and no temp dirs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { eventually, fixture, processesWith } from './helpers';

/** Any worker or manager server of this checkout, however its path was spelled. */
const DIST = resolve(__dirname, '..', '..', 'dist');
const isWorker = (cmdline: string): boolean =>
  cmdline.includes(DIST) && (cmdline.includes('entry.js') || cmdline.includes('server.js'));
/** A Python program under this checkout's tap, its pool workers, its resource tracker. */
const TAP = resolve(__dirname, '..', '..', 'python');
const isPythonTapped = (cmdline: string, environ: string): boolean =>
  cmdline.includes('poolscope_tap') || environ.includes(TAP);

async function runScenario(mode: 'exit' | 'stuck'): Promise<void> {
  const mark = `POOLSCOPE_LEFTOVER_MARK=${randomUUID()}`;
  const [key, value] = mark.split('=') as [string, string];
  const child = spawn(process.execPath, [fixture('leftover-scenario.cjs'), mode], {
    env: { ...process.env, [key]: value },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise<void>((resolveReady, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolveReady());
    child.once('exit', (code) => reject(new Error(`scenario exited early (${code})`)));
  });
  const marked = (): number[] => processesWith((_, environ) => environ.includes(mark));
  assert.ok(marked().length >= 3, 'the scenario runs worker processes');
  if (mode === 'stuck') child.kill('SIGKILL');
  await exited;
  const left = await eventually(marked, 5000);
  assert.deepEqual(left, [], `worker processes outlived their parent: ${left.join(', ')}`);
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** A program with a manager (used by a pool's worker) that exits without stopping it, or is killed. */
async function runManagerScenario(mode: 'exit' | 'stuck'): Promise<void> {
  const child = spawn(process.execPath, [fixture('manager-leftover-scenario.cjs'), mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => child.once('exit', r));
  const info = await new Promise<{ serverPid: number; dir: string }>((resolveInfo, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"ready"'));
      if (line) resolveInfo(JSON.parse(line) as { serverPid: number; dir: string });
    });
    child.once('exit', (code) => reject(new Error(`scenario exited early (${code})`)));
  });
  assert.ok(alive(info.serverPid), 'the manager server runs');
  assert.ok(existsSync(info.dir), 'its socket directory exists');
  if (mode === 'stuck') child.kill('SIGKILL');
  await exited;
  const left = await eventually(() => (alive(info.serverPid) ? [info.serverPid] : []), 5000);
  assert.deepEqual(left, [], `the manager server outlived its owner: ${left.join(', ')}`);
  await eventually(() => (existsSync(info.dir) ? [1] : []), 2000);
  assert.equal(existsSync(info.dir), false, `socket directory left: ${info.dir}`);
}

describe('no leftovers', () => {
  it('a program that ends without stopping its manager leaves no server and no socket', async () => {
    await runManagerScenario('exit');
  });

  it('a program killed by SIGKILL leaves no manager server and no socket', async () => {
    await runManagerScenario('stuck');
  });

  it('a program that ends without closing its pools leaves no worker running', async () => {
    await runScenario('exit');
  });

  it('a program killed by SIGKILL while its workers spin leaves no worker running', async () => {
    await runScenario('stuck');
  });

  it('after the whole suite: no worker process and no temp dir from the tests remain', async () => {
    const workers = await eventually(() => processesWith(isWorker), 3000);
    assert.deepEqual(workers, [], `worker processes still running: ${workers.join(', ')}`);
    const python = await eventually(() => processesWith(isPythonTapped), 3000);
    assert.deepEqual(python, [], `Python processes still running: ${python.join(', ')}`);
    const temp = readdirSync(tmpdir()).filter((n) => n.startsWith('poolscope-'));
    assert.deepEqual(
      temp,
      [],
      `temp dirs left in ${tmpdir()}: ${temp.map((n) => join(tmpdir(), n)).join(', ')}`,
    );
  });
});
