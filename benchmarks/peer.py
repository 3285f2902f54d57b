"""Whole-process timings of imgscan beside qemu-img, run side by side.

    python benchmarks/peer.py [--runs N]

Each pair of commands runs alternately (A B A B ...) after a warm-up, so drift
of a noisy machine hits both; the table gives each command's median wall time
and the median of the per-pair ratios. Only public tools are involved.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import images


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def compare(name: str, ours: list[str], peer: list[str], runs: int) -> str:
    _wall(ours)
    _wall(peer)
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        a.append(_wall(ours))
        b.append(_wall(peer))
    ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
    return (f"| {name} | {statistics.median(a) * 1e3:.1f} ms | "
            f"{statistics.median(b) * 1e3:.1f} ms | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    imgscan = shutil.which("imgscan") or sys.exit("imgscan is not on PATH (pip install .)")
    small, big = str(images.small_qcow2()), str(images.big_qcow2())
    print("| case | imgscan (median) | qemu-img (median) | ratio (median of pairs) |")
    print("|---|---|---|---|")
    print(compare("info, 64 MiB qcow2", [imgscan, "info", small],
                  ["qemu-img", "info", small], args.runs))
    print(compare("info --json, 64 MiB qcow2", [imgscan, "info", "--json", small],
                  ["qemu-img", "info", "--output=json", small], args.runs))
    print(compare("map --json, 100 GiB qcow2 with 2 GiB data", [imgscan, "map", "--json", big],
                  ["qemu-img", "map", "--output=json", big], max(3, args.runs // 3)))
    print(f"\nimages: {Path(small).parent}")


if __name__ == "__main__":
    main()
