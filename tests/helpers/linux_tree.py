"""Small Linux guest trees for the collectors' tests: files written to a folder, made
into a real ext4 volume by ``mkfs.ext4 -d`` and opened as a :class:`GuestTree`.

A test states only the files it is about (``{"etc/fstab": "...", "bin": Link("usr/bin")}``);
the volume is real, so every collector is tested through the same ext4 reader the
inspection uses. Whole guests (kernels, initramfs, GRUB) come from the mmdebstrap
fixtures instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from imgscan._core.ext4 import Ext4FileSystem
from imgscan.guest.linux.tree import GuestTree, Mount

MiB = 1 << 20


class Link:
    """A symlink to write into a tree, with its target as written."""

    def __init__(self, target: str) -> None:
        self.target = target


Content = str | bytes | Link


def write_tree(root: Path, files: dict[str, Content]) -> Path:
    """``files`` (guest path -> text, bytes or :class:`Link`) written under ``root``;
    a path ending in ``/`` makes an empty directory."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel.strip("/")
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            os.symlink(content.target, path)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return root


def ext4_volume(tmp: Path, files: dict[str, Content], size: int = 16 * MiB,
                name: str = "root", uuid: str | None = None) -> Path:
    """A sparse ext4 volume image holding ``files``, made by ``mkfs.ext4 -d`` (with the
    filesystem UUID ``uuid`` when given)."""
    tree = write_tree(tmp / f"{name}.d", files)
    image = tmp / f"{name}.ext4"
    with open(image, "wb") as f:
        f.truncate(size)
    given = ["-U", uuid] if uuid else []
    subprocess.run(["mkfs.ext4", "-q", "-F", *given, "-d", str(tree), str(image)], check=True)
    return image


def partitioned_disk(path: Path, volumes: list[Path]) -> Path:
    """A raw disk whose MBR (written by sfdisk) has one Linux partition per volume image,
    in order, each volume copied into its partition."""
    start = 2048
    layout = []
    for volume in volumes:
        sectors = volume.stat().st_size // 512
        layout.append(f"start={start}, size={sectors}, type=83")
        start += sectors
    with open(path, "wb") as f:
        f.truncate(start * 512 + MiB)
    subprocess.run(["sfdisk", "-q", str(path)], input="label: dos\n" + "\n".join(layout),
                   text=True, check=True)
    with open(path, "r+b") as f:
        offset = 2048 * 512
        for volume in volumes:
            f.seek(offset)
            f.write(volume.read_bytes())
            offset += volume.stat().st_size
    return path


def open_volume(image: Path) -> Ext4FileSystem:
    """The ext4 reader over a volume image file."""
    data = image.read_bytes()

    def read(offset: int, length: int) -> bytes:
        return data[offset:offset + length]

    return Ext4FileSystem(read, 0, len(data), str(image))


def guest_tree(tmp: Path, files: dict[str, Content],
               mounts: dict[str, dict[str, Content]] | None = None) -> GuestTree:
    """A guest tree whose root holds ``files``; ``mounts`` adds separate volumes
    (mount point -> their files), as a separate /boot or /usr."""
    trees = [Mount("/", open_volume(ext4_volume(tmp, files)), "root volume")]
    for i, (point, more) in enumerate((mounts or {}).items()):
        volume = open_volume(ext4_volume(tmp, more, name=f"mount{i}"))
        trees.append(Mount(point, volume, f"{point} volume"))
    return GuestTree(trees)
