/**
 * Timeouts the library keeps with setTimeout, which fires at once for a delay past its range
 * (2^31 - 1 ms, about 24.8 days) or for NaN: checked here, so that a wait never ends early.
 */

/** The longest delay setTimeout keeps (ms). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * A wait's timeout (`get`, `wait`, an `imap` iterator's `next`, `Process.join`) as the delay to
 * keep: undefined (wait for as long as it takes) for undefined, `Infinity` or anything past
 * setTimeout's range; 0 for a negative one (at once, as Python's). A value that is not a number,
 * `NaN` included, is a TypeError naming `what`.
 */
export function waitDelay(timeoutMs: unknown, what: string): number | undefined {
  if (timeoutMs === undefined) return undefined;
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs)) {
    throw new TypeError(
      `${what}: timeoutMs must be a number of milliseconds, got ${typeof timeoutMs === 'number' ? 'NaN' : `${typeof timeoutMs} ${String(timeoutMs)}`}`,
    );
  }
  if (timeoutMs > MAX_TIMEOUT_MS) return undefined;
  return Math.max(0, timeoutMs);
}

/**
 * A timeout that ends something (a task's, a start's) must be one setTimeout keeps: a negative
 * one, 0, NaN or one past its range fired at once (and stopped the worker of every task given
 * it). Throws a RangeError naming `what` and the option.
 */
export function checkTimeout(timeout: unknown, what: string, option = 'timeout'): void {
  if (timeout === undefined) return;
  if (typeof timeout !== 'number' || !(timeout > 0 && timeout <= MAX_TIMEOUT_MS)) {
    throw new RangeError(
      `${what}: ${option} must be a number of milliseconds above 0 and at most ${MAX_TIMEOUT_MS} (about 24.8 days), got ${String(timeout)}; leave it out for ${option === 'timeout' ? 'no timeout' : 'the default'}`,
    );
  }
}
