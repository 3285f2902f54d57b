"""What the fuzzers found: every committed input in tests/fuzz/regressions/HARNESS/
replayed through its harness (in process, no atheris needed), and each bug behind
them as a plain test on an image made by the real tool and then damaged.
"""

from __future__ import annotations

import lzma
import struct
import sys
import uuid
from pathlib import Path

import pytest
from helpers import decompress, overwrite, patched, qemu_create
from oracles import CORPUS, needs_corpus, needs_qemu

import imgscan
from imgscan._core.source import Source
from imgscan.guest import windows
from imgscan.layout import describe

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))

from harnesses import HARNESSES  # noqa: E402

CASES = sorted(p for p in (FUZZ / "regressions").glob("*/*") if p.is_file())


def test_regressions_are_named_by_harness() -> None:
    assert {p.parent.name for p in CASES} <= set(HARNESSES)


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_input_replays(path: Path) -> None:
    """The harness accepts it (an ImageError at most, which it swallows)."""
    HARNESSES[path.parent.name](path.read_bytes())


def test_source_contains_takes_any_int(tmp_path: Path) -> None:
    """Offsets computed from header fields may pass 2**64 or go negative: not inside."""
    path = tmp_path / "f"
    path.write_bytes(bytes(4096))
    with Source(str(path)) as src:
        assert src.contains(0, 4096)
        assert not src.contains(2**73, 512)
        assert not src.contains(0, 2**70)
        assert not src.contains(-512, 512)
        assert not src.contains(512, -1)


@needs_qemu
def test_vmdk_grain_directory_offset_past_2_64(tmp_path: Path) -> None:
    """gdOffset (in sectors) times 512 beyond 2**64 is a table past the end, not a crash
    (fuzz regression vmdk/gd-offset-past-2-64)."""
    good = qemu_create(tmp_path / "good.vmdk", "1M", fmt="vmdk").read_bytes()
    # The sparse header: rgdOffset at 48, gdOffset at 56 (u64 LE, sectors).
    bad = patched(tmp_path, "bad.vmdk", good, "<", (48, "Q", 2**62), (56, "Q", 2**62))
    assert struct.unpack_from("<Q", bad.read_bytes(), 56)[0] == 2**62
    with pytest.raises(imgscan.TruncatedImage, match="grain directory"):
        imgscan.open(bad)


@needs_qemu
def test_vmdk_without_grain_directory_entries_ignores_its_offset(tmp_path: Path) -> None:
    """An extent of capacity 0 has no grain directory entries: gdOffset is never read,
    whatever it says (fuzz regression vmdk/gd-offset-past-2-64-no-entries)."""
    good = qemu_create(tmp_path / "good.vmdk", "1M", fmt="vmdk").read_bytes()
    # capacity (sectors) at 12, descriptor offset and size at 28 and 36 (none: the bare
    # extent), rgdOffset at 48, gdOffset at 56.
    bad = patched(tmp_path, "bad.vmdk", good, "<", (12, "Q", 0), (28, "Q", 0), (36, "Q", 0),
                  (48, "Q", 2**62), (56, "Q", 2**62))
    with imgscan.open(bad) as img:
        assert img.virtual_size == 0
        assert list(img.extents()) == []


def test_windows_partition_claiming_more_than_any_disk() -> None:
    """A GPT entry may claim up to 2^64 sectors; Windows inspection of its NTFS volume
    reads what the disk holds (fuzz regression windows/gpt-ntfs-partition-size-past-2-63)."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "windows" / "bios.img.xz"
    disk = lzma.decompress(fixture.read_bytes())

    def read(offset: int, length: int) -> bytes:
        return disk[offset:offset + length]

    layout = describe(read, len(disk), "bios.img")
    want, _ = windows.inspect(read, layout)
    for p in layout.partitions:
        p["size"] = 2**70
    got, _ = windows.inspect(read, layout)
    assert want is not None and got is not None
    assert got["product_name"] == want["product_name"] == "Windows Server 2019 Datacenter"


@needs_corpus
def test_vhdx_parent_locator_value_of_odd_length(tmp_path: Path) -> None:
    """A UTF-16 key or value of an odd byte count reads without its odd last byte
    (fuzz regression vhdx/parent-locator-odd-utf16-length), here on a real Hyper-V
    differencing disk whose relative_path value (entry 2) loses one byte."""
    path = decompress(CORPUS / "dissect.hypervisor/vhdx/differencing.avhdx.gz",
                      tmp_path / "diff.avhdx")
    data = path.read_bytes()
    # The locator item starts with its type GUID; the file holds two copies of it.
    locator_type = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913").bytes_le
    patched_copies = 0
    locator = -1
    while (locator := data.find(locator_type, locator + 1)) >= 0:
        entry = locator + 20 + 2 * 12               # header, then 12-byte entries
        key_offset, _, key_length, value_length = struct.unpack_from("<IIHH", data, entry)
        if data[locator + key_offset:locator + key_offset + key_length] == \
                "relative_path".encode("utf-16-le"):
            overwrite(path, entry + 10, struct.pack("<H", value_length - 1))
            patched_copies += 1
    assert patched_copies == 2
    with imgscan.open(path) as img:
        assert img.backing_file == ".\\Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhd"


@needs_corpus
def test_vhdx_parent_locator_shorter_than_its_header(tmp_path: Path) -> None:
    """A parent locator item whose metadata table entry gives it fewer bytes than the
    20-byte locator header is corrupt, named as such (fuzz regression
    vhdx/parent-locator-shorter-than-its-header: it was a struct.error), here on a real
    Hyper-V differencing disk whose locator entry's length is cut to 8."""
    path = decompress(CORPUS / "dissect.hypervisor/vhdx/differencing.avhdx.gz",
                      tmp_path / "diff.avhdx")
    data = path.read_bytes()
    # A metadata table entry: item GUID, offset (4), length (4), flags (4), reserved (4).
    locator_item = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").bytes_le
    entries = [at for at in range(0, len(data), 16)
               if data[at:at + 16] == locator_item]
    assert entries
    for at in entries:
        overwrite(path, at + 20, struct.pack("<I", 8))
    with pytest.raises(imgscan.CorruptImage, match=r"VHDX parent locator.*shorter than"):
        imgscan.open(path)
