/**
 * Ends this process when its parent dies, even by SIGKILL and even while it is busy: through
 * the kernel's parent-death signal (the addon), or where the addon is missing, a tiny thread
 * that watches the parent pid (slower to notice).
 */
import { constants } from 'node:os';
import { Worker } from 'node:worker_threads';
import { sharedMemoryAddon } from '../shared/native';

export function dieWithParent(): void {
  const parent = process.ppid;
  const addon = sharedMemoryAddon(false);
  if (addon) {
    try {
      addon.setParentDeathSignal(constants.signals.SIGKILL);
      // The parent may have died before the signal was armed.
      if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
      return;
    } catch {
      // fall back to the thread
    }
  }
  const code = `
    setInterval(() => { if (process.ppid !== ${parent}) process.kill(${process.pid}, 'SIGKILL'); }, 200);
  `;
  const watchdog = new Worker(code, { eval: true, stdout: false, stderr: false });
  watchdog.unref();
}
