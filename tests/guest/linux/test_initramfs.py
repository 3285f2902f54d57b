"""initramfs member listing: each compression the kernel decodes, early-microcode
concatenation, several compressed segments; ``lsinitramfs`` and ``cpio -t`` are the
oracles. Hostile streams (bombs, truncation, junk) end in a clear error, in bounded
memory."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from helpers.initramfs_images import (
    COMPRESSORS,
    compress,
    cpio_archive,
    cpio_list,
    lsinitramfs,
    microcode_archive,
    needs,
    needs_cpio,
    needs_lsinitramfs,
    write_files,
)
from test_limits import _cap_boundary

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.guest.linux.initramfs import gzip_decoder, members

pytestmark = needs_cpio

MiB = 1 << 20
VERSION = "6.1.0-57-cloud-amd64"
MODULES = f"usr/lib/modules/{VERSION}/kernel/drivers"
MAIN = {
    "init": b"#!/bin/sh\nexec /sbin/init\n",
    "bin/sh": b"->busybox",
    "bin/busybox": bytes(range(256)) * 64,
    f"{MODULES}/block/virtio_blk.ko": b"\x7fELF" + bytes(5000),
    f"{MODULES}/net/xen-netfront.ko": b"\x7fELF" + bytes(3000),
    f"{MODULES}/virtio/virtio_ring.ko.zst": b"(\xb5/\xfd" + bytes(100),
    "conf/arch.conf": b"DPKG_ARCH=amd64\n",
}


def _members(data: bytes) -> list[str]:
    return members(lambda offset, length: data[offset:offset + length], len(data), "initrd")


@pytest.fixture(scope="module")
def main_archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return cpio_archive(write_files(tmp_path_factory.mktemp("main"), MAIN))


@pytest.fixture(params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """gzip decoded by ISA-L (PyPI ``isal``) and by zlib, the fallback where isal has no
    wheel: a None in ``sys.modules`` makes isal's import fail as if it were absent."""
    if request.param == "isal":
        pytest.importorskip("isal.igzip_lib")
    else:
        monkeypatch.setitem(sys.modules, "isal.igzip_lib", None)
    decoder = {"isal": "IgzipDecompressor", "zlib": "Decompress"}[request.param]
    assert type(gzip_decoder()[0]).__name__ == decoder


@pytest.fixture(scope="module")
def early(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return microcode_archive(tmp_path_factory.mktemp("early"))


@needs_lsinitramfs
@pytest.mark.parametrize("fmt", sorted(COMPRESSORS))
def test_early_microcode_then_compressed_main(fmt: str, early: bytes, main_archive: bytes,
                                              tmp_path: Path) -> None:
    """The layout of initramfs-tools and dracut: an uncompressed early archive, then
    the main one compressed; lsinitramfs lists both."""
    path = tmp_path / "initrd.img"
    path.write_bytes(early + compress(main_archive, fmt))
    expected = lsinitramfs(path)
    assert expected == cpio_list(early) + cpio_list(main_archive)
    assert _members(path.read_bytes()) == expected


@pytest.mark.parametrize("fmt", sorted(COMPRESSORS))
def test_compressed_alone(fmt: str, main_archive: bytes) -> None:
    assert _members(compress(main_archive, fmt)) == cpio_list(main_archive)


@pytest.mark.parametrize("fmt", ["gzip", "xz", "lzma", "bzip2", "zstd"])
def test_several_compressed_segments(fmt: str, early: bytes, main_archive: bytes,
                                     tmp_path: Path) -> None:
    """The kernel reads on after a compressed stream's end (zero padding allowed), so
    segments may follow one another: firmware, then the main archive."""
    firmware = cpio_archive(write_files(tmp_path / "fw", {"lib/firmware/a.bin": bytes(999)}))
    data = early + compress(firmware, fmt) + bytes(4) + compress(main_archive, fmt)
    assert _members(data) == cpio_list(early) + cpio_list(firmware) + cpio_list(main_archive)


@pytest.mark.usefixtures("inflater")
def test_gzip_by_either_inflater(early: bytes, main_archive: bytes, tmp_path: Path) -> None:
    """ISA-L and zlib list the same members and end each stream at the same offset (the
    next segment starts there); a damaged CRC-32, reserved FLG bits (which ISA-L alone
    would ignore), a truncated stream and a bomb over the decompressed-bytes cap are
    refused by both."""
    firmware = cpio_archive(write_files(tmp_path / "fw", {"lib/firmware/a.bin": bytes(999)}))
    packed = compress(main_archive, "gzip")
    data = early + compress(firmware, "gzip") + bytes(4) + packed
    assert _members(data) == cpio_list(early) + cpio_list(firmware) + cpio_list(main_archive)
    crc = len(packed) - 8                    # the trailer: CRC-32, then ISIZE
    with pytest.raises(CorruptImage) as excinfo:
        _members(packed[:crc] + bytes([packed[crc] ^ 1]) + packed[crc + 1:])
    assert excinfo.value.offset == 0
    reserved = packed[:3] + bytes([packed[3] | 0x20]) + packed[4:]
    with pytest.raises(CorruptImage, match="reserved FLG bits") as excinfo:
        _members(early + reserved)
    assert excinfo.value.offset == len(early) + 3
    with pytest.raises((TruncatedImage, CorruptImage)):
        _members(packed[:len(packed) // 2])
    zeros = tmp_path / "zeros"
    write_files(zeros, {"zeros": bytes(8 * MiB)})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "LINUX_INITRAMFS_MAX_BYTES", 4 * MiB)
        with pytest.raises(LimitExceeded, match="decompressed bytes"):
            _members(compress(cpio_archive(zeros), "gzip"))


def test_zstd_with_checksum_and_many_blocks(tmp_path: Path) -> None:
    """A frame of many 128 KiB blocks with a content checksum: fed block by block."""
    needs("zstd")
    files = {f"lib/firmware/f{i}": bytes([i]) * 300_000 + bytes(range(256)) for i in range(20)}
    archive = cpio_archive(write_files(tmp_path, files))
    frame = compress(archive, "zstd")
    assert frame[4] & 0x04, "zstd writes a content checksum by default"
    assert _members(frame) == cpio_list(archive)


def test_lz4_concatenated_legacy_frames(main_archive: bytes, tmp_path: Path) -> None:
    """lz4's legacy frame has no end; a second magic inside it is skipped, as the
    kernel does, so concatenated frames decode as one stream."""
    extra = cpio_archive(write_files(tmp_path, {"extra": b"e"}))
    data = compress(main_archive, "lz4") + compress(extra, "lz4")
    assert _members(data) == cpio_list(main_archive) + cpio_list(extra)


# -- hostile streams ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", sorted(COMPRESSORS))
def test_bomb_is_walked_in_bounded_memory(fmt: str, tmp_path: Path) -> None:
    """A member of 64 MiB of zeros compresses to little; walking it holds one chunk,
    and the decompressed-bytes cap stops a bigger one."""
    needs(COMPRESSORS[fmt][0])
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "zeros", "wb") as f:
        f.truncate(64 * MiB)
    data = compress(cpio_archive(big), fmt)
    assert len(data) < MiB
    tracemalloc.start()
    try:
        assert _members(data) == [".", "zeros"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # A few chunks at most (lz4's legacy chunks are 8 MiB of output: about 25 MiB),
    # nothing near the 64 MiB the stream holds.
    assert peak < 32 * MiB, peak
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "LINUX_INITRAMFS_MAX_BYTES", 32 * MiB)
        with pytest.raises(LimitExceeded, match="decompressed bytes") as excinfo:
            _members(data)
    assert excinfo.value.offset == 0


@pytest.mark.parametrize("fmt", sorted(COMPRESSORS))
def test_truncated_stream(fmt: str, main_archive: bytes) -> None:
    data = compress(main_archive, fmt)
    with pytest.raises((TruncatedImage, CorruptImage)):
        _members(data[:len(data) // 2])


@pytest.mark.parametrize("fmt", ["gzip", "xz", "bzip2", "zstd", "lz4"])
def test_corrupt_stream(fmt: str, main_archive: bytes) -> None:
    data = bytearray(compress(main_archive, fmt))
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    with pytest.raises(CorruptImage):
        _members(bytes(data))


def test_junk_after_an_archive_inside_a_compressed_stream(main_archive: bytes) -> None:
    data = compress(main_archive + b"junk", "gzip")
    with pytest.raises(CorruptImage, match="junk byte 0x6a") as excinfo:
        _members(data)
    assert excinfo.value.offset == len(main_archive)
    assert "gzip stream at file offset 0" in str(excinfo.value)


def test_unknown_segment_and_lzo(early: bytes) -> None:
    with pytest.raises(CorruptImage, match="neither a cpio archive") as excinfo:
        _members(early + b"PK\x03\x04 a zip file")
    assert excinfo.value.offset == len(early)
    with pytest.raises(UnsupportedFeature, match="lzo"):
        _members(b"\x89LZO\x00\r\n\x1a\n")


def test_empty_and_all_zero_files_have_no_members() -> None:
    assert _members(b"") == []
    assert _members(bytes(4096)) == []


def test_zstd_reserved_block_type() -> None:
    """A frame header made by zstd, then a block header of the reserved type 3."""
    frame = compress(b"", "zstd")
    header_size = 6                         # magic, descriptor, a 1-byte content size
    bad = frame[:header_size] + bytes([0b111, 0, 0])
    with pytest.raises(CorruptImage, match="reserved Block_Type") as excinfo:
        _members(bad)
    assert excinfo.value.offset == header_size


def test_lz4_chunk_over_compress_bound() -> None:
    data = (0x184C2102).to_bytes(4, "little") + (0x7FFFFFFF).to_bytes(4, "little")
    with pytest.raises(CorruptImage, match="LZ4_compressBound") as excinfo:
        _members(data)
    assert excinfo.value.offset == 4


# -- caps at their boundary --------------------------------------------------------------
def test_decompressed_bytes_cap(main_archive: bytes, early: bytes,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap counts the bytes of every compressed segment (the plain ones are read
    from the file, not decompressed)."""
    data = early + compress(main_archive, "gzip") + compress(main_archive, "xz")
    _cap_boundary(monkeypatch, "LINUX_INITRAMFS_MAX_BYTES", 2 * len(main_archive),
                  lambda: _members(data))


def test_segments_cap(early: bytes, main_archive: bytes,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = early + compress(main_archive, "gzip") + compress(main_archive, "zstd")
    _cap_boundary(monkeypatch, "LINUX_INITRAMFS_MAX_SEGMENTS", 3, lambda: _members(data))


def test_blocks_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zstd blocks and lz4 chunks count together; ``zstd -lv`` would not say how many
    blocks a frame has, so the count comes from the files' sizes: lz4 -l makes one
    chunk per 8 MiB of input, zstd one block per 128 KiB."""
    needs("zstd")
    big = write_files(tmp_path, {"a": bytes(range(256)) * (12 * 4096)})   # 12 MiB
    archive = cpio_archive(big)
    lz4_chunks = -(-len(archive) // (8 * MiB))
    zstd_blocks = -(-len(archive) // (128 << 10))
    data = compress(archive, "lz4")
    assert lz4_chunks == 2
    _cap_boundary(monkeypatch, "LINUX_INITRAMFS_MAX_BLOCKS", lz4_chunks, lambda: _members(data))
    zdata = compress(archive, "zstd")
    _cap_boundary(monkeypatch, "LINUX_INITRAMFS_MAX_BLOCKS", zstd_blocks,
                  lambda: _members(zdata))


def test_window_cap(main_archive: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """zstd: the frame header's window size (``zstd --long=N`` asks for 2^N bytes)."""
    needs("zstd")
    frame = subprocess.run(["zstd", "-q", "-c", "--long=24"], input=main_archive,
                           check=True, capture_output=True).stdout
    window = zstandard.get_frame_parameters(frame).window_size
    assert window == 1 << 24
    _cap_boundary(monkeypatch, "LINUX_INITRAMFS_MAX_WINDOW", window, lambda: _members(frame))


def test_xz_memory_over_the_window_cap(main_archive: bytes) -> None:
    """xz -9 asks liblzma for a 64 MiB dictionary: over a 32 MiB cap, a LimitExceeded."""
    needs("xz")
    data = subprocess.run(["xz", "-9", "--check=crc32", "-c"], input=main_archive,
                          check=True, capture_output=True).stdout
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(limits, "LINUX_INITRAMFS_MAX_WINDOW", 32 * MiB)
        with pytest.raises(LimitExceeded, match="LINUX_INITRAMFS_MAX_WINDOW"):
            _members(data)
    assert _members(data) == cpio_list(main_archive)
