"""Full Windows inspection of a qcow2 system disk (issue 5: at most 100 ms in process).

Run with ``pytest benchmarks/test_bench_windows.py --benchmark-enable``. The
disks are the committed fixtures of tests/fixtures/windows (BIOS/MBR with
System Reserved, UEFI/GPT with ESP + MSR), converted once to qcow2 by
qemu-img into ``images.CACHE``. One round opens the image and builds the
whole ``info()`` object: container, partition table, filesystem probes and
every Windows fact (NTFS lookups, SYSTEM/SOFTWARE/SAM/BCD hives, the ESP's
FAT, cloudbase-init.conf, hiberfil.sys).
"""

from __future__ import annotations

import lzma
import shutil
import subprocess
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "windows"


def windows_qcow2(name: str) -> Path:
    path = images.CACHE / f"windows-{name}.qcow2"
    if not path.exists():
        images.CACHE.mkdir(parents=True, exist_ok=True)
        raw = images.CACHE / f"windows-{name}.img"
        raw.write_bytes(lzma.decompress((FIXTURES / f"{name}.img.xz").read_bytes()))
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                       check=True)
        raw.unlink()
    return path


def full_info(path: Path) -> dict[str, object]:
    with imgscan.open(path) as img:
        return img.info()


@pytest.mark.parametrize("name", ["bios", "uefi"])
def test_full_windows_inspection_qcow2(benchmark: BenchmarkFixture, name: str) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img absent")
    path = windows_qcow2(name)
    info = benchmark(full_info, path)
    windows = info["windows"]
    assert isinstance(windows, dict) and windows["product_name"]
    assert benchmark.stats is None or benchmark.stats.stats.median < 0.100
