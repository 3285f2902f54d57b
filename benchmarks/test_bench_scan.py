"""Bulk scan benchmarks (issue 7): a library of 1000 small images.

Target: ``imgscan scan --info-only DIR`` over 1000 small images, whole process,
at least 50x faster than a shell loop of ``qemu-img info`` over them; peak
RSS flat (the same for 100 GiB images as for 1 MiB ones). The library (1 MiB
qcow2 holding 64 KiB of data, dynamic VHD, raw with an MBR, a third each) is
made once into the benchmark cache by qemu-img and sfdisk; both commands are
timed here as whole processes, side by side in one run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan

LIBRARY_SIZE = 1000
#: The imgscan this run imports, for the subprocesses too (a checkout or an install),
#: run from compiled bytecode as an installed one is (kept in the cache, not in the
#: checkout), even where the environment asks Python not to write any.
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
       "PYTHONPATH": str(Path(imgscan.__file__).resolve().parent.parent),
       "PYTHONPYCACHEPREFIX": str(images.CACHE / "pycache")}
IMGSCAN = [sys.executable, "-m", "imgscan"]
#: ``qemu-img info`` on every file of a directory, as a user's shell loop would.
QEMU_LOOP = 'for f in "$1"/*; do qemu-img info "$f"; done'


def _templates(work: Path) -> list[Path]:
    qcow2 = work / "t.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "1M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k", str(qcow2)],
                   check=True, capture_output=True)
    vhd = work / "t.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", str(vhd), "1M"], check=True)
    raw = work / "t.raw"
    with open(raw, "wb") as f:
        f.truncate(1 << 20)
    subprocess.run(["sfdisk", "-q", str(raw)], input="label: dos\nstart=8, type=L\n",
                   text=True, check=True, capture_output=True)
    return [qcow2, vhd, raw]


def scan_library() -> Path:
    """``CACHE/scan-library``: LIBRARY_SIZE copies of three 1 MiB templates (made once)."""
    path = images.CACHE / "scan-library"
    done = path / ".complete"
    if done.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    work = images.CACHE / "scan-library.templates"
    work.mkdir(parents=True, exist_ok=True)
    templates = _templates(work)
    path.mkdir()
    for i in range(LIBRARY_SIZE):
        template = templates[i % len(templates)]
        shutil.copy(template, path / f"img{i:04d}{template.suffix}")
    shutil.rmtree(work)
    done.touch()
    return path


@pytest.fixture(scope="session")
def library() -> Path:
    if shutil.which("sfdisk") is None:
        pytest.skip("sfdisk is needed to make the raw images of the library")
    return scan_library()


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                   check=True)


def test_scan_library_in_process(benchmark: BenchmarkFixture, library: Path) -> None:
    """The scan itself (pool, walk, IPC, info of every image), without start-up."""
    def scan() -> int:
        return sum(1 for _ in imgscan.scan([str(library)], info_only=True))

    assert benchmark(scan) == LIBRARY_SIZE


def test_scan_library_whole_process(benchmark: BenchmarkFixture, library: Path) -> None:
    cmd = [*IMGSCAN, "scan", "--info-only", str(library)]
    benchmark.pedantic(_run, args=(cmd,), rounds=7,  # type: ignore[no-untyped-call]
                       warmup_rounds=1)


def test_qemu_img_info_loop(benchmark: BenchmarkFixture, library: Path) -> None:
    """The peer: the same 1000 files, one qemu-img process each."""
    cmd = ["sh", "-c", QEMU_LOOP, "sh", str(library)]
    benchmark.pedantic(_run, args=(cmd,), rounds=3,  # type: ignore[no-untyped-call]
                       warmup_rounds=1)


@pytest.mark.parametrize("case", ["library", "big"])
def test_scan_peak_rss(benchmark: BenchmarkFixture, library: Path, case: str) -> None:
    """Peak RSS of the largest process of a scan (parent or worker): 1000 small
    images against four 100 GiB ones; recorded in extra_info, flat when equal."""
    paths = ([str(library)] if case == "library" else
             [str(images.big_qcow2()), str(images.big_vmdk()), str(images.big_vhdx()),
              str(images.big_vdi())])
    cmd = [sys.executable, "-c", "import resource, subprocess, sys;"
           "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True);"
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
           *IMGSCAN, "scan", "--info-only", *paths]

    def peak() -> int:
        out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=True)
        return int(out.stdout)

    kib = benchmark.pedantic(peak, rounds=1)  # type: ignore[no-untyped-call]
    benchmark.extra_info["peak_rss_mib"] = round(kib / 1024, 1)
