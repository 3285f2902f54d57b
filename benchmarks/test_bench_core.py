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


@pytest.mark.parametrize("fmt", sorted(images.SMALL_FORMATS))
def test_open_info_small_format(benchmark: BenchmarkFixture, fmt: str) -> None:
    """The same disk as ``test_open_info_small`` in the other formats issue 18 names."""
    path = images.small_image(fmt)

    def open_info() -> None:
        with imgscan.open(path) as img:
            img.info()

    benchmark(open_info)


def test_extent_map_big(benchmark: BenchmarkFixture, big: Path) -> None:
    def build_map() -> int:
        with imgscan.open(big) as img:
            return len(img.extents())

    assert benchmark(build_map) > 1000


def test_read_big_data_64mib(benchmark: BenchmarkFixture, big: Path) -> None:
    """Guest reads of 64 MiB of stored data (scattered 64 KiB pieces), through the map."""
    with imgscan.open(big) as img:
        disk = img.disk()
        pieces = [(e.start, e.length) for e in img.extents() if e.kind == "data"]
        buf = bytearray(1 << 20)
        view = memoryview(buf)

        def read_64mib() -> int:
            total = 0
            for start, length in pieces:
                while length and total < 64 << 20:
                    n = disk.readinto(start, view[:min(length, len(buf))])
                    start += n
                    length -= n
                    total += n
                if total >= 64 << 20:
                    break
            return total

        assert benchmark(read_64mib) == 64 << 20
