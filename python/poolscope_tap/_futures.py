"""`concurrent.futures.ProcessPoolExecutor` in the trace, as a pool: its workers, each
`submit` (and each chunk of `map`) a task told by the worker that runs it, the exception whole,
and when a worker dies: the task it was running, and every pending future failing with
`BrokenProcessPool`, which is what the executor does.

It reuses the Pool's parts (_pool.py): the task wrapper, the worker's entry and result queue,
the per-worker slot that tells which task a dead worker lost.
"""

import threading
from concurrent.futures import process as cfp
from functools import partial
from multiprocessing.connection import wait

from . import _emit
from ._pool import (
    _Call,
    _PoolState,
    _args_preview,
    _items_preview,
    _names,
    _submitted,
)
from ._values import error_info, name_of


class _ExecutorState(_PoolState):
    def __init__(self, executor):
        super().__init__(executor, "process")
        self.ctx = getattr(executor, "_mp_context", None)
        self.maxtasks = getattr(executor, "_max_tasks_per_child", None)
        self.spawning = threading.Lock()
        self.lost_means = (
            "The executor is broken: this future and every pending one fail with "
            "BrokenProcessPool, and submit() raises it."
        )


class _TracedContext:
    """The executor's multiprocessing context while it spawns a worker: the worker's target is
    wrapped as a Pool worker's is."""

    def __init__(self, inner, state, made):
        self.inner = inner
        self.state = state
        self.made = made

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def Process(self, *args, **kwds):  # noqa: N802 - the context's API
        number, slot = self.state.worker_args(kwds)
        p = self.inner.Process(*args, **kwds)
        self.made.append((p, number, slot))
        return p


def _describe(fn, args):
    """(name, kind, items, preview) of a submitted call; a map chunk is one task."""
    if isinstance(fn, partial) and fn.func is cfp._process_chunk and fn.args:
        chunk = args[0] if args else ()
        return name_of(fn.args[0]), "map", len(chunk), _items_preview(chunk)
    return name_of(fn), "apply", 1, None


def install():
    """Installs the hooks (once: see poolscope_tap.install)."""
    Executor = cfp.ProcessPoolExecutor
    orig_init = Executor.__init__
    orig_spawn = Executor._spawn_process
    orig_submit = Executor.submit
    orig_shutdown = Executor.shutdown
    Manager = cfp._ExecutorManagerThread
    orig_broken = Manager.terminate_broken

    def __init__(self, *args, **kwds):
        orig_init(self, *args, **kwds)
        state = _ExecutorState(self)
        self.__dict__["_poolscope"] = state
        options = {"max_workers": self._max_workers}
        if state.maxtasks:
            options["max_tasks_per_child"] = state.maxtasks
        state.announce(self._max_workers, options)

    def _spawn_process(self):
        state = self.__dict__.get("_poolscope")
        if state is None:
            return orig_spawn(self)
        made = []
        with state.spawning:
            # Workers that left meanwhile (max_tasks_per_child) are reported before their
            # replacements start.
            for w, _, _ in list(state.workers.values()):
                if w.exitcode is not None:
                    state.report_exit(w)
            real = self._mp_context
            self._mp_context = _TracedContext(real, state, made)
            try:
                return orig_spawn(self)
            finally:
                self._mp_context = real
                state.adopt(made)

    def submit(self, fn, /, *args, **kwargs):
        state = self.__dict__.get("_poolscope")
        if state is None:
            return orig_submit(self, fn, *args, **kwargs)
        name, kind, items, shown = _describe(fn, args)
        task = next(state.tasks)
        ts = _emit.now()
        future = orig_submit(self, _Call(fn, state.key, task, ts, name), *args, **kwargs)
        # Told once the executor took it (submit raises on a broken or shut down executor).
        if shown is None:
            shown = _args_preview(args, kwargs)
        _submitted(state, name, kind, shown, items, task, ts)
        future.__dict__["_poolscope"] = (task, name)
        # Its result is in: not lost with its worker (see _PoolState.report_exit).
        future.add_done_callback(lambda _f, key=(state.key, task): _names.pop(key, None))
        return future

    def shutdown(self, wait=True, **kwds):
        orig_shutdown(self, wait, **kwds)
        state = self.__dict__.get("_poolscope")
        if state is not None and wait:
            state.report_all()
            _emit.emit("pool.closed", {"pool": state.key})
            _emit.flush()

    def terminate_broken(self, cause):
        executor = self.executor_reference()
        state = executor.__dict__.get("_poolscope") if executor is not None else None
        if state is None:
            return orig_broken(self, cause)
        pending = list(self.pending_work_items.values())
        # The dead worker first, while its task is still pending (its lost task, with why). Its
        # sentinel says it is gone a moment before its exit status can be read: wait for that.
        for w, _, _ in list(state.workers.values()):
            try:
                gone = bool(wait([w.sentinel], timeout=0))
            except (OSError, ValueError):
                gone = False
            if gone:
                w.join(1.0)
                if w.exitcode not in (None, 0):
                    state.report_exit(w)
        orig_broken(self, cause)
        # ...then the workers the executor terminated, and every future it failed.
        for w, _, _ in list(state.workers.values()):
            state.report_exit(w, terminated=True)
        for item in pending:
            info = item.future.__dict__.get("_poolscope")
            if info is None or info[0] in state.lost or not item.future.done():
                continue
            err = item.future.exception()
            if err is not None:
                _emit.emit(
                    "task.failed",
                    {
                        "pool": state.key,
                        "task": info[0],
                        "fn": info[1],
                        # The executor's error, not yet raised where the program asks for it.
                        "error": error_info(err, traceback_of=False),
                    },
                )
        _emit.emit("pool.terminated", {"pool": state.key})
        _emit.flush()

    Executor.__init__ = __init__
    Executor._spawn_process = _spawn_process
    Executor.submit = submit
    Executor.shutdown = shutdown
    Manager.terminate_broken = terminate_broken
