// Processes a VS Code test run may leave behind: its code-server, extension host and helpers,
// and the scripts and workers the extension started. All of them run with the run's own HOME,
// which is how they are told from another run sharing the cache (left alone). Reports and ends
// them, so a failing run cannot poison the next.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function leftoverProcesses(scratch) {
  const home = `HOME=${join(scratch, 'home')}`;
  const found = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!pid || pid === process.pid) continue;
    let cmd;
    let env;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (env.includes(home)) found.push({ pid, cmd });
  }
  return found;
}

/** Waits up to `graceMs` for processes to go by themselves, then kills what is left. */
export async function killLeftovers(scratch, graceMs = 3000) {
  let found = leftoverProcesses(scratch);
  for (let waited = 0; found.length > 0 && waited < graceMs; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    found = leftoverProcesses(scratch);
  }
  for (const { pid } of found) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  return found;
}
