// Shared-state work for bench/shared.mjs: each function times itself inside the worker.

// Python's `with v.get_lock(): v.value += 1`, step for step: take the value's lock, read
// `.value` and write it back (each access re-enters the RLock, as Python's synchronized
// wrapper does), release.
export function lockedIncrements(v, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const lock = v.getLock();
    lock.acquire();
    try {
      v.value += 1;
    } finally {
      lock.release();
    }
  }
  return performance.now() - t0;
}

export function atomicAdds(v, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) v.add(1);
  return performance.now() - t0;
}
