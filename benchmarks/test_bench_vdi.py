"""VDI benchmarks (pytest-benchmark): the extent map of a large sparse dynamic VDI.

Run with ``pytest benchmarks/test_bench_vdi.py --benchmark-enable``. Target
(issue 3): ``imgscan map --json`` of the image no slower than ``qemu-img map
--output=json``, whole process; ``python benchmarks/test_bench_vdi.py
[--runs N]`` measures that pair side by side (A B A B ...) and prints the
medians and the median of the per-pair ratios.

The image is built once into ``images.CACHE`` (never by the test suite): a
100 GiB dynamic VDI whose 2048 pieces of 64 KiB at random offsets allocate
about 2000 of its 102400 one-MiB blocks, made from a sparse raw file by
``qemu-img convert -O vdi``, which skips the holes.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan

VIRTUAL = 100 * images.GIB
PIECES = 2048
CHUNK = 64 * 1024


def big_vdi() -> Path:
    """The 100 GiB sparse dynamic VDI, made on first use."""
    path = images.CACHE / "big-100G-vdi.vdi"
    if path.exists():
        return path
    images.CACHE.mkdir(parents=True, exist_ok=True)
    raw = images.CACHE / "big-vdi.raw"
    rng = random.Random(20261127)
    offsets = sorted(rng.sample(range(VIRTUAL // CHUNK), PIECES))
    with open(raw, "wb") as f:
        f.truncate(VIRTUAL)
        for index in offsets:
            f.seek(index * CHUNK)
            f.write(bytes([index % 251 + 1]) * CHUNK)
    try:
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vdi", str(raw),
                        str(path) + ".part"], check=True)
        os.replace(str(path) + ".part", path)
    finally:
        raw.unlink()
    return path


@pytest.fixture(scope="session")
def big() -> Path:
    return big_vdi()


def test_extent_map_big_vdi(benchmark: BenchmarkFixture, big: Path) -> None:
    def build_map() -> int:
        with imgscan.open(big) as img:
            return len(img.extents())

    assert benchmark(build_map) > 1000


def test_map_json_big_vdi(benchmark: BenchmarkFixture, big: Path) -> None:
    """What ``imgscan map --json`` does in process: decode, map, render qemu's JSON."""
    def map_json() -> int:
        with imgscan.open(big) as img:
            return len(img.extents().to_qemu_json())

    assert benchmark(map_json) > 0


def main() -> None:
    """Whole-process medians of ``imgscan map --json`` and ``qemu-img map``, alternated."""
    import argparse
    import shutil
    import sys

    import peer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("imgscan") or sys.exit("imgscan is not on PATH (pip install .)")
    path = str(big_vdi())
    print("| case | imgscan (median) | qemu-img (median) | ratio (median of pairs) |")
    print("|---|---|---|---|")
    print(peer.compare("map --json, 100 GiB dynamic VDI, 2048 x 64 KiB data",
                       [exe, "map", "--json", path],
                       ["qemu-img", "map", "--output=json", path], args.runs))


if __name__ == "__main__":
    main()
