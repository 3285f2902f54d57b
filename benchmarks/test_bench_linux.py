"""Linux guest inspection of a Debian 12 system disk (issue 14: the Linux facts at most
50 ms in process, initramfs included; ``imgscan check`` at most 0.3 s as a whole
process, compared with virt-inspector in benchmarks/README.md).

Run with ``pytest benchmarks/test_bench_linux.py --benchmark-enable``. The disk is
the ext4-bios fixture of tests/fixtures/linux (mmdebstrap, GRUB, cloud kernel,
initramfs-tools' gzip initramfs), as built (qcow2 with zstd-compressed clusters, as
Debian's own cloud images ship) and converted once by qemu-img to a plain qcow2 in
``images.CACHE``. ``linux facts`` is the Linux stage alone on an open image and its
layout (root search, mounts, every collector, the initramfs walked); ``info`` is
the whole object from opening the file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import images
import pytest
from helpers.linux_images import linux_disks
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan.guest import linux
from imgscan.layout import of_guest


def plain_qcow2(source: Path) -> Path:
    """``source`` rewritten by qemu-img without compressed clusters, once per build of
    the fixtures (their cache directory, named by the scripts' hash, is in the name)."""
    path = images.CACHE / f"linux-{source.parent.name}-{source.stem}-plain.qcow2"
    if not path.exists():
        images.CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(source), str(path)],
                       check=True)
    return path


@pytest.fixture(scope="module", params=["compressed", "plain"])
def disk(request: pytest.FixtureRequest) -> Path:
    built = linux_disks()["ext4-bios"]
    return built if request.param == "compressed" else plain_qcow2(built)


def test_linux_facts(benchmark: BenchmarkFixture, disk: Path) -> None:
    with imgscan.open(disk) as img:
        guest = img.guest()
        read = guest.read
        assert read is not None
        layout = of_guest(guest)
        run: Callable[[], tuple[dict[str, Any] | None, list[Any]]] = \
            lambda: linux.inspect(read, layout)  # noqa: E731
        found, findings = benchmark(run)
    assert found is not None and found["distro"] == "debian" and not findings


def test_info_of_a_linux_disk(benchmark: BenchmarkFixture, disk: Path) -> None:
    def info() -> dict[str, Any]:
        with imgscan.open(disk) as img:
            return img.info()
    assert benchmark(info)["linux"]["kernels"]
