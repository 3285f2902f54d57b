"""``imgscan check --profile all`` against one profile (issue 15: at most 10% more).

Run with ``pytest benchmarks/test_bench_profiles.py --benchmark-enable``. One round is
what ``check`` does for each image: open it, read every fact once (``info()``) and
judge the facts by the profiles, which the command loads once before its first image
(``load`` times that, once per process: built-in profiles are parsed once each).
The disks: the Windows BIOS fixture as qcow2 (test_bench_windows.windows_qcow2; a
50 MiB disk whose facts take about a millisecond, the worst case for the ratio) and
the Debian 12 ext4 system disk (test_bench_linux.plain_qcow2). The judging is pure
Python over the ``info`` dict, so the profiles' share is the difference between the
``huawei-ims`` and the ``all`` rows of one disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.linux_images import linux_disks
from pytest_benchmark.fixture import BenchmarkFixture
from test_bench_linux import plain_qcow2
from test_bench_windows import windows_qcow2

import imgscan
from imgscan.policy import Profile, check, load_profiles


def check_image(path: Path, profiles: list[Profile]) -> list[dict[str, Any]]:
    with imgscan.open(path) as img:
        info = img.info()
    return [check(info, p) for p in profiles]


def disk(name: str) -> Path:
    if name == "windows":
        return windows_qcow2("bios")
    return plain_qcow2(linux_disks()["ext4-bios"])


@pytest.mark.parametrize("name", ["windows", "debian"])
@pytest.mark.parametrize("spec", ["huawei-ims", "all"])
def test_check_profiles(benchmark: BenchmarkFixture, name: str, spec: str) -> None:
    path = disk(name)
    profiles = load_profiles(spec)
    checks = benchmark(check_image, path, profiles)
    assert [c["profile"] for c in checks] == [p.name for p in profiles]
