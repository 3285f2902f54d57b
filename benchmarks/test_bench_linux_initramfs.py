"""Listing the members of a real initramfs: Debian 12's cloud kernel (initramfs-tools,
one gzip segment, 15 MiB holding 52 MiB of cpio). Issue 14's target is all Linux facts
of a Debian disk in 50 ms, the initramfs included.

Run with ``pytest benchmarks/test_bench_linux_initramfs.py --benchmark-enable``. The
initramfs is taken from an mmdebstrap root tarball (``IMGSCAN_DEBIAN_ROOT_TAR``, by
default /tmp/mmtest/root.tar) into ``images.CACHE``; without it the benchmark is
skipped. Its gzip is listed twice, by ISA-L (``isal``) and by zlib (the fallback where
isal has no wheel); the same cpio is also recompressed once, as other distributions
ship it, with ``zstd -19`` (Debian's COMPRESS=zstd, dracut), ``xz --check=crc32``
(dracut), ``lz4 -9 -l`` and ``bzip2`` (mkinitramfs's COMPRESS=lz4 and bzip2).
``python benchmarks/test_bench_linux_initramfs.py`` times, as whole processes, a Python
listing the gzip file with imgscan paired with ``lsinitramfs``, and ``zcat``.
``test_inflate_alone`` times the gzip inflate without the listing, per library (zlib,
ISA-L, and the peers zlib-ng and libdeflate where installed).

Figures: benchmarks/README.md (issue 14).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import images
import pytest
import whole_process
from pytest_benchmark.fixture import BenchmarkFixture

from imgscan.guest.linux.initramfs import CHUNK, members

ROOT_TAR = Path(os.environ.get("IMGSCAN_DEBIAN_ROOT_TAR", "/tmp/mmtest/root.tar"))


def debian_initramfs() -> Path | None:
    """The Debian root's /boot/initrd.img-*, extracted once; None without the tarball."""
    cached = sorted(images.CACHE.glob("debian-initrd.img-*"))
    if cached:
        return cached[0]
    if not ROOT_TAR.is_file():
        return None
    with tarfile.open(ROOT_TAR) as tar:
        member = next((m for m in tar if m.isfile() and
                       m.name.lstrip("./").startswith("boot/initrd.img-")), None)
        if member is None:
            return None
        source = tar.extractfile(member)
        assert source is not None
        images.CACHE.mkdir(parents=True, exist_ok=True)
        path = images.CACHE / f"debian-{Path(member.name).name}"
        path.write_bytes(source.read())
    return path


#: The commands that recompress the Debian initramfs' cpio, by format.
RECOMPRESS = {"zstd": ["zstd", "-19", "-q", "-c"], "xz": ["xz", "--check=crc32", "-c"],
              # as mkinitramfs (initramfs-tools) runs them: lz4 -9 -l, bzip2 at its default
              "lz4": ["lz4", "-l", "-9", "-q", "-c"], "bzip2": ["bzip2", "-c"]}


def recompressed(path: Path, fmt: str) -> Path:
    """The cpio inside the gzip file ``path``, compressed for ``fmt``; made once."""
    out = path.with_name(f"{path.name}.{fmt}")
    if not out.exists():
        if shutil.which(RECOMPRESS[fmt][0]) is None:
            pytest.skip(f"{RECOMPRESS[fmt][0]} is not installed")
        packed = subprocess.run(RECOMPRESS[fmt], input=gzip.decompress(path.read_bytes()),
                                check=True, capture_output=True).stdout
        out.write_bytes(packed)
    return out


@pytest.fixture(scope="session")
def initramfs() -> Path:
    path = debian_initramfs()
    if path is None:
        pytest.skip(f"{ROOT_TAR} (a Debian root made by mmdebstrap) is absent")
    return path


@pytest.mark.parametrize("fmt", ["gzip-isal", "gzip-zlib", "zstd", "xz", "lz4", "bzip2"])
def test_list_debian_initramfs(benchmark: BenchmarkFixture, initramfs: Path, fmt: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    if fmt == "gzip-isal":
        pytest.importorskip("isal.igzip_lib")
    if fmt == "gzip-zlib":
        monkeypatch.setitem(sys.modules, "isal.igzip_lib", None)    # as if not installed
    path = initramfs if fmt.startswith("gzip") else recompressed(initramfs, fmt)
    data = path.read_bytes()
    names = benchmark(members, lambda offset, length: data[offset:offset + length], len(data),
                      str(path))
    assert any(name.endswith("/virtio_blk.ko") for name in names)


def _inflate_in_chunks(decompressobj: Callable[[], Any]) -> Callable[[bytes], int]:
    """The loop imgscan's gzip segment reader runs, with ``decompressobj()``'s decoder and
    without the cpio walk: CHUNK bytes of input at a time, at most CHUNK out per call."""
    def inflate(data: bytes) -> int:
        d, pos, out = decompressobj(), 0, 0
        pending = b""
        while not d.eof:
            if not pending and getattr(d, "needs_input", True):
                pending = data[pos:pos + CHUNK]
                pos += len(pending)
            got = len(d.decompress(pending, CHUNK))
            if not got and pos >= len(data):
                raise EOFError("the gzip stream ends before its trailer")
            out += got
            # zlib's objects hand back what they had no room to decode; ISA-L's keeps it.
            pending = getattr(d, "unconsumed_tail", b"")
        return out
    return inflate


def inflater(library: str) -> Callable[[bytes], int]:
    """The gzip inflate of ``library``, bytes in, count of bytes out; skips without it.
    zlib-ng (PyPI ``zlib-ng``) and libdeflate (PyPI ``deflate``) are peers here only,
    not dependencies: ``pip install zlib-ng deflate`` to time them."""
    if library == "zlib":
        return _inflate_in_chunks(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))
    if library == "isal":
        igzip_lib = pytest.importorskip("isal.igzip_lib")
        return _inflate_in_chunks(lambda: igzip_lib.IgzipDecompressor(igzip_lib.DECOMP_GZIP))
    if library == "zlib-ng":
        zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
        return _inflate_in_chunks(lambda: zlib_ng.decompressobj(16 + zlib_ng.MAX_WBITS))
    # libdeflate has no streaming interface: the whole output in one buffer, sized by
    # the gzip trailer's ISIZE (a value the file claims), which imgscan cannot accept.
    deflate = pytest.importorskip("deflate")
    return lambda data: len(deflate.gzip_decompress(data))


#: The gzip inflaters :func:`test_inflate_alone` times.
INFLATE_LIBRARIES = ("zlib", "isal", "zlib-ng", "libdeflate")


@pytest.mark.parametrize("library", INFLATE_LIBRARIES)
def test_inflate_alone(benchmark: BenchmarkFixture, initramfs: Path, library: str) -> None:
    """The gzip inflate alone, per library: the floor of the listing (and of the Linux
    facts) on a gzip initramfs, since every byte must be decoded to find the headers."""
    inflate = inflater(library)
    data = initramfs.read_bytes()
    isize = int.from_bytes(data[-4:], "little")     # RFC 1952: the size mod 2**32
    assert benchmark(inflate, data) % (1 << 32) == isize


#: A whole process that imports imgscan and lists the initramfs named by its argument.
LIST_IN_PYTHON = ("import sys; from imgscan.guest.linux.initramfs import members; "
                  "d = open(sys.argv[1], 'rb').read(); "
                  "members(lambda o, n: d[o:o + n], len(d), sys.argv[1])")


def _peer() -> None:
    """Whole processes (:mod:`whole_process`), 11 runs each: imgscan's listing paired with
    ``lsinitramfs``, and ``zcat`` alone (the inflation alone)."""
    path = debian_initramfs()
    if path is None:
        sys.exit(f"{ROOT_TAR} is absent")
    print(whole_process.HEADER)
    print(whole_process.compare("list the gzip initramfs: python -c (imgscan members()) vs "
                                "lsinitramfs", [sys.executable, "-c", LIST_IN_PYTHON, str(path)],
                                ["lsinitramfs", str(path)], 11))
    print("\n| command | medians | runs |\n|---|---|---|")
    print(whole_process.alone("zcat (inflation alone)", ["zcat", str(path)], 11))


if __name__ == "__main__":
    _peer()
