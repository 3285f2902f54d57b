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


class Wimlib:
    """wimlib's own XPRESS Huffman and LZX codecs (libwim, Debian's wimtools), through its
    public ``wimlib_create_(de)compressor`` / ``wimlib_(de)compress`` API: the reference
    decoder the CompactOS decoders are compared with, and a compressor making chunks."""

    XPRESS = 1
    LZX = 2

    def __init__(self) -> None:
        import ctypes
        import ctypes.util
        name = ctypes.util.find_library("wim") or "libwim.so.15"
        self._ctypes = ctypes
        self.lib = ctypes.CDLL(name)
        vp = ctypes.c_void_p
        self.lib.wimlib_create_decompressor.argtypes = [ctypes.c_int, ctypes.c_size_t,
                                                        ctypes.POINTER(vp)]
        self.lib.wimlib_decompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                               ctypes.c_char_p, ctypes.c_size_t, vp]
        self.lib.wimlib_create_compressor.argtypes = [ctypes.c_int, ctypes.c_size_t,
                                                      ctypes.c_uint, ctypes.POINTER(vp)]
        self.lib.wimlib_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                             ctypes.c_char_p, ctypes.c_size_t, vp]
        self.lib.wimlib_compress.restype = ctypes.c_size_t
        self._handles: dict[tuple[str, int, int, int], Any] = {}

    def _handle(self, kind: str, ctype: int, block: int, level: int = 0) -> Any:
        key = (kind, ctype, block, level)
        if key not in self._handles:
            h = self._ctypes.c_void_p()
            if kind == "d":
                rc = self.lib.wimlib_create_decompressor(ctype, block, self._ctypes.byref(h))
            else:
                rc = self.lib.wimlib_create_compressor(ctype, block, level,
                                                       self._ctypes.byref(h))
            assert rc == 0, f"wimlib_create_{kind}ompressor: {rc}"
            self._handles[key] = h
        return self._handles[key]

    def decompress(self, ctype: int, data: bytes, size: int, block: int) -> bytes | None:
        """wimlib's decoding of one chunk into ``size`` bytes, None when it refuses it."""
        out = self._ctypes.create_string_buffer(max(size, 1))
        rc = self.lib.wimlib_decompress(data, len(data), out, size,
                                        self._handle("d", ctype, block))
        return out.raw[:size] if rc == 0 else None

    def compress(self, ctype: int, data: bytes, block: int, level: int = 50) -> bytes | None:
        """wimlib's compression of one chunk, None when it would not shrink."""
        out = self._ctypes.create_string_buffer(len(data))
        n = self.lib.wimlib_compress(data, len(data), out, len(data) - 1,
                                     self._handle("c", ctype, block, level))
        return out.raw[:n] if n else None


def wimlib() -> Wimlib | None:
    """The wimlib oracle, or None when libwim is not installed."""
    try:
        return Wimlib()
    except OSError:
        return None
