"""Instructions of the bulk scan's own work an image, outside the image's reading (issue 18).

    python benchmarks/pool_instructions.py [--tree DIR] [OP ...]

Each operation runs over the first FILES files of the 1000-image library
(``test_bench_scan.scan_library``) in a child interpreter under ``valgrind
--tool=callgrind``, counted only inside ``functools.reduce`` (as ``instructions.py
--inside``): one uncounted warm-up round, then ROUNDS counted ones; the figure is the
count divided by ROUNDS and the files of a round (FILES, or the library's for
``walk``). ``--tree`` runs the child on another checkout (its extensions built), so
both sides of a comparison run this same script.

- ``walk``: the parent's walk of the library (``Walk``: listing, sorting, one stat a file).
- ``info``: ``imgscan.open(p).info()`` alone, the reading every answer holds.
- ``answer``: what a worker does for one task of ``imgscan scan``'s text report:
  ``worker._one`` (the image's reading, its file checked by the open's own ``fstat``),
  ``for_report``, the frame and its write (to ``/dev/null``); ``answer`` less ``info``
  is the pool's own.
- ``replay``: what the parent does with one answer: the frames a worker sends for the
  library, read by ``ScanRun._results`` and shown by the CLI's ``ScanReport`` (text).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

#: Library files each operation runs over, and the rounds counted.
FILES = 300
ROUNDS = 3
OPERATIONS = ("walk", "info", "answer", "replay")


def child(op: str, library: str) -> None:
    """The counted rounds of ``op`` (this side runs in the measured tree)."""
    import functools
    import gc
    import io

    import imgscan
    from imgscan.__main__ import GC_THRESHOLD
    from imgscan.bulk import runner, worker
    from imgscan.bulk.pipe import FRAME_HEADER, SCANNED, result_frame, write_frame
    from imgscan.bulk.walk import Walk
    from imgscan.report.scan import ScanReport

    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])    # as the command runs
    files = [(path, st) for path, st in Walk([library])
             if isinstance(st, os.stat_result)][:FILES]
    options = worker.Options([], False, 1, None, None)
    options.report = "text"
    sink = os.open(os.devnull, os.O_WRONLY)

    def answer(seq: int, path: str, st: os.stat_result) -> bytes:
        result = worker._one(path, st.st_dev, st.st_ino, options)
        if result[0] == SCANNED:
            result = worker.for_report(path, 0.0001, result, False)
        return result_frame(seq, 0.0001, result)

    frames = bytearray()
    for seq, (path, st) in enumerate(files, 1):
        body = answer(seq, path, st)
        frames += len(body).to_bytes(FRAME_HEADER, "little") + body
    # as a worker's pipe gives them: several answers a read
    chunks = [bytes(frames[i:i + 2048]) for i in range(0, len(frames), 2048)]
    run = runner.ScanRun([library], jobs=1, profile=None, info_only=True, fingerprint=False,
                         catalog=None, time_limit=60.0, memory_limit=None, external_dir=None)
    run.for_report(False)
    out = io.StringIO()
    report = ScanReport(out, io.StringIO(), as_json=False)

    def one_round(acc: int, _: int) -> int:
        if op == "walk":
            for _entry in Walk([library]):
                pass
        elif op == "info":
            for path, _st in files:
                with imgscan.open(path) as img:
                    img.info()
        elif op == "answer":
            for seq, (path, st) in enumerate(files, 1):
                write_frame(sink, answer(seq, path, st))
        else:   # replay: as the CLI's loop (imgscan/cli.py _scan) takes the results
            held = runner._Worker(0, -1, -1)
            held.pending.extend(runner._Task(seq, path, st, 60.0)
                                for seq, (path, st) in enumerate(files, 1))
            for chunk in chunks:
                for result in run._results(held, chunk):
                    if result is not None:
                        report.add(result)
                        if report.bar:
                            report.progress(run.skipped)
                report.flush()
            out.seek(0)
            out.truncate()
        return acc

    one_round(0, 0)
    functools.reduce(one_round, range(ROUNDS), 0)   # the only call callgrind counts


def count(op: str, tree: Path, library: str) -> float:
    """Instructions an image (or answer, or walked file) of ``op`` in ``tree``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(Path(__file__).parent)]),
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out",
             "--collect-atstart=no", "--toggle-collect=functools_reduce",
             sys.executable, "-S", __file__, "--child", op, library],
            env=env, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            check=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no count from callgrind: {proc.stderr[-500:]}")
    files = len(os.listdir(library)) if op == "walk" else FILES
    return int(found[1]) / (ROUNDS * files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--child", nargs=2, metavar=("OP", "LIBRARY"), help=argparse.SUPPRESS)
    # [] among the choices: argparse checks an empty "*" default against them
    parser.add_argument("ops", nargs="*", choices=[[], *OPERATIONS], default=[])
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from test_bench_scan import scan_library

    library = str(scan_library())
    print(f"| operation ({args.tree}) | instructions an image |\n|---|---|")
    for op in args.ops or OPERATIONS:
        print(f"| {op} | {count(op, args.tree, library) / 1e3:.1f} k |")


if __name__ == "__main__":
    main()
