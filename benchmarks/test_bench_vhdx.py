"""VHDX benchmarks (pytest-benchmark): the extent map of a large sparse dynamic VHDX.

Run with ``pytest benchmarks/test_bench_vhdx.py --benchmark-enable``. Target
(issue 3): ``imgscan map --json`` of the image no slower than ``qemu-img map
--output=json``, whole process; ``python benchmarks/test_bench_vhdx.py
[--runs N]`` (the same as ``python benchmarks/peer.py --only vhdx``) measures
that pair side by side (A B A B ...) and prints the medians and the median of
the per-pair ratios.

The image is built once into ``images.CACHE`` (never by the test suite) by
``images.big_vhdx``: a 100 GiB dynamic VHDX with 1 MiB blocks (``-o
block_size=1M``: 102400 payload blocks, the most BAT entries qemu-img makes
for this size) whose 2048 pieces of 64 KiB at random offsets allocate about
2000 of them, made from a sparse raw file by ``qemu-img convert -O vhdx``,
which skips the holes.

qemu-img 7.2 has no block-status callback for VHDX, so its ``map`` prints one
"data" run without reading the BAT: the comparison is against a program that
does almost nothing beyond opening the image.
"""

from __future__ import annotations

from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan


@pytest.fixture(scope="session")
def big() -> Path:
    return images.big_vhdx()


def test_extent_map_big_vhdx(benchmark: BenchmarkFixture, big: Path) -> None:
    def build_map() -> int:
        with imgscan.open(big) as img:
            return len(img.extents())

    assert benchmark(build_map) > 1000


def test_map_json_big_vhdx(benchmark: BenchmarkFixture, big: Path) -> None:
    """What ``imgscan map --json`` does in process: decode, map, render qemu's JSON."""
    def map_json() -> int:
        with imgscan.open(big) as img:
            return len(img.extents().to_qemu_json())

    assert benchmark(map_json) > 0


if __name__ == "__main__":
    import peer

    peer.main(only="vhdx")
