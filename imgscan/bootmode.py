"""How firmware would boot a disk: ``bios``, ``uefi``, ``hybrid`` or ``unknown``, with evidence.

The decision is made from the partition table, the filesystems found on its
partitions and, for ISO images, the El Torito boot catalog. Each rule below is
one small function that returns the evidence it saw for a *BIOS path* (code
the BIOS runs from sector 0) or a *UEFI path* (an EFI System partition the
firmware can read):

``mbr_boot_code``
    An MBR disk whose sector 0 holds boot code (anything but zeros) and has an
    active (0x80) partition: BIOS path. A loader known to ignore the active
    flag (GRUB 2, GRUB legacy) counts without one.
``gpt_bios_boot_partition``
    A GPT disk with a BIOS boot partition (GRUB's core.img on GPT): BIOS path.
``protective_mbr_boot_code``
    A GPT disk whose protective MBR holds boot code (GRUB's boot.img,
    SYSLINUX gptmbr.bin): BIOS path.
``efi_system_partition``
    An EFI System partition (GPT type C12A7328-..., or MBR type 0xEF) that
    holds a FAT filesystem: UEFI path. An ESP without FAT is evidence, not a path.
``hybrid_mbr``
    A GPT disk whose MBR lists partitions besides the 0xEE one: both paths
    (the disk was made to boot either way).
``el_torito``
    An ISO image's boot catalog: a bootable ``bios`` entry is a BIOS path, a
    ``uefi`` entry a UEFI path.

The verdict: ``hybrid`` when both paths are present (a hybrid MBR counts as
both); ``bios`` or ``uefi`` when only that one is; ``unknown`` otherwise,
including for a disk with no partition table and no boot catalog.
"""

from __future__ import annotations

from ._core.partitions import (
    BOOT_CODE_NAMES,
    GPT_TYPE_BIOS_BOOT,
    GPT_TYPE_EFI_SYSTEM,
    MBR_TYPE_EFI_SYSTEM,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ._core.partitions import PartitionTable

    #: (BIOS-path evidence, UEFI-path evidence, other evidence)
    Evidence = tuple[list[str], list[str], list[str]]

#: Boot code that loads the next stage without looking for an active partition.
LOADERS_IGNORING_ACTIVE_FLAG = frozenset(("grub2", "grub-legacy"))
#: The filesystem names (blkid's) UEFI firmware reads an ESP as.
FAT_FILESYSTEMS = frozenset(("vfat", "fat", "msdos", "fat12", "fat16", "fat32"))
#: An ESP's type as an MBR partition's ``type`` spells it.
MBR_TYPE_EFI_SYSTEM_TEXT = f"0x{MBR_TYPE_EFI_SYSTEM:02x}"


def _empty() -> Evidence:
    return [], [], []


def mbr_boot_code(table: PartitionTable) -> Evidence:
    bios, uefi, seen = _empty()
    if table.kind != "mbr" or table.mbr is None or table.mbr["protective"]:
        return bios, uefi, seen
    code = table.mbr["boot_code"]
    if code == "empty":
        seen.append("MBR boot code area is empty")
        return bios, uefi, seen
    active = [p.number for p in table.partitions if p.bootable and not p.logical]
    name = BOOT_CODE_NAMES[code]
    if active:
        bios.append(f"MBR boot code ({name}) and active partition "
                    + ", ".join(str(n) for n in active))
    elif code in LOADERS_IGNORING_ACTIVE_FLAG:
        bios.append(f"MBR boot code ({name}), which needs no active partition")
    else:
        seen.append(f"MBR boot code ({name}) but no active partition")
    return bios, uefi, seen


def gpt_bios_boot_partition(table: PartitionTable) -> Evidence:
    bios, uefi, seen = _empty()
    if table.kind == "gpt":
        for p in table.partitions:
            if p.type == GPT_TYPE_BIOS_BOOT:
                bios.append(f"BIOS boot partition {p.number}")
    return bios, uefi, seen


def protective_mbr_boot_code(table: PartitionTable) -> Evidence:
    bios, uefi, seen = _empty()
    if table.kind == "gpt" and table.mbr is not None and table.mbr["boot_code"] != "empty":
        bios.append(f"protective MBR boot code ({BOOT_CODE_NAMES[table.mbr['boot_code']]})")
    return bios, uefi, seen


def efi_system_partition(table: PartitionTable, filesystems: Mapping[int, str | None]
                         ) -> Evidence:
    bios, uefi, seen = _empty()
    esp_type = GPT_TYPE_EFI_SYSTEM if table.kind == "gpt" else MBR_TYPE_EFI_SYSTEM_TEXT
    for p in table.partitions:
        if p.type != esp_type:
            continue
        fs = filesystems.get(p.number)
        if fs is not None and fs.lower() in FAT_FILESYSTEMS:
            uefi.append(f"EFI System partition {p.number} holds {fs}")
        else:
            seen.append(f"EFI System partition {p.number} holds "
                        + (fs if fs else "no recognised filesystem"))
    return bios, uefi, seen


def hybrid_mbr(table: PartitionTable) -> Evidence:
    bios, uefi, seen = _empty()
    if table.kind == "gpt" and table.mbr is not None and table.mbr["hybrid"]:
        what = "hybrid MBR (0xEE plus other MBR partitions beside the GPT)"
        bios.append(what)
        uefi.append(what)
    return bios, uefi, seen


def el_torito(entries: Sequence[Mapping[str, Any]] | None) -> Evidence:
    bios, uefi, seen = _empty()
    for i, entry in enumerate(entries or ()):
        platform = entry.get("platform")
        if not entry.get("bootable", True):
            seen.append(f"El Torito entry {i} ({platform}) is not bootable")
        elif platform == "bios":
            bios.append(f"El Torito BIOS boot entry {i}")
        elif platform == "uefi":
            uefi.append(f"El Torito UEFI boot entry {i}")
        else:
            seen.append(f"El Torito {platform} boot entry {i}")
    return bios, uefi, seen


def decide(table: PartitionTable | None, filesystems: Mapping[int, str | None],
           el_torito_entries: Sequence[Mapping[str, Any]] | None = None
           ) -> tuple[str, list[str]]:
    """The boot mode and the evidence (short strings, BIOS path first) it rests on."""
    if table is None and not el_torito_entries:
        return "unknown", []  # no rule has anything to see (most disks of a library)
    results = [el_torito(el_torito_entries)] if el_torito_entries else []
    # Only the rules that can see something on this kind of table run (each of the others
    # checks the kind first and returns nothing): the evidence's order is the same.
    if table is not None and table.kind == "gpt":
        results += [gpt_bios_boot_partition(table), protective_mbr_boot_code(table),
                    efi_system_partition(table, filesystems), hybrid_mbr(table)]
    elif table is not None:
        results += [mbr_boot_code(table), efi_system_partition(table, filesystems)]
    # one pass over the rules' answers (four comprehensions and a generator cost more
    # than the rules on a disk of one partition, issue 18)
    bios: list[str] = []
    uefi: list[str] = []
    seen: list[str] = []
    for rule_bios, rule_uefi, rule_seen in results:
        bios += rule_bios
        uefi += rule_uefi
        seen += rule_seen
    # Judged before the evidence is de-duplicated: a rule that sees both paths (a hybrid
    # MBR) names one thing in both lists, and only there (no two rules' strings agree).
    hybrid = bool(bios and uefi)
    if hybrid:
        uefi = [e for e in uefi if e not in bios]
    evidence = bios + uefi + seen
    if hybrid:
        return "hybrid", evidence
    if bios:
        return "bios", evidence
    if uefi:
        return "uefi", evidence
    return "unknown", evidence
