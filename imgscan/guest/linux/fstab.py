"""``/etc/fstab``: what the guest mounts at boot, and whether each source is on this disk.

Source: fstab(5), read as libmount reads it (util-linux ``libmount/src/tab_parse.c``:
``mount -a`` and systemd-fstab-generator both use it): fields separated by blanks;
``#`` lines are comments; ``\\NNN`` (three octal digits) is the byte NNN (``\\040``
a space); source, target and type are required; options are optional (``defaults``
here, where findmnt prints null); freq and passno, when present, must be decimal
numbers ended by a blank or the line's end, and anything after passno is ignored.
A line libmount rejects is skipped, as at boot.

Import-rules.md section 1.3: fstab should name disks by UUID, and an entry whose
disk is not in the image must carry ``nofail`` or the guest may not boot.
"""

from __future__ import annotations

import re

from imgscan.guest.linux.devices import classify_spec, on_this_disk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan.guest.linux.devices import DiskIds
    from imgscan.guest.linux.tree import GuestTree

FSTAB = "/etc/fstab"
_OCTAL = re.compile(rb"\\([0-7]{3})")
_BLANKS = re.compile(r"[ \t]+")
_NUMBER = re.compile(r"[+-]?[0-9]+\Z")


def unmangle(field: str) -> str:
    """``field`` with its ``\\NNN`` octal escapes decoded (as bytes, then UTF-8)."""
    if "\\" not in field:
        return field
    raw = field.encode("utf-8", "surrogateescape")
    raw = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), raw)
    return raw.decode("utf-8", "replace")


def parse(text: str) -> list[tuple[str, str, str, str]]:
    """``(source, target, type, options)`` of every line libmount accepts."""
    found: list[tuple[str, str, str, str]] = []
    for line in text.split("\n"):
        line = line.strip(" \t")
        fields = _BLANKS.split(line, 6) if line[:1] not in ("#", "") else []
        if len(fields) < 3:
            continue
        if any(_NUMBER.match(f) is None for f in fields[4:6]):
            continue
        source, target, fstype = (unmangle(f) for f in fields[:3])
        options = unmangle(fields[3]) if len(fields) > 3 else "defaults"
        found.append((source, target, fstype, options))
    return found


def fstab(tree: GuestTree, ids: DiskIds) -> tuple[list[dict[str, Any]], str | None]:
    """The contract's ``fstab`` entries (``[]`` without the file) and its evidence;
    ``ids`` are the names this disk's volumes answer to."""
    text = tree.text(FSTAB)
    if text is None:
        return [], None
    entries = [{"spec": spec, "mountpoint": target, "type": fstype, "options": options,
                "by": classify_spec(spec), "on_this_disk": on_this_disk(spec, ids),
                "nofail": "nofail" in options.split(",")}
               for spec, target, fstype, options in parse(text)]
    return entries, tree.where(FSTAB)
