// Shared-state work for bench/shared.mjs: each function times itself inside the worker.
export function lockedIncrements(v, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) v.withLock(() => (v.value += 1));
  return performance.now() - t0;
}

export function atomicAdds(v, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) v.add(1);
  return performance.now() - t0;
}
