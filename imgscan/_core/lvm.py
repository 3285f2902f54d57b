"""LVM2 physical volumes, volume groups and logical volumes, read offline.

Spec: lvm2's ``lib/format_text/layout.h`` and ``format-text.c`` (the label, the
PV header, the metadata area and its ring buffer, declared in
:mod:`imgscan._core.c_lvm`) and the text metadata format
(``doc/lvm2-raid.txt``'s companion ``lib/format_text/export.c`` /
``import_vsn1.c``: ``key = value``, ``section { }``, strings, lists, ``#``
comments).

A PV's metadata areas each hold, in a ring buffer, copies of the VG's text
metadata; ``raw_locn[0]`` of the mda_header points at the committed one, which
may wrap around the end of the ring. Every copy found on every PV of this image
is read and checksummed (up to a per-disk budget, since each PV repeats them),
and the one with the highest ``seqno`` of each VG wins, as lvm's rescan does.
Its LVs are then mapped onto the PVs of this image: ``striped`` segments (one
stripe is ``linear``) are read through :class:`LvReader`; thin pools, thin
volumes, snapshots, mirrors, RAID, cache and the other segment types are
reported by type and not read, as is an LV that needs a PV missing from the image.

Every value is hostile: lengths are capped (``LVM_*`` in :mod:`imgscan.limits`)
before anything is read or allocated, and every problem is an
:class:`~imgscan.errors.ImageError` naming the volume, the structure and its
byte offset on the guest disk.
"""

from __future__ import annotations

import bisect
import re
import zlib

import xxhash

from .. import limits
from ..errors import CorruptImage, ImageError, LimitExceeded, TruncatedImage, UnsupportedFeature
from . import c_lvm
from .c_lvm import DISK_LOCN, LABEL_HEADER, MDA_HEADER, PV_HEADER, RAW_LOCN, SECTOR_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    Read = Callable[[int, int], bytes]
    Value = int | str | list[int | str] | dict[str, "Value"]

__all__ = ["LogicalVolume", "LvReader", "PhysicalVolume", "VolumeGroup", "calc_crc",
           "parse_metadata", "read_pv", "volume_groups"]


def calc_crc(data: bytes | memoryview) -> int:
    """lvm2's ``calc_crc(INITIAL_CRC, data)``."""
    return zlib.crc32(data, c_lvm.INITIAL_CRC ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def format_id(raw: bytes) -> str:
    """A 32-character lvm id as lvm prints it (``id_write_format``)."""
    text = raw.decode("ascii", "replace")
    parts, pos = [], 0
    for width in c_lvm.UUID_GROUPS:
        parts.append(text[pos:pos + width])
        pos += width
    return "-".join(parts)


def _read_exact(read: Read, offset: int, length: int, name: str, structure: str) -> bytes:
    data = read(offset, length)
    if len(data) < length:
        raise TruncatedImage(name, structure, offset,
                             f"{length} bytes needed, the disk ends after {len(data)}")
    return data


# -- label, PV header, metadata areas ----------------------------------------------------
class PhysicalVolume:
    """The label of one PV in this image: where it is and what its header says."""

    __slots__ = ("data_areas", "device_size", "label_sector", "metadata_areas", "name",
                 "offset", "size", "uuid")

    def __init__(self, name: str, offset: int, size: int, uuid: str, device_size: int,
                 label_sector: int, data_areas: list[tuple[int, int]],
                 metadata_areas: list[tuple[int, int]]) -> None:
        self.name = name
        #: Where the PV is on the guest disk, and how much of it the image holds.
        self.offset = offset
        self.size = size
        self.uuid = uuid
        self.device_size = device_size
        self.label_sector = label_sector
        self.data_areas = data_areas
        #: (offset, size) of each metadata area, in bytes from the start of the PV.
        self.metadata_areas = metadata_areas


def _disk_locns(label: bytes, pos: int, sector_at: int, name: str
                ) -> tuple[list[tuple[int, int]], int]:
    """One zero-terminated ``disk_locn`` list of the pv_header, and where the next begins."""
    out: list[tuple[int, int]] = []
    while True:
        if pos + DISK_LOCN.size > SECTOR_SIZE:
            raise CorruptImage(name, "pv_header disk_locn list", sector_at + pos,
                               "the list is not terminated inside the label sector")
        locn = DISK_LOCN.unpack(label, pos)
        pos += DISK_LOCN.size
        if locn["offset"] == 0:
            return out, pos
        out.append((locn["offset"], locn["size"]))


def read_pv(read: Read, offset: int, size: int, name: str) -> PhysicalVolume | None:
    """The PV label at guest bytes ``offset`` (the scan of lvm's ``label_read``), or None
    when none of the first four sectors holds a valid LVM2 label."""
    head = read(offset, c_lvm.LABEL_SCAN_SECTORS * SECTOR_SIZE)
    for sector in range(c_lvm.LABEL_SCAN_SECTORS):
        label = head[sector * SECTOR_SIZE:(sector + 1) * SECTOR_SIZE]
        if len(label) < SECTOR_SIZE or label[:len(c_lvm.LABEL_ID)] != c_lvm.LABEL_ID:
            continue
        hdr = LABEL_HEADER.unpack(label)
        at = offset + sector * SECTOR_SIZE
        if hdr["sector_xl"] != sector or hdr["type"] != c_lvm.LVM2_LABEL:
            continue
        if calc_crc(label[LABEL_HEADER.offset("offset_xl"):]) != hdr["crc_xl"]:
            continue
        pos = hdr["offset_xl"]
        if pos < LABEL_HEADER.size or pos + PV_HEADER.size > SECTOR_SIZE:
            raise CorruptImage(name, "label_header", at + LABEL_HEADER.offset("offset_xl"),
                               f"offset_xl {pos} puts the pv_header outside the label sector")
        pv = PV_HEADER.unpack(label, pos)
        data_areas, pos = _disk_locns(label, pos + PV_HEADER.size, at, name)
        metadata_areas, _ = _disk_locns(label, pos, at, name)
        return PhysicalVolume(name, offset, size, format_id(pv["pv_uuid"]),
                              pv["device_size_xl"], sector, data_areas, metadata_areas)
    return None


class MetadataBudget:
    """The metadata-area bytes read on one disk, up to LVM_MAX_METADATA_BYTES_PER_DISK:
    every PV of a VG repeats the same copies, so without it a disk of many PVs would
    cost PVs x the largest copy the other caps allow."""

    __slots__ = ("disk", "over", "spent")

    def __init__(self, disk: str) -> None:
        self.disk = disk
        self.spent = 0
        #: Whether a read was refused: no further copy is read on the disk.
        self.over = False

    def spend(self, length: int, pv: PhysicalVolume, structure: str, offset: int) -> None:
        """Counts ``length`` bytes of ``structure`` at guest ``offset`` on ``pv``, or
        raises ``LimitExceeded`` naming the disk, the PV and the structure."""
        try:
            limits.enforce(self.spent + length, "LVM_MAX_METADATA_BYTES_PER_DISK", self.disk,
                           f"{structure} of the PV on {pv.name}", offset,
                           "metadata-area bytes read on the disk")
        except LimitExceeded:
            self.over = True
            raise
        self.spent += length


def read_metadata_copy(read: Read, pv: PhysicalVolume, mda_offset: int, mda_size: int,
                       budget: MetadataBudget) -> tuple[bytes, int] | None:
    """The committed text metadata in one metadata area and its guest-disk offset, or None
    when the area holds none (an orphan PV, or an area marked ignored). Every byte read
    is spent from ``budget``."""
    name, at = pv.name, pv.offset + mda_offset
    limits.enforce(mda_size, "LVM_MAX_METADATA_AREA_BYTES", name, "pv_header disk_locn",
                   at, "metadata area size")
    if mda_size < c_lvm.MDA_HEADER_SIZE or mda_offset + mda_size > pv.size:
        raise CorruptImage(name, "pv_header disk_locn", pv.offset,
                           f"metadata area [{mda_offset}, +{mda_size}) does not fit the PV "
                           f"of {pv.size} bytes")
    budget.spend(c_lvm.MDA_HEADER_SIZE, pv, "mda_header", at)
    raw = _read_exact(read, at, c_lvm.MDA_HEADER_SIZE, name, "mda_header")
    hdr = MDA_HEADER.unpack(raw)
    if hdr["magic"] != c_lvm.FMTT_MAGIC:
        raise CorruptImage(name, "mda_header", at + MDA_HEADER.offset("magic"),
                           "bad magic")
    if calc_crc(raw[MDA_HEADER.end("checksum_xl"):]) != hdr["checksum_xl"]:
        raise CorruptImage(name, "mda_header", at, "checksum mismatch")
    if hdr["version"] != c_lvm.FMTT_VERSION:
        raise UnsupportedFeature(name, "mda_header", at + MDA_HEADER.offset("version"),
                                 f"metadata format version {hdr['version']}")
    if hdr["start"] != mda_offset or hdr["size"] != mda_size:
        raise CorruptImage(name, "mda_header", at + MDA_HEADER.offset("start"),
                           f"start {hdr['start']} size {hdr['size']} disagree with the "
                           f"pv_header's {mda_offset} {mda_size}")
    locn_at = MDA_HEADER.size
    if locn_at + RAW_LOCN.size > len(raw):
        return None
    locn = RAW_LOCN.unpack(raw, locn_at)
    where = at + locn_at
    if locn["offset"] == 0 or locn["flags"] & c_lvm.RAW_LOCN_IGNORED:
        return None
    ring = mda_size - c_lvm.MDA_HEADER_SIZE
    text_size = locn["size"]
    limits.enforce(text_size, "LVM_MAX_METADATA_BYTES", name, "raw_locn", where,
                   "metadata text size")
    if not c_lvm.MDA_HEADER_SIZE <= locn["offset"] < mda_size or text_size > ring:
        raise CorruptImage(name, "raw_locn", where,
                           f"text at offset {locn['offset']} size {text_size} is outside "
                           f"the metadata area of {mda_size} bytes")
    budget.spend(text_size, pv, "metadata text", at + locn["offset"])
    first = min(text_size, mda_size - locn["offset"])
    text = _read_exact(read, at + locn["offset"], first, name, "metadata text")
    if first < text_size:  # the copy wraps around the end of the ring buffer
        text += _read_exact(read, at + c_lvm.MDA_HEADER_SIZE, text_size - first, name,
                            "metadata text")
    if calc_crc(text) != locn["checksum"]:
        raise CorruptImage(name, "raw_locn", where + RAW_LOCN.offset("checksum"),
                           "metadata text checksum mismatch")
    return text, at + locn["offset"]


# -- the text metadata parser -------------------------------------------------------------
#: Blanks and ``#`` comments; lvm writes the text NUL-terminated, so a NUL ends it.
_BLANKS = re.compile(rb"(?:[ \t\r\n\f\v]+|#[^\n]*)*")
_WORD = re.compile(rb"[A-Za-z0-9_.+-]+")
_NUMBER = re.compile(rb"-?[0-9]+")
#: A string's body: anything but a quote or a backslash, or a backslash and the byte it
#: escapes.
_STRING = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.S)
_ESCAPE = re.compile(rb"\\(.)", re.S)
#: Most digits of a number: lvm's values are 64-bit, at most 20 digits.
_MAX_DIGITS = 20


class _Parser:
    """A recursive-descent parser over the bytes of one metadata copy."""

    __slots__ = ("base", "end", "items", "max_items", "name", "pos", "text")

    def __init__(self, text: bytes, name: str, base: int) -> None:
        nul = text.find(0)
        self.text = text
        self.end = len(text) if nul < 0 else nul
        self.name = name
        self.base = base
        self.pos = 0
        self.items = 0
        #: The cap as it is when the parse starts (enforce refuses past it).
        self.max_items = limits.LVM_MAX_ITEMS

    def fail(self, problem: str) -> CorruptImage:
        return CorruptImage(self.name, "LVM2 text metadata", self.base + self.pos, problem)

    def count(self) -> None:
        self.items += 1
        if self.items > self.max_items:
            limits.enforce(self.items, "LVM_MAX_ITEMS", self.name, "LVM2 text metadata",
                           self.base + self.pos, "values, sections and list items")

    def skip(self) -> int:
        """Skip blanks and comments; the next byte, or -1 at the end."""
        match = _BLANKS.match(self.text, self.pos, self.end)
        self.pos = match.end() if match else self.pos
        return self.text[self.pos] if self.pos < self.end else -1

    def word(self) -> str:
        match = _WORD.match(self.text, self.pos, self.end)
        if match is None:
            raise self.fail("unexpected end of text" if self.pos >= self.end
                            else f"unexpected byte 0x{self.text[self.pos]:02x}")
        self.pos = match.end()
        return match.group().decode("ascii")

    def string(self) -> str:
        match = _STRING.match(self.text, self.pos, self.end)
        if match is None:
            raise self.fail("unterminated string")
        self.pos = match.end()
        return _ESCAPE.sub(rb"\1", match.group(1)).decode("utf-8", "surrogateescape")

    def scalar(self) -> int | str:
        if self.skip() == 0x22:
            return self.string()
        start = self.pos
        word = self.word()
        if _NUMBER.fullmatch(word.encode()):
            if len(word.lstrip("-")) > _MAX_DIGITS:
                self.pos = start
                raise self.fail(f"a number of {len(word)} digits")
            return int(word)
        # Floats and bare words do not occur in metadata lvm writes: kept as text.
        return word

    def value(self) -> int | str | list[int | str]:
        if self.skip() != 0x5B:  # '['
            return self.scalar()
        self.pos += 1
        out: list[int | str] = []
        while True:
            c = self.skip()
            if c == 0x5D:  # ']'
                self.pos += 1
                return out
            if out:
                if c != 0x2C:
                    raise self.fail("expected ',' or ']' in a list")
                self.pos += 1
            if self.skip() == -1:
                raise self.fail("unterminated list")
            self.count()
            out.append(self.scalar())

    def section(self, depth: int, closed: bool) -> dict[str, Value]:
        limits.enforce(depth, "LVM_MAX_NESTING", self.name, "LVM2 text metadata",
                       self.base + self.pos, "section nesting depth")
        out: dict[str, Value] = {}
        while True:
            c = self.skip()
            if c == -1:
                if closed:
                    raise self.fail("unterminated section")
                return out
            if c == 0x7D:  # '}'
                if not closed:
                    raise self.fail("'}' without a section")
                self.pos += 1
                return out
            key = self.word()
            self.count()
            c = self.skip()
            if c == 0x3D:  # '='
                self.pos += 1
                value: Value = self.value()
            elif c == 0x7B:  # '{'
                self.pos += 1
                value = self.section(depth + 1, True)
            else:
                raise self.fail(f"expected '=' or '{{' after {key!r}")
            out.setdefault(key, value)


def parse_metadata(text: bytes, name: str, base: int = 0) -> dict[str, Value]:
    """The sections and values of one LVM2 text metadata copy.

    ``base`` is the guest-disk offset of ``text``, for error messages.
    """
    limits.enforce(len(text), "LVM_MAX_METADATA_BYTES", name, "LVM2 text metadata", base,
                   "metadata text size")
    return _Parser(text, name, base).section(1, False)


# -- volume groups and logical volumes ----------------------------------------------------
class _Section:
    """Typed access to one parsed section, refusing what lvm would not have written."""

    __slots__ = ("name", "offset", "values", "where")

    def __init__(self, values: dict[str, Value], where: str, name: str, offset: int) -> None:
        self.values = values
        self.where = where
        self.name = name
        self.offset = offset

    def fail(self, problem: str) -> CorruptImage:
        return CorruptImage(self.name, f"LVM2 metadata {self.where}", self.offset, problem)

    def integer(self, key: str, default: int | None = None) -> int:
        v = self.values.get(key, default)
        if not isinstance(v, int) or v < 0:
            raise self.fail(f"{key} is {v!r}, not a count")
        return v

    def text(self, key: str, default: str | None = None) -> str:
        v = self.values.get(key, default)
        if not isinstance(v, str):
            raise self.fail(f"{key} is {v!r}, not a string")
        return v

    def items(self, key: str) -> list[int | str]:
        v = self.values.get(key, [])
        if not isinstance(v, list):
            raise self.fail(f"{key} is {v!r}, not a list")
        return v

    def section(self, key: str) -> _Section:
        v = self.values.get(key, {})
        if not isinstance(v, dict):
            raise self.fail(f"{key} is not a section")
        return _Section(v, f"{self.where}/{key}", self.name, self.offset)

    def children(self) -> list[tuple[str, _Section]]:
        """The sections inside this one, by name."""
        return [(k, _Section(v, f"{self.where}/{k}", self.name, self.offset))
                for k, v in self.values.items() if isinstance(v, dict)]


class LvReader:
    """``read(offset, length)`` over one LV's address space, through its segments.

    ``segments`` are ``(lv_start, length, stripe_bytes, areas)`` in bytes, sorted and
    contiguous from 0; ``areas`` are the guest-disk offsets where each stripe's area
    begins (one area: linear). Reads past the LV's end come back short.
    """

    __slots__ = ("read_disk", "segments", "size", "starts")

    def __init__(self, read: Read, segments: list[tuple[int, int, int, list[int]]]) -> None:
        self.read_disk = read
        self.segments = segments
        self.starts = [s[0] for s in segments]
        self.size = sum(s[1] for s in segments)

    def __call__(self, offset: int, length: int) -> bytes:
        end = min(offset + max(length, 0), self.size)
        pieces: list[bytes] = []
        pos = max(offset, 0)
        while pos < end:
            start, seg_len, stripe, areas = self.segments[bisect.bisect_right(self.starts, pos) - 1]
            rel = pos - start
            if len(areas) == 1:
                disk, chunk = areas[0] + rel, start + seg_len - pos
            else:
                row, within = divmod(rel, stripe)
                row, column = divmod(row, len(areas))
                disk = areas[column] + row * stripe + within
                chunk = min(stripe - within, start + seg_len - pos)
            chunk = min(chunk, end - pos)
            data = self.read_disk(disk, chunk)
            pieces.append(data)
            if len(data) < chunk:
                break
            pos += chunk
        return b"".join(pieces)


class LogicalVolume:
    """One LV of a VG: its facts, and a reader when it can be read from this image."""

    __slots__ = ("name", "reader", "segments", "size", "vg", "why")

    def __init__(self, vg: str, name: str, size: int, segments: list[dict[str, Any]],
                 reader: LvReader | None, why: str | None) -> None:
        self.vg = vg
        self.name = name
        self.size = size
        #: The contract's segment objects.
        self.segments = segments
        self.reader = reader
        #: Why the LV is not read (None when it is).
        self.why = why


class VolumeGroup:
    """The newest metadata of one VG, mapped onto the PVs of this image."""

    __slots__ = ("extent_size", "id", "lvs", "name", "pvs", "seqno")

    def __init__(self, name: str, id: str, seqno: int, extent_size: int,
                 pvs: dict[str, PhysicalVolume | None], lvs: list[LogicalVolume]) -> None:
        self.name = name
        self.id = id
        self.seqno = seqno
        #: Bytes of one extent.
        self.extent_size = extent_size
        #: Every PV of the VG by uuid, with its label in this image or None.
        self.pvs = pvs
        self.lvs = lvs


#: Segment types read through :class:`LvReader`; every other one is reported, not read.
READABLE_TYPES = ("striped", "linear")


def _vg_section(meta: dict[str, Value], name: str, offset: int) -> tuple[str, _Section]:
    vgs = [(k, v) for k, v in meta.items() if isinstance(v, dict)]
    if len(vgs) != 1:
        raise CorruptImage(name, "LVM2 text metadata", offset,
                           f"{len(vgs)} volume group sections, not one")
    vg_name, values = vgs[0]
    return vg_name, _Section(values, vg_name, name, offset)


class _Mapper:
    """Maps the segments of one VG's LVs onto the PVs of this image."""

    def __init__(self, read: Read, vg: _Section, extent_bytes: int,
                 pvs: dict[str, tuple[str, int, int, PhysicalVolume | None]]) -> None:
        self.read = read
        self.vg = vg
        self.extent_bytes = extent_bytes
        #: pvN -> (uuid, pe_start bytes, pe_count, label in this image)
        self.pvs = pvs

    def areas(self, seg: _Section, stripes: int, per_area: int
              ) -> tuple[list[dict[str, Any]], list[int], str | None]:
        """The contract's areas, their guest-disk offsets and why they cannot be read."""
        raw = seg.items("stripes")
        if len(raw) != 2 * stripes:
            raise seg.fail(f"{len(raw) // 2} stripes listed, stripe_count {stripes}")
        out: list[dict[str, Any]] = []
        offsets: list[int] = []
        why = None
        for pv_key, start in zip(raw[::2], raw[1::2], strict=True):
            if not isinstance(pv_key, str) or not isinstance(start, int) or start < 0:
                raise seg.fail(f"stripe {pv_key!r}, {start!r} is not a PV and an extent")
            if pv_key not in self.pvs:
                raise seg.fail(f"stripe on {pv_key!r}, which the VG does not list")
            uuid, pe_start, pe_count, label = self.pvs[pv_key]
            out.append({"pv": uuid, "start_extent": start})
            if start + per_area > pe_count:
                raise seg.fail(f"extents {start}+{per_area} past pe_count {pe_count} of "
                               f"{pv_key}")
            if label is None:
                why = why or f"needs PV {uuid}, which is not in this image"
                continue
            disk = pe_start + start * self.extent_bytes
            if disk + per_area * self.extent_bytes > label.size:
                why = why or f"PV {uuid} is cut short in this image"
                continue
            offsets.append(label.offset + disk)
        return out, offsets, why

    def lv(self, lv_name: str, lv: _Section) -> LogicalVolume:
        children = lv.children()
        limits.enforce(len(children), "LVM_MAX_SEGMENTS", self.vg.name,
                       f"LVM2 metadata {lv.where}", self.vg.offset, "segments")
        segs = sorted((seg for _, seg in children), key=lambda seg: seg.integer("start_extent"))
        out: list[dict[str, Any]] = []
        table: list[tuple[int, int, int, list[int]]] = []
        why: str | None = None
        next_extent = 0
        for seg in segs:
            start, count = seg.integer("start_extent"), seg.integer("extent_count")
            if start != next_extent:
                raise seg.fail(f"start_extent {start}, expected {next_extent}")
            next_extent += count
            kind = seg.text("type")
            desc: dict[str, Any] = {"type": kind, "start_extent": start, "extents": count}
            if kind != "striped":
                for key in ("pool", "metadata", "thin_pool", "device_id", "origin",
                            "cow_store", "chunk_size"):
                    if isinstance(seg.values.get(key), int | str):
                        desc[key] = seg.values[key]
                why = why or f"a {kind} segment is not read"
                out.append(desc)
                continue
            stripes = seg.integer("stripe_count")
            limits.enforce(stripes, "LVM_MAX_STRIPES", self.vg.name,
                           f"LVM2 metadata {seg.where}", self.vg.offset, "stripe_count")
            if stripes == 0 or count % stripes:
                raise seg.fail(f"extent_count {count} is not a multiple of stripe_count "
                               f"{stripes}")
            stripe_bytes = count * self.extent_bytes // stripes
            if stripes > 1:
                stripe_bytes = seg.integer("stripe_size") * SECTOR_SIZE
                if stripe_bytes == 0 or self.extent_bytes % stripe_bytes:
                    raise seg.fail(f"stripe_size {stripe_bytes} bytes does not divide the "
                                   f"extent size {self.extent_bytes}")
                desc.update(type="striped", stripes=stripes, stripe_size=stripe_bytes)
            else:
                desc["type"] = "linear"
            areas, offsets, missing = self.areas(seg, stripes, count // stripes)
            desc["areas"] = areas
            out.append(desc)
            why = why or missing
            table.append((start * self.extent_bytes, count * self.extent_bytes,
                          stripe_bytes, offsets))
        size = next_extent * self.extent_bytes
        reader = LvReader(self.read, table) if why is None and table else None
        if why is None and reader is None:
            why = "the LV has no segments"
        return LogicalVolume(self.vg.where, lv_name, size, out, reader, why)


def _metadata_copies(read: Read, pvs: Iterable[PhysicalVolume], disk: str,
                     errors: list[ImageError]) -> dict[str, tuple[int, str, _Section]]:
    """The newest parsed copy of each VG's metadata on the PVs, by VG id: (seqno, VG
    name, VG section). Copies are read in PV order until the disk's budget runs out."""
    newest: dict[str, tuple[int, str, _Section]] = {}
    # Every PV of a VG holds the same text (so may a hostile disk, many times over):
    # each distinct text is parsed once, the first copy naming the place of its errors.
    parsed: dict[bytes, tuple[str, _Section]] = {}
    budget = MetadataBudget(disk)
    for pv in pvs:
        for mda_offset, mda_size in pv.metadata_areas:
            if budget.over:
                return newest
            try:
                copy = read_metadata_copy(read, pv, mda_offset, mda_size, budget)
                if copy is None:
                    continue
                text, at = copy
                key = xxhash.xxh3_128_digest(text)
                if key not in parsed:
                    parsed[key] = _vg_section(parse_metadata(text, pv.name, at), pv.name, at)
                vg_name, vg = parsed[key]
                vg_id, seqno = vg.text("id"), vg.integer("seqno")
            except ImageError as exc:
                errors.append(exc)
                continue
            if vg_id not in newest or seqno > newest[vg_id][0]:
                newest[vg_id] = (seqno, vg_name, vg)
    return newest


def _volume_group(read: Read, vg_name: str, vg: _Section, seqno: int,
                  labels: dict[str, PhysicalVolume]) -> VolumeGroup:
    extent_bytes = vg.integer("extent_size") * SECTOR_SIZE
    if extent_bytes == 0:
        raise vg.fail("extent_size is 0")
    pvs: dict[str, tuple[str, int, int, PhysicalVolume | None]] = {}
    for key, pv in vg.section("physical_volumes").children():
        uuid = pv.text("id")
        pvs[key] = (uuid, pv.integer("pe_start") * SECTOR_SIZE, pv.integer("pe_count"),
                    labels.get(uuid))
    mapper = _Mapper(read, vg, extent_bytes, pvs)
    lv_sections = vg.section("logical_volumes").children()
    limits.enforce(len(lv_sections), "LVM_MAX_LVS", vg.name,
                   f"LVM2 metadata {vg.where}/logical_volumes", vg.offset, "logical volumes")
    cow_of: dict[str, str] = {}
    for _, lv in lv_sections:
        for _, seg in lv.children():
            if seg.values.get("type") == "snapshot":
                cow_of[seg.text("cow_store")] = seg.text("origin")
    # A snapshot's copy-on-write LV is the one lvs shows, though not flagged VISIBLE.
    lvs = [mapper.lv(lv_name, lv) for lv_name, lv in lv_sections
           if "VISIBLE" in lv.items("status") or lv_name in cow_of]
    for volume in lvs:
        if volume.name in cow_of:
            volume.reader = None
            volume.why = (f"a snapshot of {cow_of[volume.name]}: its copy-on-write store "
                          "is not read")
    return VolumeGroup(vg_name, vg.text("id"), seqno, extent_bytes,
                       {uuid: label for uuid, _, _, label in pvs.values()}, lvs)


def volume_groups(read: Read, pvs: list[PhysicalVolume], disk: str
                  ) -> tuple[list[VolumeGroup], list[ImageError]]:
    """The VGs whose newest metadata is on the PVs of the disk named ``disk``, and the
    errors met reading metadata copies (a VG is still read from another good copy; past
    the disk's metadata budget, from the copies read so far)."""
    errors: list[ImageError] = []
    labels = {pv.uuid: pv for pv in pvs}
    out: list[VolumeGroup] = []
    for seqno, vg_name, vg in _metadata_copies(read, pvs, disk, errors).values():
        try:
            out.append(_volume_group(read, vg_name, vg, seqno, labels))
        except ImageError as exc:
            errors.append(exc)
    return out, errors
