"""Btrfs reader benchmarks (pytest-benchmark).

Run with ``pytest benchmarks/test_bench_btrfs.py --benchmark-enable``. Issue 13
asks for Linux filesystems "read-only at speed": opening a volume and reading a
small file (what guest inspection does for /etc/os-release), listing a directory
of 10,000 names and reading a 100 MiB file. The volume is made once into
``images.CACHE`` by ``mkfs.btrfs --rootdir`` (never by the test suite).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from imgscan._core.btrfs import BtrfsFileSystem

MIB = 1 << 20
BIG_FILE = 100 * MIB
ENTRIES = 10_000

pytestmark = pytest.mark.skipif(shutil.which("mkfs.btrfs") is None,
                                reason="mkfs.btrfs is needed to make the benchmark volume")


def volume() -> Path:
    path = images.CACHE / "btrfs-bench.img"
    if path.exists():
        return path
    images.CACHE.mkdir(parents=True, exist_ok=True)
    src = images.CACHE / "btrfs-bench-src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "os-release").write_bytes(b'PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n')
    (src / "big").mkdir()
    for i in range(ENTRIES):
        (src / "big" / f"file-{i:05d}").write_bytes(b"")
    with open(src / "data.bin", "wb") as f:
        for _ in range(BIG_FILE // MIB):
            f.write(os.urandom(MIB))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.truncate(512 * MIB)
    subprocess.run(["mkfs.btrfs", "-q", "--rootdir", str(src), str(tmp)], check=True,
                   capture_output=True)
    shutil.rmtree(src)
    tmp.rename(path)
    return path


def _open(path: Path) -> tuple[BtrfsFileSystem, int]:
    fd = os.open(path, os.O_RDONLY)
    fs = BtrfsFileSystem(lambda offset, length: os.pread(fd, length, offset), 0,
                         os.fstat(fd).st_size, path.name)
    return fs, fd


def test_open_and_read_small_file(benchmark: BenchmarkFixture) -> None:
    path = volume()

    def run() -> bytes:
        fs, fd = _open(path)
        try:
            return fs.read_file("/etc/os-release")
        finally:
            os.close(fd)

    assert benchmark(run).startswith(b"PRETTY_NAME")


def test_list_big_directory(benchmark: BenchmarkFixture) -> None:
    fs, fd = _open(volume())
    try:
        assert len(benchmark(lambda: fs.listdir("/big"))) == ENTRIES
    finally:
        os.close(fd)


def test_read_100_mib_file(benchmark: BenchmarkFixture) -> None:
    fs, fd = _open(volume())
    try:
        data = benchmark.pedantic(fs.read_file, ("/data.bin",),  # type: ignore[no-untyped-call]
                                  rounds=5)
        assert len(data) == BIG_FILE
    finally:
        os.close(fd)
