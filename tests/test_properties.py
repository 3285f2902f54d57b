"""Property tests (hypothesis) for issue 8: maps, guest reads and hostile headers.

Four properties, each over inputs hypothesis builds:

* random qcow2 images (made by ``qemu-img create`` and written by one
  ``qemu-io`` call) have an extent map that covers the virtual disk exactly
  once, in order, and says what ``qemu-img map`` says of every byte;
* guest bytes read through that map equal ``qemu-img convert -O raw`` output,
  whole (sha256) and in random slices;
* random MBR sectors and GPT headers / entry arrays (with random and with
  valid CRCs, so the parser gets past its checksums) make the partition
  parser and the layout raise nothing but :class:`ImageError`, promptly;
* random bytes after each container format's magic make ``imgscan.open``,
  ``info()`` and a small read raise nothing but :class:`ImageError`, promptly.

Runs are derandomized (the same examples on every run) and small enough for
CI; the fuzz harnesses of tests/fuzz/ are where long random runs belong.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from pathlib import Path
from typing import TypeVar

import pytest
from helpers import KiB, MiB, promptly, sparse_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import (
    data_zero_runs,
    needs_qemu,
    qemu_io,
    qemu_map,
    run,
    sha256_file,
    sha256_stream,
    stored_not_zero,
)

import imgscan
from imgscan._core.partitions import read_partition_table
from imgscan.errors import ImageError

#: Examples for the properties that run qemu-img per example, and for the in-memory ones.
QEMU_EXAMPLES = 20
MEMORY_EXAMPLES = 300
#: Examples per container format (ten formats).
HEADER_EXAMPLES = 60

#: deadline=None: the promptness bound is asserted by the tests themselves (helpers.promptly),
#: not by hypothesis's per-example deadline, which a loaded CI machine would trip.
QEMU_SETTINGS = settings(max_examples=QEMU_EXAMPLES, deadline=None, derandomize=True,
                         database=None, suppress_health_check=[HealthCheck.too_slow])
MEMORY_SETTINGS = settings(max_examples=MEMORY_EXAMPLES, deadline=None, derandomize=True,
                           database=None, suppress_health_check=[HealthCheck.too_slow])

T = TypeVar("T")

#: Malformed input must be rejected (or accepted) within this many seconds.
PROMPT = 1.0


# -- random qcow2 images, made by qemu --------------------------------------------------

class Write:
    """One ``qemu-io`` write: a byte pattern, zeros (``write -z``) or one compressed cluster."""

    __slots__ = ("kind", "length", "offset", "pattern")

    def __init__(self, kind: str, offset: int, length: int, pattern: int) -> None:
        self.kind, self.offset, self.length, self.pattern = kind, offset, length, pattern

    def command(self) -> str:
        if self.kind == "zero":
            return f"write -z {self.offset} {self.length}"
        flag = "-c " if self.kind == "compressed" else ""
        return f"write {flag}-P {self.pattern} {self.offset} {self.length}"

    def __repr__(self) -> str:
        return f"Write({self.kind!r}, {self.offset}, {self.length}, {self.pattern:#x})"


class Qcow2Spec:
    """What a random qcow2 image is made of: ``qemu-img create`` options and the writes."""

    __slots__ = ("cluster_size", "compat", "extended_l2", "size", "writes")

    def __init__(self, size: int, cluster_size: int, compat: str, extended_l2: bool,
                 writes: list[Write]) -> None:
        self.size, self.cluster_size, self.compat = size, cluster_size, compat
        self.extended_l2, self.writes = extended_l2, writes

    def make(self, directory: Path) -> Path:
        path = directory / "random.qcow2"
        options = f"cluster_size={self.cluster_size},compat={self.compat}"
        if self.extended_l2:
            options += ",extended_l2=on"
        run("qemu-img", "create", "-f", "qcow2", "-o", options, path, str(self.size),
            cwd=directory)
        if self.writes:
            qemu_io(path, *(w.command() for w in self.writes))
        return path

    def __repr__(self) -> str:
        return (f"Qcow2Spec(size={self.size}, cluster_size={self.cluster_size}, "
                f"compat={self.compat!r}, extended_l2={self.extended_l2}, "
                f"writes={self.writes!r})")


@st.composite
def writes_into(draw: st.DrawFn, size: int, cluster_size: int) -> Write:
    """A write inside a disk of ``size`` bytes: anywhere for patterns and zeros (unaligned
    too, so partial clusters and subclusters occur), one whole cluster when compressed."""
    full_clusters = size // cluster_size
    kinds = ["pattern", "zero"] + (["compressed"] if full_clusters else [])
    kind = draw(st.sampled_from(kinds))
    pattern = draw(st.integers(0, 255))
    if kind == "compressed":
        index = draw(st.integers(0, full_clusters - 1))
        return Write(kind, index * cluster_size, cluster_size, pattern)
    aligned = draw(st.booleans())
    if aligned:
        sectors = size // 512
        offset = draw(st.integers(0, sectors - 1)) * 512
        length = draw(st.integers(1, min(512, (size - offset) // 512))) * 512
    else:
        offset = draw(st.integers(0, size - 1))
        length = draw(st.integers(1, min(256 * KiB, size - offset)))
    return Write(kind, offset, length, pattern)


@st.composite
def qcow2_specs(draw: st.DrawFn) -> Qcow2Spec:
    cluster_size = draw(st.sampled_from([512, 4096, 65536]))
    compat = draw(st.sampled_from(["0.10", "1.1"]))
    # qemu allows extended L2 entries (32 subclusters) only from 16 KiB clusters on.
    extended_l2 = compat == "1.1" and cluster_size == 65536 and draw(st.booleans())
    size = draw(st.integers(1, 8 * MiB // 512)) * 512
    writes = draw(st.lists(writes_into(size, cluster_size), max_size=6))
    # qemu writes a compressed cluster only where nothing is allocated yet: those go first,
    # one per cluster.
    compressed = {w.offset: w for w in writes if w.kind == "compressed"}
    writes = [*compressed.values(), *(w for w in writes if w.kind != "compressed")]
    return Qcow2Spec(size, cluster_size, compat, extended_l2, writes)


@needs_qemu
@QEMU_SETTINGS
@given(spec=qcow2_specs())
def test_extent_map_covers_the_disk_once_and_matches_qemu_map(spec: Qcow2Spec) -> None:
    with tempfile.TemporaryDirectory(prefix="imgscan-prop-") as tmp:
        path = spec.make(Path(tmp))
        with imgscan.open(path) as img:
            emap = img.extents()
            assert emap.check_complete()
            pos = 0
            for extent in emap:
                assert extent.start == pos, f"{extent} does not start at {pos}"
                assert extent.length > 0, f"empty {extent}"
                pos += extent.length
            assert pos == img.virtual_size == spec.size
            # qemu calls stored clusters in host-file holes "data, zero": data per the tables.
            theirs = stored_not_zero(qemu_map(path, "qcow2"))
            assert data_zero_runs(emap.to_qemu()) == data_zero_runs(theirs)


@needs_qemu
@QEMU_SETTINGS
@given(spec=qcow2_specs(), data=st.data())
def test_reads_through_the_map_equal_qemu_convert(spec: Qcow2Spec, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="imgscan-prop-") as tmp:
        path = spec.make(Path(tmp))
        raw = Path(tmp) / "oracle.raw"
        run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", path, raw, cwd=tmp)
        converted = raw.read_bytes()
        with imgscan.open(path) as img:
            assert sha256_stream(img.read, img.virtual_size) == sha256_file(raw)
            reads = data.draw(st.lists(st.tuples(st.integers(0, spec.size),
                                                 st.integers(0, 192 * KiB)),
                                       min_size=1, max_size=8), label="reads")
            for offset, length in reads:
                assert img.read(offset, length) == converted[offset:offset + length], \
                    f"read({offset}, {length})"


# -- random partition tables ----------------------------------------------------------

SECTOR = 512
#: Types the parser treats specially (empty, Linux, extended x3, protective, EFI, NTFS).
MBR_TYPES = (0x00, 0x83, 0x05, 0x0F, 0x85, 0xEE, 0xEF, 0x07)
GPT_TYPE_GUIDS = (
    bytes(16),
    bytes.fromhex("28732ac11ff8d211ba4b00a0c93ec93b"),  # EFI System (mixed-endian on disk)
    bytes.fromhex("4861682149646f6e744e656564454649"),  # BIOS boot
    bytes.fromhex("af3dc60f838472478e793d69d8477de4"),  # Linux filesystem
)


def mostly(draw: st.DrawFn, usual: st.SearchStrategy[T], odd: st.SearchStrategy[T]) -> T:
    """A draw from ``usual`` seven times in eight, else from ``odd``: random tables that
    are mostly plausible get past the parser's first checks."""
    return draw(usual if draw(st.integers(0, 7)) else odd)


def lbas(disk_sectors: int) -> st.SearchStrategy[int]:
    """An LBA: mostly on the small disk (so entries point at placed sectors), or anywhere."""
    return st.one_of(st.integers(0, disk_sectors + 2), st.integers(0, 2**64 - 1))


def lba32s(disk_sectors: int) -> st.SearchStrategy[int]:
    """An MBR's 32-bit LBA or sector count, mostly on the small disk."""
    return st.one_of(st.integers(0, disk_sectors + 2), st.integers(0, 2**32 - 1))


@st.composite
def mbr_sectors(draw: st.DrawFn, disk_sectors: int) -> bytes:
    """An MBR or EBR: random boot code and entries, boot signature on or off."""
    boot = mostly(draw, st.just(bytes(446)), st.binary(min_size=446, max_size=446))
    entries = b""
    for _ in range(4):
        status = mostly(draw, st.sampled_from((0x00, 0x80)), st.integers(0, 255))
        ptype = mostly(draw, st.sampled_from(MBR_TYPES), st.integers(0, 255))
        chs = draw(st.binary(min_size=6, max_size=6))
        first, count = draw(lba32s(disk_sectors)), draw(lba32s(disk_sectors))
        entries += struct.pack("<B3sB3sII", status, chs[:3], ptype, chs[3:], first, count)
    signature = mostly(draw, st.just(b"\x55\xaa"), st.binary(min_size=2, max_size=2))
    return boot + entries + signature


def _crc_or_random(draw: st.DrawFn, data: bytes) -> int:
    """A valid CRC-32 of ``data`` (mostly, so the parser goes deeper) or a random one."""
    return mostly(draw, st.just(zlib.crc32(data)), st.integers(0, 2**32 - 1))


@st.composite
def gpt_entries(draw: st.DrawFn, disk_sectors: int, size: int) -> bytes:
    type_guid = mostly(draw, st.sampled_from(GPT_TYPE_GUIDS), st.binary(min_size=16,
                                                                         max_size=16))
    unique = draw(st.binary(min_size=16, max_size=16))
    first = mostly(draw, st.integers(0, disk_sectors), lbas(disk_sectors))
    last = mostly(draw, st.integers(first, min(first + disk_sectors, 2**64 - 1)),
                  lbas(disk_sectors))
    attributes = mostly(draw, st.sampled_from((0, 1 << 2, 1 << 63)), st.integers(0, 2**64 - 1))
    name = draw(st.binary(min_size=72, max_size=72))
    entry = type_guid + unique + struct.pack("<QQQ", first, last, attributes) + name
    return (entry + bytes(max(0, size - len(entry))))[:size]


@st.composite
def gpt_disks(draw: st.DrawFn) -> bytes:
    """A small disk with a protective (or random) MBR, a GPT header at LBA 1 of 512- or
    4096-byte sectors, an entry array, and a backup header (copied or random)."""
    ss = draw(st.sampled_from((512, 4096)))
    sectors = draw(st.integers(4, 64))
    disk = bytearray(sectors * ss)
    last = sectors - 1
    protective = struct.pack("<B3sB3sII", 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1,
                             min(sectors * ss // SECTOR - 1, 2**32 - 1))
    disk[:SECTOR] = mostly(draw, st.just(bytes(446) + protective + bytes(48) + b"\x55\xaa"),
                           mbr_sectors(sectors))
    header_size = mostly(draw, st.just(92), st.integers(0, ss + 8))
    entry_lba = mostly(draw, st.just(2), lbas(sectors))
    count = mostly(draw, st.sampled_from((1, 2, 4, 8, 128)), st.integers(0, 2**32 - 1))
    entry_size = mostly(draw, st.just(128), st.one_of(st.sampled_from((0, 64, 256)),
                                                       st.integers(0, 2**32 - 1)))
    # The array, where it fits on the disk; its CRC over what the disk holds there.
    array_at = entry_lba * ss
    array_len = count * entry_size
    if array_at < len(disk) and array_len and entry_size <= 4096:
        room = min(array_len, len(disk) - array_at, 64 * entry_size)
        entries = b"".join(draw(st.lists(gpt_entries(sectors, entry_size), min_size=min(count, 1),
                                         max_size=min(count, 6))))
        disk[array_at:array_at + room] = (entries + bytes(room))[:room]
    array_crc = _crc_or_random(draw, bytes(disk[array_at:array_at + array_len]))
    fields = struct.pack(
        "<8sIIIIQQQQ16sQIII",
        mostly(draw, st.just(b"EFI PART"), st.binary(min_size=8, max_size=8)),
        mostly(draw, st.just(0x00010000), st.integers(0, 2**32 - 1)),
        header_size, 0, 0,
        mostly(draw, st.just(1), lbas(sectors)),
        mostly(draw, st.just(last), lbas(sectors)),
        mostly(draw, st.just(min(entry_lba + 1, 2**64 - 1)), lbas(sectors)),
        mostly(draw, st.just(max(0, last - 1)), lbas(sectors)),
        draw(st.binary(min_size=16, max_size=16)),
        entry_lba, count, entry_size, array_crc)
    header = bytearray(fields + bytes(ss - len(fields)))
    struct.pack_into("<I", header, 16,
                     _crc_or_random(draw, bytes(header[:min(header_size, ss)])))
    disk[ss:2 * ss] = header
    backup = draw(st.sampled_from(("copy", "random", "none")))
    if backup == "copy":
        copy = bytearray(header)
        struct.pack_into("<QQ", copy, 24, last, 1)
        struct.pack_into("<I", copy, 16, 0)
        struct.pack_into("<I", copy, 16, zlib.crc32(bytes(copy[:min(header_size, ss)])))
        disk[last * ss:] = copy
    elif backup == "random":
        disk[last * ss:last * ss + 92] = b"EFI PART" + draw(st.binary(min_size=84,
                                                                    max_size=84))
    return bytes(disk)


@st.composite
def mbr_disks(draw: st.DrawFn) -> bytes:
    """A small disk with a random MBR in sector 0 and random MBRs (EBRs) and GPT headers
    at random sectors, where random extended entries may find them."""
    sectors = draw(st.integers(1, 96))
    disk = bytearray(sectors * SECTOR + draw(st.sampled_from((0, 0, 100, 511))))
    disk[:SECTOR] = draw(mbr_sectors(sectors))
    for lba, sector in draw(st.lists(st.tuples(st.integers(1, max(1, sectors - 1)),
                                               mbr_sectors(sectors)), max_size=6)):
        if (lba + 1) * SECTOR <= len(disk):
            disk[lba * SECTOR:(lba + 1) * SECTOR] = sector
    return bytes(disk)


def _parse(disk: bytes, sector_size: int | None) -> None:
    """The partition table of an in-memory disk: ImageError or a result, within 1 s."""
    with promptly(PROMPT):
        try:
            table = read_partition_table(lambda off, n: disk[off:off + n], len(disk),
                                         "random.img", sector_size)
            table.as_dict()
            for p in table.partitions:
                p.as_dict()
        except ImageError:
            pass


def _layout(disk: bytes) -> None:
    """``imgscan.open(raw file).info()`` (partition table and filesystem probes), within 1 s."""
    with tempfile.TemporaryDirectory(prefix="imgscan-prop-") as tmp:
        path = Path(tmp) / "random.raw"
        path.write_bytes(disk)
        with promptly(PROMPT):
            try:
                with imgscan.open(path) as img:
                    img.info()
            except ImageError:
                pass


@MEMORY_SETTINGS
@given(disk=mbr_disks(), sector_size=st.sampled_from((None, 512, 4096)))
def test_random_mbr_tables_raise_only_image_errors(disk: bytes, sector_size: int | None) -> None:
    _parse(disk, sector_size)


@MEMORY_SETTINGS
@given(disk=gpt_disks(), sector_size=st.sampled_from((None, 512, 4096)))
def test_random_gpt_tables_raise_only_image_errors(disk: bytes, sector_size: int | None) -> None:
    _parse(disk, sector_size)


@settings(MEMORY_SETTINGS, max_examples=MEMORY_EXAMPLES // 2)
@given(disk=st.one_of(mbr_disks(), gpt_disks()))
def test_layout_of_random_tables_raises_only_image_errors(disk: bytes) -> None:
    _layout(disk)


# -- random container headers ---------------------------------------------------------

#: Each format's magic, with the version field where the decoder dispatches on it (so
#: random bytes reach the header checks of that version rather than stopping at it).
MAGICS: dict[str, tuple[bytes, ...]] = {
    "qcow2": (b"QFI\xfb\0\0\0\x02", b"QFI\xfb\0\0\0\x03", b"QFI\xfb"),
    "qcow": (b"QFI\xfb\0\0\0\x01",),
    "vhdx": (b"vhdxfile",),
    "vdi": (b"<<< Oracle VM VirtualBox Disk Image >>>\n".ljust(0x40, b"\0")
            + b"\x7f\x10\xda\xbe", b"<<< Sun xVM VirtualBox Disk Image >>>\n"),
    "qed": (b"QED\0",),
    "vmdk": (b"KDMV\x01\0\0\0", b"KDMV\x03\0\0\0", b"KDMV"),
    "luks": (b"LUKS\xba\xbe\0\x01", b"LUKS\xba\xbe\0\x02", b"LUKS\xba\xbe"),
    "vhd": (b"conectix",),
    "zvhd": (b"stream\0\0",),
    "zvhd2": (b"z2strm\0\0",),
}


@st.composite
def headers(draw: st.DrawFn, fmt: str) -> tuple[bytes, int]:
    """A file's bytes (magic, then random bytes) and the zero-filled size it is padded to.

    For VHD the magic opens the 512-byte footer at the end of the file (a dynamic disk's
    header sits further in, where the random bytes before it may put one).
    """
    magic = draw(st.sampled_from(MAGICS[fmt]))
    tail = draw(st.binary(max_size=2048))
    if fmt == "vhd":
        head = draw(st.binary(max_size=2048))
        data = head + (magic + tail + bytes(504))[:512]
    else:
        data = magic + tail
    pad = draw(st.sampled_from((0, 0, 4 * KiB, 64 * KiB, 1 * MiB)))
    return data, pad


@pytest.mark.parametrize("fmt", list(MAGICS))
@settings(MEMORY_SETTINGS, max_examples=HEADER_EXAMPLES)
@given(data=st.data())
def test_random_container_headers_raise_only_image_errors(fmt: str,
                                                          data: st.DataObject) -> None:
    content, pad = data.draw(headers(fmt), label="file")
    with tempfile.TemporaryDirectory(prefix="imgscan-prop-") as tmp:
        path = Path(tmp) / "random.img"
        if pad and fmt != "vhd":
            sparse_file(path, max(pad, len(content)))
            with open(path, "r+b") as f:
                f.write(content)
        else:
            path.write_bytes(content)
        with promptly(PROMPT):
            try:
                with imgscan.open(path) as img:
                    img.info()
                    img.read(0, 4 * KiB)
                    img.read(max(0, img.virtual_size - 512), 4 * KiB)
            except ImageError:
                pass

