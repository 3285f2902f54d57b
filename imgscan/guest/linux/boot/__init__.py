"""The boot loader of a Linux guest: which one, the kernel it boots by default, that
entry's command line, and how each entry's ``root=`` names the root device.

Contract keys (../shared/docs/json-contract.md, the ``linux`` object):
``bootloader``, ``default_kernel``, ``kernel_cmdline``, ``root_device_by``, with
their ``evidence``; and two more for the policy rules: ``boot_entries`` (every entry,
so that import-rules.md 1.3, "GRUB and fstab refer to disks by UUID", can say which
entry names a device) and ``boot_problems`` (what could not be read, e.g. a syntax
error GRUB would skip too).

One module per configuration syntax (:mod:`.grub2` with :mod:`.grubscript`,
:mod:`.grubenv` and :mod:`.bls`; :mod:`.grub_legacy`; :mod:`.syslinux`;
:mod:`.systemd_boot`); this one picks the loader whose configuration the guest has,
in the order below.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from imgscan.errors import CorruptImage
from imgscan.guest.linux.boot import grub2, grub_legacy, syslinux, systemd_boot
from imgscan.guest.linux.boot.entry import BootEntry, root_device_by
from imgscan.guest.linux.configdir import config_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

#: GRUB 2's configuration where grub-install puts it (Red Hat and SUSE ``grub2``,
#: Debian ``grub``); the EFI system partition's ``EFI/*/grub.cfg`` after these.
GRUB2_CONFIGS = ("/boot/grub2/grub.cfg", "/boot/grub/grub.cfg")
EFI_DIRS = ("/boot/efi/EFI", "/efi/EFI")
EXTLINUX_CONFIGS = ("/boot/extlinux/extlinux.conf", "/boot/extlinux.conf", "/extlinux.conf")
SYSLINUX_CONFIGS = ("/boot/syslinux/syslinux.cfg", "/boot/syslinux.cfg", "/syslinux.cfg")
LEGACY_CONFIGS = ("/boot/grub/menu.lst", "/boot/grub/grub.conf")


@dataclass
class Found:
    """A boot loader's menu: its entries, the default's index, what was read."""

    bootloader: str
    entries: list[BootEntry]
    default: int | None
    evidence: str
    problems: list[CorruptImage] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        chosen = self.entries[self.default] if self.default is not None else None
        cmdline = chosen.cmdline if chosen is not None else None
        return {
            "bootloader": self.bootloader,
            "default_kernel": chosen.kernel_version() if chosen is not None else None,
            "kernel_cmdline": cmdline,
            "root_device_by": root_device_by(cmdline),
            "boot_entries": [e.as_json() for e in self.entries],
            "boot_problems": [str(p) for p in self.problems],
            "evidence": dict.fromkeys(
                ("bootloader", "default_kernel", "kernel_cmdline", "root_device_by"),
                self.evidence),
        }


NOTHING: dict[str, Any] = {
    "bootloader": None, "default_kernel": None, "kernel_cmdline": None,
    "root_device_by": None, "boot_entries": [], "boot_problems": [], "evidence": {},
}


def bootloader(tree: GuestTree) -> dict[str, Any]:
    """The boot loader facts of ``tree`` (see the module); every key None, and no
    evidence, when no boot loader configuration is found."""
    for find in (_grub2, _systemd_boot, _syslinux, _grub_legacy):
        found = find(tree)
        if found is not None:
            return found.as_json()
    return {**NOTHING, "boot_entries": [], "boot_problems": [], "evidence": {}}


def _grub2(tree: GuestTree) -> Found | None:
    """The first GRUB 2 configuration with a menu entry (else the first one found)."""
    configs = [c for c in GRUB2_CONFIGS if tree.kind(c) == "file"]
    for efi in EFI_DIRS:
        # Each vendor directory of the ESP (at most LINUX_MAX_ENTRIES are looked at).
        for vendor in config_files(tree, efi, lambda name: True):
            path = posixpath.join(vendor, "grub.cfg")
            if tree.kind(path) == "file":
                configs.append(path)
    first: Found | None = None
    for config in configs:
        menu, found, default = grub2.entries(tree, config)
        result = Found("grub2", found, default, ", ".join(menu.files), menu.problems)
        if found:
            return result
        first = first or result
    return first


def _systemd_boot(tree: GuestTree) -> Found | None:
    for root in systemd_boot.ROOTS:
        conf = root + "/loader/loader.conf"
        if tree.kind(conf) == "file":
            found, default = systemd_boot.entries(tree, conf)
            return Found("systemd-boot", found, default, tree.where(conf))
    return None


def _syslinux(tree: GuestTree) -> Found | None:
    for name, configs in (("extlinux", EXTLINUX_CONFIGS), ("syslinux", SYSLINUX_CONFIGS)):
        for config in configs:
            if tree.kind(config) == "file":
                found, default = syslinux.entries(tree, config)
                return Found(name, found, default, tree.where(config))
    return None


def _grub_legacy(tree: GuestTree) -> Found | None:
    for config in LEGACY_CONFIGS:
        text = tree.text(config)
        if text is not None:
            found, default = grub_legacy.entries(tree, config, text)
            return Found("grub-legacy", found, default, tree.where(config))
    return None
