/**
 * The 32-bit words locks are made of (sync.ts), and what the locks do with them. Two
 * implementations: `LocalWords` over memory this thread addresses (a SharedArrayBuffer or a
 * mapped segment), where each method is one `Atomics` call or typed-array access, small enough
 * for V8 to inline, so a lock costs what it cost on a bare Int32Array; and `RemoteWords`
 * (remote/client.ts) over memory another process serves when the addon is missing, where each
 * method is a request to that process. The locks are written once, against this interface.
 */

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

/** Indexes count words from where the view starts. */
export interface Words {
  load(index: number): number;
  store(index: number, value: number): void;
  add(index: number, value: number): number;
  exchange(index: number, value: number): number;
  compareExchange(index: number, expected: number, replacement: number): number;
  /** A plain read of a word that other threads write only before synchronizing with this one. */
  get(index: number): number;
  /**
   * A plain write of a word that other threads read only after synchronizing with this one:
   * remote memory sends it with this thread's next request to the same process.
   */
  set(index: number, value: number): void;
  /**
   * Whether the word is `token`, a value that only this thread stores there and that only this
   * thread (or whoever recovers a lock from a dead holder) replaces: remote memory answers from
   * what this thread last stored there, without a round trip.
   */
  holds(index: number, token: number): boolean;
  /** Sleeps while the word is `expected`, up to `timeoutMs` (Infinity: no limit). */
  wait(index: number, expected: number, timeoutMs: number): WaitResult;
  /** Wakes up to `count` sleepers (Infinity: all). */
  notify(index: number, count: number): void;
  /**
   * Takes a lock word: compareExchange(index, expected, replacement) and, when the old value was
   * `expected`, plain stores of `pid` and `token` in the next two words (the holder's). One step,
   * so that remote memory never shows a lock taken by nobody: a holder killed right after taking
   * it is still found by its pid. Returns the old value.
   */
  claim(index: number, expected: number, replacement: number, pid: number, token: number): number;
  /** As `claim`, with exchange(index, replacement): the holder's words when the old was `free`. */
  claimExchange(
    index: number,
    replacement: number,
    free: number,
    pid: number,
    token: number,
  ): number;
  /**
   * A contended lock's step: `claimExchange`; when the lock was not free (and `timeoutMs` is not
   * 0), a wait while the word is `replacement`, then `claimExchange` again. 'claimed', or what
   * the wait gave. One request on remote memory, whose server takes the lock as it wakes.
   */
  claimOrWait(
    index: number,
    replacement: number,
    free: number,
    pid: number,
    token: number,
    timeoutMs: number,
  ): 'claimed' | WaitResult;
  /**
   * Releases a lock word taken with `claim`: false if it is `free` already; else clears the two
   * holder words, exchanges it to `free`, and wakes one sleeper when it was `contended`.
   */
  unclaim(index: number, free: number, contended: number): boolean;
}

/** Words of memory this thread addresses: Atomics on an Int32Array, and a Waiter to sleep. */
export class LocalWords implements Words {
  constructor(
    readonly array: Int32Array,
    private readonly waiter: Waiter,
  ) {}

  load(index: number): number {
    return Atomics.load(this.array, index);
  }

  store(index: number, value: number): void {
    Atomics.store(this.array, index, value);
  }

  add(index: number, value: number): number {
    return Atomics.add(this.array, index, value);
  }

  exchange(index: number, value: number): number {
    return Atomics.exchange(this.array, index, value);
  }

  compareExchange(index: number, expected: number, replacement: number): number {
    return Atomics.compareExchange(this.array, index, expected, replacement);
  }

  get(index: number): number {
    return this.array[index]!;
  }

  set(index: number, value: number): void {
    this.array[index] = value;
  }

  holds(index: number, token: number): boolean {
    return this.array[index] === token;
  }

  wait(index: number, expected: number, timeoutMs: number): WaitResult {
    return this.waiter.wait(this.array, index, expected, timeoutMs);
  }

  notify(index: number, count: number): void {
    this.waiter.notify(this.array, index, count);
  }

  claim(index: number, expected: number, replacement: number, pid: number, token: number): number {
    const old = Atomics.compareExchange(this.array, index, expected, replacement);
    if (old === expected) this.holder(index, pid, token);
    return old;
  }

  /** Who holds the lock at `index`: plain stores, which the release's atomic operation publishes. */
  private holder(index: number, pid: number, token: number): void {
    this.array[index + 1] = pid;
    this.array[index + 2] = token;
  }

  claimExchange(
    index: number,
    replacement: number,
    free: number,
    pid: number,
    token: number,
  ): number {
    const old = Atomics.exchange(this.array, index, replacement);
    if (old === free) this.holder(index, pid, token);
    return old;
  }

  claimOrWait(
    index: number,
    replacement: number,
    free: number,
    pid: number,
    token: number,
    timeoutMs: number,
  ): 'claimed' | WaitResult {
    if (this.claimExchange(index, replacement, free, pid, token) === free) return 'claimed';
    if (timeoutMs <= 0) return 'timed-out';
    const slept = this.waiter.wait(this.array, index, replacement, timeoutMs);
    // Woken: try at once.
    return this.claimExchange(index, replacement, free, pid, token) === free ? 'claimed' : slept;
  }

  unclaim(index: number, free: number, contended: number): boolean {
    const a = this.array;
    if (a[index] === free) return false;
    a[index + 1] = 0;
    a[index + 2] = 0;
    // One atomic operation: it frees the lock, publishes the stores above and the data the lock
    // guards, and says whether anyone may be asleep.
    if (Atomics.exchange(a, index, free) === contended) this.waiter.notify(a, index, 1);
    return true;
  }
}

/** The Int32Array under `words` when `Atomics.waitAsync` can watch it (a SharedArrayBuffer). */
export function asyncWaitable(words: Words): Int32Array | undefined {
  return words instanceof LocalWords && words.array.buffer instanceof SharedArrayBuffer
    ? words.array
    : undefined;
}
