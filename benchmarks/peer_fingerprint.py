"""Whole-process timings of ``imgscan fingerprint`` beside its peers, and its peak memory.

    python benchmarks/peer_fingerprint.py [--runs N] [--big-runs N (0: skip the qcow2 rows)]

Rows, each pair run alternately and measured (wall, CPU, peak memory) by
:func:`whole_process.compare`: a page-cached, fully
written 4 GiB raw file against ``xxhsum -H3`` on it; the 100 GiB qcow2
holding 2 GiB of data against ``qemu-img convert -O raw`` to a temporary
file followed by ``xxhsum -H3`` (about a minute a run here: few pairs). Then
the peak resident memory of fingerprinting a 1 GiB and a 4 GiB raw file, which
should not differ. Only public tools are involved.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import images
from whole_process import HEADER, compare, measure


def _page_cache(path: Path) -> str:
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--big-runs", type=int, default=2)
    args = parser.parse_args()
    imgscan = shutil.which("imgscan") or sys.exit("imgscan is not on PATH (pip install .)")
    raw_1g, raw_4g = _page_cache(images.full_raw(1)), _page_cache(images.full_raw(4))
    big = _page_cache(images.big_qcow2()) if args.big_runs else None
    print(HEADER)
    print(compare("fingerprint, page-cached 4 GiB raw vs xxhsum -H3",
                  [imgscan, "fingerprint", raw_4g], ["xxhsum", "-H3", raw_4g], args.runs))
    if big is not None:
        with tempfile.TemporaryDirectory(dir=images.CACHE) as scratch:
            out = os.path.join(scratch, "converted.raw")
            convert_and_hash = 'qemu-img convert -O raw "$1" "$2" && xxhsum -H3 "$2"; rm -f "$2"'
            print(compare("fingerprint, 100 GiB qcow2 with 2 GiB data vs qemu-img convert + "
                          "xxhsum", [imgscan, "fingerprint", big],
                          ["sh", "-c", convert_and_hash, "sh", big, out], args.big_runs))
    print("\n| image | peak RSS of `imgscan fingerprint` |\n|---|---|")
    for label, path in (("1 GiB raw", raw_1g), ("4 GiB raw", raw_4g),
                        ("100 GiB qcow2, 2 GiB data", big)):
        if path is None:
            continue
        print(f"| {label} | {measure([imgscan, 'fingerprint', path]).peak_rss:.1f} MiB |")
    print(f"\nimages: {images.CACHE}")


if __name__ == "__main__":
    main()
