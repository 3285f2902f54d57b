"""Variants of the real Debian 12 ext4 system disk (tests/fixtures/linux, ``ext4-bios``)
changed by e2fsprogs: files written, linked and removed by ``debugfs -w``, features set
by ``tune2fs``, on a raw copy of the disk (``qemu-img convert``) through e2fsprogs'
``IMAGE?offset=N`` device syntax, the root partition's offset read by sfdisk. The
oracles read the same filesystem back: ``debugfs -R cat``, ``dumpe2fs -h``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oracles import run

TOOLS = ("qemu-img", "sfdisk", "debugfs", "tune2fs", "dumpe2fs")


def needs_tools() -> None:
    if missing := [t for t in TOOLS if shutil.which(t) is None]:
        pytest.skip(f"{', '.join(missing)} absent (qemu-utils, fdisk, e2fsprogs)")


def root_device(raw: Path) -> str:
    """``RAW?offset=N``: the first partition (the ext4-bios root) as e2fsprogs opens it."""
    table = json.loads(run("sfdisk", "--json", raw))["partitiontable"]
    start = int(table["partitions"][0]["start"]) * int(table.get("sectorsize", 512))
    return f"{raw}?offset={start}"


def debugfs_cat(device: str, path: str) -> bytes:
    return subprocess.run(["debugfs", "-R", f"cat {path}", device], check=True,
                          capture_output=True).stdout


def dumpe2fs_header(device: str) -> dict[str, str]:
    """``dumpe2fs -h``'s ``Name: value`` lines."""
    out = subprocess.run(["dumpe2fs", "-h", device], check=True, capture_output=True,
                         text=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in
                                                   out.splitlines()) if v}


def edited_disk(disk: Path, work: Path, *, requests: tuple[str, ...] = (),
                files: dict[str, bytes] | None = None,
                edits: dict[str, Callable[[bytes], bytes]] | None = None,
                free_left: int | None = None, tune2fs: tuple[str, ...] = ()
                ) -> tuple[Path, str]:
    """A raw copy of ``disk`` changed by debugfs: the ``requests`` run first (``mkdir``,
    ``symlink`` ...), then ``files`` (guest path -> content) written and each file of
    ``edits`` replaced by ``edit(its content)``; with ``free_left``, a file ``/filler``
    fallocated until about that many bytes stay free; then ``tune2fs`` run with those
    arguments. Returns the raw disk and the root's device string for the oracles."""
    needs_tools()
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "disk.raw"
    run("qemu-img", "convert", "-q", "-O", "raw", disk, raw)
    device = root_device(raw)
    new = dict(files or {})
    for path, edit in (edits or {}).items():
        new[path] = edit(debugfs_cat(device, path))
    script = list(requests)
    for i, (path, content) in enumerate(new.items()):
        local = work / f"file{i}"
        local.write_bytes(content)
        script += [f"rm {path}", f"write {local} {path}"]
    if free_left is not None:
        head = dumpe2fs_header(device)
        blocks = int(head["Free blocks"]) - free_left // int(head["Block size"])
        script += ["write /dev/null /filler", f"fallocate /filler 0 {blocks - 1}"]
    if script:
        commands = work / "debugfs.cmd"
        commands.write_text("\n".join(script) + "\n")
        subprocess.run(["debugfs", "-w", "-f", str(commands), device], check=True,
                       capture_output=True)
    if tune2fs:
        run("tune2fs", *tune2fs, device)
    return raw, device


def grub_linux_lines_add(words: str) -> Callable[[bytes], bytes]:
    """An edit of grub.cfg adding ``words`` to every ``linux`` line (what
    GRUB_CMDLINE_LINUX plus update-grub would write)."""
    def edit(cfg: bytes) -> bytes:
        return re.sub(rb"(?m)^(\s*linux\s.*)$", lambda m: m.group(1) + b" " + words.encode(),
                      cfg)
    return edit


def appended(text: bytes) -> Callable[[bytes], bytes]:
    return lambda old: old + text


MiB = 1 << 20
#: Changes to ext4-bios that break the peers' Linux rules: udf and vfat blacklisted, the
#: QEMU guest agent installed, 100 MiB left free, ext4 ``quota`` with ``project``.
UNREADY: dict[str, Any] = {
    "files": {"/etc/modprobe.d/azure-unready.conf":
              b"# not what Azure wants\nblacklist udf\ninstall vfat /bin/true\n",
              "/usr/bin/qemu-ga": b"\x7fELF qemu-ga stand-in\n"},
    "free_left": 100 * MiB,
    "tune2fs": ("-O", "quota,project"),
}
#: Changes to no-cloud-init that meet them without cloud-init: the Azure Linux agent
#: installed and enabled, a user with an authorized key, rootdelay=300 on the command line.
WAAGENT_UNIT = "/lib/systemd/system/walinuxagent.service"
READY: dict[str, Any] = {
    "requests": ("mkdir /home/azureuser", "mkdir /home/azureuser/.ssh",
                 f"symlink /etc/systemd/system/multi-user.target.wants/walinuxagent.service "
                 f"{WAAGENT_UNIT}"),
    "files": {"/usr/sbin/waagent": b"#!/usr/bin/python3\n",
              WAAGENT_UNIT: b"[Service]\nExecStart=/usr/sbin/waagent -daemon\n",
              "/home/azureuser/.ssh/authorized_keys":
              b"# launch key\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOa5 azureuser@example\n"},
    "edits": {"/etc/passwd": appended(b"azureuser:x:1000:1000::/home/azureuser:/bin/bash\n"),
              "/boot/grub/grub.cfg": grub_linux_lines_add("rootdelay=300")},
}
