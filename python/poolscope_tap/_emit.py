"""The tap's trace emitter: protocol v2 events as JSON lines, to the sink in the environment.

Speaks what docs/protocol.md describes, like the Node library's emitter (core/trace/emitter.ts):

    POOLSCOPE_TRACE=unix:/path/to/socket  with POOLSCOPE_TRACE_TOKEN=<token>
    POOLSCOPE_TRACE=file:/path/to/trace.jsonl
    POOLSCOPE_RUN=<run id>

Each process has its own connection (a forked child opens a new one: a socket shared across a
fork would interleave bytes). Lines are buffered and written every 25 ms by a daemon thread, at
64 KiB, when asked (`flush()`, which a pool worker does after each task, since a worker process
ends with os._exit and runs no atexit handler), and at exit. Writes never block the program: the
socket is non-blocking, and what it does not take stays buffered. Memory is bounded as in the
Node emitter: past 4 MiB held, task.submitted, task.started and output events are dropped and
counted; past 64 MiB, every event. A sink that goes away turns tracing off; the program never
fails because of it.
"""

import array
import atexit
import base64
import collections
import json
import os
import select
import socket
import sys
import threading
import time

PROTOCOL_VERSION = 2
DROPPABLE = frozenset(("task.submitted", "task.started", "output"))
# Written at once (they are few): what a program stopped by a signal must not take with it, as a
# flusher thread a loaded machine has not scheduled yet would.
PROMPT = frozenset(
    (
        "pool.created",
        "pool.closed",
        "pool.terminated",
        "worker.started",
        "worker.exited",
        "process.started",
        "process.exited",
        "manager.started",
        "manager.stopped",
        "shared.created",
    )
)
SOFT_LIMIT = 4 * 1024 * 1024
HARD_LIMIT = 64 * 1024 * 1024
FLUSH_BYTES = 64 * 1024
FLUSH_S = 0.025
EXIT_FLUSH_S = 2.0

_TARGET = os.environ.get("POOLSCOPE_TRACE", "")
_TOKEN = os.environ.get("POOLSCOPE_TRACE_TOKEN", "")
_RUN = os.environ.get("POOLSCOPE_RUN", "")

# Milliseconds since the epoch = _ORIGIN_MS + monotonic milliseconds. Computed once, before any
# fork, so a forked worker stamps its events on its parent's clock (CLOCK_MONOTONIC is one clock
# for the whole machine).
_ORIGIN_MS = time.time() * 1000.0 - time.monotonic() * 1000.0


def enabled():
    """Whether a sink is configured (the tap installs nothing without one)."""
    return _ENABLED


_ENABLED = bool(_RUN) and (_TARGET.startswith("unix:") or _TARGET.startswith("file:"))


def now():
    """Milliseconds since the Unix epoch, from a monotonic clock, rounded to microseconds."""
    return round(_ORIGIN_MS + time.monotonic() * 1000.0, 3)


def _tid():
    if threading.current_thread() is threading.main_thread():
        return 0
    return threading.get_native_id()


class _Emitter:
    """One process's buffer and connection."""

    def __init__(self):
        self.pid = os.getpid()
        # Emitting threads never take a lock (a lock Python threads contend for hands over
        # through the GIL's switch interval: milliseconds an event under load): deque appends
        # and pops are atomic. Only writing is serialized.
        self.write_lock = threading.Lock()
        self.pending = collections.deque()
        self.pending_bytes = 0
        self.unsent = b""
        self.offset = 0
        self.sock = None
        self.fd = None
        self.dead = False
        self.dropped = 0
        self.dropped_types = {}
        self.thread = None
        # Called after a flush that left nothing held (a pool worker's slot says so).
        self.written = None
        self._open()

    def _open(self):
        try:
            if _TARGET.startswith("unix:"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(_TARGET[len("unix:") :])
                sock.setblocking(False)
                self.sock = sock
                hello = {
                    "hello": PROTOCOL_VERSION,
                    "token": _TOKEN,
                    "pid": self.pid,
                    "tid": _tid(),
                    "run": _RUN,
                }
                self.unsent = (json.dumps(hello) + "\n").encode()
            else:
                path = _TARGET[len("file:") :]
                self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            self.dead = True

    def emit(self, type_, fields, ts=None):
        if self.dead:
            return
        line = _json_line(type_, fields, now() if ts is None else ts, self.pid, _tid())
        held = self.pending_bytes + len(self.unsent) - self.offset
        if held > HARD_LIMIT or (held > SOFT_LIMIT and type_ in DROPPABLE):
            # Counted without a lock: under contention a count may come out low, never high.
            self.dropped += 1
            self.dropped_types[type_] = self.dropped_types.get(type_, 0) + 1
            return
        self.pending.append(line)
        self.pending_bytes += len(line)
        if self.pending_bytes >= FLUSH_BYTES or type_ in PROMPT:
            self.flush()
        else:
            self._ensure_thread()

    def record(self, rec, droppable):
        """Queues a task record (see TaskRecords): a tuple, encoded when written."""
        if self.dead:
            return
        held = self.pending_bytes + len(self.unsent) - self.offset
        if held > HARD_LIMIT or (held > SOFT_LIMIT and droppable):
            self.dropped += 1
            name = _RECORD_TYPES[rec[0]]
            self.dropped_types[name] = self.dropped_types.get(name, 0) + 1
            return
        self.pending.append(rec)
        self.pending_bytes += RECORD_BYTES
        if self.pending_bytes >= FLUSH_BYTES:
            self.flush()
        else:
            self._ensure_thread()

    def _queue_dropped(self):
        """The events.dropped event, once there is room again (called while writing)."""
        event = {
            "v": PROTOCOL_VERSION,
            "ts": now(),
            "pid": self.pid,
            "tid": _tid(),
            "run": _RUN,
            "type": "events.dropped",
            "count": self.dropped,
            "types": self.dropped_types,
        }
        line = json.dumps(event) + "\n"
        self.pending.append(line)
        self.pending_bytes += len(line)
        self.dropped = 0
        self.dropped_types = {}

    def _ensure_thread(self):
        if self.thread is None and self.write_lock.acquire(blocking=False):
            try:
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._run, name="poolscope-tap-flush", daemon=True
                    )
                    self.thread.start()
            finally:
                self.write_lock.release()

    def _run(self):
        while not self.dead:
            time.sleep(FLUSH_S)
            if self.pending or self.offset < len(self.unsent):
                self.flush()
            elif self.written is not None:
                self.written()  # a flag set after the last write: nothing is held

    def flush(self, deadline=None):
        """Writes what the sink takes now; with a deadline, waits for it until then."""
        with self.write_lock:
            if self.dead:
                return
            if self.dropped and self.pending_bytes + len(self.unsent) - self.offset < SOFT_LIMIT // 2:
                self._queue_dropped()
            if self.pending:
                lines = []
                pop = self.pending.popleft
                try:
                    for _ in range(len(self.pending)):
                        lines.append(pop())
                except IndexError:
                    pass
                # Recounted, not decremented: emitting threads add to it without a lock.
                self.pending_bytes = sum(
                    len(item) if isinstance(item, str) else RECORD_BYTES
                    for item in list(self.pending)
                )
                # What a slow reader left unsent goes first; it is copied once, here, not at
                # every partial write.
                text = "".join(_lines(lines, self.pid)).encode("utf-8", "replace")
                self.unsent = bytes(self.unsent[self.offset :]) + text if self.unsent else text
                self.offset = 0
            try:
                while self.offset < len(self.unsent):
                    view = memoryview(self.unsent)[self.offset :]
                    if self.fd is not None:
                        written = os.write(self.fd, view)
                    else:
                        try:
                            written = self.sock.send(view)
                        except BlockingIOError:
                            written = 0
                    self.offset += written
                    if self.offset >= len(self.unsent):
                        self.unsent = b""
                        self.offset = 0
                    if written == 0:
                        if deadline is None or time.monotonic() >= deadline:
                            break
                        select.select([], [self.sock], [], max(0.0, deadline - time.monotonic()))
            except OSError:
                self._stop()
                return
            if self.written is not None and not self.pending and self.offset >= len(self.unsent):
                self.written()

    def _stop(self):
        self.dead = True
        self.pending.clear()
        self.unsent = b""
        try:
            if self.sock is not None:
                self.sock.close()
            if self.fd is not None:
                os.close(self.fd)
        except OSError:
            pass

    def close(self):
        self.flush(time.monotonic() + EXIT_FLUSH_S)


# -- task records ------------------------------------------------------------------------------
#
# The task events of a busy pool (submitted, started, succeeded) are queued as tuples and written
# as protocol v2 `tasks` lines (docs/protocol.md, core/trace/task-batch.ts): a few integers a
# record, base64 once a batch, the function names and previews in tables. Building and dumping a
# JSON object per event cost a thread pool most of its speed; a tuple costs a fraction of it.
#
#   (1, pool, ts, task, fn, kind, items, args)                       task.submitted
#   (2, pool, ts, task, worker)                                      task.started
#   (3, pool, ts, task, fn, worker, result, duration us, queued us)  task.succeeded
#
# `result` is an int (written as itself when it fits in 32 bits) or its preview.

KINDS = ("apply", "map", "starmap", "imap", "imapUnordered")
RECORD_BYTES = 40
_RECORD_TYPES = {1: "task.submitted", 2: "task.started", 3: "task.succeeded"}
_INT32 = (-(2**31), 2**31 - 1)
_BIG_ENDIAN = sys.byteorder == "big"


def _fits(*values):
    return all(isinstance(v, int) and _INT32[0] <= v <= _INT32[1] for v in values)


def _record_event(rec):
    """A record as the v1 event it stands for (a number that does not fit in 32 bits)."""
    op, pool, ts = rec[0], rec[1], rec[2]
    if op == 1:
        fields = {"pool": pool, "task": rec[3], "fn": rec[4], "kind": KINDS[rec[5]],
                  "items": rec[6], "args": rec[7]}
    elif op == 2:
        fields = {"pool": pool, "task": rec[3], "worker": rec[4]}
    else:
        fields = {"pool": pool, "task": rec[3], "fn": rec[4], "worker": rec[5],
                  "result": str(rec[6]), "durationMs": rec[7] / 1000.0,
                  "queuedMs": rec[8] / 1000.0}
    return _RECORD_TYPES[op], fields, ts


def _lines(items, pid):
    """Queued items as text: JSON lines as they are, runs of records as `tasks` lines."""
    out = []
    batch = []
    for item in items:
        if isinstance(item, str):
            if batch:
                out.extend(_tasks_lines(batch, pid))
                batch = []
            out.append(item)
        else:
            batch.append(item)
    if batch:
        out.extend(_tasks_lines(batch, pid))
    return out


class _Tables:
    def __init__(self):
        self.items = []
        self.index = {}

    def of(self, value):
        i = self.index.get(value)
        if i is None:
            i = self.index[value] = len(self.items)
            self.items.append(value)
        return i


def _tasks_lines(records, pid):
    out = []
    ts0 = records[0][2]
    base = round(ts0 * 1000)
    pools, fns, strings = _Tables(), _Tables(), _Tables()
    ops = array.array("i")
    pool = None
    for rec in records:
        op = rec[0]
        dt = round(rec[2] * 1000) - base
        if op == 1:
            values = (1, dt, rec[3], fns.of(rec[4]), rec[5], rec[6], -(strings.of(rec[7]) + 1))
        elif op == 2:
            values = (2, dt, rec[3], rec[4])
        else:
            result = rec[6]
            if _fits(result) and not isinstance(result, bool):
                values = (3, dt, rec[3], fns.of(rec[4]), rec[5], result, rec[7], rec[8])
            else:
                text = result if isinstance(result, str) else str(result)
                values = (5, dt, rec[3], fns.of(rec[4]), rec[5], strings.of(text), rec[7], rec[8])
        if not _fits(*values):
            type_, fields, ts = _record_event(rec)
            out.append(_json_line(type_, fields, ts, pid))
            continue
        if rec[1] != pool:
            pool = rec[1]
            ops.extend((0, pools.of(pool)))
        ops.extend(values)
    if len(ops):
        if _BIG_ENDIAN:
            ops.byteswap()
        event = {
            "v": PROTOCOL_VERSION,
            "ts": ts0,
            "pid": pid,
            "tid": 0,
            "run": _RUN,
            "type": "tasks",
            "pools": pools.items,
            "fns": fns.items,
            "strings": strings.items,
            "ops": base64.b64encode(ops.tobytes()).decode("ascii"),
        }
        out.append(json.dumps(event, ensure_ascii=False) + "\n")
    return out


def _json_line(type_, fields, ts, pid, tid=0):
    event = {"v": PROTOCOL_VERSION, "ts": ts, "pid": pid, "tid": tid, "run": _RUN, "type": type_}
    event.update(fields)
    try:
        return json.dumps(event, ensure_ascii=False, allow_nan=False, default=str) + "\n"
    except ValueError:
        return json.dumps(_finite(event), ensure_ascii=False, default=str) + "\n"


def _finite(value):
    """JSON cannot say NaN or Infinity: the protocol's tagged number instead."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return {"$number": repr(value).replace("inf", "Infinity").replace("nan", "NaN")}
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


_emitter = None
_emitter_lock = threading.Lock()


def _current():
    global _emitter
    e = _emitter
    if e is not None and e.pid == os.getpid():
        return e
    with _emitter_lock:
        if _emitter is None or _emitter.pid != os.getpid():
            _emitter = _Emitter()
            _register_exit_flush()
        return _emitter


def emit(type_, fields, ts=None):
    """Queues one event; never raises."""
    if not _ENABLED:
        return
    try:
        _current().emit(type_, fields, ts)
    except Exception:  # noqa: BLE001 - tracing must never break the program
        pass


def _record(rec, droppable):
    if not _ENABLED:
        return
    try:
        _current().record(rec, droppable)
    except Exception:  # noqa: BLE001 - tracing must never break the program
        pass


def task_submitted(pool, ts, task, fn, kind, items, args):
    _record((1, pool, ts, task, fn, KINDS.index(kind), items, args), True)


def task_started(pool, ts, task, worker):
    _record((2, pool, ts, task, worker), True)


def task_succeeded(pool, ts, task, fn, worker, result, duration_ms, queued_ms):
    """`result`: an int as itself, anything else as its preview."""
    _record(
        (3, pool, ts, task, fn, worker, result, round(duration_ms * 1000), round(queued_ms * 1000)),
        False,
    )


def on_written(callback):
    """`callback()` after each flush that leaves this process holding nothing."""
    if _ENABLED:
        try:
            _current().written = callback
        except Exception:  # noqa: BLE001
            pass


def _mine():
    """This process's emitter, if it has one (a forked child's inherited one is its parent's)."""
    e = _emitter
    return e if e is not None and e.pid == os.getpid() else None


def holding():
    """Whether this process holds events not yet written."""
    e = _mine()
    return e is not None and bool(e.pending or e.offset < len(e.unsent))


def flush():
    """Writes what this process holds now (without waiting for a slow reader)."""
    e = _mine()
    if e is not None:
        try:
            e.flush()
        except Exception:  # noqa: BLE001
            pass


def flush_at_exit():
    e = _mine()
    if e is not None:
        try:
            e.close()
        except Exception:  # noqa: BLE001
            pass


def _register_exit_flush():
    # atexit covers the main process; multiprocessing's own finalizers cover a child process,
    # which leaves through os._exit after running them (no atexit there).
    atexit.register(flush_at_exit)
    try:
        from multiprocessing import util

        util.Finalize(None, flush_at_exit, exitpriority=-100)
    except Exception:  # noqa: BLE001
        pass


def _after_fork():
    # The lock may have been held by another thread at the fork; the child starts afresh.
    global _emitter, _emitter_lock
    _emitter_lock = threading.Lock()
    _emitter = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
