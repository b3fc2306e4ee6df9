"""`multiprocessing` managers in the trace: `manager.started` (address, server pid) when one
starts, `manager.ops` (calls served per object type, connected clients, live objects) while it
serves, told by the server process itself every 100 ms when they changed, and `manager.stopped`
(how it ended: `stopped` by `shutdown()` or its owner's exit, `killed` by a signal, `exited` on
its own) when its server process ends.
"""

import itertools
import os
import threading

from multiprocessing import managers

from . import _emit

SAMPLE_S = 0.1
_numbers = itertools.count(1)
# In a manager's server process: its id (set before the server starts).
_serving = None


def _address_text(address):
    if isinstance(address, str):
        return ("unix:%s" % address) if not address.startswith("\\\\") else "pipe:%s" % address
    if isinstance(address, tuple) and len(address) == 2:
        return "tcp:%s:%s" % address
    return str(address)


class ManagerHook:
    """Carried by a manager's server Process: tells the server (forked or spawned) its id."""

    __slots__ = ("manager",)

    def __init__(self, manager):
        self.manager = manager

    def __reduce__(self):
        return (_serve_as, (self.manager,))


def _serve_as(manager):
    global _serving
    _serving = manager
    return ManagerHook(manager)


def serving():
    """The id of the manager whose server is being started (or runs in this process)."""
    return _serving


def is_server_target(process):
    """Whether a Process runs a manager's server (BaseManager._run_server)."""
    target = getattr(process, "_target", None)
    return getattr(target, "__func__", None) is managers.BaseManager._run_server.__func__


class _Counting(dict):
    """The server's id -> object table: counts each request's object, by type."""

    def __init__(self, table):
        super().__init__(table)
        self.ops = {}

    def __getitem__(self, ident):
        entry = dict.__getitem__(self, ident)
        name = type(entry[0]).__name__
        self.ops[name] = self.ops.get(name, 0) + 1
        return entry


def _remove_listener(address):
    """What a server killed by a signal leaves behind, removed: its listening socket, and the
    temporary directory it made for it (multiprocessing's `pymp-*`), unless that directory is
    this process's own (a forked server shares its parent's), which this process removes at
    exit itself."""
    if not isinstance(address, str) or address.startswith("\\"):
        return
    try:
        import shutil
        import tempfile
        from multiprocessing import process

        folder = os.path.dirname(address)
        if os.path.exists(address):
            os.unlink(address)
        own = process.current_process()._config.get("tempdir")
        if (
            folder != own
            and os.path.basename(folder).startswith("pymp-")
            and os.path.dirname(folder) == tempfile.gettempdir()
            and not os.listdir(folder)
        ):
            shutil.rmtree(folder, ignore_errors=True)
    except Exception:  # noqa: BLE001 - what cannot be removed stays
        pass


class _Sampler:
    def __init__(self, server, manager):
        self.server = server
        self.manager = manager
        self.clients = 0
        self.last = None
        thread = threading.Thread(target=self._run, name="poolscope-tap-manager", daemon=True)
        thread.start()

    def _run(self):
        while True:
            threading.Event().wait(SAMPLE_S)
            self.sample()

    def sample(self):
        table = self.server.id_to_obj
        ops = dict(getattr(table, "ops", {}))
        now = (ops, self.clients, len(table))
        if now != self.last:
            self.last = now
            _emit.emit(
                "manager.ops",
                {"manager": self.manager, "ops": ops, "clients": self.clients, "objects": len(table)},
            )
            _emit.flush()


def install():
    """Installs the hooks (once: see poolscope_tap.install)."""
    Base = managers.BaseManager
    Server = managers.Server
    orig_start = Base.start
    orig_server_init = Server.__init__
    orig_serve_client = Server.serve_client

    def start(self, *args, **kwds):
        global _serving
        ident = "%d:%d" % (os.getpid(), next(_numbers))
        _serving = ident  # read by the Process hook; a forked server inherits it
        try:
            orig_start(self, *args, **kwds)
        finally:
            _serving = None
        server = self._process
        address = _address_text(self._address)
        _emit.emit("manager.started", {"manager": ident, "address": address, "serverPid": server.pid})
        finalizer = self.shutdown
        stopping = []

        def shutdown():
            stopping.append(True)
            return finalizer()

        self.shutdown = shutdown

        def ended(code, sig):
            # The owner's exit runs the finalizer itself (not through shutdown): a stop too.
            if stopping or not finalizer.still_active():
                reason = "stopped"
            elif sig is not None:
                reason = "killed"
            else:
                reason = "exited"
            _emit.emit(
                "manager.stopped",
                {"manager": ident, "address": address, "reason": reason, "exitCode": code,
                 "signal": sig},
            )
            if sig is not None:
                _remove_listener(self._address)

        from ._process import watch

        watch(server, ended)

    def server_init(self, *args, **kwds):
        orig_server_init(self, *args, **kwds)
        if _serving is not None:
            self.id_to_obj = _Counting(self.id_to_obj)
            self.__dict__["_poolscope"] = _Sampler(self, _serving)

    def serve_client(self, conn):
        sampler = self.__dict__.get("_poolscope")
        if sampler is None:
            return orig_serve_client(self, conn)
        sampler.clients += 1
        try:
            return orig_serve_client(self, conn)
        finally:
            sampler.clients -= 1

    orig_shutdown = Server.shutdown

    def shutdown(self, c):
        # The last counts, before the server process ends (it may have lived under 100 ms).
        sampler = self.__dict__.get("_poolscope")
        if sampler is not None:
            sampler.sample()
        return orig_shutdown(self, c)

    Base.start = start
    Server.__init__ = server_init
    Server.serve_client = serve_client
    Server.shutdown = shutdown
