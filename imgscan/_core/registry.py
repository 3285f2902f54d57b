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

import sys

from imgscan.errors import CorruptImage, ImageError, UnsupportedFeature
from imgscan.findings import MULTIPLE_FORMATS

from .container import Container, Format
from .signatures import (
    MBR_SECTOR,
    MBR_SIGNATURE_AT,
    PEEK_HEAD,
    PEEK_TAIL,
    TAR_MAGIC_OFFSET,
    TAR_MAGIC_USTAR,
    Peek,
    SignatureTable,
)
from .signatures import mbr_partitions as mbr_partitions  # native; named here too
from .source import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    #: A format's cheap necessary condition: one of the magics at one of the offsets.
    Hint = tuple[tuple[int, tuple[bytes, ...]], ...]


# -- cheap necessary conditions, checked before a module is imported ----------------
def at(offset: int, *magics: bytes) -> Hint:
    """One of ``magics`` at ``offset`` (negative: from the end of the file).

    A file cut short inside the magic still matches when what it holds is a
    prefix of it, so that the module's probe can call a truncated header
    truncated instead of it being read as raw. Matched by
    :class:`~imgscan._core.signatures.SignatureTable`, all formats in one pass.
    """
    return ((offset, magics),)


def any_of(*hints: Hint) -> Hint:
    return tuple(row for hint in hints for row in hint)


class Candidate:
    """A registered format module and the condition under which it is imported.

    ``names`` are the names of the formats the module registers (by default
    the module's own name), so a format can be opened by name without
    importing the others.

    ``opens_far``: the module's decoder, opening a file, reads where far signatures lie
    (the LUKS2 secondary headers past the peek's head), so that when the format matches
    on the file's ends, detection reads them after the open, from its reads, not with a
    system call each (:func:`detect`). Worth it only for a decoder whose open reads them
    on every file: elsewhere nothing is saved and the deferral's second pass costs 1 to
    4 k instructions an open (issue 18). Only a candidate before ``luks`` can: the native
    pass matches in ``REGISTRY`` order, so a later one has not matched when it reaches
    the far signatures, and they are read.
    """

    __slots__ = ("_formats", "hint", "module", "names", "opens_far")

    def __init__(self, module: str, hint: Hint, names: tuple[str, ...] = (), *,
                 opens_far: bool = False) -> None:
        self.module = module
        self.hint = hint
        self.names = names or (module,)
        self.opens_far = opens_far
        self._formats: tuple[Format, ...] | None = None

    def formats(self) -> tuple[Format, ...]:
        """The module's formats (importing it on first use)."""
        if self._formats is None:
            # __import__, not importlib.import_module: importlib imports warnings (start-up)
            name = f"{__package__}.{self.module}"
            __import__(name)
            mod = sys.modules[name]
            self._formats = tuple(getattr(mod, "FORMATS", None) or (mod.FORMAT,))
        return self._formats


#: LUKS2 keeps a secondary header at one of these offsets (the primary's size).
LUKS2_SECONDARY_OFFSETS = tuple(16384 << i for i in range(9))

#: Probed in this order; a format whose signature is stronger comes first.
#: No other decoder opens far: qcow2's, qcow's, QED's and VDI's opens read the header
#: and a backing name (their tables only for the map), qcow2's a snapshot table and
#: bitmap directory, ZVHD2's its last 4 KiB, each on a far signature only by chance.
REGISTRY: tuple[Candidate, ...] = (
    Candidate("qcow2", at(0, b"QFI\xfb")),  # any version but 1
    # version 1, big-endian after the magic: a qcow2 file (any other version) never
    # imports the qcow module to be refused by its probe (start-up)
    Candidate("qcow", at(0, b"QFI\xfb\0\0\0\1")),
    # its headers at 64 KiB and 128 KiB and its second region table at 256 KiB
    Candidate("vhdx", at(0, b"vhdxfile"), opens_far=True),
    Candidate("vdi", any_of(at(0x40, b"\x7f\x10\xda\xbe"), at(0, b"<<< "))),  # or pre-header text
    Candidate("qed", at(0, b"QED\0")),
    Candidate("zvhd", at(0, b"stream\0\0", b"z2strm\0\0"), ("zvhd", "zvhd2")),  # Huawei
    Candidate("luks", any_of(at(0, b"LUKS\xba\xbe"),
                             *(at(off, b"SKUL\xba\xbe") for off in LUKS2_SECONDARY_OFFSETS))),
    # sparse, COWD and seSparse magics; descriptor text starts with a comment,
    # blank space or "version=" (qemu's text probe: whole, not its "v" alone, which
    # every VHDX's "vhdxfile" starts with, so that the probe ran on each)
    Candidate("vmdk", at(0, b"KDMV", b"COWD", b"\xbe\xba\xfe\xca", b"#", b" ", b"version=")),
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

#: The bit of ``Peek.found`` that says the file may be an OVF package (after the
#: registry's candidates): the ustar magic of an OVA's first header, or text that may
#: be XML, each whole (not the prefix rule of a header cut short).
PACKAGE = len(REGISTRY)
#: The bits of ``Peek.found`` that are the registry's candidates (not the package's).
CANDIDATES = (1 << PACKAGE) - 1

#: The candidates after whose match on a local file's ends its far signatures are left
#: unread, for :func:`detect` to read after the decoder's open (``Candidate.opens_far``).
OPENS_FAR = sum(1 << i for i, candidate in enumerate(REGISTRY) if candidate.opens_far)

#: Every candidate's signatures, and the package's, as the one native pass over a file
#: matches them.
SIGNATURES = SignatureTable([
    *((i, offset, magics) for i, candidate in enumerate(REGISTRY)
      for offset, magics in candidate.hint),
    (PACKAGE, TAR_MAGIC_OFFSET, (TAR_MAGIC_USTAR[:5],), True),
    # Whole: a file of one or two bytes of the byte order mark is not text to parse.
    (PACKAGE, 0, _XML_STARTS, True),
])


#: Every signature's ``(offset, length)``: the ranges :func:`read_ends` announces.
_SIGNATURE_RANGES = tuple((offset, max(map(len, magics))) for candidate in REGISTRY
                          for offset, magics in candidate.hint)
#: What detection reads at the file's start whatever its size: the head and the
#: signatures at positive offsets (the LUKS2 secondary headers, ISO 9660's). A remote
#: source asks for them, with the file's last :data:`TAIL_BYTES`, in the request round
#: that opens the object, before its size is known (:func:`imgscan.remote.opening.open_source`).
HEAD_RANGES = ((0, PEEK_HEAD), *((offset, length) for offset, length in _SIGNATURE_RANGES
                                 if offset >= 0))
#: What detection reads at the file's end: the tail peek and the signatures at negative
#: offsets (VHD's footer, DMG's koly), all within its last TAIL_BYTES.
TAIL_BYTES = max(PEEK_TAIL, *(-offset for offset, _ in _SIGNATURE_RANGES if offset < 0))


def read_ends(source: Source) -> Peek:
    """The file's two ends, read for detection once every range detection may read is
    announced to ``source`` (``Source.prefetch``, a no-op for a file): a remote source
    fetches both ends and the far signatures (the LUKS2 secondary headers) in one round
    trip instead of one per far signature. A source that does nothing with an
    announcement (``wants_prefetch`` false: a local file) is not given one, and where a
    format whose decoder opens far (:data:`OPENS_FAR`) matches its ends, its far
    signatures are left unread (``Peek.unread``) for :func:`detect`, which reads them
    from that decoder's reads. The signatures are matched in the same native pass
    (``Peek.found``)."""
    if not source.wants_prefetch:
        return SIGNATURES.read(source, OPENS_FAR)
    size = source.size
    ranges = [(0, min(PEEK_HEAD, size)), (max(0, size - PEEK_TAIL), min(PEEK_TAIL, size))]
    for offset, length in _SIGNATURE_RANGES:
        start = size + offset if offset < 0 else offset
        if 0 <= start < size:
            ranges.append((start, min(length, size - start)))
    source.prefetch(ranges, "format signature")
    return SIGNATURES.read(source)


def may_be_package(peek: Peek) -> bool:
    """A cheap necessary condition for an OVF package (:mod:`imgscan._core.ova`, which
    decides): the ustar magic of an OVA's first header, or text that may be XML, as
    matched with the formats' signatures. Checked before that module, and xml.etree
    with it, is imported."""
    return bool(peek.found >> PACKAGE & 1)


# -- a second reading of the same file ------------------------------------------
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
            and first.length >= MBR_SECTOR)


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
    if source.size < MBR_SECTOR:
        return None
    count = mbr_partitions(source.read(0, MBR_SECTOR, "first sector"))
    if not count or _declares_hybrid(container, "mbr") or _first_sector_is_guest(container):
        return None
    return (f"the first sector is both the {container.format} header and an MBR partition "
            f"table (boot signature 0x55AA at offset {MBR_SIGNATURE_AT}, {count} "
            f"partition entr{'y' if count == 1 else 'ies'}): a reader that probes for a "
            f"partition table, or takes the file as raw, sees a different disk "
            f"(CVE-2024-40767, LP#2079850)")


#: Run on every decoded container; each returns a finding message or None.
CONFLICT_CHECKS = (several_container_signatures, mbr_beside_header)


#: The formats of each set of candidates whose signatures a file holds (``Peek.found``,
#: the package bit included), in ``REGISTRY`` order, made on first use: the walk over
#: every candidate was a Python loop on every open, and files hold one of a few sets.
#: At most one entry per subset of the candidates.
_FORMATS_FOUND: dict[int, tuple[Format, ...]] = {}


def _formats_found(found: int) -> tuple[Format, ...]:
    formats = _FORMATS_FOUND.get(found)
    if formats is None:
        formats = _FORMATS_FOUND[found] = tuple(
            fmt for i, candidate in enumerate(REGISTRY) if found >> i & 1
            for fmt in candidate.formats())
    return formats


def _matching(source: Source, found: int) -> list[Format]:
    """The formats of the candidates in ``found`` whose probe matches ``source``, in
    ``REGISTRY`` order."""
    return [fmt for fmt in _formats_found(found) if fmt.probe(source)]


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
        return _raw().open(source)
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


#: The fallback format once imported (see :func:`_raw`).
_RAW_FORMAT: Format | None = None


def _raw() -> Format:
    """The fallback format, imported only when a file is taken as raw: ``imgscan info``
    of an image of a registered format does not pay for its module (start-up). Kept
    once imported: a relative import in a function is about 1 us a call."""
    global _RAW_FORMAT
    if _RAW_FORMAT is None:
        from . import raw
        _RAW_FORMAT = raw.FORMAT
    return _RAW_FORMAT


def detect(source: Source, peek: Peek | None = None) -> Container:
    """Decode ``source`` as the first registered format whose probe matches (``peek``:
    its two ends, when read already).

    The far signatures a local file's peek left unread (the LUKS2 secondary headers,
    seven system calls, left only where a format whose decoder opens far matched,
    :data:`OPENS_FAR`) cannot displace a match of a candidate before theirs in
    ``REGISTRY``: that format is opened first, the source keeping its decoder's reads,
    and the far signatures are read after it, from those reads where they lie inside
    one (a VHDX's headers and region tables hold three of them), before the conflict
    checks that need them. Any other file has them read first, as a remote peek has."""
    if peek is None:
        peek = read_ends(source)
    deferred = peek.unread & -peek.unread     # the first candidate left unread, or 0
    early = peek.found & CANDIDATES & (deferred - 1)  # all found when none is
    matches = _matching(source, early) if early else []
    if matches and deferred:
        container = SIGNATURES.read_far_after(peek, matches[0].open)
        # -deferred: the candidates from the first one left unread on
        if late := peek.found & CANDIDATES & -deferred:
            matches += _matching(source, late)
    else:
        if deferred:
            SIGNATURES.read_far(peek)
            matches += _matching(source, peek.found & CANDIDATES & -deferred)
        if not matches:
            return _raw().open(source)  # no signature at all, or no probe matched
        container = matches[0].open(source)
    for check in CONFLICT_CHECKS:
        message = check(source, container, matches)
        if message is not None:
            container.add_finding(MULTIPLE_FORMATS, "error", message)
    return container
