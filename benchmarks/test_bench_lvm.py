"""LVM2 benchmarks (pytest-benchmark).

Run with ``pytest benchmarks/test_bench_lvm.py --benchmark-enable``. Issue 13 asks
for Linux volumes read "at speed": this times the layout of a disk whose two
partitions are PVs of one VG (label, metadata ring, text parse, LV mapping and
the probes of every LV), and a sequential read of a striped LV (64 KiB stripes
over two PVs) through :class:`imgscan._core.lvm.LvReader`.

The disk is made once into ``images.CACHE`` by lvm2's own tools
(:mod:`helpers.lvm_disk`: loop devices and a private lvm.conf, so root is needed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import images
import pytest
from helpers.lvm_disk import TOOLS, build
from pytest_benchmark.fixture import BenchmarkFixture

from imgscan.layout import describe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS),
    reason="lvm2 tools and root (loop devices) are needed to make the LVM disk")


@pytest.fixture(scope="session")
def lvm_disk() -> dict[str, Any]:
    work = images.CACHE / "lvm"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return build(work)


def _reader(path: Path) -> Any:
    f = open(path, "rb")  # noqa: SIM115 - lives as long as the benchmark session

    def read(offset: int, length: int) -> bytes:
        return os.pread(f.fileno(), length, offset)
    return read


def test_layout_with_lvm(benchmark: BenchmarkFixture, lvm_disk: dict[str, Any]) -> None:
    disk: Path = lvm_disk["disk"]
    read, size = _reader(disk), disk.stat().st_size
    layout = benchmark(describe, read, size, str(disk))
    assert "vg0/data" in layout.logical_volumes


def test_striped_lv_read(benchmark: BenchmarkFixture, lvm_disk: dict[str, Any]) -> None:
    disk: Path = lvm_disk["disk"]
    layout = describe(_reader(disk), disk.stat().st_size, str(disk))
    got = layout.logical_volume("vg0/data")
    assert got is not None
    read, size = got
    data = benchmark(read, 0, size)
    assert data == lvm_disk["files"]["data"].read_bytes()
