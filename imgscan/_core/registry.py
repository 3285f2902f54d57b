"""Format detection by content: the one place where formats are registered.

Adding a container format is one new module exposing ``FORMAT`` (or
``FORMATS``) and one :class:`Candidate` line in ``REGISTRY`` below. Detection
never looks at the file name: every probe reads signatures from the file, the
first match in ``REGISTRY`` order decodes the image, and raw is the fallback
when nothing matches.

Each line names a cheap necessary condition on the file (a magic at an
offset) checked before its module is even imported: a decoder module costs
about half a millisecond to import, and ``imgscan info`` on one image should
pay only for the formats that file could be. The module's own ``probe`` then
decides.

A file that is valid as two things at once is dangerous: which one it "is"
depends on who probes it, so a checker and a hypervisor can see different
disks (CVE-2024-40767, LP#2079850). After decoding, every check in
``CONFLICT_CHECKS`` looks for such a second reading (one small named function
per check, as OpenStack's format_inspector does) and reports it as a
``multiple-formats`` finding. Legitimate hybrids are not conflicts: a
container declares the extra signatures that belong to it in
``Container.hybrid_signatures`` or by a true ``details["hybrid"]`` (an ISO 9660
image with an MBR or GPT in its system area), and a container whose first
guest sector *is* the file's first sector (raw, a fixed VHD) simply carries
the guest's own partition table.
"""

from __future__ import annotations

from importlib import import_module

from imgscan.errors import CorruptImage, ImageError, UnsupportedFeature
from imgscan.findings import MULTIPLE_FORMATS

from . import c_mbr, c_tar, raw
from .container import Container, Format
from .source import Source


# -- cheap necessary conditions, checked before a module is imported ----------------
class Peek:
    """The bytes the hints look at, read with as few system calls as possible.

    Every hint used to ``pread`` its own few bytes: about twenty reads per
    file, a third of ``imgscan info``'s work on a small image and most of a
    bulk scan's. The file's first :data:`PEEK_HEAD` bytes (every magic at a
    fixed offset but the farther LUKS2 secondary headers, the ISO descriptor
    included) and last :data:`PEEK_TAIL` (VHD footer, DMG trailer) are read
    once; anything else is read when a hint asks. Everything the hints may
    read is announced to the source first (``Source.prefetch``): a remote
    source fetches it all in one round trip instead of one per far signature.
    """

    __slots__ = ("head", "size", "source", "tail", "tail_start")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.size = size = source.size
        head = min(PEEK_HEAD, size)
        self.tail_start = max(head, size - PEEK_TAIL)
        announce_signatures(source)
        self.head = source.read(0, head, "format signature")
        self.tail = source.read(self.tail_start, size - self.tail_start, "format signature")

    def read(self, start: int, length: int) -> bytes:
        """``length`` bytes at ``start``; the caller keeps them inside the file."""
        end = start + length
        if end <= len(self.head):
            return self.head[start:end]
        if start >= self.tail_start:
            return self.tail[start - self.tail_start:end - self.tail_start]
        return self.source.read(start, length, "format signature")


def announce_signatures(source: Source) -> None:
    """Announce to ``source`` every range format detection may read: both ends (the
    peek, an OVF package's first header) and every hint's signature."""
    size = source.size
    source.prefetch([(0, min(PEEK_HEAD, size)), (max(0, size - PEEK_TAIL), PEEK_TAIL),
                     *(r for c in REGISTRY for r in c.hint.reads(size))],
                    "format signature")


#: Bytes :class:`Peek` reads at each end of the file (the ISO 9660 primary volume
#: descriptor is at 32768 + 1; the VHD footer and DMG trailer in the last 512).
PEEK_HEAD = 16 * 2048 + 8
PEEK_TAIL = 512


class Signature:
    """One of ``magics`` at ``offset`` (negative: from the end of the file).

    A file cut short inside the magic still matches when what it holds is a
    prefix of it, so that the module's probe can call a truncated header
    truncated instead of it being read as raw.
    """

    __slots__ = ("length", "magics", "offset")

    def __init__(self, offset: int, magics: tuple[bytes, ...]) -> None:
        self.offset = offset
        self.magics = magics
        self.length = max(len(m) for m in magics)

    def _start(self, size: int) -> int:
        return size + self.offset if self.offset < 0 else self.offset

    def reads(self, size: int) -> list[tuple[int, int]]:
        """The range ``(offset, length)`` this hint reads in a file of ``size`` bytes."""
        start = self._start(size)
        return [(start, min(self.length, size - start))] if 0 <= start < size else []

    def __call__(self, peek: Peek) -> bool:
        size = peek.size
        start = self._start(size)
        if start < 0 or start >= size:
            return False
        if size - start >= self.length:
            return peek.read(start, self.length).startswith(self.magics)
        got = peek.read(start, size - start)
        return any(m.startswith(got) if len(got) < len(m) else got.startswith(m)
                   for m in self.magics)


class AnyOf:
    """Any of several hints."""

    __slots__ = ("hints",)

    def __init__(self, hints: tuple[Hint, ...]) -> None:
        self.hints = hints

    def reads(self, size: int) -> list[tuple[int, int]]:
        return [r for h in self.hints for r in h.reads(size)]

    def __call__(self, peek: Peek) -> bool:
        return any(h(peek) for h in self.hints)


Hint = Signature | AnyOf


def at(offset: int, *magics: bytes) -> Signature:
    return Signature(offset, magics)


def any_of(*hints: Hint) -> AnyOf:
    return AnyOf(hints)


class Candidate:
    """A registered format module and the condition under which it is imported.

    ``names`` are the names of the formats the module registers (by default
    the module's own name), so a format can be opened by name without
    importing the others.
    """

    __slots__ = ("_formats", "hint", "module", "names")

    def __init__(self, module: str, hint: Hint, names: tuple[str, ...] = ()) -> None:
        self.module = module
        self.hint = hint
        self.names = names or (module,)
        self._formats: tuple[Format, ...] | None = None

    def formats(self) -> tuple[Format, ...]:
        """The module's formats (importing it on first use)."""
        if self._formats is None:
            mod = import_module(f"{__package__}.{self.module}")
            self._formats = tuple(getattr(mod, "FORMATS", None) or (mod.FORMAT,))
        return self._formats


#: LUKS2 keeps a secondary header at one of these offsets (the primary's size).
LUKS2_SECONDARY_OFFSETS = tuple(16384 << i for i in range(9))

#: Probed in this order; a format whose signature is stronger comes first.
REGISTRY: tuple[Candidate, ...] = (
    Candidate("qcow2", at(0, b"QFI\xfb")),  # any version but 1
    Candidate("qcow", at(0, b"QFI\xfb")),  # version 1
    Candidate("vhdx", at(0, b"vhdxfile")),
    Candidate("vdi", any_of(at(0x40, b"\x7f\x10\xda\xbe"), at(0, b"<<< "))),  # or pre-header text
    Candidate("qed", at(0, b"QED\0")),
    Candidate("zvhd", at(0, b"stream\0\0", b"z2strm\0\0"), ("zvhd", "zvhd2")),  # Huawei
    Candidate("luks", any_of(at(0, b"LUKS\xba\xbe"),
                             *(at(off, b"SKUL\xba\xbe") for off in LUKS2_SECONDARY_OFFSETS))),
    # sparse, COWD and seSparse magics; descriptor text starts with a comment,
    # blank space or "version=" (qemu's text probe)
    Candidate("vmdk", at(0, b"KDMV", b"COWD", b"\xbe\xba\xfe\xca", b"#", b" ", b"v")),
    Candidate("iso9660", at(16 * 2048 + 1, b"CD001"), ("iso",)),  # hybrid MBR/GPT: no conflict
    Candidate("vhd", any_of(at(0, b"conectix"), at(-512, b"conectix"), at(-511, b"conectix"))),
    # recognised, never decoded (UnsupportedFormat): Parallels, Bochs, cloop, ASIF, DMG
    Candidate("unsupported", any_of(
        at(0, b"WithoutFreeSpace", b"WithouFreSpacExt", b"Bochs Virtual HD Image",
           b"#!/bin/sh", b"shdw"),
        at(-512, b"koly")), ("parallels", "bochs", "cloop", "dmg", "asif")),
)


# -- OVF packages -------------------------------------------------------------------
#: The first bytes of an OVF descriptor's text (an XML declaration or element, perhaps
#: after a byte order mark or blank space).
_XML_STARTS = (b"<", b"\xef\xbb\xbf", b" ", b"\t", b"\r", b"\n")


def may_be_package(source: Source) -> bool:
    """A cheap necessary condition for an OVF package (:mod:`imgscan._core.ova`, which
    decides): the ustar magic of an OVA's first header, or text that may be XML. Checked
    before that module, and xml.etree with it, is imported."""
    announce_signatures(source)     # the first of detection's reads: announce them all
    head = source.read(0, min(c_tar.BLOCK, source.size), "format signature")
    return (head[c_tar.MAGIC_OFFSET:c_tar.MAGIC_OFFSET + 5] == c_tar.MAGIC_USTAR[:5]
            or head.startswith(_XML_STARTS))


# -- a second reading of the same file ------------------------------------------
def mbr_partitions(sector: bytes) -> int:
    """Partition entries of a plausible MBR in ``sector`` (0 when it is not one).

    Plausible: the boot signature, and every non-empty entry with a valid boot
    indicator, a non-zero type and a non-zero length (the first LBA may be 0:
    isohybrid's partition covers the whole file). A stray 0x55AA alone
    (padding, data) is not a partition table.
    """
    if not c_mbr.has_signature(sector):
        return 0
    count = 0
    for i in range(c_mbr.ENTRY_COUNT):
        if c_mbr.entry_is_empty(sector, i):
            continue
        entry = c_mbr.partition_entry(sector, i)
        if (entry["boot_indicator"] not in c_mbr.BOOT_INDICATORS or entry["os_type"] == 0
                or entry["size_in_lba"] == 0):
            return 0
        count += 1
    return count


def _declares_hybrid(container: Container, signature: str) -> bool:
    """Whether the container says ``signature`` legitimately shares its file."""
    return signature in container.hybrid_signatures or bool(container.details.get("hybrid"))


def _first_sector_is_guest(container: Container) -> bool:
    """Whether guest sector 0 is stored verbatim at file offset 0 (fixed VHD, ...)."""
    if container.map_reads_external:
        return False        # its map needs files not opened yet; its header is text
    try:
        emap = container.extent_map()
    except ImageError:
        return False
    if not len(emap):
        return False
    first = emap[0]
    return (first.kind == "data" and first.host == 0 and first.file == 0
            and first.length >= c_mbr.SECTOR_SIZE)


def several_container_signatures(source: Source, container: Container,
                                 matches: list[Format]) -> str | None:
    """Two or more registered container probes match the same file."""
    if len(matches) < 2:
        return None
    names = ", ".join(fmt.name for fmt in matches)
    return (f"the file carries the signatures of several formats ({names}); "
            f"decoded as {matches[0].name}, but another reader may choose differently")


def mbr_beside_header(source: Source, container: Container,
                      matches: list[Format]) -> str | None:
    """A container header whose first sector is also an MBR partition table."""
    if source.size < c_mbr.SECTOR_SIZE:
        return None
    count = mbr_partitions(source.read(0, c_mbr.SECTOR_SIZE, "first sector"))
    if not count or _declares_hybrid(container, "mbr") or _first_sector_is_guest(container):
        return None
    return (f"the first sector is both the {container.format} header and an MBR partition "
            f"table (boot signature 0x55AA at offset {c_mbr.SIGNATURE_OFFSET}, {count} "
            f"partition entr{'y' if count == 1 else 'ies'}): a reader that probes for a "
            f"partition table, or takes the file as raw, sees a different disk "
            f"(CVE-2024-40767, LP#2079850)")


#: Run on every decoded container; each returns a finding message or None.
CONFLICT_CHECKS = (several_container_signatures, mbr_beside_header)


def matching_formats(source: Source) -> list[Format]:
    """Every registered format whose probe matches ``source``, in ``REGISTRY`` order."""
    peek = Peek(source)
    return [fmt for candidate in REGISTRY if candidate.hint(peek)
            for fmt in candidate.formats() if fmt.probe(source)]


#: Format names as qemu writes them in a backing-format field, where they differ.
QEMU_FORMAT_NAMES = {"vpc": "vhd"}


def open_as(source: Source, name: str) -> Container:
    """Decode ``source`` as the named format, without probing for another.

    For a backing file whose format the image states (qcow2's backing format
    extension, QED's no-probe bit): qemu opens it as that format, so a raw
    backing file that happens to start with a qcow2 header must not be read
    as qcow2 (format confusion, CVE-2024-32498's family).
    """
    ours = QEMU_FORMAT_NAMES.get(name, name)
    if ours == "raw":
        return raw.FORMAT.open(source)
    for candidate in REGISTRY:
        for fmt in candidate.formats() if ours in candidate.names else ():
            if fmt.name == ours:
                if not fmt.probe(source):
                    raise CorruptImage(source.path, f"{ours} header", 0,
                                       f"the image says its backing file is {name}, "
                                       f"but this file is not")
                return fmt.open(source)
    raise UnsupportedFeature(source.path, "backing format", None,
                             f"backing format {name!r} is not one imgscan decodes")


def detect(source: Source) -> Container:
    """Decode ``source`` as the first registered format whose probe matches."""
    matches = matching_formats(source)
    if not matches:
        return raw.FORMAT.open(source)
    container = matches[0].open(source)
    for check in CONFLICT_CHECKS:
        message = check(source, container, matches)
        if message is not None:
            container.add_finding(MULTIPLE_FORMATS, "error", message)
    return container
