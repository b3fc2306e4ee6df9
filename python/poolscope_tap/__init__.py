"""Poolscope's tap for Python `multiprocessing`: an unmodified program's pools, processes and
shared values, live in Poolscope's views.

    python3 -m poolscope_tap script.py [args...]

with the trace sink in the environment (POOLSCOPE_TRACE, POOLSCOPE_TRACE_TOKEN, POOLSCOPE_RUN),
which `poolscope run script.py` and the editor extension set. Without a sink, nothing is
installed and the program runs untouched. Standard library only. See docs/python.md.
"""

from . import _emit

__version__ = "0.1.0"


_installed = False


def install():
    """Installs the hooks (once). Does nothing without a trace sink."""
    global _installed
    if not _emit.enabled():
        return False
    if _installed:
        return True
    _installed = True
    import sys

    from . import _futures, _manager, _pool, _process, _shared

    for part in (_pool, _process, _shared, _manager, _futures):
        try:
            part.install()
        except Exception as err:  # noqa: BLE001 - a Python whose internals differ: say so, run on
            sys.stderr.write(
                "poolscope: cannot trace %s on this Python (%s: %s); the program runs "
                "untraced there\n" % (part.__name__.split("._")[-1], type(err).__name__, err)
            )
    return True


# A `spawn` or `forkserver` child imports the tap when it unpickles what the tap gave its
# parent's objects (a task, a worker's target, a Process): it is traced as its parent is.
install()
