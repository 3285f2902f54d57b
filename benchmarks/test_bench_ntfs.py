"""NTFS: open a volume, find SYSTEM, read it (issue 5: Windows inspection in 100 ms).

Run with ``pytest benchmarks/test_bench_ntfs.py --benchmark-enable``. The
volume is the generated Windows-like fixture (tests/fixtures/ntfs/win.img.xz,
made by mkntfs + ntfs-3g) wrapped in qcow2 by ``qemu-img convert`` once into
``images.CACHE``; each round opens the image, the volume, resolves
``\\Windows\\System32\\config\\SYSTEM`` case-insensitively through $UpCase and
reads its 3 MiB.
"""

from __future__ import annotations

import lzma
import subprocess
from pathlib import Path

import images
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan._core.ntfs import NtfsVolume

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ntfs" / "win.img.xz"


def ntfs_qcow2() -> Path:
    path = images.CACHE / "ntfs-win.qcow2"
    if not path.exists():
        images.CACHE.mkdir(parents=True, exist_ok=True)
        raw = images.CACHE / "ntfs-win.raw"
        raw.write_bytes(lzma.decompress(FIXTURE.read_bytes()))
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                        str(path)], check=True)
        raw.unlink()
    return path


def open_and_read_system(path: Path) -> int:
    with imgscan.open(path) as img:
        vol = NtfsVolume(img.read, 0, img.virtual_size, path.name)
        f = vol.open(r"\windows\system32\config\SYSTEM")
        return len(f.read())


def test_open_lookup_read_system_hive(benchmark: BenchmarkFixture) -> None:
    path = ntfs_qcow2()
    assert benchmark(open_and_read_system, path) == 3 * 1024 * 1024
