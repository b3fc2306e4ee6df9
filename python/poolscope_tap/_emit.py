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

import atexit
import json
import os
import select
import socket
import threading
import time

PROTOCOL_VERSION = 2
DROPPABLE = frozenset(("task.submitted", "task.started", "output"))
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
    return bool(_RUN) and (_TARGET.startswith("unix:") or _TARGET.startswith("file:"))


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
        self.lock = threading.Lock()
        self.pending = []
        self.pending_bytes = 0
        self.unsent = b""
        self.sock = None
        self.fd = None
        self.dead = False
        self.dropped = 0
        self.dropped_types = {}
        self.thread = None
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
        event = {
            "v": PROTOCOL_VERSION,
            "ts": now() if ts is None else ts,
            "pid": self.pid,
            "tid": _tid(),
            "run": _RUN,
            "type": type_,
        }
        event.update(fields)
        try:
            line = json.dumps(event, ensure_ascii=False, allow_nan=False, default=str) + "\n"
        except ValueError:
            line = json.dumps(_finite(event), ensure_ascii=False, default=str) + "\n"
        with self.lock:
            held = self.pending_bytes + len(self.unsent)
            if held > HARD_LIMIT or (held > SOFT_LIMIT and type_ in DROPPABLE):
                self.dropped += 1
                self.dropped_types[type_] = self.dropped_types.get(type_, 0) + 1
                return
            if self.dropped and held < SOFT_LIMIT // 2:
                self._queue_dropped()
            self.pending.append(line)
            self.pending_bytes += len(line)
            big = self.pending_bytes >= FLUSH_BYTES
        if big:
            self.flush()
        else:
            self._ensure_thread()

    def _queue_dropped(self):
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
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, name="poolscope-tap-flush", daemon=True
            )
            self.thread.start()

    def _run(self):
        while not self.dead:
            time.sleep(FLUSH_S)
            if self.pending or self.unsent:
                self.flush()

    def flush(self, deadline=None):
        """Writes what the sink takes now; with a deadline, waits for it until then."""
        with self.lock:
            if self.dead:
                return
            if self.pending:
                self.unsent += "".join(self.pending).encode("utf-8", "replace")
                self.pending = []
                self.pending_bytes = 0
            try:
                while self.unsent:
                    if self.fd is not None:
                        written = os.write(self.fd, self.unsent)
                    else:
                        try:
                            written = self.sock.send(self.unsent)
                        except BlockingIOError:
                            written = 0
                    self.unsent = self.unsent[written:]
                    if written == 0:
                        if deadline is None or time.monotonic() >= deadline:
                            break
                        select.select([], [self.sock], [], max(0.0, deadline - time.monotonic()))
            except OSError:
                self._stop()

    def _stop(self):
        self.dead = True
        self.pending = []
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
    if not enabled():
        return
    try:
        _current().emit(type_, fields, ts)
    except Exception:  # noqa: BLE001 - tracing must never break the program
        pass


def flush():
    """Writes what this process holds now (without waiting for a slow reader)."""
    e = _emitter
    if e is not None and e.pid == os.getpid():
        try:
            e.flush()
        except Exception:  # noqa: BLE001
            pass


def flush_at_exit():
    e = _emitter
    if e is not None and e.pid == os.getpid():
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
