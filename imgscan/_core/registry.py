"""Format detection by content: the one place where formats are registered.

Adding a container format is one new module exposing ``FORMAT`` and one line
in ``FORMATS`` below. Detection never looks at the file name: every probe
reads signatures from the file, the first match in ``FORMATS`` order decodes
the image, and raw is the fallback when nothing matches.

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

from imgscan.errors import ImageError
from imgscan.findings import MULTIPLE_FORMATS

from . import iso9660, luks, qcow, qcow2, qed, raw, unsupported, vdi, vhd, vhdx, vmdk, zvhd
from .container import Container, Format
from .source import Source

#: Probed in this order; a format whose signature is stronger comes first.
FORMATS: tuple[Format, ...] = (
    qcow2.FORMAT,  # "QFI\xfb" magic, any version but 1
    qcow.FORMAT,  # "QFI\xfb" magic and version 1 at offset 0
    vhdx.FORMAT,  # "vhdxfile" at offset 0
    vdi.FORMAT,  # signature 0xbeda107f at offset 0x40, or a VirtualBox pre-header text
    qed.FORMAT,  # "QED\0" magic at offset 0
    *zvhd.FORMATS,  # "stream" / "z2strm" cookie at offset 0 (Huawei ZVHD, ZVHD2)
    luks.FORMAT,  # "LUKS\xba\xbe" at offset 0 (or a LUKS2 secondary header)
    vmdk.FORMAT,  # "KDMV" / "COWD" / seSparse magic at offset 0, or descriptor text
    iso9660.FORMAT,  # "CD001" at sector 16; a hybrid MBR/GPT in the system area is no conflict
    vhd.FORMAT,  # footer at the end: weaker than a header magic, so late
    *unsupported.FORMATS,  # recognised, never decoded: open() raises UnsupportedFormat
)


# -- a second reading of the same file ------------------------------------------
#: MBR layout (IBM PC/AT boot sector): four 16-byte partition entries at 446,
#: the boot signature 0x55 0xAA at 510.
SECTOR_SIZE = 512
MBR_TABLE_OFFSET = 446
MBR_ENTRY_SIZE = 16
MBR_ENTRIES = 4
MBR_SIGNATURE_OFFSET = 510
MBR_SIGNATURE = b"\x55\xaa"
#: Within an entry: boot indicator, partition type, sector count (little-endian u32).
MBR_E_STATUS, MBR_E_TYPE, MBR_E_SECTORS = 0, 4, 12
MBR_BOOT_INDICATORS = (0x00, 0x80)


def mbr_partitions(sector: bytes) -> int:
    """Partition entries of a plausible MBR in ``sector`` (0 when it is not one).

    Plausible: the boot signature, and every non-empty entry with a valid boot
    indicator, a non-zero type and a non-zero length (the first LBA may be 0:
    isohybrid's partition covers the whole file). A stray 0x55AA alone
    (padding, data) is not a partition table.
    """
    if len(sector) < SECTOR_SIZE or sector[MBR_SIGNATURE_OFFSET:SECTOR_SIZE] != MBR_SIGNATURE:
        return 0
    count = 0
    for i in range(MBR_ENTRIES):
        entry = sector[MBR_TABLE_OFFSET + i * MBR_ENTRY_SIZE:
                       MBR_TABLE_OFFSET + (i + 1) * MBR_ENTRY_SIZE]
        if not any(entry):
            continue
        sectors = int.from_bytes(entry[MBR_E_SECTORS:MBR_E_SECTORS + 4], "little")
        if (entry[MBR_E_STATUS] not in MBR_BOOT_INDICATORS or entry[MBR_E_TYPE] == 0
                or sectors == 0):
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
            and first.length >= SECTOR_SIZE)


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
    if source.size < SECTOR_SIZE:
        return None
    count = mbr_partitions(source.read(0, SECTOR_SIZE, "first sector"))
    if not count or _declares_hybrid(container, "mbr") or _first_sector_is_guest(container):
        return None
    return (f"the first sector is both the {container.format} header and an MBR partition "
            f"table (boot signature 0x55AA at offset {MBR_SIGNATURE_OFFSET}, {count} "
            f"partition entr{'y' if count == 1 else 'ies'}): a reader that probes for a "
            f"partition table, or takes the file as raw, sees a different disk "
            f"(CVE-2024-40767, LP#2079850)")


#: Run on every decoded container; each returns a finding message or None.
CONFLICT_CHECKS = (several_container_signatures, mbr_beside_header)


def detect(source: Source) -> Container:
    """Decode ``source`` as the first registered format whose probe matches."""
    matches = [fmt for fmt in FORMATS if fmt.probe(source)]
    if not matches:
        return raw.FORMAT.open(source)
    container = matches[0].open(source)
    for check in CONFLICT_CHECKS:
        message = check(source, container, matches)
        if message is not None:
            container.add_finding(MULTIPLE_FORMATS, "error", message)
    return container
