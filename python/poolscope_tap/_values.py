"""Python values in the protocol's words: bounded previews, JSON-safe property values, and
exceptions as `ErrorInfo` records (docs/protocol.md, "Errors" and "Values")."""

import concurrent.futures
import multiprocessing
import os
import reprlib
import sys
import traceback

MAX_DEPTH = 8
MAX_STRING = 2000
MAX_ITEMS = 100
MAX_STACK = 16000
PREVIEW = 200

_TAP_DIR = os.path.dirname(os.path.abspath(__file__))
_repr = reprlib.Repr()
_repr.maxstring = 120
_repr.maxother = 120
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8
_repr.maxlevel = 3


# multiprocessing's, concurrent.futures' and the tap's own folders: what runs there is machinery,
# not the program (each with its separator, so that a prefix test cannot match a sibling).
MACHINERY_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep
    for m in (multiprocessing, concurrent.futures)
) + (_TAP_DIR + os.sep,)


def program_frame():
    """(file, line) of the innermost frame outside multiprocessing and the tap: where the
    program made a pool or a shared object. None when there is none."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        path = os.path.abspath(name)
        if not path.startswith(MACHINERY_DIRS) and not name.startswith("<"):
            return path, frame.f_lineno
        frame = frame.f_back
    return None


def clip(text, limit=MAX_STRING):
    return text if len(text) <= limit else "%s…(%d more)" % (text[:limit], len(text) - limit)


def preview(value, limit=PREVIEW):
    """A short rendering of any value, as Python's repr writes it; never raises."""
    try:
        text = _repr.repr(value)
    except Exception as err:  # noqa: BLE001 - a __repr__ of the program's own that fails
        text = "<%s: repr() raised %s>" % (type(value).__name__, type(err).__name__)
    return clip(text, limit)


def name_of(fn):
    """What a task runs, in words: a function's qualified name, a partial's function."""
    try:
        import functools

        if isinstance(fn, functools.partial):
            return "partial(%s)" % name_of(fn.func)
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
        if name:
            return str(name)
        return type(fn).__name__
    except Exception:  # noqa: BLE001
        return "?"


def json_value(value, depth=0, seen=None, path="$"):
    """A JSON rendering of a property value; what JSON cannot say is a tagged object."""
    if value is None or isinstance(value, (bool, str)):
        return clip(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return value if -(2**53) < value < 2**53 else {"$bigint": str(value)}
    if isinstance(value, float):
        if value != value:
            return {"$number": "NaN"}
        if value in (float("inf"), float("-inf")):
            return {"$number": "Infinity" if value > 0 else "-Infinity"}
        return value
    if depth >= MAX_DEPTH:
        return {"$truncated": preview(value)}
    if isinstance(value, BaseException):
        return {"$error": error_info(value, depth + 1)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": type(value).__name__, "length": len(value)}
    seen = seen or {}
    if id(value) in seen:
        return {"$cycle": seen[id(value)]}
    if isinstance(value, dict):
        seen = dict(seen)
        seen[id(value)] = path
        out = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["$more"] = len(value) - MAX_ITEMS
                break
            key = k if isinstance(k, str) else preview(k, 80)
            out[key] = json_value(v, depth + 1, seen, "%s.%s" % (path, key))
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        seen = dict(seen)
        seen[id(value)] = path
        items = list(value)
        out = [
            json_value(v, depth + 1, seen, "%s[%d]" % (path, i))
            for i, v in enumerate(items[:MAX_ITEMS])
        ]
        if len(items) > MAX_ITEMS:
            out.append({"$more": len(items) - MAX_ITEMS})
        return {"$set": out} if isinstance(value, (set, frozenset)) else out
    return {"$unsendable": preview(value)}


def _frames(tb):
    """Innermost first, as V8 prints them, without the tap's own frames."""
    frames = []
    for summary in traceback.extract_tb(tb):
        if os.path.dirname(os.path.abspath(summary.filename)) == _TAP_DIR:
            continue
        frame = {
            "fn": summary.name,
            "file": summary.filename,
            "raw": 'File "%s", line %s, in %s' % (summary.filename, summary.lineno, summary.name),
        }
        if summary.lineno:
            frame["line"] = summary.lineno
        colno = getattr(summary, "colno", None)
        if colno is not None:
            frame["column"] = colno + 1
        frames.append(frame)
    frames.reverse()
    return frames


def _without_tap(tb):
    """The traceback from the first frame that is not the tap's own."""
    while tb is not None and os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _TAP_DIR:
        tb = tb.tb_next
    return tb


def error_info(err, depth=0, traceback_of=True):
    """An exception as the protocol's ErrorInfo record; never raises. Without `traceback_of`,
    without its frames (an exception the program has not raised itself yet, which may be raised
    in another thread meanwhile)."""
    try:
        tb = _without_tap(err.__traceback__) if traceback_of else None
        try:
            stack = "".join(traceback.format_exception(type(err), err, tb, chain=False))
        except Exception:  # noqa: BLE001
            stack = ""
        info = {
            "thrown": "error",
            "name": type(err).__name__,
            "message": clip(_message(err)),
            "stack": clip(stack.rstrip("\n"), MAX_STACK),
            "frames": _frames(tb),
            "props": _props(err, depth),
        }
        code = _code(err)
        if code is not None:
            info["code"] = code
        if depth < MAX_DEPTH:
            cause = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
            if cause is not None:
                info["cause"] = error_info(cause, depth + 1)
            members = getattr(err, "exceptions", None)
            if isinstance(members, (list, tuple)) and all(
                isinstance(m, BaseException) for m in members
            ):
                info["errors"] = [error_info(m, depth + 1) for m in members[:MAX_ITEMS]]
        return info
    except Exception as failure:  # noqa: BLE001 - a record says what could not be read
        return {
            "thrown": "error",
            "name": "Error",
            "message": "an exception that could not be read (%s)" % type(failure).__name__,
            "frames": [],
            "props": {},
        }


def _message(err):
    try:
        return str(err)
    except Exception:  # noqa: BLE001
        return "<str() raised>"


def _code(err):
    for attr in ("code", "errno"):
        value = getattr(err, attr, None)
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
    return None


def _props(err, depth):
    props = {}
    try:
        own = dict(vars(err))
    except TypeError:
        own = {}
    for key, value in own.items():
        if key.startswith("__"):
            continue
        props[str(key)] = json_value(value, depth + 1)
    if len(err.args) > 1:
        props["args"] = json_value(err.args, depth + 1)
    return props
