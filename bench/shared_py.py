"""Python's side of bench/shared.mjs: 2 processes incrementing a multiprocessing.Value under its
lock (total increments given), and the same through a Manager Value + Lock. Prints one JSON line."""
import json
import multiprocessing as mp
import sys
import time


def locked(v, n, barrier):
    barrier.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def managed(v, lock, n, barrier):
    barrier.wait()
    for _ in range(n):
        with lock:
            v.value += 1


def run_two(target, args_of, total):
    barrier = mp.Barrier(3)
    procs = [mp.Process(target=target, args=args_of(total // 2, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    return time.perf_counter() - t0


def main():
    total, manager_total = int(sys.argv[1]), int(sys.argv[2])
    v = mp.Value("i", 0)
    seconds = run_two(locked, lambda n, b: (v, n, b), total)
    assert v.value == total, v.value
    with mp.Manager() as m:
        mv, ml = m.Value("i", 0), m.Lock()
        mseconds = run_two(managed, lambda n, b: (mv, ml, n, b), manager_total)
        assert mv.value == manager_total
    print(json.dumps({"value_lock": total / seconds, "manager": manager_total / mseconds, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
