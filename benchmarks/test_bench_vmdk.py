"""VMDK benchmarks (pytest-benchmark): the extent map of a large monolithicSparse VMDK.

Run with ``pytest benchmarks/test_bench_vmdk.py --benchmark-enable``. Target
(issue 3): ``imgscan map --json`` of a 100 GiB sparse VMDK at least 10 times
faster than ``qemu-img map --output=json``, whole process; ``python
benchmarks/test_bench_vmdk.py [--runs N]`` (the same as ``python
benchmarks/peer.py --only vmdk``) measures that pair side by side (A B A B
...) and prints the medians and the median of the per-pair ratios.

The image is built once into ``images.CACHE`` (never by the test suite) by
``images.big_vmdk``: a 100 GiB monolithicSparse VMDK (64 KiB grains,
512-entry grain tables: 3200 tables, all allocated by qemu-img) holding 2048
pieces of 64 KiB at random offsets, made from a sparse raw file by
``qemu-img convert -O vmdk``, which skips the holes.
"""

from __future__ import annotations

from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan


@pytest.fixture(scope="session")
def big() -> Path:
    return images.big_vmdk()


def test_extent_map_big_vmdk(benchmark: BenchmarkFixture, big: Path) -> None:
    def build_map() -> int:
        with imgscan.open(big) as img:
            return len(img.extents())

    assert benchmark(build_map) > 1000


def test_map_json_big_vmdk(benchmark: BenchmarkFixture, big: Path) -> None:
    """What ``imgscan map --json`` does in process: decode, map, render qemu's JSON."""
    def map_json() -> int:
        with imgscan.open(big) as img:
            return len(img.extents().to_qemu_json())

    assert benchmark(map_json) > 0


if __name__ == "__main__":
    import peer

    peer.main(only="vmdk")
