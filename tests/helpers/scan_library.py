"""The generated image library the bulk-scan tests share (tests/bulk): copies of
templates qemu-img writes in every format it knows, some damaged files (qemu-img
refusing them is the oracle), non-images, unreadable entries and links; ``qemu-img
info`` on each template says what every copy of it is."""

from __future__ import annotations

import faulthandler
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from oracles import qemu_info, run

from helpers import MiB, qemu_create, sparse_copy, write_file
from imgscan.bulk import worker

#: Seeded, so that no random file matches a signature by chance on some run.
RANDOM = random.Random(20261126)
#: qemu's format names that imgscan spells differently.
QEMU_NAMES = {"vpc": "vhd"}
#: Copies of each template in the library.
COPIES = 20


class Library:
    """The generated library and what the oracles say of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: path -> (format, virtual size) from qemu-img info on its template.
        self.images: dict[str, tuple[str, int]] = {}
        #: Damaged files (qemu-img refuses them) -> the ImageError imgscan must name.
        self.damaged: dict[str, str] = {}
        #: Entries that cannot be read, and files that are not images.
        self.unreadable: list[str] = []
        self.not_images: list[str] = []


def _mbr_disk(path: Path, label: str) -> Path:
    """A 2 MiB raw disk with one partition (sfdisk writes the table)."""
    with open(path, "wb") as f:
        f.truncate(2 * MiB)
    subprocess.run(["sfdisk", "-q", str(path)], input=f"label: {label}\nstart=64, type=L\n",
                   text=True, check=True, capture_output=True)
    return path


def build_library(root: Path, work: Path) -> Library:
    """The library under ``root`` (templates made in ``work``): every format qemu-img
    writes, damaged files, non-images, unreadable entries, links."""
    mbr = _mbr_disk(work / "mbr.raw", "dos")
    # (file, its format: qemu-img does not probe a fixed VHD, it is told)
    templates = [(mbr, "raw"), (_mbr_disk(work / "gpt.raw", "gpt"), "raw")]
    for fmt, opts in (("qcow2", []), ("qcow2", ["-o", "compat=0.10"]), ("qcow2", ["-c"]),
                      ("qcow", []), ("vpc", []), ("vpc", ["-o", "subformat=fixed"]),
                      ("vhdx", []), ("vmdk", []),
                      ("vmdk", ["-o", "subformat=streamOptimized"]), ("vdi", []), ("qed", [])):
        out = work / f"disk{len(templates)}.{fmt}"
        run("qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, mbr, out)
        templates.append((out, fmt))
    templates.append((qemu_create(work / "blank.qcow2", "3M", fmt="qcow2"), "qcow2"))
    # raw by its name alone
    templates.append((write_file(work, RANDOM.randbytes(3000), "random.img"), "raw"))
    lib = Library(root)
    for template, fmt in templates:
        info = qemu_info(template, fmt)
        fact = (QEMU_NAMES.get(info["format"], info["format"]), info["virtual-size"])
        for i in range(COPIES):
            sub = root / f"d{i % 4}" / f"e{i % 3}"
            sub.mkdir(parents=True, exist_ok=True)
            copy = sub / f"{i}-{template.name}"
            sparse_copy(template, copy)
            lib.images[str(copy)] = fact
    bad = root / "bad"
    bad.mkdir()
    qcow2 = (work / "blank.qcow2").read_bytes()
    for name, data, error in (
            ("short.qcow2", qcow2[:40], "TruncatedImage"),
            ("garbage.qcow2", b"QFI\xfb" + RANDOM.randbytes(5000), "UnsupportedFeature"),
            ("garbage.vhdx", b"vhdxfile" + RANDOM.randbytes(300_000), "CorruptImage")):
        path = write_file(bad, data, name)
        with pytest.raises(AssertionError):
            qemu_info(path)             # the oracle: qemu-img cannot open it either
        lib.damaged[str(path)] = error
    lib.not_images += [str(write_file(bad, b"just some text\n" * 20, "notes.txt")),
                       str(write_file(bad, RANDOM.randbytes(5000), "blob.bin"))]
    os.symlink("nowhere", bad / "dangling.qcow2")
    lib.unreadable.append(str(bad / "dangling.qcow2"))
    os.mkfifo(bad / "pipe.qcow2")   # skipped without being opened (opening would block)
    # Walked last: each is a second way to something already seen, never scanned twice.
    links = root / "zlinks"
    links.mkdir()
    first = next(iter(lib.images))
    os.link(first, links / "hardlink.qcow2")
    os.symlink(first, links / "symlink.qcow2")
    os.symlink("..", links / "loop")  # a directory symlink: never followed (skipped)
    return lib




#: The real per-image work, which the hooks below wrap.
SCAN_IMAGE = worker.scan_image
#: The names of :func:`troublemakers`' files, each misbehaving as its name says.
TROUBLE = ("hang", "exit", "segv", "hog", "bug")


def misbehave(path: str, options: worker.Options,
              identity: tuple[int, int] | None = None) -> tuple[Any, Any, Any] | None:
    """Replaces worker.scan_image in the readers (set before the pool forks them; on a
    Dask cluster, in its workers by a plugin). ``killer*`` kills the process that
    forked the reader: on a Dask worker, the worker itself, as the OOM killer would."""
    name = os.path.basename(path)
    if name.startswith("hang"):
        time.sleep(3600)
    elif name.startswith("exit"):
        os._exit(3)
    elif name.startswith("segv"):
        faulthandler.disable()          # pytest's, inherited: no traceback dump
        os.kill(os.getpid(), signal.SIGSEGV)
    elif name.startswith("hog"):
        bytearray(512 * MiB)           # beyond the 256 MiB budget of the tests
    elif name.startswith("bug"):
        raise ValueError("a bug in a decoder")
    elif name.startswith("killer"):
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(9)
    return SCAN_IMAGE(path, options, identity)


def troublemakers(library: Library, out: Path, names: tuple[str, ...] = TROUBLE,
                  fine: int = 12) -> Path:
    """Copies of a raw image under ``out``, one per name in ``names`` and ``fine``
    more (``ok0.raw`` ...) that :func:`misbehave` leaves alone."""
    template = next(p for p in library.images if p.endswith("mbr.raw"))
    for name in (*names, *(f"ok{i}" for i in range(fine))):
        sparse_copy(template, out / f"{name}.raw")
    return out
