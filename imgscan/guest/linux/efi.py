"""Whether the EFI system partition mounted in the guest holds the removable-media
(fallback) boot loader, the one firmware starts without an NVRAM boot entry.

Sources: the UEFI specification 2.x section 3.5.1.1 (``\\EFI\\BOOT\\BOOT{arch}.EFI``:
``BOOTX64.EFI``, ``BOOTIA32.EFI``, ``BOOTAA64.EFI``); import-rules.md section 2.1 (AWS
VM Import: a Linux image that boots by UEFI needs it, as an imported instance has no
NVRAM entries). The ESP is looked at where the guest's fstab mounts it (``/boot/efi``,
``/efi``, ``/boot``); FAT names compare case-insensitively in the reader.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

MOUNTPOINTS = ("/boot/efi", "/efi", "/boot")
#: The fallback loader's file name by the guest's architecture.
FALLBACK_NAMES = {"x86_64": "BOOTX64.EFI", "x86": "BOOTIA32.EFI", "aarch64": "BOOTAA64.EFI"}


def fallback_loader(tree: GuestTree, arch: str | None) -> tuple[bool | None, str | None]:
    """True and the file when the mounted ESP has the fallback loader of ``arch``; False
    when an ESP is mounted without it; None when no ESP is mounted (or the arch is not
    known)."""
    name = FALLBACK_NAMES.get(str(arch))
    esp = next((m for m in tree.mounts if m.mountpoint in MOUNTPOINTS
                and m.fs.filesystem in ("vfat", "fat", "msdos")), None)
    if name is None or esp is None:
        return None, None
    path = f"{esp.mountpoint}/EFI/BOOT/{name}"
    if tree.kind(path) == "file":
        return True, tree.where(path)
    return False, f"{tree.where(esp.mountpoint)}: no EFI/BOOT/{name}"
