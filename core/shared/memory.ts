/**
 * Where shared objects live. With the addon (native/), in an anonymous memfd segment: mapped by
 * every worker, thread or process, that receives the object, and waited on with shared futexes.
 * Without it, in a SharedArrayBuffer: shared as it is with worker threads, and served to worker
 * processes by a server thread of the process that made it (remote/), which they reach through
 * `RemoteMemory`. `POOLSCOPE_SHARED_MEMORY=sab` forces the second (for tests of the fallback).
 *
 * values.ts and sync.ts reach memory through `wordsOf` and `viewOf` only: on memory this thread
 * addresses they get an Int32Array's Atomics and a DataView, as fast as before the fallback.
 */
import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import type { Backend } from '../backend/worker-handle';
import type { ByteView } from './ctypes';
import { sharedMemoryAddon, type SharedMemoryAddon } from './native';
import { openRemote, RemoteMemory, RemoteView, RemoteWords, type RemoteRef } from './remote/client';
import { exportMemory } from './remote/owner';
import { atomicsWaiter, LocalWords, type Waiter, type Words } from './words';

export type { WaitResult, Waiter, Words } from './words';

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

/** Memory this thread addresses: a SharedArrayBuffer, or a segment mapped here. */
export interface LocalMemory {
  readonly kind: 'local';
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly waiter: Waiter;
  readonly segment: SegmentRef | undefined;
}

export type Memory = LocalMemory | RemoteMemory;
export { RemoteMemory };

/**
 * How a Memory travels: the SharedArrayBuffer itself (to threads), the segment to map, or the
 * server that serves a SharedArrayBuffer (to processes, without the addon).
 */
export type MemoryDescriptor =
  { sab: SharedArrayBuffer } | { segment: SegmentRef } | { remote: RemoteRef };

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
export function allocate(bytes: number): LocalMemory {
  const size = Math.max(8, Math.ceil(bytes / 8) * 8);
  const addon = useSegments();
  if (!addon)
    return {
      kind: 'local',
      buffer: new SharedArrayBuffer(size),
      waiter: atomicsWaiter,
      segment: undefined,
    };
  const fd = addon.createSegment(size);
  const buffer = addon.mapSegment(fd, size);
  // The fd stays open while the memory is reachable here: workers open the segment through it.
  closeWhenCollected.register(buffer, fd);
  const segment = { id: `${prefix}-${process.pid}-${nextSegment++}`, pid: process.pid, fd, size };
  return { kind: 'local', buffer, waiter: futexWaiter(addon), segment };
}

/** How `memory` travels to a worker of backend `to`. */
export function describeMemory(memory: Memory, to: Backend): MemoryDescriptor {
  if (memory.kind === 'remote') return { remote: memory.ref };
  if (memory.segment) return { segment: memory.segment };
  const sab = memory.buffer as SharedArrayBuffer;
  return to === 'thread' ? { sab } : { remote: exportMemory(sab) };
}

/** Memory this thread has opened, by segment or remote id, so each is opened once per thread. */
const opened = new Map<string, WeakRef<Memory>>();

function reuse<M extends Memory>(key: string, open: () => M): M {
  const known = opened.get(key)?.deref();
  if (known) return known as M;
  const memory = open();
  opened.set(key, new WeakRef(memory));
  return memory;
}

/** In a worker: the same memory, mapped here, or reached through its server. */
export function openMemory(d: MemoryDescriptor): Memory {
  if ('sab' in d)
    return { kind: 'local', buffer: d.sab, waiter: atomicsWaiter, segment: undefined };
  if ('remote' in d) return reuse(`${d.remote.address}#${d.remote.id}`, () => openRemote(d.remote));
  const ref = d.segment;
  return reuse(ref.id, () => {
    const addon = sharedMemoryAddon();
    if (!addon) throw new Error('this worker cannot map shared memory: the addon did not load');
    const fd = addon.openSegment(ref.pid, ref.fd);
    try {
      return {
        kind: 'local',
        buffer: addon.mapSegment(fd, ref.size),
        waiter: futexWaiter(addon),
        segment: ref,
      } satisfies LocalMemory;
    } finally {
      addon.closeFd(fd);
    }
  });
}

/** `count` 32-bit words of `memory`, from `byteOffset` (4-aligned). */
export function wordsOf(memory: Memory, byteOffset: number, count: number): Words {
  return memory.kind === 'local'
    ? new LocalWords(new Int32Array(memory.buffer, byteOffset, count), memory.waiter)
    : new RemoteWords(memory, byteOffset);
}

/** A DataView's accessors over `length` bytes of `memory` from `byteOffset`. */
export function viewOf(memory: Memory, byteOffset: number, length: number): ByteView {
  return memory.kind === 'local'
    ? new DataView(memory.buffer, byteOffset, length)
    : new RemoteView(memory, byteOffset);
}

/** `length` bytes of `memory`: the memory itself where this thread addresses it, else a copy. */
export function bytesOf(memory: Memory, byteOffset: number, length: number): Uint8Array {
  return memory.kind === 'local'
    ? new Uint8Array(memory.buffer, byteOffset, length)
    : memory.read(byteOffset, length);
}

export function writeBytes(memory: Memory, byteOffset: number, bytes: Uint8Array): void {
  if (memory.kind === 'local') new Uint8Array(memory.buffer, byteOffset, bytes.length).set(bytes);
  else memory.write(byteOffset, bytes);
}

let osThreadId: number | undefined;

/**
 * Who holds a lock in `memory`, as one 32-bit word that no other live thread writes there:
 * - a segment (shared between processes): the kernel's thread id, unique among the live threads
 *   of every process;
 * - a SharedArrayBuffer, in the process that made it: Node's `threadId + 1`, never reused in a
 *   process;
 * - remote memory (other processes reaching that SharedArrayBuffer): negative, so never one of
 *   the above, made of the pid and the thread number (unique unless a process runs more than
 *   512 worker threads at once).
 * Never 0 (0 is "nobody").
 */
export function holderToken(memory: Memory): number {
  if (memory.kind === 'remote') return -(((threadId & 0x1ff) << 22) + process.pid);
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
