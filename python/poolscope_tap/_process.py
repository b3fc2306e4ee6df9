"""`multiprocessing.Process` in the trace: `process.started` when it starts, `process.exited`
with its exit code (Python's: `-N` for signal N) when it ends, and the exception whole when its
target raised.

The exit is watched by a daemon thread waiting on the processes' sentinels; it reads a child's
status with `waitid(WNOWAIT)`, which leaves the child to be reaped by the program's own
`join()`: the tap never changes what `exitcode` and `join()` do. The exception is traced by the
child itself (the parent only sees exit code 1 and a traceback on stderr).
"""

import atexit
import os
import signal
import threading
import time

from multiprocessing import process as mproc

from . import _emit
from ._lifetime import die_with_parent
from ._values import error_info, name_of


class ChildHook:
    """Carried by a started Process: a `spawn` child that unpickles it imports the tap."""

    __slots__ = ()

    def __reduce__(self):
        return (ChildHook, ())


def _is_pool_worker(p):
    from ._pool import worker_entry

    return getattr(p, "_target", None) is worker_entry


def _target_name(p):
    target = getattr(p, "_target", None)
    if target is not None:
        return name_of(target)
    return "%s.run" % type(p).__qualname__


class _Watcher:
    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.procs = {}
        # id(process) -> what reports its exit instead of process.exited (a manager's server).
        self.callbacks = {}
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name="poolscope-tap-exits", daemon=True)
        self.thread.start()

    def add(self, p, on_exit=None):
        with self.lock:
            self.procs[p.sentinel] = p
            if on_exit is not None:
                self.callbacks[id(p)] = on_exit
        os.write(self.wake_w, b"x")

    def _run(self):
        from multiprocessing.connection import wait

        while True:
            with self.lock:
                sentinels = list(self.procs)
            try:
                ready = wait(sentinels + [self.wake_r], timeout=1.0)
            except (OSError, ValueError):
                ready = [s for s in sentinels if not _open(s)]
            for s in ready:
                if s == self.wake_r:
                    os.read(self.wake_r, 4096)
                    continue
                with self.lock:
                    p = self.procs.get(s)
                if p is not None:
                    self.done(p)

    def done(self, p):
        """Reports `p`'s exit, once, whichever thread gets there first (the program's join(),
        or this watcher, which may be stopped at any point when the interpreter exits)."""
        try:
            code, sig = _status(p)
        except Exception:  # noqa: BLE001 - a closed Process object: its status is gone
            code, sig = None, None
        with self.lock:
            keys = [k for k, q in self.procs.items() if q is p]
            if not keys:
                return
            del self.procs[keys[0]]
            on_exit = self.callbacks.pop(id(p), None)
            if on_exit is None:
                _emit.emit("process.exited", {"name": p.name, "exitCode": code, "signal": sig})
        if on_exit is not None:
            try:
                on_exit(code, sig)
            except Exception:  # noqa: BLE001
                pass
        _emit.flush()


def _open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _status(p):
    """(exit code, signal name) of an ended child, without reaping it."""
    deadline = time.monotonic() + 2.0
    while True:
        popen = getattr(p, "_popen", None)
        code = getattr(popen, "returncode", None)
        if code is not None:
            return code, (_signal_name(-code) if code < 0 else None)
        try:
            res = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            res = None  # reaped by the program's join() a moment ago (returncode comes next)
        except OSError:
            return None, None
        if res is not None:
            if res.si_code == os.CLD_EXITED:
                return res.si_status, None
            return -res.si_status, _signal_name(res.si_status)
        if time.monotonic() > deadline:
            return None, None
        time.sleep(0.005)


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


_watcher = None
_watcher_lock = threading.Lock()


def watch(p, on_exit=None):
    """Reports `p`'s exit: process.exited, or `on_exit(code, signal)` instead."""
    global _watcher
    with _watcher_lock:
        if _watcher is None or _watcher.pid != os.getpid():
            _watcher = _Watcher()
        _watcher.add(p, on_exit)


def install():
    """Installs the hooks (once: see poolscope_tap.install)."""
    BaseProcess = mproc.BaseProcess
    orig_start = BaseProcess.start
    orig_bootstrap = BaseProcess._bootstrap
    orig_join = BaseProcess.join

    def start(self):
        if _is_pool_worker(self):
            return orig_start(self)
        from . import _manager

        if _manager.is_server_target(self):
            # A manager's server: in the trace as the manager (_manager.py), not a Process.
            self.__dict__["_poolscope"] = _manager.ManagerHook(_manager.serving())
            return orig_start(self)
        self.__dict__["_poolscope"] = ChildHook()
        target = _target_name(self)  # start() lets go of the target
        orig_start(self)
        _emit.emit(
            "process.started",
            {"name": self.name, "target": target, "backend": "process", "processPid": self.pid},
        )
        try:
            watch(self)
        except Exception:  # noqa: BLE001 - no exit event, the program is unaffected
            pass

    def _bootstrap(self, *args, **kwds):
        from . import _manager

        if not _is_pool_worker(self):
            # A Process or a manager's server (a pool worker arms itself in worker_entry).
            die_with_parent()

        if not _is_pool_worker(self) and not _manager.is_server_target(self):
            run = self.run

            def traced_run():
                try:
                    run()
                except SystemExit:
                    raise
                except BaseException as err:
                    _emit.emit(
                        "process.exited",
                        {"name": self.name, "exitCode": 1, "signal": None, "error": error_info(err)},
                    )
                    _emit.flush()
                    raise

            self.run = traced_run
        return orig_bootstrap(self, *args, **kwds)

    def join(self, timeout=None):
        orig_join(self, timeout)
        if getattr(getattr(self, "_popen", None), "returncode", None) is not None:
            w = _watcher
            if w is not None and w.pid == os.getpid():
                w.done(self)

    BaseProcess.start = start
    BaseProcess._bootstrap = _bootstrap
    BaseProcess.join = join
    atexit.register(_sweep)


def _sweep():
    """At exit: the exits the watcher thread has not reported yet (it may never run again)."""
    w = _watcher
    if w is not None and w.pid == os.getpid():
        with w.lock:
            procs = list(w.procs.values())
        for p in procs:
            popen = getattr(p, "_popen", None)
            if getattr(popen, "returncode", None) is not None or _exited(p):
                w.done(p)
        _emit.flush_at_exit()


def _exited(p):
    try:
        return os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
    except OSError:
        return False


def _after_fork():
    global _watcher, _watcher_lock
    _watcher = None
    _watcher_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
