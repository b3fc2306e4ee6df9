"""Shared `Value` and `Array`, and `Queue`, in the trace: `shared.created` when one is made,
then `shared.sampled` whenever its contents (a queue's: how many items wait in it) change, read
every 100 ms by a daemon thread of the process that made it (from the shared memory itself,
without taking the object's lock, so the tap never waits on the program's locks nor adds to
their contention), and once more at exit.
"""

import itertools
import os
import sys
import threading
import weakref

from multiprocessing import sharedctypes

from . import _emit
from ._values import MACHINERY_DIRS, json_value, program_frame

SAMPLE_S = 0.1
WINDOW = 16

_numbers = itertools.count(1)
_lock = threading.Lock()
# id -> (weak or strong reference to the object, kind, last sample)
_objects = {}
_thread = None
_thread_pid = None


def _ctype_name(typecode_or_type):
    if isinstance(typecode_or_type, str):
        return typecode_or_type
    return getattr(typecode_or_type, "__name__", str(typecode_or_type))


def _raw(obj):
    get = getattr(obj, "get_obj", None)
    return get() if get is not None else obj


def _sample(obj, kind):
    # Locks, semaphores and events as the Node library shows them, read from the semaphore's
    # value without taking it (no waits, no added contention).
    if kind in ("Lock", "RLock"):
        return {"locked": obj._semlock._get_value() == 0}
    if kind in ("Semaphore", "BoundedSemaphore"):
        return obj._semlock._get_value()
    if kind == "Event":
        return {"set": obj._flag._semlock._get_value() > 0}
    if kind in ("Queue", "JoinableQueue"):
        # Items put and not yet taken (qsize() counts the queue's semaphore, not the pipe).
        return obj.qsize()
    raw = _raw(obj)
    if kind == "Value":
        return json_value(raw.value)
    items = raw[:]
    if isinstance(items, bytes):
        return {"length": len(items), "window": items[:WINDOW].decode("latin-1")}
    numbers = [x for x in items if isinstance(x, (int, float))]
    sample = {"length": len(items), "window": json_value(list(items[:WINDOW]))}
    if numbers:
        sample["min"] = json_value(min(numbers))
        sample["max"] = json_value(max(numbers))
    return sample


def _register(obj, kind, typecode_or_type, length, locked):
    ident = "%d:%d" % (os.getpid(), next(_numbers))
    fields = {
        "id": ident,
        "kind": kind,
        "ctype": _ctype_name(typecode_or_type),
        "length": length,
        "lock": locked,
    }
    where = program_frame()
    if where is not None:
        fields["creator"] = "%s:%d" % where
    _emit.emit("shared.created", fields)
    try:
        ref = weakref.ref(obj)
    except TypeError:
        ref = lambda: obj  # noqa: E731 - kept alive: a few bytes per shared object
    with _lock:
        _objects[ident] = [ref, kind, None]
    _sample_one(ident)
    _ensure_thread()


def _sample_one(ident):
    with _lock:
        entry = _objects.get(ident)
    if entry is None:
        return
    obj = entry[0]()
    if obj is None:
        with _lock:
            _objects.pop(ident, None)
        return
    try:
        value = _sample(obj, entry[1])
    except Exception:  # noqa: BLE001 - a value that cannot be read now: try again later
        return
    if value != entry[2]:
        entry[2] = value
        _emit.emit("shared.sampled", {"id": ident, "value": value})


def sample_all():
    with _lock:
        idents = list(_objects)
    for ident in idents:
        _sample_one(ident)


def _ensure_thread():
    global _thread, _thread_pid
    if _thread is not None and _thread_pid == os.getpid():
        return
    _thread_pid = os.getpid()
    _thread = threading.Thread(target=_run, name="poolscope-tap-shared", daemon=True)
    _thread.start()


def _run():
    me = os.getpid()
    while _thread_pid == me:
        threading.Event().wait(SAMPLE_S)
        sample_all()


def _at_exit():
    if _thread_pid == os.getpid():
        sample_all()
        _emit.flush_at_exit()


def _after_fork():
    # A child samples only what it makes itself.
    global _thread, _thread_pid, _lock
    _lock = threading.Lock()
    _objects.clear()
    _thread = None
    _thread_pid = None


def install():
    """Installs the hooks (once: see poolscope_tap.install)."""
    import atexit

    orig_value = sharedctypes.Value
    orig_array = sharedctypes.Array

    def Value(typecode_or_type, *args, lock=True, ctx=None):
        obj = orig_value(typecode_or_type, *args, lock=lock, ctx=ctx)
        try:
            _register(obj, "Value", typecode_or_type, 1, lock is not False)
        except Exception:  # noqa: BLE001
            pass
        return obj

    def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
        obj = orig_array(typecode_or_type, size_or_initializer, lock=lock, ctx=ctx)
        try:
            _register(obj, "Array", typecode_or_type, len(_raw(obj)), lock is not False)
        except Exception:  # noqa: BLE001
            pass
        return obj

    sharedctypes.Value = Value
    sharedctypes.Array = Array

    from multiprocessing import queues

    orig_queue_init = queues.Queue.__init__

    def queue_init(self, *args, **kwds):
        orig_queue_init(self, *args, **kwds)
        # A JoinableQueue's __init__ runs this one too: registered once, by its own kind. An
        # executor's own queue (concurrent.futures) is its machinery, not the program's.
        if self.__dict__.get("_poolscope") is None and not type(self).__module__.startswith(
            "concurrent."
        ):
            self.__dict__["_poolscope"] = True
            try:
                bounded = 0 < self._maxsize < 2**31 - 1  # unbounded: SEM_VALUE_MAX
                _register(self, type(self).__name__, "", self._maxsize if bounded else 0, False)
            except Exception:  # noqa: BLE001
                pass

    queues.Queue.__init__ = queue_init

    from multiprocessing import synchronize

    # The files a program's mp.Lock() goes through before the object exists.
    factories = {
        os.path.abspath(synchronize.__file__),
        os.path.join(os.path.dirname(os.path.abspath(synchronize.__file__)), "context.py"),
    }

    def made_by_program():
        """Whether the program made it itself (not a queue, pool or event for its own parts)."""
        frame = sys._getframe(2)
        while frame is not None and os.path.abspath(frame.f_code.co_filename) in factories:
            frame = frame.f_back
        if frame is None:
            return False
        path = os.path.abspath(frame.f_code.co_filename)
        return not path.startswith(MACHINERY_DIRS)

    def traced_init(cls, kind_of):
        orig = cls.__init__

        def __init__(self, *args, **kwds):
            orig(self, *args, **kwds)
            if type(self) is cls and made_by_program():
                try:
                    kind = kind_of(self)
                    _register(self, kind, "", 0, kind != "Event")
                except Exception:  # noqa: BLE001
                    pass

        cls.__init__ = __init__

    for cls in (
        synchronize.Lock,
        synchronize.RLock,
        synchronize.Semaphore,
        synchronize.BoundedSemaphore,
    ):
        traced_init(cls, lambda obj: type(obj).__name__)
    traced_init(synchronize.Event, lambda obj: "Event")
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
