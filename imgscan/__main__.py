"""The ``imgscan`` process: the console script (pyproject's ``imgscan.__main__:run``) and
``python -m imgscan`` alike.

:func:`imgscan.cli.main` is the command (tests and callers run it in their own
process); :func:`run` is the process around it, which may do what a library must not do
to its caller's: set the garbage collector's pace before the readers are imported, and
leave without the interpreter's teardown. Both are start-up time (issue 18): a short
command such as ``imgscan info IMAGE`` spent 6 % of its instructions in collections
during its imports and 14 % in freeing, at exit, the modules it had just imported
(benchmarks/README.md).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

#: Allocations between two young-generation collections (Python's default: 700). Importing
#: the readers allocates some 100,000 objects that live as long as the process, and at
#: 700 each of them was looked at several times for cycles they are not in. Cycles are
#: still collected, a few thousand objects later, by a scan of a million images too.
GC_THRESHOLD = 10_000


def run() -> NoReturn:
    """Run the command line in this process and leave with its exit status."""
    import gc
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    from .cli import main
    status = main()
    if _nothing_left_to_run():
        _quick_exit(status)
    sys.exit(status)


def _nothing_left_to_run() -> bool:
    """Whether the interpreter's teardown would do nothing but free memory: no exit
    handler registered (Dask's cluster shutdown, coverage's data file, a
    ``weakref.finalize``; ``atexit._ncallbacks`` is CPython's count of them, which the
    Cython core needs anyway), no other thread to wait for, no tracer or profiler that
    reports at exit."""
    import atexit
    threading = sys.modules.get("threading")
    return (atexit._ncallbacks() == 0
            and (threading is None or threading.active_count() == 1)
            and sys.gettrace() is None and sys.getprofile() is None)


def _quick_exit(status: int) -> NoReturn:
    """Flush what the command wrote and end the process without the teardown; when a
    flush fails (a reader gone, a full disk), the ordinary exit reports it as before."""
    import os
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    os._exit(status)


if __name__ == "__main__":
    run()
