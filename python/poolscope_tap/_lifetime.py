"""A program the editor started ends with the editor (POOLSCOPE_DIE_WITH_PARENT), and so do the
processes the tap knows it made (pool and executor workers, Processes, manager servers): each
dies with its parent, through the kernel's parent-death signal (prctl), or where that cannot be
had, a daemon thread that watches the parent pid. Without the variable, nothing changes.
"""

import os
import signal
import threading
import time

PR_SET_PDEATHSIG = 1
WANTED = os.environ.get("POOLSCOPE_DIE_WITH_PARENT") == "1"


def die_with_parent():
    """Arms this process to end (SIGKILL) when its parent does, if the run asked for it."""
    if not WANTED:
        return
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except Exception:  # noqa: BLE001 - no prctl here: watch the parent instead
        threading.Thread(target=_watch, args=(parent,), name="poolscope-tap-parent", daemon=True).start()
        return
    # The parent may have died before the signal was armed.
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _watch(parent):
    while True:
        time.sleep(0.2)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
