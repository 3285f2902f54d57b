"""ext4: open a filesystem through a qcow2 partition and read /etc/os-release (target
< 1 ms), list a 10,000-entry directory (< 20 ms), read a 100 MiB file from page cache
(>= 1 GB/s). Issue 13.

Run with ``pytest benchmarks/test_bench_ext4.py --benchmark-enable``. The filesystem
is made once into ``images.CACHE`` by ``mke2fs -t ext4 -d`` (a Linux-like root, a
10,000-entry directory, a 100 MiB file), put in a GPT partition at 1 MiB and wrapped in
qcow2 by ``qemu-img convert``. ``python benchmarks/test_bench_ext4.py`` times debugfs
doing the same as a whole process, for comparison.

Figures: benchmarks/README.md (issue 13), beside debugfs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan._core.ext4 import Ext4FileSystem

ENTRIES = 10_000
BIG_FILE = 100 << 20
#: The partition's start in the disk (sfdisk's default alignment).
START = 1 << 20


def _build() -> tuple[Path, Path]:
    """(the ext4 filesystem as a raw file, the partitioned disk as qcow2)."""
    fs, qcow = images.CACHE / "ext4-bench.ext4", images.CACHE / "ext4-bench.qcow2"
    if fs.exists() and qcow.exists():
        return fs, qcow
    images.CACHE.mkdir(parents=True, exist_ok=True)
    root = images.CACHE / "ext4-bench-tree"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n')
    (root / "usr" / "share" / "many").mkdir(parents=True, exist_ok=True)
    for i in range(ENTRIES):
        (root / "usr" / "share" / "many" / f"file-{i:05d}.conf").touch()
    (root / "big.bin").write_bytes(os.urandom(1 << 20) * (BIG_FILE >> 20))
    with open(fs, "wb") as f:
        f.truncate(256 << 20)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(root), str(fs)], check=True)
    raw = images.CACHE / "ext4-bench.raw"
    with open(raw, "wb") as f:
        f.truncate(START + (256 << 20) + (1 << 20))
    subprocess.run(["sfdisk", "-q", str(raw)], input=b"label: gpt\nstart=2048, type=L\n",
                   check=True)
    subprocess.run(["dd", f"if={fs}", f"of={raw}", "bs=1M", f"seek={START >> 20}",
                    "conv=notrunc,sparse", "status=none"], check=True)
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow)], check=True)
    raw.unlink()
    return fs, qcow


@pytest.fixture(scope="session")
def built() -> tuple[Path, Path]:
    return _build()


def test_open_and_read_os_release(benchmark: BenchmarkFixture,
                                  built: tuple[Path, Path]) -> None:
    qcow = built[1]
    with imgscan.open(qcow) as img:
        size = img.virtual_size - START - (1 << 20)

        def run() -> bytes:
            fs = Ext4FileSystem(img.read, START, size, "bench")
            return fs.read_file("/etc/os-release")
        assert benchmark(run).startswith(b"PRETTY_NAME")


def test_list_10000_entries(benchmark: BenchmarkFixture, built: tuple[Path, Path]) -> None:
    with imgscan.open(built[0]) as img:
        fs = Ext4FileSystem(img.read, 0, img.virtual_size, "bench")
        assert len(benchmark(fs.listdir, "/usr/share/many")) == ENTRIES


def test_read_100_mib(benchmark: BenchmarkFixture, built: tuple[Path, Path]) -> None:
    with imgscan.open(built[0]) as img:
        fs = Ext4FileSystem(img.read, 0, img.virtual_size, "bench")
        fs.read_file("/big.bin")            # into the page cache
        assert len(benchmark(fs.read_file, "/big.bin")) == BIG_FILE


def _peer() -> None:
    """debugfs, a whole process per operation, on the same filesystem."""
    fs, _ = _build()
    for request in ("cat /etc/os-release", "ls /usr/share/many", "cat /big.bin"):
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(["debugfs", "-R", request, str(fs)], capture_output=True, check=True)
            best = min(best, time.perf_counter() - t)
        print(f"debugfs -R {request!r}: {best * 1000:.1f} ms", file=sys.stderr)


if __name__ == "__main__":
    _peer()
