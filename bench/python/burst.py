"""A Python program's burst, for bench/python-tap.mjs: 20k trivial apply_async at once after a
200-task warm-up, then map over 1,000,000 items; prints one RATE line."""
import multiprocessing as mp
import sys
import time
from multiprocessing.pool import ThreadPool


def inc(x):
    return x + 1


if __name__ == "__main__":
    kind = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    make = ThreadPool if kind == "thread" else mp.Pool
    with make(2) as pool:
        [r.get() for r in [pool.apply_async(inc, (i,)) for i in range(200)]]
        t = time.perf_counter()
        results = [pool.apply_async(inc, (i,)) for i in range(n)]
        [r.get() for r in results]
        dt = time.perf_counter() - t
        t = time.perf_counter()
        pool.map(inc, range(1000000))
        dm = time.perf_counter() - t
    print("RATE %s apply %.0f/s map %.0f items/s" % (kind, n / dt, 1e6 / dm))
