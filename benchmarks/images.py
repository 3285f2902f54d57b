"""Benchmark images, made once with qemu-img and kept in a cache directory.

``IMGSCAN_BENCH_DIR`` (default: ``$TMPDIR/imgscan-bench``) holds them between
runs; they are large and sparse, so they are never made by the test suite.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("IMGSCAN_BENCH_DIR", Path(tempfile.gettempdir()) / "imgscan-bench"))

GIB = 1 << 30
BIG_VIRTUAL = 100 * GIB
BIG_DATA = 2 * GIB
CHUNK = 64 * 1024
#: Pieces of CHUNK bytes in the format-specific 100 GiB images (VMDK, VHDX, VDI).
PIECES = 2048


def small_qcow2() -> Path:
    """A 64 MiB qcow2 with a few MiB of data: the single-image case."""
    path = CACHE / "small.qcow2"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M",
                        "-c", "write -P 0x22 32M 2M", str(path)],
                       check=True, capture_output=True)
    return path


#: qemu-img's name of each format :func:`small_image` converts the small qcow2 to.
SMALL_FORMATS = {"vhd": "vpc", "vmdk": "vmdk", "vhdx": "vhdx"}


def small_image(fmt: str) -> Path:
    """The small qcow2's disk converted by ``qemu-img convert`` to ``fmt`` (a key of
    :data:`SMALL_FORMATS`: a dynamic VHD, a monolithicSparse VMDK, a dynamic VHDX)."""
    path = CACHE / f"small.{fmt}"
    if not path.exists():
        tmp = path.with_name(path.name + ".part")
        subprocess.run(["qemu-img", "convert", "-q", "-f", "qcow2", "-O", SMALL_FORMATS[fmt],
                        str(small_qcow2()), str(tmp)], check=True)
        tmp.rename(path)
    return path


def big_image(name: str, fmt: str, *opts: str, pieces: int = PIECES, seed: int) -> Path:
    """``CACHE / name``: a BIG_VIRTUAL image of format ``fmt`` holding ``pieces``
    CHUNK-sized pieces at offsets drawn from ``random.Random(seed)``.

    Made by writing a sparse raw file and converting it with ``qemu-img
    convert -O fmt *opts``, which skips the holes, so it takes seconds, not
    minutes. An existing file is reused: the name says what is in it, so a
    new kind of image needs a new name.
    """
    path = CACHE / name
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    raw = CACHE / (name + ".raw")
    rng = random.Random(seed)
    offsets = sorted(rng.sample(range(BIG_VIRTUAL // CHUNK), pieces))
    with open(raw, "wb") as f:
        f.truncate(BIG_VIRTUAL)
        for index in offsets:
            f.seek(index * CHUNK)
            f.write(bytes([index % 251 + 1]) * CHUNK)
    try:
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, str(raw),
                        str(path) + ".part"], check=True)
        os.replace(str(path) + ".part", path)
    finally:
        raw.unlink()
    return path


def full_raw(gib: int) -> Path:
    """A raw file of ``gib`` GiB with every byte written (no holes): one random MiB,
    each copy stamped with its index so no two chunks are alike."""
    path = CACHE / f"full-{gib}G.raw"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    block = bytearray(random.Random(gib).randbytes(1 << 20))
    with open(str(path) + ".part", "wb") as f:
        for index in range(gib << 10):
            block[:8] = index.to_bytes(8, "little")
            f.write(block)
    os.replace(str(path) + ".part", path)
    return path


def big_qcow2() -> Path:
    """A 100 GiB qcow2 holding 2 GiB of data in 64 KiB pieces at random offsets."""
    return big_image("big-100G-2G.qcow2", "qcow2", pieces=BIG_DATA // CHUNK, seed=20261126)


def big_vmdk() -> Path:
    """A 100 GiB monolithicSparse VMDK (64 KiB grains, 512-entry grain tables: 3200
    tables, all allocated by qemu-img) holding 2048 pieces of 64 KiB."""
    return big_image("big-100G-vmdk.vmdk", "vmdk", "-o", "subformat=monolithicSparse",
                     seed=20261128)


def big_vhdx() -> Path:
    """A 100 GiB dynamic VHDX with 1 MiB blocks (102400 BAT entries, the most
    qemu-img makes for this size), about 2000 of them allocated by 2048 pieces."""
    return big_image("big-100G-1M.vhdx", "vhdx", "-o", "block_size=1M", seed=20261128)


def big_vdi() -> Path:
    """A 100 GiB dynamic VDI whose 2048 pieces allocate about 2000 of its 102400
    one-MiB blocks."""
    return big_image("big-100G-vdi.vdi", "vdi", seed=20261127)
