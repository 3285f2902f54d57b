"""Listing the members of a real initramfs: Debian 12's cloud kernel (initramfs-tools,
one gzip segment, 15 MiB holding 52 MiB of cpio). Issue 14's target is all Linux facts
of a Debian disk in 50 ms, the initramfs included.

Run with ``pytest benchmarks/test_bench_linux_initramfs.py --benchmark-enable``. The
initramfs is taken from an mmdebstrap root tarball (``IMGSCAN_DEBIAN_ROOT_TAR``, by
default /tmp/mmtest/root.tar) into ``images.CACHE``; without it the benchmark is
skipped. ``python benchmarks/test_bench_linux_initramfs.py`` times ``lsinitramfs`` and
``zcat`` on the same file as whole processes, for comparison.

Figures: benchmarks/README.md (issue 14).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from imgscan.guest.linux.initramfs import members

ROOT_TAR = Path(os.environ.get("IMGSCAN_DEBIAN_ROOT_TAR", "/tmp/mmtest/root.tar"))


def debian_initramfs() -> Path | None:
    """The Debian root's /boot/initrd.img-*, extracted once; None without the tarball."""
    cached = sorted(images.CACHE.glob("debian-initrd.img-*"))
    if cached:
        return cached[0]
    if not ROOT_TAR.is_file():
        return None
    with tarfile.open(ROOT_TAR) as tar:
        member = next((m for m in tar if m.isfile() and
                       m.name.lstrip("./").startswith("boot/initrd.img-")), None)
        if member is None:
            return None
        source = tar.extractfile(member)
        assert source is not None
        images.CACHE.mkdir(parents=True, exist_ok=True)
        path = images.CACHE / f"debian-{Path(member.name).name}"
        path.write_bytes(source.read())
    return path


@pytest.fixture(scope="session")
def initramfs() -> Path:
    path = debian_initramfs()
    if path is None:
        pytest.skip(f"{ROOT_TAR} (a Debian root made by mmdebstrap) is absent")
    return path


def test_list_debian_initramfs(benchmark: BenchmarkFixture, initramfs: Path) -> None:
    data = initramfs.read_bytes()
    names = benchmark(members, lambda offset, length: data[offset:offset + length], len(data),
                      str(initramfs))
    assert any(name.endswith("/virtio_blk.ko") for name in names)


def _peer() -> None:
    """``lsinitramfs`` and ``zcat`` (the decompression alone), whole processes."""
    path = debian_initramfs()
    if path is None:
        sys.exit(f"{ROOT_TAR} is absent")
    for command in (["lsinitramfs", str(path)], ["zcat", str(path)]):
        times = []
        for _ in range(11):
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - start)
        print(f"{' '.join(command[:1])}: median {statistics.median(times) * 1e3:.0f} ms",
              file=sys.stderr)


if __name__ == "__main__":
    _peer()
