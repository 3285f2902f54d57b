"""Rules on the system disk's layout: a Windows installation, its boot path, volume encryption.

Source: import-rules.md sections 1.2-1.5 (Huawei IMS).
"""

from __future__ import annotations

from imgscan.vocabulary import FAIL, PASS

from ..framework import ENCRYPTED_FILESYSTEMS, Outcome, rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..framework import Facts


@rule("system-disk-present", "the file holds a Windows system disk")
def system_disk_present(f: Facts) -> Outcome:
    w = f.windows
    if w is not None:
        ev = {**f.ev("windows.partition", source="NTFS volume holding \\Windows"),
              **f.ev("windows.systemroot", source="NTFS directory lookup"),
              **f.ev("windows.product_name")}
        return Outcome(PASS, f"{w.get('product_name') or 'Windows'} in {w.get('systemroot')} "
                       f"on partition {w.get('partition')}", ev)
    reason = f.unreadable()
    if reason is not None:
        return reason
    return Outcome(FAIL, "no Windows installation found: this is not a Windows system disk",
                   {**f.ev("windows", None, "NTFS volumes searched for \\Windows"),
                    **f.ev("partitions", [p.get("filesystem") for p in
                                          f.info.get("partitions") or []], "partition table")},
                   "export the VM's system disk (the one holding C:\\Windows); import data "
                   "disks as data-disk images")


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


@rule("bios-boot", "the disk boots by BIOS, not UEFI only")
def bios_boot(f: Facts) -> Outcome:
    mode = f.info.get("boot_mode")
    seen = "; ".join(f.info.get("boot_evidence") or []) or "no boot path"
    ev = f.ev("boot_mode", source=seen)
    w = f.windows or {}
    loader = (w.get("bcd") or {}).get("loader")
    if loader:
        ev.update(f.ev("windows.bcd.loader", loader, f.windows_source("bcd")))
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
    return Outcome(FAIL, f"encrypted: {', '.join(where)}", ev,
                   "in the source VM: manage-bde -off C: (wait for decryption to finish), "
                   "then export again")
