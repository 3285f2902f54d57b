"""XFS: open and read a small file through a qcow2, list 10,000 entries, read 100 MiB.

Run with ``pytest benchmarks/test_bench_xfs.py --benchmark-enable`` (as root: the
volume is populated through a loop mount once, then wrapped in qcow2 by ``qemu-img
convert`` into ``images.CACHE``). Each round opens the image and the volume afresh,
so no cache of the reader carries over between rounds.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import images
import pytest
from helpers.xfs_images import can_loop_mount, mkfs, mounted
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan._core.xfs import XfsFileSystem

pytestmark = pytest.mark.skipif(not can_loop_mount(),
                                reason="needs mkfs.xfs and root for a loop mount")

ENTRIES = 10_000
BIG = 100 * 1024 * 1024
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'


def xfs_qcow2() -> Path:
    path = images.CACHE / "xfs-bench.qcow2"
    if path.exists():
        return path
    images.CACHE.mkdir(parents=True, exist_ok=True)
    raw = mkfs(images.CACHE / "xfs-bench.raw", size=512 << 20)
    with mounted(raw) as mnt:
        (mnt / "etc").mkdir()
        (mnt / "etc" / "os-release").write_bytes(OS_RELEASE)
        (mnt / "many").mkdir()
        for i in range(ENTRIES):
            (mnt / "many" / f"entry_{i:05d}.conf").touch()
        block = os.urandom(1 << 20)
        with open(mnt / "big", "wb") as f:
            for _ in range(BIG >> 20):
                f.write(block)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                    str(path) + ".part"], check=True)
    os.replace(str(path) + ".part", path)
    raw.unlink()
    return path


def _open_read(path: Path, name: str, length: int | None = None) -> int:
    with imgscan.open(path) as img:
        fs = XfsFileSystem(img.read, 0, img.virtual_size, path.name)
        return len(fs.read_file(name, 0, length))


def _list(path: Path) -> int:
    with imgscan.open(path) as img:
        fs = XfsFileSystem(img.read, 0, img.virtual_size, path.name)
        return len(fs.listdir("/many"))


def test_open_and_read_small_file(benchmark: BenchmarkFixture) -> None:
    path = xfs_qcow2()
    assert benchmark(_open_read, path, "/etc/os-release") == len(OS_RELEASE)


def test_list_10000_entries(benchmark: BenchmarkFixture) -> None:
    path = xfs_qcow2()
    assert benchmark(_list, path) == ENTRIES


def test_read_100_mib(benchmark: BenchmarkFixture) -> None:
    path = xfs_qcow2()
    assert benchmark(_open_read, path, "/big") == BIG
