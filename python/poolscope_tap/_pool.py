"""What `multiprocessing.pool.Pool` (and `ThreadPool`) do, told to the trace.

Nothing of the pool's behaviour changes: tasks run, fail, hang and settle (or not) exactly as
without the tap. It wraps, at the pool's own seams:

- each task's function in a `_Call` that, in the worker, says when the task starts and how it
  ends (the exception whole, with its traceback's frames: the parent only ever gets a pickled
  copy with the traceback as text);
- each worker's target in `worker_entry`, which gives the worker its number and a slot where it
  keeps the task it is running, and its result queue in an `_Outbox`, so that a task ends in the
  trace once its result is sent (a result pickle cannot send fails the task, as Python then
  fails it with MaybeEncodingError);
- the callbacks, to say that they ran or what they raised;
- the reaping of exited workers: a worker that died while running a task has lost it, and
  Python's Pool never settles that task (`get()` without a timeout waits forever). The trace
  says so: `worker.exited` with the task in `lostTasks`, and a `task.failed` whose error names
  the worker, its exit and what it means for the program.

Task ids are the tap's own, per pool, from 1 (a map chunk is one task, as in the Node library).
"""

import itertools
import os
import signal
import sys
import threading
import time

import multiprocessing.pool as mpp

from . import _emit
from ._lifetime import die_with_parent
from ._values import clip, error_info, name_of, preview, program_frame

_local = threading.local()
# The longest a busy worker process holds its events (what a kill can lose of its trace).
FLUSH_GAP_S = 0.002
_pool_numbers = itertools.count(1)
# The pool's worker list (what the static helpers are given) -> the pool's state.
_by_workers = {}


# A worker's slot: [the task it is running (0: none), whether it holds trace events it has not
# written (1)]. A process worker's is a shared RawArray, read by the pool's process: which task a
# dead worker lost, and whether terminate() should give a worker a moment to write first.
TASK, HOLDING = 0, 1


def _thread_slot():
    """A thread worker's slot: in the pool's own process, a list is enough."""
    return [0, 0]


class _PoolState:
    def __init__(self, pool, backend):
        self.key = "%d:%d" % (os.getpid(), next(_pool_numbers))
        self.backend = backend
        self.tasks = itertools.count(1)
        self.numbers = itertools.count(1)
        self.ctx = getattr(pool, "_ctx", None)
        self.maxtasks = getattr(pool, "_maxtasksperchild", None)
        self.pool = pool
        # id(worker object) -> (worker object, number, slot)
        self.workers = {}
        self.lock = threading.Lock()
        # Tasks reported lost with their worker (an executor fails them again, later).
        self.lost = set()
        # Workers Python removed from the pool, reported once their replacements are in.
        self.reaped = []
        self.lost_means = (
            "Python's Pool does not notice a lost task: it never settles, its callbacks never "
            "run, and get() without a timeout waits forever."
        )

    def slot(self):
        if self.backend == "thread" or self.ctx is None:
            return _thread_slot()
        try:
            return self.ctx.RawArray("q", 2)
        except Exception:  # noqa: BLE001 - no shared memory here: no lost-task diagnosis
            return _thread_slot()

    def worker_args(self, kwds):
        """Rewrites a worker Process's keyword arguments so that its target runs under
        worker_entry, with its number and slot; returns (number, slot)."""
        number = next(self.numbers)
        slot = self.slot()
        kwds["args"] = (self.key, number, slot, kwds.get("target"), tuple(kwds.get("args", ())))
        kwds["target"] = worker_entry
        return number, slot

    def adopt(self, made):
        """Workers just started, as (worker, number, slot): kept, and told to the trace."""
        for w, number, slot in made:
            with self.lock:
                self.workers[id(w)] = (w, number, slot)
            fields = {"pool": self.key, "worker": number}
            if self.backend == "process" and getattr(w, "pid", None):
                fields["workerPid"] = w.pid
            elif self.backend == "thread" and getattr(w, "native_id", None):
                fields["workerTid"] = w.native_id
            _emit.emit("worker.started", fields)

    def announce(self, size, options):
        """pool.created, with the start method among the options where there is one."""
        if self.ctx is not None and self.backend == "process":
            try:
                options["startMethod"] = self.ctx.get_start_method()
            except Exception:  # noqa: BLE001
                pass
        _emit.emit(
            "pool.created",
            {
                "pool": self.key,
                "backend": self.backend,
                "size": max(1, int(size or 1)),
                "module": _creator_file(),
                "options": options,
            },
        )

    def let_workers_write(self, limit_s=0.1):
        """Waits (at most `limit_s`) until no worker process holds unwritten trace events: what
        terminate()'s SIGTERM would otherwise lose (the last tasks' ends of a worker that went
        idle holding them). A worker's flusher thread writes within 25 ms."""
        if self.backend != "process":
            return
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            with self.lock:
                slots = [entry[2] for entry in self.workers.values()]
            if not any(_holding(slot) for slot in slots):
                return
            time.sleep(0.002)

    def report_exit(self, w, terminated=False):
        with self.lock:
            entry = self.workers.pop(id(w), None)
        if entry is None:
            return
        _, number, slot = entry
        code = w.exitcode
        if code is None:
            return
        sig = _signal_name(-code) if code < 0 else None
        running = getattr(self.pool, "_state", None) == mpp.RUN
        if terminated and sig is not None:
            reason = "terminated"
        elif sig is not None:
            reason = "killed"
        elif code != 0:
            reason = "crash"
        elif running and self.maxtasks:
            reason = "recycled"
        else:
            reason = "normal"
        lost = []
        task = _read(slot)
        # Lost: it was running, and its result never reached this process (a worker terminated
        # right after sending it has not cleared its slot yet).
        if task and (code != 0 or sig is not None) and (self.key, task) in _names:
            lost.append(task)
        pid = getattr(w, "pid", None)
        _emit.emit(
            "worker.exited",
            {
                "pool": self.key,
                "worker": number,
                "exitCode": code,
                "signal": sig,
                "reason": reason,
                "lostTasks": lost,
            },
        )
        self.lost.update(lost)
        for task in lost:
            how = ("was killed by %s" % sig) if sig else ("exited with code %d" % code)
            message = "worker %d (pid %s) %s while running this task. %s" % (
                number,
                pid,
                how,
                self.lost_means,
            )
            _emit.emit(
                "task.failed",
                {
                    "pool": self.key,
                    "task": task,
                    "fn": _names.get((self.key, task), "?"),
                    "worker": number,
                    "error": {
                        "thrown": "error",
                        "name": "WorkerExitError",
                        "message": message,
                        "frames": [],
                        "props": {"exitCode": code, "signal": sig, "workerPid": pid},
                    },
                },
            )
        _emit.flush()

    def report_all(self, terminated=False):
        with self.lock:
            workers = [entry[0] for entry in self.workers.values()]
        for w in workers:
            if self.backend == "thread" and getattr(self.pool, "_state", None) != mpp.RUN:
                # A closed or terminated ThreadPool's threads end as soon as they see its
                # sentinels; wait a moment for that rather than report them running.
                try:
                    w.join(0.2)
                except RuntimeError:
                    pass
            self.report_exit(w, terminated)


# (pool key, task) -> function name, while the task is in flight: what a lost task's event names.
_names = {}


def _holding(slot):
    try:
        return bool(slot[HOLDING])
    except Exception:  # noqa: BLE001
        return False


def _read(slot):
    try:
        return int(slot[TASK])
    except Exception:  # noqa: BLE001
        return 0


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def _creator_file():
    """The file where the pool was made (the script's, when it cannot be told)."""
    where = program_frame()
    if where is not None:
        return where[0]
    return os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "?"


def _state(pool, create=True):
    state = pool.__dict__.get("_poolscope")
    if state is None and create:
        backend = "thread" if isinstance(pool, mpp.ThreadPool) else "process"
        state = _PoolState(pool, backend)
        pool.__dict__["_poolscope"] = state
        options = {"processes": getattr(pool, "_processes", None)}
        if state.maxtasks:
            options["maxtasksperchild"] = state.maxtasks
        initializer = getattr(pool, "_initializer", None)
        if initializer is not None:
            options["initializer"] = name_of(initializer)
        state.announce(getattr(pool, "_processes", 1), options)
    return state


# -- the worker's side ------------------------------------------------------------------------


def worker_entry(pool_key, number, slot, target, args):
    """A pool worker's target: its identity for `_Call`, then Python's own worker loop."""
    _local.worker = (pool_key, number, slot)
    if threading.current_thread() is threading.main_thread():
        die_with_parent()
    # A worker process writes its events before it waits for work (it may then be ended by a
    # signal: terminate() sends SIGTERM once the results are in), and at least every
    # FLUSH_GAP_S while it is busy (a task may kill it): at most that much of its trace is lost
    # to a kill, and a burst of small tasks is not a write each (every write wakes the reader,
    # on the same cores). It leaves through os._exit, so nothing is left for later. A thread's events are written by its process's flusher thread: a write releases the
    # GIL, and a write a task made the pool's threads queue behind each other.
    in_process = threading.current_thread() is threading.main_thread()
    _local.flush_busy = in_process
    if in_process:
        _emit.on_written(lambda: slot.__setitem__(HOLDING, 0))
    _local.flushed = 0.0
    args = list(args)
    if len(args) >= 2:
        if in_process:
            args[0] = _Inbox(args[0])
        args[1] = _Outbox(args[1])
    return target(*args)


class _Inbox:
    """A worker process's task queue: what it traced is written before it waits for work."""

    def __init__(self, queue):
        self._queue = queue

    def __getattr__(self, name):
        return getattr(self._queue, name)

    def get(self, *args, **kwds):
        try:
            if _emit.holding() and self._queue.empty():
                _emit.flush()
        except Exception:  # noqa: BLE001 - a closed queue: get() says so
            pass
        return self._queue.get(*args, **kwds)


class _Outbox:
    """The worker's result queue: a task's end is traced once its result is sent."""

    def __init__(self, queue):
        self._queue = queue

    def __getattr__(self, name):
        return getattr(self._queue, name)

    def put(self, obj):
        try:
            self._queue.put(obj)
        except Exception as err:
            _finish(obj, err)
            raise
        _finish(obj, None)


def _finish(obj, send_error):
    pending = getattr(_local, "pending", None)
    if pending is None:
        return
    _local.pending = None
    type_, fields, slot = pending
    if send_error is not None and type_ == "task.succeeded":
        if isinstance(obj, tuple):
            # Pool: Python then fails the task with MaybeEncodingError.
            try:
                value = obj[2][1]
            except Exception:  # noqa: BLE001
                value = None
            wrapped = mpp.MaybeEncodingError(send_error, value)
        else:
            # ProcessPoolExecutor: the future fails with the error itself.
            wrapped = send_error
        pool, task, fn, worker, _, duration, _ = fields
        type_ = "task.failed"
        fields = {
            "pool": pool,
            "task": task,
            "fn": fn,
            "worker": worker,
            "error": error_info(wrapped),
            "durationMs": round(duration, 3),
        }
    if type_ == "task.succeeded":
        pool, task, fn, worker, result, duration, queued = fields
        _emit.task_succeeded(pool, _emit.now(), task, fn, worker, result, duration, queued)
    else:
        _emit.emit(type_, fields)
    slot[TASK] = 0
    slot[HOLDING] = 1
    if getattr(_local, "flush_busy", False):
        at = time.monotonic()
        if at - _local.flushed >= FLUSH_GAP_S:
            _local.flushed = at
            _emit.flush()


class _Call:
    """A task's function, as the worker runs it: traced start and end, nothing else changed."""

    __slots__ = ("fn", "pool", "task", "submitted", "name")

    def __init__(self, fn, pool, task, submitted, name):
        self.fn = fn
        self.pool = pool
        self.task = task
        self.submitted = submitted
        self.name = name

    def __getstate__(self):
        return (self.fn, self.pool, self.task, self.submitted, self.name)

    def __setstate__(self, state):
        self.fn, self.pool, self.task, self.submitted, self.name = state

    def __call__(self, *args, **kwds):
        me = getattr(_local, "worker", None)
        if me is None or me[0] != self.pool:
            return self.fn(*args, **kwds)
        _, number, slot = me
        # A task whose result was never sent (a BaseException ended the last one): end it now.
        _local.pending = None
        started = _emit.now()
        _emit.task_started(self.pool, started, self.task, number)
        slot[TASK] = self.task
        slot[HOLDING] = 1
        try:
            result = self.fn(*args, **kwds)
        except BaseException as err:
            fields = {
                "pool": self.pool,
                "task": self.task,
                "fn": self.name,
                "worker": number,
                "error": error_info(err),
                "durationMs": round(_emit.now() - started, 3),
            }
            slot[HOLDING] = 1
            _local.pending = ("task.failed", fields, slot)
            if not isinstance(err, Exception):
                # Python's worker does not catch it: the worker ends without sending anything.
                _finish(None, None)
            raise
        # Held from here until written: terminate() waits for that (the result is sent first,
        # and SIGTERM may follow at once).
        slot[HOLDING] = 1
        _local.pending = (
            "task.succeeded",
            # task_succeeded's arguments after its time; an int result is written as itself (the
            # consumer writes its preview).
            (
                self.pool,
                self.task,
                self.name,
                number,
                result if type(result) is int else preview(result),
                _emit.now() - started,
                max(0.0, started - self.submitted),
            ),
            slot,
        )
        return result


# -- the parent's side ------------------------------------------------------------------------


def _submitted(state, fn_name, kind, args_preview, items, task=None, ts=None):
    """Traces a submission; a new task id and time unless given."""
    if task is None:
        task = next(state.tasks)
    if ts is None:
        ts = _emit.now()
    _names[(state.key, task)] = fn_name
    _emit.task_submitted(state.key, ts, task, fn_name, kind, items, args_preview)
    return task, ts


def _traced_callback(state, holder, which, fn):
    if fn is None:
        return None

    def invoke(value):
        task = holder[-1] if holder else 0
        try:
            fn(value)
        except BaseException as err:
            if task:
                _emit.emit(
                    "callback.invoked",
                    {"pool": state.key, "task": task, "which": which, "error": error_info(err)},
                )
                _emit.flush()
            raise
        if task:
            _emit.emit("callback.invoked", {"pool": state.key, "task": task, "which": which})

    return invoke


def _remember(result, i, task, name, state):
    """Which trace task stands for chunk `i` of a pool result (for failures in the parent)."""
    book = result.__dict__.get("_poolscope")
    if book is None:
        book = result.__dict__["_poolscope"] = (state, {})
    book[1][i] = (task, name)


_PLAIN = (int, float, bool, type(None))


def _args_preview(args, kwds):
    """The arguments as the call writes them: `10`, `1, 2`, `1, key='x'`."""
    if not kwds and len(args) <= 8:
        # The common case, without reprlib: numbers, and short strings.
        for a in args:
            t = type(a)
            if t not in _PLAIN and not (t is str and len(a) <= 60):
                break
        else:
            return ", ".join([repr(a) for a in args])
    parts = [preview(a, 80) for a in tuple(args)[:8]]
    if len(args) > 8:
        parts.append("…")
    parts += ["%s=%s" % (k, preview(v, 80)) for k, v in list(dict(kwds).items())[:8]]
    return clip(", ".join(parts), 200)


def _items_preview(items):
    """A chunk's first items: `0, 1, 2, …`."""
    items = tuple(items)
    parts = [preview(x, 40) for x in items[:8]]
    if len(items) > 8:
        parts.append("…")
    return clip(", ".join(parts), 200)


def _install():
    Pool = mpp.Pool
    orig_repopulate = Pool._repopulate_pool
    orig_static = Pool._repopulate_pool_static
    orig_join_exited = Pool._join_exited_workers
    orig_apply_async = Pool.apply_async
    orig_map_async = Pool._map_async
    orig_imap = Pool.imap
    orig_imap_unordered = Pool.imap_unordered
    orig_generation = Pool._guarded_task_generation
    orig_close = Pool.close
    orig_terminate = Pool.terminate
    orig_join = Pool.join
    # Python's apply_async is rewritten below only where it is what the tap knows.
    own_apply = hasattr(Pool, "_check_running") and hasattr(mpp, "ApplyResult")

    def _repopulate_pool(self):
        state = _state(self)
        _by_workers[id(self._pool)] = state
        return orig_repopulate(self)

    def _repopulate_pool_static(ctx, Process, processes, pool, *rest):
        state = _by_workers.get(id(pool))
        if state is None:
            return orig_static(ctx, Process, processes, pool, *rest)
        made = []

        def traced_process(ctx_, *args, **kwds):
            number, slot = state.worker_args(kwds)
            w = Process(ctx_, *args, **kwds)
            made.append((w, number, slot))
            return w

        try:
            return orig_static(ctx, traced_process, processes, pool, *rest)
        finally:
            with state.lock:
                reaped, state.reaped = state.reaped, []
            for w in reaped:
                state.report_exit(w)
            state.adopt(made)

    def _join_exited_workers(pool):
        # The workers Python reaps are the ones it removes: a worker that becomes reapable a
        # moment after a check of our own would be missed by one. They are reported once their
        # replacements are in the list (_repopulate_pool_static): until then the pool may have
        # no worker at all, and map_async() divides by their number.
        before = list(pool)
        cleaned = orig_join_exited(pool)
        state = _by_workers.get(id(pool))
        if state is not None:
            gone = [w for w in before if not any(w is kept for kept in pool)]
            with state.lock:
                state.reaped.extend(gone)
        return cleaned

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):  # noqa: B006
        state = _state(self, create=False)
        if state is None or getattr(self, "_state", None) != mpp.RUN:
            return orig_apply_async(self, func, args, kwds, callback, error_callback)
        if not own_apply:
            return orig_apply_async(self, func, args, kwds, callback, error_callback)
        # Python's own apply_async, with the task known to the result before any worker can
        # settle it.
        self._check_running()
        name = name_of(func)
        task, ts = _submitted(state, name, "apply", _args_preview(args, kwds), 1)
        holder = [task]
        result = mpp.ApplyResult(
            self,
            _traced_callback(state, holder, "callback", callback),
            _traced_callback(state, holder, "errorCallback", error_callback),
        )
        _remember(result, 0, task, name, state)
        call = _Call(func, state.key, task, ts, name)
        self._taskqueue.put(([(result._job, 0, call, args, kwds)], None))
        return result

    def _map_async(
        self, func, iterable, mapper, chunksize=None, callback=None, error_callback=None
    ):
        state = _state(self, create=False)
        if state is None:
            return orig_map_async(self, func, iterable, mapper, chunksize, callback, error_callback)
        holder = []
        _local.holder = holder
        try:
            return orig_map_async(
                self,
                func,
                iterable,
                mapper,
                chunksize,
                _traced_callback(state, holder, "callback", callback),
                _traced_callback(state, holder, "errorCallback", error_callback),
            )
        finally:
            _local.holder = None

    def imap(self, func, iterable, chunksize=1):
        _local.kind = "imap"
        try:
            return orig_imap(self, func, iterable, chunksize)
        finally:
            _local.kind = None

    def imap_unordered(self, func, iterable, chunksize=1):
        _local.kind = "imapUnordered"
        try:
            return orig_imap_unordered(self, func, iterable, chunksize)
        finally:
            _local.kind = None

    def _guarded_task_generation(self, result_job, func, iterable):
        tasks = orig_generation(self, result_job, func, iterable)
        state = _state(self, create=False)
        if state is None:
            return tasks
        kind = getattr(_local, "kind", None) or (
            "starmap" if func is mpp.starmapstar else "map"
        )
        holder = getattr(_local, "holder", None)
        return _traced_tasks(self, state, kind, func, tasks, holder)

    def close(self):
        orig_close(self)
        state = _state(self, create=False)
        if state is not None:
            _emit.emit("pool.closed", {"pool": state.key})

    def terminate(self):
        state = _state(self, create=False)
        if state is not None:
            state.let_workers_write()
            _emit.emit("pool.terminated", {"pool": state.key})
        orig_terminate(self)
        if state is not None:
            state.report_all(terminated=True)
            _emit.flush()

    def join(self):
        orig_join(self)
        state = _state(self, create=False)
        if state is not None:
            state.report_all()
            _by_workers.pop(id(getattr(self, "_pool", None)), None)
            _emit.flush()

    Pool._repopulate_pool = _repopulate_pool
    Pool._repopulate_pool_static = staticmethod(_repopulate_pool_static)
    Pool._join_exited_workers = staticmethod(_join_exited_workers)
    Pool.apply_async = apply_async
    Pool._map_async = _map_async
    Pool.imap = imap
    Pool.imap_unordered = imap_unordered
    Pool._guarded_task_generation = _guarded_task_generation
    Pool.close = close
    Pool.terminate = terminate
    Pool.join = join
    for cls in (mpp.ApplyResult, mpp.MapResult, mpp.IMapIterator, mpp.IMapUnorderedIterator):
        if "_set" in cls.__dict__:
            cls._set = _traced_set(cls.__dict__["_set"])


def _traced_tasks(pool, state, kind, func, tasks, holder):
    for job, i, fn, args, kwds in tasks:
        if fn is mpp.mapstar or fn is mpp.starmapstar:
            user_fn, chunk = args[0]
            name = name_of(user_fn)
            items = len(chunk)
            shown = _items_preview(chunk)
        elif fn is mpp._helper_reraises_exception:
            name = name_of(func)
            items = 0
            shown = preview(args[0])
        else:
            name = name_of(fn)
            items = 1
            shown = _args_preview(args, kwds)
        task, ts = _submitted(state, name, kind, shown, items)
        if holder is not None:
            holder.append(task)
        result = pool._cache.get(job)
        if result is not None:
            _remember(result, i, task, name, state)
        yield (job, i, _Call(fn, state.key, task, ts, name), args, kwds)


def _traced_set(orig):
    """A result's `_set`: a failure raised in the parent (an argument pickle could not send,
    before any worker saw the task) is traced there, since no worker will."""

    def _set(self, i, obj):
        try:
            book = self.__dict__.get("_poolscope")
            if book is not None:
                state, chunks = book
                entry = chunks.pop(i, None)
                if entry is not None:
                    task, name = entry
                    _names.pop((state.key, task), None)
                    handler = getattr(state.pool, "_task_handler", None)
                    if obj[0] is False and threading.current_thread() is handler:
                        _emit.emit(
                            "task.failed",
                            {
                                "pool": state.key,
                                "task": task,
                                "fn": name,
                                "error": error_info(obj[1]),
                            },
                        )
        except Exception:  # noqa: BLE001 - tracing must never break the pool
            pass
        return orig(self, i, obj)

    return _set


def _broken_pool_hook(orig):
    """A pool thread that dies (the result handler, when a task's exception cannot be unpickled)
    leaves every pending task waiting forever, with only a thread's traceback on stderr to say
    so: say what it means."""

    def hook(args):
        orig(args)
        try:
            for state in list(_by_workers.values()):
                pool = state.pool
                role = None
                if args.thread is getattr(pool, "_result_handler", None):
                    role = "result handler"
                elif args.thread is getattr(pool, "_task_handler", None):
                    role = "task handler"
                if role is None:
                    continue
                hint = ""
                if isinstance(args.exc_value, TypeError) and "__init__()" in str(args.exc_value):
                    hint = (
                        " A task's exception could not be unpickled: an exception class whose "
                        "__init__ takes other arguments than it passes to Exception.__init__ "
                        "(give them all to super().__init__, or define __reduce__)."
                    )
                sys.stderr.write(
                    "poolscope: pool %s's %s thread died (%s: %s). Python's Pool delivers no "
                    "more results: every pending task stays pending, and get() without a "
                    "timeout waits forever.%s\n"
                    % (state.key, role, type(args.exc_value).__name__, args.exc_value, hint)
                )
                sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass

    return hook


def _sweep():
    """At exit: the exits of workers nobody reaped (a terminated ThreadPool's threads)."""
    for state in list(_by_workers.values()):
        state.report_all()
    _emit.flush_at_exit()


def install():
    """Installs the pool hooks (once: see poolscope_tap.install)."""
    _install()
    import atexit

    atexit.register(_sweep)
    threading.excepthook = _broken_pool_hook(threading.excepthook)
