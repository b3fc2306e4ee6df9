/**
 * Where shared objects live. With the addon (native/), in an anonymous memfd segment: mapped by
 * every worker, thread or process, that receives the object, and waited on with shared futexes.
 * Without it, in a SharedArrayBuffer: shared with worker threads only, waited on with Atomics.
 * `POOLSCOPE_SHARED_MEMORY=sab` forces the second (for tests of the fallback).
 */
import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { sharedMemoryAddon, type SharedMemoryAddon } from './native';

export type WaitResult = 'ok' | 'not-equal' | 'timed-out';

/** Blocking wait/wake on a shared 32-bit word. */
export interface Waiter {
  wait(words: Int32Array, index: number, expected: number, timeoutMs: number): WaitResult;
  notify(words: Int32Array, index: number, count: number): void;
}

export const atomicsWaiter: Waiter = {
  wait: (words, index, expected, timeoutMs) => Atomics.wait(words, index, expected, timeoutMs),
  notify: (words, index, count) => void Atomics.notify(words, index, count),
};

function futexWaiter(addon: SharedMemoryAddon): Waiter {
  return {
    wait: (words, index, expected, timeoutMs) =>
      addon.futexWait(words, index, expected, timeoutMs === Infinity ? undefined : timeoutMs),
    notify: (words, index, count) =>
      void addon.futexWake(words, index, count === Infinity ? 0x7fffffff : count),
  };
}

export interface SegmentRef {
  /** Unique per segment: fds are reused, ids are not. */
  id: string;
  pid: number;
  fd: number;
  size: number;
}

export interface Memory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly waiter: Waiter;
  readonly segment: SegmentRef | undefined;
}

/** How a Memory travels: the SharedArrayBuffer itself, or the segment to map. */
export type MemoryDescriptor = { sab: SharedArrayBuffer } | { segment: SegmentRef };

const closeWhenCollected = new FinalizationRegistry<number>((fd) =>
  sharedMemoryAddon()?.closeFd(fd),
);

function useSegments(): SharedMemoryAddon | undefined {
  if (process.env.POOLSCOPE_SHARED_MEMORY === 'sab') return undefined;
  return sharedMemoryAddon();
}

let nextSegment = 1;
const prefix = randomBytes(4).toString('hex');

/** Fresh zeroed shared memory of at least `bytes` bytes. */
export function allocate(bytes: number): Memory {
  const size = Math.max(8, Math.ceil(bytes / 8) * 8);
  const addon = useSegments();
  if (!addon)
    return { buffer: new SharedArrayBuffer(size), waiter: atomicsWaiter, segment: undefined };
  const fd = addon.createSegment(size);
  const buffer = addon.mapSegment(fd, size);
  // The fd stays open while the memory is reachable here: workers open the segment through it.
  closeWhenCollected.register(buffer, fd);
  const segment = { id: `${prefix}-${process.pid}-${nextSegment++}`, pid: process.pid, fd, size };
  return { buffer, waiter: futexWaiter(addon), segment };
}

export function describeMemory(memory: Memory): MemoryDescriptor {
  return memory.segment ? { segment: memory.segment } : { sab: memory.buffer as SharedArrayBuffer };
}

/** Segments this thread has mapped, by id, so one segment is mapped once per thread. */
const mapped = new Map<string, WeakRef<Memory>>();

/** In a worker: the same memory, mapped here. */
export function openMemory(d: MemoryDescriptor): Memory {
  if ('sab' in d) return { buffer: d.sab, waiter: atomicsWaiter, segment: undefined };
  const known = mapped.get(d.segment.id)?.deref();
  if (known) return known;
  const addon = sharedMemoryAddon();
  if (!addon) throw new Error('this worker cannot map shared memory: the addon did not load');
  const fd = addon.openSegment(d.segment.pid, d.segment.fd);
  try {
    const memory: Memory = {
      buffer: addon.mapSegment(fd, d.segment.size),
      waiter: futexWaiter(addon),
      segment: d.segment,
    };
    mapped.set(d.segment.id, new WeakRef(memory));
    return memory;
  } finally {
    addon.closeFd(fd);
  }
}

/** Whether memory can be used by worker processes (a segment) or only by threads. */
export function crossesProcesses(memory: Memory): boolean {
  return memory.segment !== undefined;
}

let osThreadId: number | undefined;

/**
 * Who holds a lock in `memory`, as one 32-bit word that no other live thread writes there:
 * for a segment (shared between processes) the kernel's thread id, unique among the live
 * threads of every process; for a SharedArrayBuffer (one process) Node's `threadId + 1`, never
 * reused in a process. Never 0 (0 is "nobody").
 */
export function holderToken(memory: Memory): number {
  if (!memory.segment) return threadId + 1;
  if (osThreadId === undefined) {
    const addon = sharedMemoryAddon() as
      (SharedMemoryAddon & { osThreadId?: () => number }) | undefined;
    // An addon built before osThreadId existed: pid and thread number packed in 32 bits
    // (pids are below 2^22), unique unless a process has run more than 1024 worker threads.
    osThreadId = addon?.osThreadId?.() ?? ((threadId & 0x3ff) << 22) + process.pid;
  }
  return osThreadId;
}
