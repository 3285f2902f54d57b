"""In-process benchmarks of content fingerprints (pytest-benchmark).

Run with ``pytest benchmarks/test_bench_fingerprint.py --benchmark-enable``.
Targets (issue 7), checked whole-process by ``peer_fingerprint.py``: a
page-cached 4 GiB raw file at least as fast as ``xxhsum -H3``; a 100 GiB
qcow2 holding 2 GiB of data at least 15x faster than ``qemu-img convert -O
raw`` followed by ``xxhsum -H3``. Each file is read once before timing, so
all of them are timed from the page cache.
"""

from __future__ import annotations

from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from imgscan.fingerprints import fingerprint


def _cached(path: Path) -> Path:
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass
    return path


@pytest.fixture(scope="session")
def raw_4g() -> Path:
    return _cached(images.full_raw(4))


@pytest.fixture(scope="session")
def big() -> Path:
    return _cached(images.big_qcow2())


@pytest.mark.parametrize("algorithm", ["xxh3-128-chunked", "xxh3-64-stream"])
def test_fingerprint_raw_4gib(benchmark: BenchmarkFixture, raw_4g: Path, algorithm: str) -> None:
    fp = benchmark(fingerprint, raw_4g, algorithm)
    assert fp.virtual_size == 4 << 30


@pytest.mark.parametrize("threads", [1, None])
def test_fingerprint_big_qcow2(benchmark: BenchmarkFixture, big: Path,
                               threads: int | None) -> None:
    """100 GiB, 2 GiB of data in 64 KiB pieces: about 28,000 of the 102,400 chunks
    hold some, and only those are read and hashed."""
    fp = benchmark(fingerprint, big, threads=threads)
    assert fp.virtual_size == images.BIG_VIRTUAL
