"""Python's side of bench/manager.mjs (stdlib only): a multiprocessing Manager's Value read in a
loop by one client, and incremented under a Manager Lock (`with lock: v.value += 1`) from 2
processes and from 2 threads, `total` times in all. Prints one JSON line of rates."""
import json
import multiprocessing as mp
import sys
import threading
import time


def locked(v, lock, n, barrier):
    barrier.wait()
    for _ in range(n):
        with lock:
            v.value += 1


def two_processes(m, total):
    v, lock, barrier = m.Value("i", 0), m.Lock(), mp.Barrier(3)
    procs = [mp.Process(target=locked, args=(v, lock, total // 2, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - t0
    assert v.value == total, v.value
    return total / seconds


def two_threads(m, total):
    v, lock, barrier = m.Value("i", 0), m.Lock(), threading.Barrier(3)
    threads = [threading.Thread(target=locked, args=(v, lock, total // 2, barrier)) for _ in range(2)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    assert v.value == total, v.value
    return total / seconds


def gets(m, total):
    v = m.Value("i", 0)
    for _ in range(1000):  # warm-up, as on Node's side
        v.value
    t0 = time.perf_counter()
    for _ in range(total):
        v.value
    return total / (time.perf_counter() - t0)


def main():
    total = int(sys.argv[1])
    with mp.Manager() as m:
        result = {
            "get": gets(m, total),
            "locked_processes": two_processes(m, total),
            "locked_threads": two_threads(m, total),
            "python": sys.version.split()[0],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
