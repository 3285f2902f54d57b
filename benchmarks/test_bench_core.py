"""In-process benchmarks of the core (pytest-benchmark).

Run with ``pytest benchmarks --benchmark-enable``. Targets (issue 2):
``imgscan.open(p).info()`` on a small image at most 50 microseconds; the
extent map of a 100 GiB qcow2 with 2 GiB of scattered data well under the
whole-process time of ``qemu-img map`` (see ``peer.py`` for that comparison).
"""

from __future__ import annotations

from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan


@pytest.fixture(scope="session")
def small() -> Path:
    return images.small_qcow2()


@pytest.fixture(scope="session")
def big() -> Path:
    return images.big_qcow2()


def test_open_info_small(benchmark: BenchmarkFixture, small: Path) -> None:
    def open_info() -> None:
        with imgscan.open(small) as img:
            img.info()

    benchmark(open_info)


def test_extent_map_big(benchmark: BenchmarkFixture, big: Path) -> None:
    def build_map() -> int:
        with imgscan.open(big) as img:
            return len(img.extents())

    assert benchmark(build_map) > 1000


def test_read_big_sequential_64mib(benchmark: BenchmarkFixture, big: Path) -> None:
    with imgscan.open(big) as img:
        disk = img.disk()
        buf = bytearray(1 << 20)

        def read_64mib() -> None:
            for i in range(64):
                disk.readinto(i << 20, buf)

        benchmark(read_64mib)
