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


def big_qcow2() -> Path:
    """A 100 GiB qcow2 holding 2 GiB of data in 64 KiB pieces at random offsets.

    Made by writing a sparse raw file and converting it with ``qemu-img
    convert``, which skips the holes, so it takes seconds, not minutes.
    """
    path = CACHE / "big-100G-2G.qcow2"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    raw = CACHE / "big.raw"
    rng = random.Random(20261126)
    offsets = sorted(rng.sample(range(BIG_VIRTUAL // CHUNK), BIG_DATA // CHUNK))
    with open(raw, "wb") as f:
        f.truncate(BIG_VIRTUAL)
        for index in offsets:
            f.seek(index * CHUNK)
            f.write(bytes([index % 251 + 1]) * CHUNK)
    try:
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                        str(path) + ".part"], check=True)
        os.replace(str(path) + ".part", path)
    finally:
        raw.unlink()
    return path
