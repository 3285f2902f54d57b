"""The fallback (removable-media) EFI loader on the ESP the guest mounts, against mtools'
listing of the real UEFI Debian disk, and the same disk with the loader deleted by mdel."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.linux_images import esp_offset, without_fallback_loader
from oracles import run

import imgscan

needs_mtools = pytest.mark.skipif(not shutil.which("mdel"), reason="mtools absent")


def linux(path: Path) -> dict[str, Any]:
    with imgscan.open(path) as img:
        lx: dict[str, Any] = img.info()["linux"]
        return lx


@needs_mtools
def test_fallback_loader_as_mdir_lists_it(linux_disks: dict[str, Path], tmp_path: Path) -> None:
    lx = linux(linux_disks["btrfs-uefi"])
    assert lx["efi_fallback_loader"] is True
    assert lx["evidence"]["efi_fallback_loader"] == \
        "/boot/efi/EFI/BOOT/BOOTX64.EFI (partition 1)"
    raw = without_fallback_loader(linux_disks["btrfs-uefi"], tmp_path)
    assert "BOOTX64" not in run("mdir", "-b", "-i", f"{raw}@@{esp_offset(raw)}",
                                "::/EFI/BOOT")
    assert linux(raw)["efi_fallback_loader"] is False


def test_no_esp_mounted_is_not_known(linux_disks: dict[str, Path]) -> None:
    assert linux(linux_disks["ext4-bios"])["efi_fallback_loader"] is None
