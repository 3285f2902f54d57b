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
#: The sqlite3 command-line tool reads a scan catalog independently of imgscan's code.
needs_sqlite3 = pytest.mark.skipif(shutil.which("sqlite3") is None,
                                   reason="the sqlite3 command-line tool is not installed")

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


def stored_not_zero(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """qemu's map with "data, zero" read as data.

    qemu calls a stored cluster that sits in a host-file hole both data and
    zero (a guess from the host filesystem's allocation state, which can
    change between runs); where the format's tables say data, imgscan says
    data, so such entries are compared as data.
    """
    return [{**e, "zero": e["zero"] and not e["data"]} for e in entries]


def clip_map(entries: list[dict[str, Any]], start: int, end: int) -> list[dict[str, Any]]:
    """The entries of a qemu-style map cut to ``[start, end)``."""
    out = []
    for e in entries:
        s, t = max(int(e["start"]), start), min(int(e["start"]) + int(e["length"]), end)
        if s < t:
            out.append({**e, "start": s, "length": t - s})
    return out


def qemu_window(fmt: str, path: str | os.PathLike[str], offset: int, size: int,
                scratch: Path) -> bytes:
    """Guest bytes ``[offset, offset + size)`` as qemu reads them (raw driver over ``fmt``)."""
    spec = {"driver": "raw", "offset": offset, "size": size,
            "file": {"driver": fmt, "file": {"driver": "file", "filename": os.fspath(path)}}}
    out = scratch / f"window-{offset}-{size}.raw"
    run("qemu-img", "convert", "-O", "raw", "json:" + json.dumps(spec), out)
    data = out.read_bytes()
    out.unlink()
    return data


def qemu_refuses(path: Path, fmt: str, command: str = "info") -> bool:
    """Whether ``qemu-img COMMAND --output=json -f FMT`` fails on the file."""
    try:
        run("qemu-img", command, "--output=json", "-f", fmt, path, cwd=path.parent)
    except AssertionError:
        return True
    return False


def blkid_export(path: str | os.PathLike[str]) -> dict[str, str]:
    """``blkid -p -o export``'s ``KEY=value`` lines as a dict (values as printed)."""
    out = run("blkid", "-p", "-o", "export", path)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def corpus_facts() -> dict[str, Any]:
    """../shared/corpus/real/FACTS.json: what qemu-img, file, blkid ... said of each file."""
    facts: dict[str, Any] = json.loads((CORPUS / "FACTS.json").read_text())
    return facts


def qemu_io(path: str | os.PathLike[str], *commands: str, fmt: str = "qcow2") -> None:
    args: list[str] = ["qemu-io", "-f", fmt]
    for c in commands:
        args += ["-c", c]
    run(*args, path)
