// Runs one measurement in a fresh process and makes sure nothing outlives it.
//
// Each child is started in its own process group (detached), so the pool
// workers it forks are in that group too. After the child exits, the group is
// checked for survivors (orphaned workers), which are recorded and killed; a
// child that overruns the watchdog is killed with its whole group.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

const live = new Set(); // process group ids of running children

/** Live (non-zombie) processes in process group `pgid`, as [{ pid, comm }], via /proc. */
function groupMembers(pgid) {
  let entries;
  try {
    entries = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    // No /proc: fall back to "is anything left in the group at all".
    try {
      process.kill(-pgid, 0);
      return [{ pid: null, comm: '?' }];
    } catch {
      return [];
    }
  }
  const out = [];
  for (const pid of entries) {
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may contain spaces, so split after ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, , pgrp] = stat.slice(close + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X')
      out.push({ pid: Number(pid), comm });
  }
  return out;
}

function killGroup(pgid) {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Kills every child group still running (used on Ctrl-C and at exit). */
export function killAll() {
  for (const pgid of live) killGroup(pgid);
  live.clear();
}

/**
 * Runs `cmd args`, waits for its "RESULT {json}" line. Returns the parsed
 * result (or { error }) plus { wallMs, leftoverProcesses? , killedByWatchdog? }.
 */
export async function runJob({ cmd, args, cwd, env, timeoutMs }) {
  const t0 = Date.now();
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const pgid = child.pid;
  if (pgid) live.add(pgid);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));

  let killedByWatchdog = false;
  const timer = setTimeout(() => {
    killedByWatchdog = true;
    killGroup(pgid);
  }, timeoutMs);

  const exit = await new Promise((resolve) => {
    child.on('error', (error) => resolve({ code: null, signal: null, error }));
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);

  // Give the child's workers a moment to exit on their own, then sweep.
  let left = pgid ? groupMembers(pgid) : [];
  for (let i = 0; left.length && i < 20; i++) {
    await sleep(100);
    left = groupMembers(pgid);
  }
  if (pgid) {
    if (left.length) killGroup(pgid); // only a non-empty group: its id cannot have been reused
    live.delete(pgid);
  }
  // Pipes close once every holder is gone; do not wait forever for that.
  await Promise.race([
    new Promise((r) => (child.stdout.readableEnded ? r() : child.stdout.once('close', r))),
    sleep(2000),
  ]);

  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  let res;
  if (exit.error) res = { error: `could not start ${cmd}: ${exit.error.message}` };
  else if (killedByWatchdog) res = { error: `killed by the watchdog after ${timeoutMs / 1000} s` };
  else if (!line) res = { error: `no RESULT line (exit code ${exit.code}, signal ${exit.signal})` };
  else {
    try {
      res = JSON.parse(line.slice('RESULT '.length));
    } catch (e) {
      res = { error: `unparsable RESULT line: ${e.message}` };
    }
  }
  if (res.error && stderr.trim()) res.stderrTail = stderr.trim().slice(-1500);
  res.wallMs = Date.now() - t0;
  if (killedByWatchdog) res.killedByWatchdog = true;
  // Survivors 2 s after the measurement process exited (killed since).
  if (left.length) res.leftoverProcesses = left;
  return res;
}

// ---------------------------------------------------------------------------
// Other load on the machine: sampled from /proc/stat while the harness is idle.

function readCpu() {
  try {
    const f = fs
      .readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return { idle: f[3] + (f[4] || 0), total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

/** Busy cores over `windowMs` while this harness is idle; null without /proc/stat. */
export async function busyCores(windowMs = 300) {
  const a = readCpu();
  if (!a) return null;
  await sleep(windowMs);
  const b = readCpu();
  const dt = b.total - a.total;
  return dt <= 0 ? 0 : (1 - (b.idle - a.idle) / dt) * os.cpus().length;
}

/**
 * Waits until at most `quiet.threshold` cores are busy: at most `quiet.waitS`
 * seconds per call and `quiet.budgetS` seconds over the whole run (so a machine
 * that stays busy does not stretch the run forever). Returns the last sample.
 */
export async function waitForQuiet(quiet, log) {
  const start = Date.now();
  const left = Math.max(0, quiet.budgetS * 1000 - (quiet.waitedMs ?? 0));
  const deadline = start + Math.min(quiet.waitS * 1000, left);
  let busy = await busyCores();
  let said = false;
  while (busy != null && busy > quiet.threshold && Date.now() < deadline) {
    log(said ? '.' : `(machine busy: ${busy.toFixed(2)} cores, waiting`);
    said = true;
    await sleep(2000);
    busy = await busyCores();
  }
  if (said) log(`: ${busy.toFixed(2)}) `);
  quiet.waitedMs = (quiet.waitedMs ?? 0) + (Date.now() - start);
  return busy;
}

/** Other processes with a high average CPU share (ps's %CPU over their lifetime), for the notes. */
export function busyProcesses(minPercent = 25) {
  const r = spawnSync('ps', ['-eo', 'pid,ppid,pcpu,etime,args', '--sort=-pcpu'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim().match(/^(\d+)\s+(\d+)\s+([\d.]+)\s+(\S+)\s+(.*)$/))
    .filter((m) => m && Number(m[3]) >= minPercent && Number(m[1]) !== process.pid)
    .map((m) => `pid ${m[1]} (ppid ${m[2]}, ${m[3]}% CPU, up ${m[4]}): ${m[5].slice(0, 120)}`);
}
