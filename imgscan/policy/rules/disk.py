"""Rules on the system disk's layout: a guest installation, its boot path, volume encryption.

Source: import-rules.md sections 1.2-1.5 (Huawei IMS); 2.1 for the peers (a partition
table and a boot path: Google, Alibaba; at most 21 volumes: AWS).
"""

from __future__ import annotations

from imgscan.vocabulary import FAIL, LINUX, PASS, UNKNOWN, WINDOWS

from ..framework import (
    ENCRYPTED_FILESYSTEMS,
    GUEST_TITLES,
    GUESTS,
    SEARCHED,
    Outcome,
    rule,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ..framework import Facts


@rule("system-disk-present", "the file holds a system disk of an accepted guest OS")
def system_disk_present(f: Facts, *, guests: Sequence[str] = (WINDOWS,)) -> Outcome:
    for os in guests:
        found = _installation(f, os)
        if found is not None:
            return found
    for os in guests:
        reason = f.unreadable(os)
        if reason is not None:
            return reason
    names = " or ".join(GUEST_TITLES[os] for os in guests)
    other = [GUEST_TITLES[os] for os in GUESTS if os not in guests and f.guest(os)]
    also = f" (a {other[0]} system is: use its profile)" if other else ""
    return Outcome(FAIL, f"no {names} installation found: this is not a {names} system "
                   f"disk{also}",
                   {**{k: v for os in guests for k, v in f.ev(os, None, SEARCHED[os]).items()},
                    **f.ev("partitions", [p.get("filesystem") for p in
                                          f.info.get("partitions") or []], "partition table")},
                   "export the VM's system disk (the one holding the OS: C:\\Windows, or "
                   "the Linux root filesystem); import data disks as data-disk images")


def _installation(f: Facts, os: str) -> Outcome | None:
    """``pass`` naming the installation of ``os`` found, or None."""
    if os == WINDOWS and f.windows is not None:
        w = f.windows
        ev = {**f.ev("windows.partition", source="NTFS volume holding \\Windows"),
              **f.ev("windows.systemroot", source="NTFS directory lookup"),
              **f.ev("windows.product_name")}
        return Outcome(PASS, f"{w.get('product_name') or 'Windows'} in {w.get('systemroot')} "
                       f"on partition {w.get('partition')}", ev)
    if os == LINUX and f.linux is not None:
        lx = f.linux
        root = lx.get("root") or {}
        where = f"logical volume {root['lvm']}" if root.get("lvm") else (
            f"partition {root.get('partition')}" if root.get("partition") else "the whole disk")
        sub = f" (subvolume {root['subvolume']})" if root.get("subvolume") else ""
        ev = {**f.ev("linux.root"), **f.ev("linux.pretty_name")}
        return Outcome(PASS, f"{lx.get('pretty_name') or lx.get('distro') or 'Linux'}: root "
                       f"{root.get('filesystem')} on {where}{sub}", ev)
    return None


@rule("boot-system-same-disk", "the boot partition (BCD, bootmgr) and Windows are on this disk",
      needs_windows=True)
def boot_system_same_disk(f: Facts, w: Mapping[str, Any]) -> Outcome:
    ev = {**f.ev("windows.boot_partition"), **f.ev("windows.partition")}
    if w.get("boot_partition") is None:
        return Outcome(FAIL, "no BCD store or bootmgr on this disk: the boot partition is on "
                       "another disk", ev,
                       "in the source VM: bcdboot C:\\Windows /s C: /f BIOS, then export "
                       "the system disk again")
    return Outcome(PASS, f"boot files on partition {w['boot_partition']}, Windows on "
                   f"partition {w.get('partition')}", ev)


@rule("bios-boot", "the disk boots by BIOS, not UEFI only", guest="windows")
def bios_boot(f: Facts) -> Outcome:
    mode = f.info.get("boot_mode")
    seen = "; ".join(f.info.get("boot_evidence") or []) or "no boot path"
    ev = f.ev("boot_mode", source=seen)
    w = f.windows or {}
    loader = (w.get("bcd") or {}).get("loader")
    if loader:
        ev.update(f.ev("windows.bcd.loader", loader, f.source(WINDOWS, "bcd")))
    if mode in ("bios", "hybrid"):
        return Outcome(PASS, f"boot mode {mode} ({seen})", ev)
    if mode == "uefi" or loader == "winload.efi":
        return Outcome(FAIL, f"UEFI boot only ({seen})", ev,
                       "convert the source VM to BIOS/MBR boot before export (e.g. "
                       "bcdboot C:\\Windows /f BIOS on an MBR disk), or register with "
                       "hw_firmware_type=uefi where the OS is on the UEFI list")
    unknown = f.unreadable()
    if unknown is not None:
        return unknown
    windows_says = f" although Windows boots through {loader} (BIOS)" if loader else ""
    return Outcome(FAIL, f"no BIOS boot path ({seen}){windows_says}", ev,
                   "write the Windows MBR boot code: bootsect /nt60 SYS /mbr (Windows "
                   "setup media) or ms-sys -7 /dev/sdX")


@rule("no-disk-encryption", "no BitLocker, LUKS or other volume encryption")
def no_disk_encryption(f: Facts) -> Outcome:
    info = f.info
    unreadable = f.unreadable() if info.get("encrypted") or \
        info.get("partition_table") == "unknown" else None
    if unreadable is not None:
        return unreadable
    encrypted = [p for p in info.get("partitions") or []
                 if p.get("encrypted") or p.get("filesystem") in ENCRYPTED_FILESYSTEMS]
    whole = info.get("filesystem") in ENCRYPTED_FILESYSTEMS
    ev = f.ev("partitions[].encrypted", {p["number"]: p.get("filesystem") for p in encrypted},
              "volume signatures (-FVE-FS-, LUKS magic)")
    if whole:
        ev.update(f.ev("filesystem", source="volume signature"))
    if not encrypted and not whole:
        return Outcome(PASS, "no encrypted volume", ev)
    where = [f"partition {p['number']} ({p.get('filesystem')})" for p in encrypted]
    where += [f"the whole disk ({info.get('filesystem')})"] if whole else []
    remedy = "in the source VM: decrypt the volume (cryptsetup reencrypt --decrypt DEVICE, " \
        "or copy the data to an unencrypted volume), then export again" \
        if f.windows is None and not any(p.get("filesystem") == "BitLocker" for p in encrypted) \
        else "in the source VM: manage-bde -off C: (wait for decryption to finish), then " \
        "export again"
    return Outcome(FAIL, f"encrypted: {', '.join(where)}", ev, remedy)


@rule("volume-count", "the disk holds no more volumes than the import tool reads")
def volume_count(f: Facts, *, max_volumes: int) -> Outcome:
    """Volumes as the info object's ``volume_count`` counts them: partitions with a
    filesystem and logical volumes (AWS: at most 21)."""
    count = f.info.get("volume_count")
    ev = f.ev("volume_count", source="partition table, filesystem signatures, LVM metadata")
    if count is None:
        return Outcome(UNKNOWN, "the volumes could not be counted (the partition table "
                       "could not be read)", ev)
    if count <= max_volumes:
        return Outcome(PASS, f"{count} volume(s), at most {max_volumes}", ev)
    return Outcome(FAIL, f"{count} volumes: the import reads at most {max_volumes}",
                   ev, "move data volumes to separate data-disk images")


@rule("partition-table", "the disk has a partition table the cloud boots from")
def partition_table(f: Facts, *, tables: Sequence[str]) -> Outcome:
    table = f.info.get("partition_table")
    ev = f.ev("partition_table", source="sector 0 / GPT header")
    if table in tables:
        return Outcome(PASS, f"{table} partition table", ev)
    if table == "unknown":
        return f.unreadable() or Outcome(UNKNOWN, "the partition table could not be read", ev)
    return Outcome(FAIL, f"partition table {table}: the cloud needs {' or '.join(tables)}",
                   ev, "export the whole system disk (with its partition table), not one "
                   "partition or filesystem")


@rule("boot-path", "the disk has a boot path the cloud starts (BIOS boot code or an ESP)")
def boot_path(f: Facts, *, modes: Sequence[str]) -> Outcome:
    """``modes``: the ``boot_mode`` values the cloud boots (``hybrid``: both paths)."""
    mode = f.info.get("boot_mode")
    seen = "; ".join(f.info.get("boot_evidence") or []) or "no boot path"
    ev = f.ev("boot_mode", source=seen)
    if mode in modes:
        return Outcome(PASS, f"boot mode {mode} ({seen})", ev)
    if mode == "unknown":
        unread = f.unreadable()
        if unread is not None:
            return unread
        return Outcome(FAIL, f"no boot path found ({seen})", ev,
                       "install a boot loader: grub-install (Linux) or bcdboot C:\\Windows "
                       "/f ALL (Windows), then export the system disk again")
    return Outcome(FAIL, f"boot mode {mode} ({seen}): the cloud boots only "
                   f"{' or '.join(modes)}", ev,
                   "convert the boot path (MBR2GPT / a BIOS boot loader) before export")
