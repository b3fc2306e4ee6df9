// Processes a VS Code test run may leave behind: code-server and its extension host (anything
// running from the cache), and user scripts or workers started through Poolscope. Reports and
// ends them, so a failing run cannot poison the next.
import { readdirSync, readFileSync } from 'node:fs';
import { CACHE, ROOT } from './host.mjs';

export function leftoverProcesses() {
  const marks = [CACHE, `${ROOT}/dist/core/worker/entry.js`, `${ROOT}/dist/cli/register.mjs`];
  const found = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!pid || pid === process.pid) continue;
    let cmd;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      continue;
    }
    if (marks.some((m) => cmd.includes(m))) found.push({ pid, cmd });
  }
  return found;
}

/** Waits up to `graceMs` for processes to go by themselves, then kills what is left. */
export async function killLeftovers(graceMs = 3000) {
  let found = leftoverProcesses();
  for (let waited = 0; found.length > 0 && waited < graceMs; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    found = leftoverProcesses();
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
