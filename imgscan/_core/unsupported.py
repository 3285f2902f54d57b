"""Containers imgscan recognises by their signature but does not decode.

A disk image in one of these formats must never be read as raw: its first
sector is a header, not the guest's boot sector, and every fact derived from
it would be wrong. Each format is one row of :data:`UNSUPPORTED`: a name (qemu's
driver name where qemu has one, so the advice can name ``qemu-img -f NAME``),
the structure that carries the signature, and a probe that returns the byte
offset of the signature or ``None``. :data:`FORMATS` turns every row into a
registered :class:`Format` whose ``open`` raises
:class:`~imgscan.errors.UnsupportedFormat` naming the format.

Signatures, each from the format's own reference implementation:

* Parallels / OpenVZ ploop: ``WithoutFreeSpace`` (v1) or ``WithouFreSpacExt``
  (v2, 64-bit sector counts) at offset 0 (qemu ``block/parallels.c``).
* Bochs: ``Bochs Virtual HD Image`` NUL-terminated in the 32-byte magic field
  at offset 0 (qemu ``block/bochs.c``, Bochs ``iodev/hdimage``).
* cloop: the ``#!/bin/sh`` preamble whose second line is ``#V<n>.0 Format``
  and which loads the cloop module (qemu ``block/cloop.c``).
* Apple DMG (UDIF): the 512-byte ``koly`` trailer at the end of the file,
  version 4, header size 512 (qemu ``block/dmg.c``; qemu itself only probes the
  file name, the trailer is what Apple's readers look for).
* Apple ASIF (macOS 26 sparse image): ``shdw`` and a big-endian version 1 at
  offset 0 (as in the ASIF image of fox-it/dissect.hypervisor's tests; no
  public specification exists, so only the version seen there is claimed).
"""

from __future__ import annotations

from imgscan.errors import UnsupportedFormat

from .container import Container, Format
from .cstruct import CStruct
from .source import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Probe = Callable[[Source], int | None]

# -- on-disk signatures --------------------------------------------------------
PARALLELS_MAGICS = (b"WithoutFreeSpace", b"WithouFreSpacExt")
BOCHS_MAGIC = b"Bochs Virtual HD Image\x00"
CLOOP_SHEBANG = b"#!/bin/sh\n#V"
CLOOP_FORMAT_LINE = b".0 Format\n"
#: The cloop preamble (shell stub) fits in its 128-byte header.
CLOOP_PREAMBLE_SIZE = 128
#: The start of the UDIF trailer (Apple's UDIFResourceFile), all that is checked.
KOLY_TRAILER_HEAD = CStruct("DMG koly trailer", ">", [
    ("Signature", "4s"),
    ("Version", "I"),
    ("HeaderSize", "I"),
])
DMG_TRAILER_SIZE = 512
DMG_TRAILER_MAGIC = b"koly"
DMG_TRAILER_VERSION = 4
#: The start of the ASIF header: its signature and version (no public specification).
ASIF_HEADER_HEAD = CStruct("ASIF header", ">", [
    ("signature", "4s"),
    ("version", "I"),
])
ASIF_MAGIC = b"shdw"
ASIF_VERSION = 1


def _head(source: Source, length: int) -> bytes:
    """Up to ``length`` bytes from offset 0 (fewer in a shorter file)."""
    return source.read(0, min(length, source.size), "format signature")


# -- one probe per format: the signature's offset, or None ---------------------
def probe_parallels(source: Source) -> int | None:
    return 0 if _head(source, 16) in PARALLELS_MAGICS else None


def probe_bochs(source: Source) -> int | None:
    return 0 if _head(source, len(BOCHS_MAGIC)) == BOCHS_MAGIC else None


def probe_cloop(source: Source) -> int | None:
    head = _head(source, CLOOP_PREAMBLE_SIZE)
    if not head.startswith(CLOOP_SHEBANG):
        return None
    version_line = head[len(b"#!/bin/sh\n"):].split(b"\n", 1)[0] + b"\n"
    ok = (version_line[2:3].isdigit() and version_line.endswith(CLOOP_FORMAT_LINE)
          and b"cloop" in head)
    return 0 if ok else None


def probe_dmg(source: Source) -> int | None:
    if source.size < DMG_TRAILER_SIZE:
        return None
    offset = source.size - DMG_TRAILER_SIZE
    koly = KOLY_TRAILER_HEAD.unpack(
        source.read(offset, KOLY_TRAILER_HEAD.size, "DMG koly trailer"))
    if (koly["Signature"] == DMG_TRAILER_MAGIC and koly["Version"] == DMG_TRAILER_VERSION
            and koly["HeaderSize"] == DMG_TRAILER_SIZE):
        return offset
    return None


def probe_asif(source: Source) -> int | None:
    head = _head(source, ASIF_HEADER_HEAD.size)
    if len(head) < ASIF_HEADER_HEAD.size:
        return None
    asif = ASIF_HEADER_HEAD.unpack(head)
    return 0 if asif["signature"] == ASIF_MAGIC and asif["version"] == ASIF_VERSION else None


#: name, structure holding the signature, probe, what a user can do instead.
UNSUPPORTED: tuple[tuple[str, str, Probe, str], ...] = (
    ("parallels", "Parallels header", probe_parallels,
     "convert it with `qemu-img convert -f parallels -O qcow2`"),
    ("bochs", "Bochs header", probe_bochs,
     "convert it with `qemu-img convert -f bochs -O qcow2`"),
    ("cloop", "cloop header", probe_cloop,
     "convert it with `qemu-img convert -f cloop -O qcow2`"),
    ("dmg", "DMG koly trailer", probe_dmg,
     "convert it with `qemu-img convert -f dmg -O qcow2` (or hdiutil on macOS)"),
    ("asif", "ASIF header", probe_asif,
     "convert it on macOS to a raw or UDIF image first (qemu does not read ASIF either)"),
)


def _format(name: str, structure: str, probe: Probe, advice: str) -> Format:
    def matches(source: Source) -> bool:
        return probe(source) is not None

    def refuse(source: Source) -> Container:
        offset = probe(source)
        raise UnsupportedFormat(
            source.path, name, structure, offset,
            f"recognised as {name} by its signature but not decoded by imgscan; {advice}",
        )

    return Format(name, matches, refuse)


#: One registered format per row of :data:`UNSUPPORTED`, in the same order.
FORMATS: tuple[Format, ...] = tuple(_format(*row) for row in UNSUPPORTED)
