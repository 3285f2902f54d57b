"""Plumbing the test files share: sizes, corpus copies, files, timing, image making.

Nothing here says what a file holds (that is oracles.py's job, by running
real tools on it); these helpers only prepare inputs and time the code under
test. Format-specific byte patchers (checksums to reseal after an edit) live
in helpers.patchers.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from oracles import run

import imgscan

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

#: The tests/ tree, whatever folder a test file sits in: fixtures and golden files
#: are shared by tests in several folders.
TESTS = Path(__file__).resolve().parent.parent
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"



def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m imgscan ARGS`` in a child interpreter, run from the tests folder: the
    checkout's uncompiled imgscan/ must not shadow the installed package."""
    return subprocess.run([sys.executable, "-m", "imgscan", *args], capture_output=True,
                          text=True, check=False, cwd=TESTS)

def golden(name: str, text: str) -> None:
    """``text`` equals the golden file ``name``; ``IMGSCAN_UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN / name
    if os.environ.get("IMGSCAN_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"differs from {path} (IMGSCAN_UPDATE_GOLDEN=1 rewrites)"

#: Compressed corpus files, by suffix: how to open them as a plain byte stream.
_OPENERS: dict[str, Callable[..., Any]] = {".bz2": bz2.open, ".gz": gzip.open,
                                                 ".xz": lzma.open}


def unpacked_name(src: Path) -> str:
    """``src``'s name without a ``.bz2`` / ``.gz`` / ``.xz`` suffix."""
    return src.name.removesuffix(src.suffix) if src.suffix in _OPENERS else src.name


def decompress(src: Path, dst: Path, limit: int | None = None) -> Path:
    """Write ``src`` (bz2, gzip or xz by its suffix; else copied as it is) to ``dst``.

    The corpus is read-only, so tests work on such copies in a temp dir. The
    copy is sparse (all-zero MiB chunks become holes: some guests are GiBs of
    zeros); with ``limit`` only its first ``limit`` bytes are written. A
    ``dst`` that exists already is kept (session dirs decompress each file once).
    """
    if dst.exists():
        return dst
    opener = _OPENERS.get(src.suffix, open)
    left = -1 if limit is None else limit       # -1: no limit
    with opener(src, "rb") as fin, open(dst, "wb") as fout:
        while left != 0 and (chunk := fin.read(MiB if left < 0 else min(MiB, left))):
            if left > 0:
                left -= len(chunk)
            if chunk.count(0) == len(chunk):
                fout.seek(len(chunk), os.SEEK_CUR)
            else:
                fout.write(chunk)
        fout.truncate()
    return dst


@contextmanager
def promptly(seconds: float) -> Iterator[None]:
    """Assert the block took less than ``seconds`` (even when it raised).

    Malformed input must fail fast: a decoder that loops on a size the file
    claims shows up here rather than as a hung test run.
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        assert time.perf_counter() - start < seconds, f"took over {seconds} s"


def open_promptly(path: Path) -> imgscan.Image:
    """``imgscan.open(path)`` and its ``info()``, within 2 seconds."""
    with promptly(2):
        img = imgscan.open(path)
        img.info()
        return img


def write_file(directory: Path, data: bytes | bytearray, name: str = "bad.img") -> Path:
    """``directory / name`` holding ``data`` (a corrupted copy of a real image)."""
    path = directory / name
    path.write_bytes(bytes(data))
    return path


def patched(directory: Path, name: str, data: bytes | bytearray, byteorder: str,
            *edits: tuple[int, str, int]) -> Path:
    """``data`` with fields ``(offset, struct format, value)`` overwritten, written to
    ``directory / name``; ``byteorder`` is the struct prefix (``<`` or ``>``)."""
    buf = bytearray(data)
    for offset, fmt, value in edits:
        struct.pack_into(byteorder + fmt, buf, offset, value)
    return write_file(directory, buf, name)


def overwrite(path: Path, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` of the file in place (the rest is kept)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def sparse_file(path: Path, size: int) -> Path:
    """A new file of ``size`` bytes, all hole."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def sparse_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy ``src`` to ``dst`` with its holes where they are (``cp --sparse=auto``).

    ``shutil.copy`` writes every zero byte: one 6 GiB raw test disk, copied so,
    took 6 GiB of the disk, and a CI machine ran out of space. Every image file a
    test copies goes through here. Zeros the source holds as data stay data:
    qemu-img map reports a host file's holes as zero, so a copy must not add any.
    """
    run("cp", "--sparse=auto", "--", src, dst)
    return Path(dst)


def unmount(point: str | os.PathLike[str], *, lazy: bool = False) -> None:
    """``umount point``, tried again for up to 5 s while it fails: a mount point is
    busy for a moment after its last user has gone (an ntfs-3g volume that has just
    been filled; a scan of the temp directory passing through), and a test that
    mounted something must neither fail for that nor leave the mount behind. Still
    busy after that: an error, or with ``lazy`` (a bind mount, whose contents are not
    read after) detached lazily. Never lazy for a volume whose image is read next: its
    writer may not have finished."""
    for _ in range(UNMOUNT_TRIES - 1):
        if subprocess.run(["umount", os.fspath(point)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    if lazy and subprocess.run(["umount", os.fspath(point)], capture_output=True).returncode:
        run("umount", "--lazy", point)
    elif not lazy:
        run("umount", point)


#: Attempts :func:`unmount` makes, 0.1 s apart.
UNMOUNT_TRIES = 50


def copy_of(src: Path, directory: Path, name: str) -> Path:
    """A copy of ``src`` at ``directory / name``, to corrupt without touching ``src``."""
    return sparse_copy(src, directory / name)


def run_keyed(attempt_args: Callable[[int], Sequence[str | os.PathLike[str]]],
              tries: int = 10, cwd: str | os.PathLike[str] | None = None) -> str:
    """``run(*attempt_args(i))`` for i = 0, 1, ... until it succeeds or ``tries`` are used.

    qemu times its PBKDF (LUKS key setup) with getrusage, which fails now and
    then on a loaded machine ("Unable to get accurate CPU usage"); only that
    failure is retried, and ``attempt_args`` may ask for more time on each try.
    """
    for attempt in range(tries):
        try:
            return run(*attempt_args(attempt), cwd=cwd)
        except AssertionError as exc:
            if "CPU usage" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05 * (attempt + 1))  # let the load that starved the timing pass
    raise AssertionError("unreachable: tries must be at least 1")


def unpack_fixtures(fixtures: Path, names: Iterable[str], out: Path) -> dict[str, Path]:
    """``{name: out/name.img}``: each ``fixtures/name.img.xz`` decompressed (sparse)."""
    return {name: decompress(fixtures / f"{name}.img.xz", out / f"{name}.img")
            for name in names}


def qemu_create(path: Path, size: int | str | None, *extra: str, fmt: str) -> Path:
    """``qemu-img create -f FMT EXTRA... PATH [SIZE]``, run in the image's directory
    (where qemu-img resolves a relative backing file name)."""
    run("qemu-img", "create", "-f", fmt, *extra, path, *([] if size is None else [str(size)]),
        cwd=path.parent)
    return path
