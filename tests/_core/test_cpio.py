"""The cpio newc / crc walk: member names equal ``cpio -t``'s, whatever the chunking;
every malformed header, name and size is a clear error, never a hang or an allocation."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.initramfs_images import cpio_archive, cpio_list, needs_cpio, write_files
from test_limits import _cap_boundary

from imgscan._core.c_cpio import CPIO_NEWC_HEADER, HEADER_SIZE
from imgscan._core.cpio import ByteStream, Listing
from imgscan.errors import CorruptImage, ImageError, LimitExceeded, TruncatedImage

pytestmark = needs_cpio

FILES = {
    "bin/": b"",
    "bin/sh": b"\x7fELF" + bytes(100),
    "etc/fstab": b"# none\n",
    "lib": b"->usr/lib",
    "usr/lib/modules/6.1.0-1-amd64/kernel/drivers/block/virtio_blk.ko": bytes(3001),
    "a name with spaces and \xc3\xa9": b"x",
    "deep/" + "d/" * 40 + "leaf": b"",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files(tmp_path_factory.mktemp("cpio"), FILES)


def _names(data: bytes, chunk: int | None = None, *, embedded: bool = True) -> list[str]:
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    listing = Listing("test.cpio")
    listing.walk(ByteStream(pieces), embedded=embedded)
    return listing.names


@pytest.mark.parametrize("fmt", ["newc", "crc"])
def test_names_equal_cpio_t(tree: Path, fmt: str) -> None:
    archive = cpio_archive(tree, fmt)
    assert archive[:6] == (b"070701" if fmt == "newc" else b"070702")
    expected = cpio_list(archive)
    assert "bin/sh" in expected and "lib" in expected
    assert _names(archive) == expected


@pytest.mark.parametrize("chunk", [1, 3, 7, 110, 4096])
def test_any_chunking_gives_the_same_names(tree: Path, chunk: int) -> None:
    archive = cpio_archive(tree)
    assert _names(archive, chunk) == cpio_list(archive)


def test_concatenated_archives_with_zero_padding(tree: Path, tmp_path: Path) -> None:
    """Archives one after another, zero-padded (cpio pads to 512 bytes), as the kernel
    reads them in one stream."""
    first = cpio_archive(tree)
    second = cpio_archive(write_files(tmp_path / "b", {"second/file": b"2"}))
    assert len(first) % 512 == 0
    names = _names(first + bytes(512) + second, 1000)
    assert names == cpio_list(first) + cpio_list(second)


def test_file_walk_stops_where_a_compressed_segment_starts(tree: Path) -> None:
    archive = cpio_archive(tree)
    stream = ByteStream([archive + b"\x1f\x8b\x08rest"])
    listing = Listing("f")
    listing.walk(stream, embedded=False)
    assert stream.offset == len(archive)
    with pytest.raises(CorruptImage, match="junk byte 0x1f") as excinfo:
        _names(archive + b"\x1f\x8b\x08rest")
    assert excinfo.value.offset == len(archive)


# -- malformed archives ------------------------------------------------------------------
def _member(name: bytes, data: bytes = b"", /, **fields: str) -> bytes:
    """One newc member made by hand (for malformed cases): ``fields`` override the
    header's 8-character fields as written."""
    values = {f: "00000000" for f in CPIO_NEWC_HEADER.names[1:]}
    values["c_namesize"] = f"{len(name) + 1:08X}"
    values["c_filesize"] = f"{len(data):08X}"
    values.update(fields)
    header = b"070701" + "".join(values[f] for f in CPIO_NEWC_HEADER.names[1:]).encode()
    body = header + name + b"\0"
    body += bytes(-len(body) % 4) + data
    return body + bytes(-len(body) % 4)


TRAILER = _member(b"TRAILER!!!")


def test_hand_made_member_is_what_cpio_reads() -> None:
    """The malformed cases below start from members cpio itself lists."""
    archive = _member(b"a", b"xyz") + TRAILER
    assert cpio_list(archive) == _names(archive) == ["a"]


def test_truncated_header() -> None:
    archive = _member(b"a") + TRAILER
    with pytest.raises(TruncatedImage, match="cpio header") as excinfo:
        _names(archive[:len(_member(b"a")) + 50])
    assert excinfo.value.offset == len(_member(b"a"))


@pytest.mark.parametrize("field", ["c_filesize", "c_namesize", "c_mode"])
def test_non_hex_field_is_named(field: str) -> None:
    archive = _member(b"a", **{field: "0000x001"}) + TRAILER
    with pytest.raises(CorruptImage, match=f"{field} b'0000x001' is not 8 hex") as excinfo:
        _names(archive)
    assert excinfo.value.offset == CPIO_NEWC_HEADER.offset(field)


def test_signs_and_blanks_are_not_hex() -> None:
    """``int(x, 16)`` would read these; the spec's fields are hexadecimal digits only."""
    for value in ("+0000001", " 0000001", "0000_001"):
        with pytest.raises(CorruptImage, match="not 8 hexadecimal digits"):
            _names(_member(b"a", c_filesize=value) + TRAILER)


def test_old_cpio_formats_are_refused() -> None:
    archive = b"070707" + _member(b"a")[6:]
    with pytest.raises(CorruptImage, match="magic b'070707'"):
        _names(archive)


def test_namesize_zero_and_missing_nul() -> None:
    with pytest.raises(CorruptImage, match="c_namesize is 0"):
        _names(_member(b"a", c_namesize="00000000") + TRAILER)
    with pytest.raises(CorruptImage, match="not terminated by a NUL"):
        _names(_member(b"abcd", c_namesize="00000003") + TRAILER)


def test_huge_claims_are_refused_without_allocating() -> None:
    with pytest.raises(LimitExceeded, match="c_namesize 4294967295"):
        _names(_member(b"a", c_namesize="FFFFFFFF"))
    with pytest.raises(TruncatedImage, match="c_filesize 4294967295 runs past the end"):
        _names(_member(b"a", c_filesize="FFFFFFFF"))


def test_misaligned_archive_is_broken_padding() -> None:
    with pytest.raises(CorruptImage, match="4-byte boundary") as excinfo:
        _names(bytes(2) + _member(b"a") + TRAILER)
    assert excinfo.value.offset == 2


def test_endless_empty_members_stop_at_the_cap() -> None:
    """An archive of nothing but empty members (or trailers) ends at the headers cap."""
    with pytest.raises(LimitExceeded, match="LINUX_INITRAMFS_MAX_MEMBERS"):
        _names(_member(b"a") * (1 << 17) + TRAILER)
    with pytest.raises(LimitExceeded, match="LINUX_INITRAMFS_MAX_MEMBERS"):
        _names(TRAILER * ((1 << 17) + 1))


# -- caps at their boundary --------------------------------------------------------------
def test_members_cap(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = cpio_archive(tree)
    headers = len(cpio_list(archive)) + 1               # the trailer is read too
    _cap_boundary(monkeypatch, "LINUX_INITRAMFS_MAX_MEMBERS", headers, lambda: _names(archive))


def test_name_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "n" * 200
    archive = cpio_archive(write_files(tmp_path, {name: b""}))
    assert cpio_list(archive) == [".", name]
    exc = _cap_boundary(monkeypatch, "LINUX_INITRAMFS_MAX_NAME", len(name) + 1,
                        lambda: _names(archive))
    assert isinstance(exc, ImageError)
    # The second header: the first is "." (110 bytes and its 2-byte name).
    assert exc.offset == HEADER_SIZE + 2 + CPIO_NEWC_HEADER.offset("c_namesize")
