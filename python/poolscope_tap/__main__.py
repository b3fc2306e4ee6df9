"""python3 -m poolscope_tap script.py [args...]: runs the script as `python3 script.py` would,
with the tap installed."""

import os
import runpy
import sys
import traceback


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: python3 -m poolscope_tap script.py [args...]\n")
        return 2
    script = os.path.abspath(sys.argv[1])
    if not os.path.isfile(script):
        sys.stderr.write("poolscope_tap: no such script: %s\n" % script)
        return 2
    import poolscope_tap
    from poolscope_tap._lifetime import die_with_parent

    die_with_parent()
    poolscope_tap.install()
    sys.argv = [script] + sys.argv[2:]
    sys.path[0] = os.path.dirname(script)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - reported as `python3 script.py` would
        tb = err.__traceback__
        # Leave out this file's and runpy's frames: the traceback starts in the script.
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        # None when the script never ran (a SyntaxError): Python then prints just where.
        traceback.print_exception(type(err), err, tb)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
