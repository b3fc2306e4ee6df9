/**
 * Locks over shared memory, usable from every thread and process that receives them: `Lock`,
 * `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition`. Python's API, synchronous like
 * Python's: `acquire(blocking, timeout)` blocks the calling thread (Atomics.wait, or the addon's
 * futex; Node allows it on the main thread too).
 *
 * Each primitive is a few 32-bit words of shared memory (`memory.ts`): a segment the addon maps
 * in every process, or a SharedArrayBuffer (reached by worker processes through its owner's
 * server, without the addon). It travels to workers as a descriptor of that memory and is
 * rebuilt there (see `marshal.ts`). The words are used through `Words` (words.ts), so the same
 * code runs on all three.
 */
import type { Backend } from '../backend/worker-handle';
import { LockOwnerDiedError } from '../errors';
import { announceShared } from '../trace/shared-trace';
import {
  allocate,
  describeMemory,
  holderToken,
  openMemory,
  wordsOf,
  type Memory,
  type MemoryDescriptor,
} from './memory';
import { asyncWaitable, type Words } from './words';

/** Timeouts are in milliseconds, as everywhere in Node; undefined or negative: wait forever. */
function deadlineOf(timeoutMs: number | undefined): number {
  return timeoutMs === undefined || timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
}

function remaining(deadline: number): number {
  return deadline === Infinity ? Infinity : Math.max(0, deadline - performance.now());
}

/** Polling of segment memory by the async waits: 1 ms, doubling to at most 20 ms. */
const MAX_POLL_MS = 20;

/**
 * Waits, without blocking the thread, until word `index` may no longer be `expected`, or `ms`
 * (finite) passes. SharedArrayBuffer: `Atomics.waitAsync`, woken by the same notify as blocking
 * waiters. Segment and remote memory have no async wait: sleep `pollMs` and look again.
 */
async function settle(
  words: Words,
  index: number,
  expected: number,
  ms: number,
  pollMs: number,
): Promise<void> {
  const array = asyncWaitable(words);
  if (array) {
    const result = Atomics.waitAsync(array, index, expected, ms);
    if (!result.async) return;
    // A pending waitAsync does not keep Node's event loop alive; this timer does.
    const keepAlive = setTimeout(() => undefined, ms);
    try {
      await result.value;
    } finally {
      clearTimeout(keepAlive);
    }
  } else {
    await new Promise((resolve) => setTimeout(resolve, Math.min(ms, pollMs)));
  }
}

export type SyncKind = 'Lock' | 'RLock' | 'Semaphore' | 'BoundedSemaphore' | 'Event' | 'Condition';

/** What crosses to a worker: the kind and the words. */
export interface SyncDescriptor {
  kind: SyncKind;
  memory: MemoryDescriptor;
  /** Where the words start in that memory, in bytes, when not at 0 (a Value's own lock). */
  offset?: number;
  /** A Condition's lock. */
  lock?: SyncDescriptor;
}

abstract class SharedSync {
  readonly words: Words;
  readonly memory: Memory;

  constructor(
    readonly kind: SyncKind,
    words: number,
    memory?: Memory,
    /** Bytes into `memory` where the words start (8-aligned). */
    readonly offset = 0,
  ) {
    this.memory = memory ?? allocate(words * 4);
    this.words = wordsOf(this.memory, offset, words);
  }

  /** @internal How it travels to a worker of backend `to`. */
  describe(to: Backend): SyncDescriptor {
    const d: SyncDescriptor = { kind: this.kind, memory: describeMemory(this.memory, to) };
    if (this.offset !== 0) d.offset = this.offset;
    return d;
  }
}

/** Runs `fn` holding `lock` (Python's `with lock:`), and releases it whatever happens. */
function holding<T>(lock: { acquire(): boolean; release(): void }, fn: () => T): T {
  lock.acquire();
  try {
    return fn();
  } finally {
    lock.release();
  }
}

/** Polls of the lock word before going to sleep on it, and the longest pause between two. */
const SPIN_POLLS = 32;
const MAX_PAUSE = 64;
/** A word no other thread touches: loading it is a pause that leaves the lock's line alone. */
const pauseWord = new Int32Array(1);
/** How often a waiting acquire checks that the lock's holder still exists. */
const HOLDER_CHECK_MS = 200;

/** `process.pid` is an accessor that calls into C++ (about 20 ns): read it once. */
const PID = process.pid;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The lock word, as Drepper's mutex ("Futexes are tricky", mutex 3): 0 free, 1 held, 2 held and
 * someone may be asleep on it. Only a release that finds 2 calls the futex.
 */
const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;
/**
 * Words: [state, holder pid, holder thread, contended acquisitions]. The holder words are
 * written with plain stores by the holder only (the Atomics operation of its release publishes
 * them) and read to find a dead holder (pid) and, for an RLock, its owner (thread: a token no
 * other live thread writes, see `holderToken`).
 */
const STATE = 0;
const HOLDER_PID = 1;
const HOLDER_TID = 2;
const CONTENTION = 3;

/** A mutex: any thread may release it (as Python's Lock). */
export class Lock extends SharedSync {
  /** This thread's holder token for this memory. */
  private readonly token: number;
  /**
   * Polls before sleeping: none on remote memory, where each poll is a round trip to the
   * process that serves it, as long as a wait.
   */
  private readonly spins: number;

  constructor(memory?: Memory, announce = true, offset = 0) {
    super('Lock', 4, memory, offset);
    this.token = holderToken(this.memory);
    this.spins = this.memory.kind === 'remote' ? 0 : SPIN_POLLS;
    if (!memory && announce) {
      announceShared(
        { sample: () => ({ value: { locked: this.locked() }, contention: this.contention }) },
        'Lock',
        '',
        0,
        true,
      );
    }
  }

  /** Takes the lock; with `blocking` false or a timeout, says whether it got it. */
  acquire(blocking = true, timeoutMs?: number): boolean {
    // The uncontended case is one compare-exchange (with plain stores of the holder's words:
    // they are only read to find a dead holder or an RLock's owner); everything else is out of
    // line. Every way of taking the lock writes the holder's words with it (Words.claim).
    return (
      this.words.claim(STATE, UNLOCKED, LOCKED, PID, this.token) === UNLOCKED ||
      this.acquireSlow(blocking, timeoutMs)
    );
  }

  private acquireSlow(blocking: boolean, timeoutMs: number | undefined): boolean {
    const w = this.words;
    if (!blocking) return false;
    w.add(CONTENTION, 1);
    const deadline = deadlineOf(timeoutMs);
    let nextCheck = performance.now() + HOLDER_CHECK_MS;
    // What to take the lock with. After a sleep, CONTENDED: others may be asleep too, and the
    // release that woke us cleared the mark.
    let mark = LOCKED;
    for (;;) {
      if (this.spin(mark)) return true;
      // Mark the lock contended, so that its release wakes us, and take it if that found it
      // free; else sleep (in slices, to notice a holder that died holding the lock) and try
      // again as soon as woken (Words.claimOrWait).
      const left = remaining(deadline);
      const slept = w.claimOrWait(
        STATE,
        CONTENDED,
        UNLOCKED,
        PID,
        this.token,
        Math.min(left, HOLDER_CHECK_MS),
      );
      if (slept === 'claimed') return true;
      if (left === 0) return false;
      mark = CONTENDED;
      // A slice that ran out with nobody waking us: is the holder still there?
      if (slept === 'timed-out' || performance.now() >= nextCheck) {
        nextCheck = performance.now() + HOLDER_CHECK_MS;
        this.checkHolder();
      }
      if (remaining(deadline) === 0) return false;
      // Woken, but the lock was taken again: spin again before the next sleep, rather than
      // have every release of a busy holder pay a futex wake for a waiter that just woke.
    }
  }

  /**
   * Polls the lock word with exponential backoff between polls (about 15 µs in all), so that a
   * holder running on another core keeps its cache line for runs of acquisitions instead of
   * handing the lock over at every release.
   */
  private spin(mark: number): boolean {
    const w = this.words;
    for (let poll = 0, pause = 1; poll < this.spins; poll++) {
      if (
        w.load(STATE) === UNLOCKED &&
        w.claim(STATE, UNLOCKED, mark, PID, this.token) === UNLOCKED
      )
        return true;
      for (let i = 0; i < pause; i++) Atomics.load(pauseWord, 0);
      if (pause < MAX_PAUSE) pause *= 2;
    }
    return false;
  }

  /**
   * `acquire` for the main program: waits without blocking the event loop (a blocking acquire
   * there also stops the pool from running the tasks that would release the lock). Resolves
   * true once it holds the lock, false after `timeoutMs`; rejects with LockOwnerDiedError as
   * `acquire` throws it.
   */
  async acquireAsync(timeoutMs?: number): Promise<boolean> {
    const w = this.words;
    if (!this.acquireNow()) {
      w.add(CONTENTION, 1);
      const deadline = deadlineOf(timeoutMs);
      let nextCheck = performance.now() + HOLDER_CHECK_MS;
      const sab = asyncWaitable(w) !== undefined;
      for (let pollMs = 1; ; pollMs = Math.min(pollMs * 2, MAX_POLL_MS)) {
        // SharedArrayBuffer: the blocking protocol (mark contended, be notified). Segment and
        // remote memory: poll; a woken sleeper re-marks the lock, so taking it unmarked is safe.
        if (
          sab
            ? w.claimExchange(STATE, CONTENDED, UNLOCKED, PID, this.token) === UNLOCKED
            : this.acquireNow()
        )
          break;
        const left = remaining(deadline);
        if (left === 0) return false;
        await settle(w, STATE, CONTENDED, Math.min(left, HOLDER_CHECK_MS), pollMs);
        if (performance.now() >= nextCheck) {
          nextCheck = performance.now() + HOLDER_CHECK_MS;
          this.checkHolder();
        }
      }
    }
    return true;
  }

  private acquireNow(): boolean {
    return this.words.claim(STATE, UNLOCKED, LOCKED, PID, this.token) === UNLOCKED;
  }

  /** A holder in another process that no longer exists: release for it, and say so. */
  private checkHolder(): void {
    const w = this.words;
    const holder = w.load(HOLDER_PID);
    if (holder === 0 || holder === PID || processAlive(holder)) return;
    // Only one waiter recovers the lock.
    if (w.compareExchange(HOLDER_PID, holder, 0) !== holder) return;
    w.store(HOLDER_TID, 0);
    w.store(STATE, UNLOCKED);
    w.notify(STATE, Infinity);
    throw new LockOwnerDiedError(
      `the ${this.kind}'s holder, process ${holder}, died while holding it; the lock was released, ` +
        'but what it protected may be half-updated',
      holder,
    );
  }

  release(): void {
    // Clears the holder's words, then one atomic operation frees the lock, publishes them and
    // the data the lock guards, and says whether anyone may be asleep (Words.unclaim).
    if (!this.words.unclaim(STATE, UNLOCKED, CONTENDED))
      throw new Error('release of an unlocked Lock');
  }

  /** @internal Whether this thread holds it (for RLock): one plain read of the holder token. */
  heldHere(): boolean {
    return this.words.holds(HOLDER_TID, this.token);
  }

  locked(): boolean {
    return this.words.load(STATE) !== UNLOCKED;
  }

  /** How many acquisitions had to wait: lock contention, for the views. */
  get contention(): number {
    return this.words.load(CONTENTION);
  }

  /** Runs `fn` holding the lock (Python's `with lock:`), and releases it whatever happens. */
  withLock<T>(fn: () => T): T {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }
}

/** Words: [mutex state, owner pid, owner thread, contention, depth]. */
const DEPTH = 4;
/** The bytes an RLock takes (5 words, 8-aligned). */
export const RLOCK_BYTES = 24;

/** A re-entrant lock: the thread that holds it may take it again; it must release as often. */
export class RLock extends SharedSync {
  private readonly mutex: Lock;
  /** This thread's holder token: the mutex's holder word equals it while this thread holds it. */
  private readonly token: number;

  constructor(memory?: Memory, announce = true, offset = 0) {
    super('RLock', 5, memory, offset);
    this.mutex = new Lock(this.memory, false, offset);
    this.token = holderToken(this.memory);
    if (!memory && announce) {
      announceShared(
        { sample: () => ({ value: { locked: this.mutex.locked() }, contention: this.contention }) },
        'RLock',
        '',
        0,
        true,
      );
    }
  }

  acquire(blocking = true, timeoutMs?: number): boolean {
    const w = this.words;
    // Only the holder writes the depth while it holds the lock: plain arithmetic is enough, and
    // the mutex's release publishes it.
    if (w.holds(HOLDER_TID, this.token)) {
      w.set(DEPTH, w.get(DEPTH) + 1);
      return true;
    }
    if (!this.mutex.acquire(blocking, timeoutMs)) return false;
    w.set(DEPTH, 1);
    return true;
  }

  /** `acquire` without blocking the event loop (see `Lock.acquireAsync`). */
  async acquireAsync(timeoutMs?: number): Promise<boolean> {
    const w = this.words;
    if (this.mutex.heldHere()) {
      w.set(DEPTH, w.get(DEPTH) + 1);
      return true;
    }
    if (!(await this.mutex.acquireAsync(timeoutMs))) return false;
    w.set(DEPTH, 1);
    return true;
  }

  release(): void {
    const w = this.words;
    if (!w.holds(HOLDER_TID, this.token))
      throw new Error('cannot release an RLock this thread does not hold');
    const depth = w.get(DEPTH) - 1;
    w.set(DEPTH, depth);
    if (depth === 0) this.mutex.release();
  }

  get contention(): number {
    return this.mutex.contention;
  }

  /** @internal For Condition.wait: let go entirely, and say how deep it was held. */
  releaseAll(): number {
    if (!this.mutex.heldHere())
      throw new Error('cannot release an RLock this thread does not hold');
    const depth = this.words.get(DEPTH);
    this.words.set(DEPTH, 0);
    this.mutex.release();
    return depth;
  }

  /** @internal For Condition.wait: take it back at the depth it had. */
  acquireAll(depth: number): void {
    this.mutex.acquire();
    this.words.set(DEPTH, depth);
  }

  withLock<T>(fn: () => T): T {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }
}

/** Words: [value, max (BoundedSemaphore) or -1]. */
export class Semaphore extends SharedSync {
  constructor(value = 1, memory?: Memory, kind: SyncKind = 'Semaphore') {
    super(kind, 2, memory);
    if (!memory) {
      if (!Number.isInteger(value) || value < 0)
        throw new RangeError(`semaphore initial value must be >= 0, got ${value}`);
      this.words.set(0, value);
      this.words.set(1, kind === 'BoundedSemaphore' ? value : -1);
      announceShared({ sample: () => ({ value: this.value }) }, kind, '', 0, true);
    }
  }

  acquire(blocking = true, timeoutMs?: number): boolean {
    const w = this.words;
    const deadline = deadlineOf(timeoutMs);
    for (;;) {
      const v = w.load(0);
      if (v > 0) {
        if (w.compareExchange(0, v, v - 1) === v) return true;
        continue;
      }
      if (!blocking) return false;
      const left = remaining(deadline);
      if (left === 0) return false;
      w.wait(0, 0, left);
    }
  }

  /** `acquire` without blocking the event loop (see `Lock.acquireAsync`). */
  async acquireAsync(timeoutMs?: number): Promise<boolean> {
    const deadline = deadlineOf(timeoutMs);
    for (let pollMs = 1; ; pollMs = Math.min(pollMs * 2, MAX_POLL_MS)) {
      if (this.acquire(false)) return true;
      const left = remaining(deadline);
      if (left === 0) return false;
      await settle(this.words, 0, 0, Math.min(left, HOLDER_CHECK_MS), pollMs);
    }
  }

  release(n = 1): void {
    const w = this.words;
    const max = w.load(1);
    if (max >= 0 && w.load(0) + n > max) {
      throw new RangeError('BoundedSemaphore released too many times');
    }
    w.add(0, n);
    w.notify(0, n);
  }

  get value(): number {
    return this.words.load(0);
  }

  withLock<T>(fn: () => T): T {
    return holding(this, fn);
  }
}

/** A Semaphore that refuses to be released above its initial value. */
export class BoundedSemaphore extends Semaphore {
  constructor(value = 1, memory?: Memory) {
    super(value, memory, 'BoundedSemaphore');
  }
}

/** A flag threads wait for: `set`, `clear`, `isSet`, `wait(timeout)`. */
export class Event extends SharedSync {
  constructor(memory?: Memory) {
    super('Event', 1, memory);
    if (!memory)
      announceShared({ sample: () => ({ value: { set: this.isSet() } }) }, 'Event', '', 0, false);
  }

  set(): void {
    this.words.store(0, 1);
    this.words.notify(0, Infinity);
  }

  clear(): void {
    this.words.store(0, 0);
  }

  isSet(): boolean {
    return this.words.load(0) === 1;
  }

  /**
   * Waits without blocking the thread (the main program should use this: a blocking wait there
   * also stops the pool from handing out the tasks that would set the event).
   */
  async waitAsync(timeoutMs?: number): Promise<boolean> {
    const deadline = deadlineOf(timeoutMs);
    const array = asyncWaitable(this.words);
    while (this.words.load(0) === 0) {
      const left = remaining(deadline);
      if (left === 0) return false;
      if (array) {
        const result = Atomics.waitAsync(array, 0, 0, left === Infinity ? undefined : left);
        if (result.async) await result.value;
      } else {
        // Segment or remote memory: no async wait to await, so look again shortly.
        await new Promise((r) => setTimeout(r, Math.min(5, left)));
      }
    }
    return true;
  }

  /** Waits until set, or for `timeoutMs`; says whether it is set. Blocks the calling thread. */
  wait(timeoutMs?: number): boolean {
    const deadline = deadlineOf(timeoutMs);
    while (this.words.load(0) === 0) {
      const left = remaining(deadline);
      if (left === 0) return false;
      this.words.wait(0, 0, left);
    }
    return true;
  }
}

/**
 * Python's Condition: `wait` lets go of the lock until notified (or the timeout), then takes it
 * back; `notify(n)`, `notifyAll()`, `waitFor(predicate, timeout)`. Words: [generation].
 */
export class Condition extends SharedSync {
  readonly lock: Lock | RLock;

  constructor(lock?: Lock | RLock, memory?: Memory) {
    super('Condition', 1, memory);
    this.lock = lock ?? new RLock(undefined, false);
  }

  acquire(blocking = true, timeoutMs?: number): boolean {
    return this.lock.acquire(blocking, timeoutMs);
  }

  release(): void {
    this.lock.release();
  }

  withLock<T>(fn: () => T): T {
    return this.lock.withLock(fn);
  }

  /** Must hold the lock. Returns false on timeout. */
  wait(timeoutMs?: number): boolean {
    const generation = this.words.load(0);
    const depth = this.lock instanceof RLock ? this.lock.releaseAll() : (this.lock.release(), 1);
    const result = this.words.wait(
      0,
      generation,
      timeoutMs === undefined || timeoutMs < 0 ? Infinity : timeoutMs,
    );
    if (this.lock instanceof RLock) this.lock.acquireAll(depth);
    else this.lock.acquire();
    return result !== 'timed-out';
  }

  /** Waits until `predicate()` is true (checked with the lock held), or the timeout. */
  waitFor(predicate: () => boolean, timeoutMs?: number): boolean {
    const deadline = deadlineOf(timeoutMs);
    let ok = predicate();
    while (!ok) {
      const left = remaining(deadline);
      if (left === 0) break;
      this.wait(left === Infinity ? undefined : left);
      ok = predicate();
    }
    return ok;
  }

  notify(n = 1): void {
    this.words.add(0, 1);
    this.words.notify(0, n);
  }

  notifyAll(): void {
    this.notify(Infinity);
  }

  /** @internal */
  override describe(to: Backend): SyncDescriptor {
    return { ...super.describe(to), lock: this.lock.describe(to) };
  }
}

export type AnySync = Lock | RLock | Semaphore | BoundedSemaphore | Event | Condition;

export function reviveSync(d: SyncDescriptor): AnySync {
  switch (d.kind) {
    case 'Lock':
      return new Lock(openMemory(d.memory), true, d.offset);
    case 'RLock':
      return new RLock(openMemory(d.memory), true, d.offset);
    case 'Semaphore':
      return new Semaphore(0, openMemory(d.memory));
    case 'BoundedSemaphore':
      return new BoundedSemaphore(0, openMemory(d.memory));
    case 'Event':
      return new Event(openMemory(d.memory));
    case 'Condition':
      return new Condition(reviveSync(d.lock!) as Lock | RLock, openMemory(d.memory));
  }
}
