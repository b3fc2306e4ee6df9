/**
 * The shared-memory addon (native/), loaded once. Where it is missing (not built, not Linux, a
 * runtime that forbids external buffers) the library says so once, on stderr, and carries on
 * with SharedArrayBuffers, which worker processes reach through a server thread of the process
 * that made them (remote/): the same objects and semantics, slower.
 */
import { join } from 'node:path';

export interface SharedMemoryAddon {
  createSegment(size: number): number;
  openSegment(pid: number, fd: number): number;
  mapSegment(fd: number, size: number): ArrayBuffer;
  closeFd(fd: number): void;
  futexWait(
    words: Int32Array,
    index: number,
    expected: number,
    timeoutMs?: number,
  ): 'ok' | 'not-equal' | 'timed-out';
  futexWake(words: Int32Array, index: number, count: number): number;
  setParentDeathSignal(signal: number): void;
}

/** dist/core/shared -> native/build/Release */
export const ADDON_PATH = join(
  __dirname,
  '..',
  '..',
  '..',
  'native',
  'build',
  'Release',
  'poolscope_shm.node',
);

let loaded: SharedMemoryAddon | null | undefined;
let reason = '';

/** The addon, or undefined (and why, in `addonUnavailableReason()`). Warns once. */
export function sharedMemoryAddon(warn = true): SharedMemoryAddon | undefined {
  if (loaded === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require(ADDON_PATH) as SharedMemoryAddon;
    } catch (err) {
      loaded = null;
      reason = (err as Error).message.split('\n')[0] ?? String(err);
      if (warn) {
        process.stderr.write(
          `poolscope: the shared-memory addon did not load (${reason}); shared objects passed to ` +
            'worker processes fall back to a slower server-backed mode (worker threads are not ' +
            'affected); run `npm run build` to build native/\n',
        );
      }
    }
  }
  return loaded ?? undefined;
}

export function addonUnavailableReason(): string {
  return reason;
}
