#!/usr/bin/env python3
"""Python anchors for bench/run.mjs: multiprocessing.Pool (processes) and
multiprocessing.dummy.Pool (ThreadPool). Stdlib only.

One measurement per invocation; prints one line "RESULT {json}".

  python3 bench/measure_py.py --mode process|thread \
      --scenario throughput|errors|errlat|crash|map \
      [--tasks 20000] [--lat 200] [--items 1000000] [--crash-timeout-s 10]
"""
import argparse
import json
import math
import multiprocessing
import multiprocessing.dummy
import os
import platform
import subprocess
import sys
import threading
import time
import traceback

N_WARMUP = 200
POOL_SIZE = 2
OPTS = None  # parsed arguments, set in main()


# --- task functions (module level so they pickle) ---------------------------
def inc(x):
    return x + 1


def fail(x):
    err = ValueError("task failed: %d" % x)
    err.code = "E_CUSTOM"
    err.detail = {"x": x}
    raise err


def crash(_=None):
    os._exit(3)


def whoami(s):
    time.sleep(s)
    return "%d:%d" % (os.getpid(), threading.get_ident())


# --- helpers -----------------------------------------------------------------
def emit(obj):
    sys.stdout.write("RESULT " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def make_pool(mode):
    if mode == "process":
        return multiprocessing.Pool(POOL_SIZE)
    if mode == "thread":
        return multiprocessing.dummy.Pool(POOL_SIZE)  # == multiprocessing.pool.ThreadPool
    raise SystemExit("unknown mode " + mode)


def warmup(pool):
    pool.map(inc, range(N_WARMUP))


def pct(sorted_vals, p):
    idx = min(len(sorted_vals) - 1, max(0, math.ceil(p * len(sorted_vals)) - 1))
    return sorted_vals[idx]


def inspect_error(e):
    # For process pools the worker traceback arrives as e.__cause__
    # (RemoteTraceback); format_exception follows the cause chain.
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return {
        "type": type(e).__name__,
        "isError": isinstance(e, Exception),
        "message": str(e),
        "stackHasWorkerFrame": ("in fail" in text) and ("measure_py.py" in text),
        "code": getattr(e, "code", None),
        "customCodePreserved": getattr(e, "code", None) == "E_CUSTOM",
        "customObjectPreserved": isinstance(getattr(e, "detail", None), dict) and "x" in e.detail,
        "tracebackTail": " | ".join(l.strip() for l in text.strip().splitlines()[-6:]),
    }


def submit_all(pool, fn, n, on_result, kw):
    """apply_async n times; returns after every callback (or error_callback) ran."""
    count = [0]
    done = threading.Event()

    def make_cb(i):
        def cb(r):
            on_result(i, r)
            count[0] += 1  # callbacks run on the single result-handler thread
            if count[0] == n:
                done.set()
        return cb

    cbs = [make_cb(i) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(n):
        pool.apply_async(fn, (i,), **{kw: cbs[i]})
    done.wait()
    return (time.perf_counter() - t0) * 1000


# --- scenarios --------------------------------------------------------------
def sc_throughput(mode):
    n = OPTS.tasks
    with make_pool(mode) as pool:
        warmup(pool)
        results = [None] * n
        ms = submit_all(pool, inc, n, results.__setitem__, "callback")
    assert all(results[i] == i + 1 for i in range(n))
    return {"tasks": n, "ms": ms, "tasksPerSec": n / (ms / 1000)}


def sc_errors(mode):
    n = OPTS.tasks
    with make_pool(mode) as pool:
        warmup(pool)
        errors = [None] * n
        ms = submit_all(pool, fail, n, errors.__setitem__, "error_callback")
    info, info2 = inspect_error(errors[0]), inspect_error(errors[-1])
    return {
        "tasks": n,
        "rejected": sum(1 for e in errors if isinstance(e, Exception)),
        "ms": ms,
        "tasksPerSec": n / (ms / 1000),
        "stackHasWorkerFrame": info["stackHasWorkerFrame"] and info2["stackHasWorkerFrame"],
        "customCodePreserved": info["customCodePreserved"] and info2["customCodePreserved"],
        "customObjectPreserved": info["customObjectPreserved"] and info2["customObjectPreserved"],
        "sample": info,
    }


def sc_errlat(mode):
    with make_pool(mode) as pool:
        warmup(pool)
        for i in range(20):
            try:
                pool.apply_async(fail, (i,)).get()
            except ValueError:
                pass
        lat = []
        for i in range(OPTS.lat):
            t0 = time.perf_counter()
            try:
                pool.apply_async(fail, (i,)).get()
                raise RuntimeError("a failing task returned")
            except ValueError:
                pass
            lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return {"runs": len(lat), "medianMs": pct(lat, 0.5), "p99Ms": pct(lat, 0.99), "maxMs": lat[-1]}


def sc_crash(mode):
    timeout = OPTS.crash_timeout_s
    if mode == "thread":
        # os._exit in a ThreadPool thread ends the whole interpreter: observe
        # it from a child interpreter.
        t0 = time.perf_counter()
        cp = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child-threadpool-crash"],
            capture_output=True, text=True, timeout=60,
        )
        return {
            "crashOutcome": "whole-process-exit",
            "crashMs": (time.perf_counter() - t0) * 1000,
            "childReturnCode": cp.returncode,
            "exitCodeInError": False,
            "poolWorksAfter": False,
            "note": "os._exit(3) in a ThreadPool task exits the whole interpreter "
                    "(child interpreter return code shown); no error callback, no result.",
        }
    out = {"crashTimeoutMs": timeout * 1000}
    with make_pool(mode) as pool:
        warmup(pool)
        t0 = time.perf_counter()
        r = pool.apply_async(crash, (0,))
        try:
            r.get(timeout=timeout)
            out["crashOutcome"] = "resolved"
        except multiprocessing.TimeoutError:
            out["crashOutcome"] = "timeout"
        except Exception as e:  # noqa: BLE001
            out["crashOutcome"] = "rejected"
            out["crashMessage"] = "%s: %s" % (type(e).__name__, e)
        out["crashMs"] = (time.perf_counter() - t0) * 1000
        out["exitCodeInError"] = "3" in out.get("crashMessage", "")
        # Does the pool keep working? (Pool replaces dead workers.)
        try:
            rs = [pool.apply_async(inc, (i,)) for i in range(10)]
            out["poolWorksAfter"] = [x.get(timeout=timeout) for x in rs] == [i + 1 for i in range(10)]
            out["afterOutcome"] = "resolved"
        except multiprocessing.TimeoutError:
            out["poolWorksAfter"] = False
            out["afterOutcome"] = "timeout"
        try:
            ids = [pool.apply_async(whoami, (0.1,)) for _ in range(4)]
            out["liveWorkersAfter"] = len({x.get(timeout=timeout) for x in ids})
        except multiprocessing.TimeoutError:
            out["liveWorkersAfter"] = None
    return out  # leaving the with-block calls terminate()


def sc_map(mode):
    n = OPTS.items
    with make_pool(mode) as pool:
        warmup(pool)
        items = list(range(n))
        t0 = time.perf_counter()
        res = pool.map(inc, items)  # default chunksize
        ms = (time.perf_counter() - t0) * 1000
    assert len(res) == n and all(res[i] == i + 1 for i in range(n))
    return {"items": n, "ms": ms, "itemsPerSec": n / (ms / 1000)}


def child_threadpool_crash():
    with multiprocessing.dummy.Pool(POOL_SIZE) as pool:
        warmup(pool)
        r = pool.apply_async(crash, (0,))
        try:
            r.get(timeout=10)
            print("crash task returned", flush=True)
        except Exception as e:  # noqa: BLE001
            print("crash task raised %s" % type(e).__name__, flush=True)
        print("still alive after crash", flush=True)


SCENARIOS = {"throughput": sc_throughput, "errors": sc_errors, "errlat": sc_errlat,
             "crash": sc_crash, "map": sc_map}


def main():
    global OPTS
    if "--child-threadpool-crash" in sys.argv:
        child_threadpool_crash()
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="process", choices=["process", "thread"])
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--lat", type=int, default=200)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--crash-timeout-s", type=float, default=10.0)
    OPTS = ap.parse_args()
    try:
        res = SCENARIOS[OPTS.scenario](OPTS.mode)
    except Exception:  # noqa: BLE001
        emit({"error": traceback.format_exc()})
        sys.exit(1)
    emit({
        "python": platform.python_version(),
        "startMethod": multiprocessing.get_start_method(),
        "lib": "python",
        "version": platform.python_version(),
        "mode": OPTS.mode,
        "scenario": OPTS.scenario,
        **res,
    })


if __name__ == "__main__":
    main()
