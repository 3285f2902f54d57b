"""Filesystem probe benchmarks (pytest-benchmark).

Run with ``pytest benchmarks/test_bench_filesystems.py --benchmark-enable``.
Target (issue 4): partition table plus filesystem probes of one image at most
2 ms in process. This file times the probe half: ``probe_volume`` over every
partition of typical disks, read through the virtual disk reader.

The images are built once into ``images.CACHE`` (never by the test suite):
a GPT disk as Windows and Linux installers lay them out (an ESP with FAT32,
an NTFS basic data partition, an ext4 root, swap), made by sfdisk and the
mkfs tools in a sparse raw file, then converted to qcow2 with ``qemu-img
convert``; and one of each other kind as a whole-disk volume (XFS, Btrfs,
LUKS2, ISO 9660).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan._core.filesystems import probe_volume

MIB = 1 << 20

#: (sfdisk type, size in MiB, command with {f} for the partition's own file)
LAYOUT = (
    ("U", 100, "mkfs.fat -F 32 -n ESP {f}"),
    ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", 200, "mkntfs -q -F -Q -L Windows {f}"),
    ("L", 200, "mke2fs -q -F -t ext4 -L root {f}"),
    ("S", 64, "mkswap -L swap {f}"),
)

WHOLE = {
    "xfs": (300, "mkfs.xfs -q -L data {f}"),
    "btrfs": (128, "mkfs.btrfs -q -L data {f}"),
    "luks2": (32, "cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 "
                  "--pbkdf-force-iterations 1000 {f} -"),
}


def _run(command: str, path: Path) -> None:
    subprocess.run(command.format(f=path).split(), input=b"pw", check=True,
                   capture_output=True)


def gpt_disk() -> Path:
    """The four-partition GPT disk as a qcow2, and its partitions' byte ranges."""
    path = images.CACHE / "fs-gpt.qcow2"
    if path.exists():
        return path
    images.CACHE.mkdir(parents=True, exist_ok=True)
    raw = images.CACHE / "fs-gpt.raw"
    total = sum(size for _, size, _ in LAYOUT) + 2
    with open(raw, "wb") as f:
        f.truncate(total * MIB)
    script = "label: gpt\n" + "".join(f"size={size}MiB, type={kind}\n"
                                      for kind, size, _ in LAYOUT)
    subprocess.run(["sfdisk", "-q", str(raw)], input=script.encode(), check=True)
    for part, (_, size, command) in zip(_partitions(raw), LAYOUT, strict=True):
        piece = images.CACHE / "fs-part.raw"
        with open(piece, "wb") as f:
            f.truncate(size * MIB)
        _run(command, piece)
        subprocess.run(["dd", f"if={piece}", f"of={raw}", "bs=1M", f"seek={part[0] // MIB}",
                        "conv=notrunc,sparse", "status=none"], check=True)
        piece.unlink()
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                    str(path) + ".part"], check=True)
    os.replace(str(path) + ".part", path)
    raw.unlink()
    return path


def _partitions(raw: Path) -> list[tuple[int, int]]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], check=True,
                                      capture_output=True, text=True).stdout)
    return [(p["start"] * 512, p["size"] * 512) for p in table["partitiontable"]["partitions"]]


def whole_volume(name: str) -> Path:
    path = images.CACHE / f"fs-{name}.qcow2"
    if path.exists():
        return path
    images.CACHE.mkdir(parents=True, exist_ok=True)
    size, command = WHOLE[name]
    raw = images.CACHE / f"fs-{name}.raw"
    with open(raw, "wb") as f:
        f.truncate(size * MIB)
    _run(command, raw)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                    str(path) + ".part"], check=True)
    os.replace(str(path) + ".part", path)
    raw.unlink()
    return path


TOOLS = ("sfdisk", "mkfs.fat", "mkntfs", "mke2fs", "mkswap", "qemu-img")


@pytest.fixture(scope="session")
def gpt() -> Path:
    if not all(shutil.which(t) for t in TOOLS):
        pytest.skip(f"needs {TOOLS}")
    return gpt_disk()


def _gpt_ranges(image: imgscan.Image) -> list[tuple[int, int]]:
    """The partitions' ranges, from the layout (the table parser is benchmarked apart)."""
    ranges, start = [], MIB
    for _, size, _ in LAYOUT:
        ranges.append((start, size * MIB))
        start += size * MIB
    return ranges


def test_probe_gpt_partitions(benchmark: BenchmarkFixture, gpt: Path) -> None:
    """The four probes of a typical installed disk, on an open qcow2."""
    with imgscan.open(gpt) as image:
        ranges = _gpt_ranges(image)

        def probe_all() -> list[str | None]:
            return [v.filesystem if (v := probe_volume(image.read, off, size)) else None
                    for off, size in ranges]

        assert benchmark(probe_all) == ["vfat", "ntfs", "ext4", "swap"]


def test_open_and_probe_gpt_partitions(benchmark: BenchmarkFixture, gpt: Path) -> None:
    """Open, then probe every partition: the in-process cost per image, table aside."""
    def open_probe() -> int:
        with imgscan.open(gpt) as image:
            return sum(probe_volume(image.read, off, size) is not None
                       for off, size in _gpt_ranges(image))

    assert benchmark(open_probe) == 4


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_probe_whole_volume(benchmark: BenchmarkFixture, name: str) -> None:
    if not shutil.which("qemu-img"):
        pytest.skip("qemu-img missing")
    path = whole_volume(name)
    with imgscan.open(path) as image:
        vol = benchmark(probe_volume, image.read, 0, image.virtual_size)
    assert vol is not None
