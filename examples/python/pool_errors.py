"""A Python multiprocessing program, unmodified: poolscope run examples/python/pool_errors.py"""
import multiprocessing as mp
import time


class QuotaError(Exception):
    def __init__(self, message, user, limit):
        super().__init__(message, user, limit)  # all three: the parent unpickles it with them
        self.user = user
        self.limit = limit

    def __str__(self):
        return self.args[0]


def work(n):
    time.sleep(0.01)
    if n % 5 == 0:
        raise QuotaError("quota exceeded for task %d" % n, user="ana", limit=n * 10)
    return n * n


def square(n):
    return n * n


if __name__ == "__main__":
    counter = mp.Value("i", 0)
    done, failed = [], []
    with mp.Pool(2) as pool:
        results = [
            pool.apply_async(work, (n,), callback=done.append, error_callback=failed.append)
            for n in range(1, 21)
        ]
        for r in results:
            r.wait()
        print("squares:", sum(pool.map(square, range(100), chunksize=10)))
        with counter.get_lock():
            counter.value = len(done)
    print("done %d, failed %d, counter %d" % (len(done), len(failed), counter.value))
    p = mp.Process(target=square, args=(3,), name="helper")
    p.start()
    p.join()
    print("helper exit code", p.exitcode)
