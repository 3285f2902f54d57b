"""One boot menu entry as every boot loader's reader reports it, and what is derived
from it: the kernel version from the image's file name and how ``root=`` names the
root device.

Sources: the kernel's ``Documentation/admin-guide/kernel-parameters.txt`` (``root=``,
the last one wins as the kernel parses its command line) and the distributions' kernel
file names (``vmlinuz-VERSION`` by Debian, Red Hat and SUSE packaging; ``vmlinuz-lts``
of Alpine and ``vmlinuz-linux`` of Arch name a flavour, not a version).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from imgscan.guest.linux.cmdline import parameters
from imgscan.guest.linux.devices import classify_spec, lvm_from_cmdline

#: Kernel image names: ``vmlinuz-``, ``vmlinux-``, ``kernel-``, ``bzImage-``, ``Image-``.
_IMAGE = re.compile(r"^(?:vmlinu[xz]|kernel|bzImage|Image|uImage|zImage)-(?P<version>.+)$")
#: A version starts with a digit (``6.1.0-57-cloud-amd64``, ``5.14.0-427.el9.x86_64``).
_VERSION_START = re.compile(r"^\d")


@dataclass
class BootEntry:
    """A menu entry: its title and id as the loader shows and matches them, the kernel
    image path as written (a GRUB ``(hd0,1)`` device prefix removed), the kernel
    command line, and the BLS or loader ``version`` field when the entry has one."""

    title: str
    id: str | None = None
    kernel: str | None = None
    cmdline: str | None = None
    version: str | None = None
    #: Titles of the enclosing submenus, outermost first (GRUB only).
    path: list[str] = field(default_factory=list)

    def kernel_version(self) -> str | None:
        """The BLS ``version`` field, else the version in the kernel's file name."""
        if self.version:
            return self.version
        return kernel_version(self.kernel)

    def as_json(self) -> dict[str, Any]:
        root = root_spec(self.cmdline)
        return {
            "title": self.title, "id": self.id, "submenu": list(self.path),
            "kernel": self.kernel, "version": self.kernel_version(),
            "cmdline": self.cmdline, "root": root,
            "root_device_by": root_device_by(self.cmdline),
        }


def kernel_version(image: str | None) -> str | None:
    """``6.1.0-57-cloud-amd64`` from ``/boot/vmlinuz-6.1.0-57-cloud-amd64``; None
    when the file name carries no version (``vmlinuz``, ``vmlinuz-lts``)."""
    if not image:
        return None
    m = _IMAGE.match(posixpath.basename(image))
    if m is None or not _VERSION_START.match(m["version"]):
        return None
    return m["version"]


def strip_device(path: str) -> str:
    """A GRUB path without its ``(hd0,msdos1)`` / ``($root)`` device part."""
    if path.startswith("("):
        close = path.find(")")
        if close >= 0:
            return path[close + 1:] or "/"
    return path


def root_spec(cmdline: str | None) -> str | None:
    """The value of the last ``root=`` on the command line (as the kernel takes it,
    double quotes grouping a value with spaces); None without one."""
    if cmdline is None:
        return None
    return parameters(cmdline).get("root") or None


def root_device_by(cmdline: str | None) -> str | None:
    """How the command line names the root: :func:`~imgscan.guest.linux.devices.
    classify_spec` of ``root=``; ``lvm`` when dracut is told the root's logical volume
    (``rd.lvm.lv=``) and ``root=`` is absent or a bare kernel name such as
    ``/dev/dm-0``; None without a command line or any ``root=``."""
    if cmdline is None:
        return None
    given = parameters(cmdline)
    spec = given.get("root") or None
    kind = classify_spec(spec) if spec is not None else None
    if kind in (None, "device", "other") and lvm_from_cmdline(list(given)):
        return "lvm"
    return kind
