"""OVA benchmarks (pytest-benchmark): a disk read through its OVA costs what it costs alone.

Run with ``pytest benchmarks/test_bench_ova.py --benchmark-enable``. Target (issue 15):
``info`` of an OVA about the cost of ``info`` of its disk alone: the package adds one
ustar walk, one descriptor parse and a window over the member, never a copy. Each pair
times the same streamOptimized VMDK (``qemu-img convert -O vmdk -o
subformat=streamOptimized``) as a file of its own and as the disk of an OVA made by
``tar --format=ustar`` around an ovftool-style descriptor (tests/helpers/ova_packages.py):

* the Windows BIOS fixture disk (50 MiB), full inspection (``info()``, Windows facts);
* a 100 GiB disk holding 2048 pieces of 64 KiB (``images.big_image``), its extent map,
  which reads every grain marker through the window.

Images are made once into ``images.CACHE``.
"""

from __future__ import annotations

import lzma
import subprocess
import sys
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan

TESTS = Path(__file__).resolve().parent.parent / "tests"
FIXTURES = TESTS / "fixtures" / "windows"


def _ova_around(vmdk: Path, capacity: int) -> Path:
    """``vmdk`` packaged as ovftool lays an OVA out (descriptor, manifest, disk)."""
    sys.path.insert(0, str(TESTS))
    from helpers.ova_packages import descriptor, manifest
    ova = vmdk.with_suffix(".ova")
    if ova.exists():
        return ova
    ovf = vmdk.with_suffix(".ovf")
    ovf.write_text(descriptor([(vmdk.name, vmdk, capacity)]))
    mf = vmdk.with_suffix(".mf")
    mf.write_text(manifest(vmdk.parent, [ovf.name, vmdk.name]))
    subprocess.run(["tar", "--format=ustar", "-cf", str(ova) + ".part", ovf.name, mf.name,
                    vmdk.name], cwd=vmdk.parent, check=True)
    Path(str(ova) + ".part").rename(ova)
    return ova


@pytest.fixture(scope="session")
def windows_pair() -> tuple[Path, Path]:
    vmdk = images.CACHE / "ova-windows-bios.vmdk"
    if not vmdk.exists():
        images.CACHE.mkdir(parents=True, exist_ok=True)
        raw = images.CACHE / "ova-windows-bios.img"
        raw.write_bytes(lzma.decompress((FIXTURES / "bios.img.xz").read_bytes()))
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                        "subformat=streamOptimized", str(raw), str(vmdk)], check=True)
        raw.unlink()
    return vmdk, _ova_around(vmdk, 50 << 20)


@pytest.fixture(scope="session")
def big_pair() -> tuple[Path, Path]:
    vmdk = images.big_image("big-100G-stream.vmdk", "vmdk", "-o",
                            "subformat=streamOptimized", seed=20261206)
    return vmdk, _ova_around(vmdk, images.BIG_VIRTUAL)


def _info(path: Path) -> dict[str, object]:
    with imgscan.open(path) as img:
        return img.info()


def _map(path: Path) -> int:
    with imgscan.open(path) as img:
        return len(img.extents())


@pytest.mark.parametrize("packaged", [False, True], ids=["vmdk", "ova"])
def test_windows_info(benchmark: BenchmarkFixture, windows_pair: tuple[Path, Path],
                      packaged: bool) -> None:
    info = benchmark(_info, windows_pair[packaged])
    assert info["windows"] is not None
    assert ("ova" in info) == packaged


@pytest.mark.parametrize("packaged", [False, True], ids=["vmdk", "ova"])
def test_big_extent_map(benchmark: BenchmarkFixture, big_pair: tuple[Path, Path],
                        packaged: bool) -> None:
    assert benchmark(_map, big_pair[packaged]) > 2000


def alternate(runs: int = 41) -> None:
    """Each pair timed alternately in process (disk alone, OVA, disk alone, ...), so a
    noisy machine hits both: medians and the median of the per-pair ratios."""
    import statistics
    import time

    for label, (disk, ova), work in (
            ("windows info()", windows_pair.__wrapped__(), _info),  # type: ignore[attr-defined]
            ("100 GiB extent map", big_pair.__wrapped__(), _map)):  # type: ignore[attr-defined]
        alone: list[float] = []
        packaged: list[float] = []
        for _ in range(runs):
            for path, out in ((disk, alone), (ova, packaged)):
                start = time.perf_counter()
                work(path)
                out.append(time.perf_counter() - start)
        ratio = statistics.median(p / a for a, p in zip(alone, packaged, strict=True))
        print(f"{label}: disk alone {statistics.median(alone) * 1e3:.2f} ms, through the "
              f"OVA {statistics.median(packaged) * 1e3:.2f} ms, median ratio {ratio:.2f}")


if __name__ == "__main__":
    alternate()
