"""Independent oracles for the tests: qemu-img and friends, run on the same file.

Each helper runs a real tool and returns what it printed, parsed; tests
compare imgscan with these and never with imgscan itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

HAVE_QEMU = shutil.which("qemu-img") is not None and shutil.which("qemu-io") is not None
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-img / qemu-io not installed")

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
CORPUS = SHARED / "corpus" / "real"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"{CORPUS} is absent")


def run(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """Run a tool, fail the test with its stderr if it fails, return stdout."""
    proc = subprocess.run([os.fspath(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{args!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def qemu_info(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, Any]:
    extra = ["-f", fmt] if fmt else []
    out = run("qemu-img", "info", "--output=json", *extra, path, cwd=Path(path).parent)
    result: dict[str, Any] = json.loads(out)
    return result


def qemu_map(path: str | os.PathLike[str], fmt: str | None = None) -> list[dict[str, Any]]:
    extra = ["-f", fmt] if fmt else []
    out = run("qemu-img", "map", "--output=json", *extra, path, cwd=Path(path).parent)
    result: list[dict[str, Any]] = json.loads(out)
    return result


def qemu_raw_sha256(path: str | os.PathLike[str], scratch: Path, fmt: str | None = None) -> str:
    """sha256 of ``qemu-img convert -O raw`` of the image."""
    out = scratch / (Path(path).name + ".oracle.raw")
    extra = ["-f", fmt] if fmt else []
    run("qemu-img", "convert", *extra, "-O", "raw", path, out, cwd=Path(path).parent)
    digest = sha256_file(out)
    out.unlink()
    return digest


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def sha256_stream(read: Any, size: int, chunk: int = 1 << 20) -> str:
    """sha256 of ``size`` bytes produced by ``read(offset, n)``."""
    h = hashlib.sha256()
    pos = 0
    while pos < size:
        data = read(pos, min(chunk, size - pos))
        assert data, f"short read at {pos}"
        h.update(data)
        pos += len(data)
    return h.hexdigest()


def data_zero_runs(entries: Iterable[dict[str, Any]]) -> list[tuple[int, int, bool, bool]]:
    """Normalise a qemu-style map to merged ``(start, end, data, zero)`` runs.

    Merge decisions differ between tools (host contiguity, depth), so maps are
    compared by what each byte range is: stored data or not, zero or not.
    """
    runs: list[tuple[int, int, bool, bool]] = []
    for e in entries:
        start, end = int(e["start"]), int(e["start"]) + int(e["length"])
        data, zero = bool(e["data"]), bool(e["zero"])
        if runs and runs[-1][1] == start and runs[-1][2:] == (data, zero):
            runs[-1] = (runs[-1][0], end, data, zero)
        else:
            runs.append((start, end, data, zero))
    return runs


def qemu_io(path: str | os.PathLike[str], *commands: str, fmt: str = "qcow2") -> None:
    args: list[str] = ["qemu-io", "-f", fmt]
    for c in commands:
        args += ["-c", c]
    run(*args, path)
