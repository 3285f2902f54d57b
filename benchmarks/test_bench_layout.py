"""Partition table plus filesystem probes of one image, in process (issue 4: at most 2 ms).

Run with ``pytest benchmarks --benchmark-enable``. The image is a 256 MiB GPT
disk in a qcow2 (an ESP with FAT, a Microsoft reserved partition, an ext4
volume), made once with sgdisk, mkfs.fat, mke2fs and qemu-img into
``images.CACHE``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan.layout import describe, of_guest

MIB = 1 << 20


def gpt_qcow2() -> Path:
    path = images.CACHE / "layout-gpt.qcow2"
    if path.exists():
        return path
    images.CACHE.mkdir(parents=True, exist_ok=True)
    raw = images.CACHE / "layout-gpt.raw"
    with open(raw, "wb") as f:
        f.truncate(256 * MIB)
    subprocess.run(["sgdisk", "-n1:2048:+32M", "-t1:ef00", "-n2:0:+16M", "-t2:0c01",
                    "-n3:0:0", "-t3:8300", str(raw)], check=True, capture_output=True)
    subprocess.run(["mkfs.fat", "-F", "16", "--offset", "2048", str(raw), str(32 * 1024)],
                   check=True, capture_output=True)
    ext4_lba = 2048 + (48 * MIB) // 512
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={ext4_lba * 512}",
                    str(raw), "65536k"], check=True, capture_output=True)
    try:
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                        str(path) + ".part"], check=True)
        Path(str(path) + ".part").replace(path)
    finally:
        raw.unlink()
    return path


@pytest.fixture(scope="session")
def gpt_image() -> Path:
    if not (shutil.which("sgdisk") and shutil.which("mkfs.fat") and shutil.which("mke2fs")):
        pytest.skip("sgdisk / mkfs.fat / mke2fs are needed to make the benchmark image")
    return gpt_qcow2()


def test_layout_of_open_image(benchmark: BenchmarkFixture, gpt_image: Path) -> None:
    """Table, both GPT copies, and every partition's filesystem probe, through the qcow2 reader."""
    with imgscan.open(gpt_image) as img:
        disk = img.disk()
        layout = benchmark(describe, disk.read, disk.size, img.path)
    assert layout.partition_table == "gpt" and layout.boot_mode == "uefi"
    assert [p["filesystem"] for p in layout.partitions] == ["vfat", None, "ext4"]


def test_open_and_layout(benchmark: BenchmarkFixture, gpt_image: Path) -> None:
    """The same from a closed file: open, decode the qcow2, read the layout."""
    def open_layout() -> str:
        with imgscan.open(gpt_image) as img:
            return of_guest(img.guest()).partition_table

    assert benchmark(open_layout) == "gpt"
