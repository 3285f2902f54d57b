"""Whole-process timings of imgscan beside qemu-img, run side by side.

    python benchmarks/peer.py [--runs N] [--only qcow2|vmdk|vhdx|vdi]

Each pair of commands runs alternately (A B A B ...) after a warm-up, so drift
of a noisy machine hits both; the table gives each command's median wall time, CPU
time and peak memory and the median (and range) of the per-pair wall-time ratios
(:func:`whole_process.compare`). Only public tools are involved.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import images
from whole_process import HEADER, compare

#: The 100 GiB ``map --json`` cases: format -> (table label, image builder).
BIG_MAPS: dict[str, tuple[str, Callable[[], Path]]] = {
    "qcow2": ("map --json, 100 GiB qcow2 with 2 GiB data", images.big_qcow2),
    "vmdk": ("map --json, 100 GiB monolithicSparse VMDK, 2048 x 64 KiB data", images.big_vmdk),
    "vhdx": ("map --json, 100 GiB dynamic VHDX (1 MiB blocks), 2048 x 64 KiB data",
             images.big_vhdx),
    "vdi": ("map --json, 100 GiB dynamic VDI, 2048 x 64 KiB data", images.big_vdi),
}


def compare_map(imgscan: str, fmt: str, runs: int) -> str:
    """``imgscan map --json`` against ``qemu-img map --output=json`` on the big ``fmt`` image."""
    label, build = BIG_MAPS[fmt]
    path = str(build())
    return compare(label, [imgscan, "map", "--json", path],
                   ["qemu-img", "map", "--output=json", path], runs)


def main(only: str | None = None) -> None:
    """Print the table; ``only`` (or ``--only``) keeps one big-image map row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", choices=sorted(BIG_MAPS), default=only)
    args = parser.parse_args()
    imgscan = shutil.which("imgscan") or sys.exit("imgscan is not on PATH (pip install .)")
    print(HEADER)
    if args.only is None:
        small = str(images.small_qcow2())
        print(compare("info, 64 MiB qcow2", [imgscan, "info", small],
                      ["qemu-img", "info", small], args.runs))
        print(compare("info --json, 64 MiB qcow2", [imgscan, "info", "--json", small],
                      ["qemu-img", "info", "--output=json", small], args.runs))
    for fmt in BIG_MAPS:
        if args.only in (None, fmt):
            # qemu-img walks the whole 100 GiB qcow2 for its map: fewer pairs suffice.
            runs = max(3, args.runs // 3) if fmt == "qcow2" else args.runs
            print(compare_map(imgscan, fmt, runs))
    print(f"\nimages: {images.CACHE}")


if __name__ == "__main__":
    main()
