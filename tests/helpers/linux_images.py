"""The real Debian 12 system disks of tests/fixtures/linux (issue 14), made once per
machine and kept in a cache keyed by the hash of the scripts that make them.

``linux_disks()`` builds them (base.sh's mmdebstrap tarball, then build.sh's variants)
or reuses the cache under ``$IMGSCAN_FIXTURE_CACHE`` (default /var/tmp/imgscan-fixtures):
``<cache>/base-<hash of base.sh>.tar`` and ``<cache>/<hash of all three scripts>/``
holding ``<variant>.qcow2`` and the oracle facts ``<variant>.json`` that oracles.py
recorded from real tools at build time (its docstring lists the keys). Building needs
root, mmdebstrap and Debian's mirror; without them the tests that ask are skipped,
saying why.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from oracles import run

from helpers import FIXTURES

SCRIPTS = FIXTURES / "linux"
#: Every variant build.sh makes, as its file name stem.
VARIANTS = ("ext4-bios", "xfs-lvm-boot", "btrfs-uefi", "fstab-by-device", "fstab-missing-disk",
            "no-cloud-init", "persistent-net", "static-ip", "dirty", "no-virtio-initramfs",
            "data-disk")
#: The host tools the build runs (the guest's own tools run in a chroot).
TOOLS = ("mmdebstrap", "qemu-img", "losetup", "sfdisk", "blkid", "mkfs.ext4", "mkfs.xfs",
         "mkfs.btrfs", "mkfs.vfat", "mcopy", "lvm", "dumpe2fs", "debugfs", "xfs_db",
         "xfs_logprint", "chroot")


def cache_root() -> Path:
    return Path(os.environ.get("IMGSCAN_FIXTURE_CACHE", "/var/tmp/imgscan-fixtures"))


def _digest(*names: str) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + (SCRIPTS / name).read_bytes())
    return h.hexdigest()[:16]


def image_dir() -> Path:
    """Where this checkout's scripts put (or find) the disks."""
    return cache_root() / _digest("base.sh", "build.sh", "oracles.py")


def _why_not_buildable() -> str | None:
    if os.geteuid() != 0:
        return "building the Linux fixture disks needs root (loop devices, mount, chroot)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    return f"tools missing to build the Linux fixture disks: {missing}" if missing else None


#: What apt prints when Debian's mirror cannot be reached.
UNREACHABLE = ("Could not resolve", "Temporary failure resolving", "Failed to fetch",
               "Could not connect", "Unable to connect", "Network is unreachable")


def _run(script: str, *args: Path) -> None:
    done = subprocess.run([str(SCRIPTS / script), *map(str, args)], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{script} failed ({done.returncode}):\n{done.stderr[-4000:]}")


def _build(cache: Path, target: Path) -> None:
    base = cache / f"base-{_digest('base.sh')}.tar"
    if not base.exists():
        try:
            _run("base.sh", base)
        except RuntimeError as e:
            # Only an unreachable mirror is a reason to skip; any other failure of the
            # script is a bug that must show as one.
            if not any(sign in str(e) for sign in UNREACHABLE):
                raise
            pytest.skip(f"mmdebstrap could not reach Debian's mirror: {e}")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache))
    try:
        _run("build.sh", base, staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def linux_disks() -> dict[str, Path]:
    """Variant name -> its qcow2 disk, built now unless the cache holds them."""
    target = image_dir()
    if not target.exists():
        if why := _why_not_buildable():
            pytest.skip(why)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)   # one build at a time (parallel sessions)
            if not target.exists():
                _build(target.parent, target)
    return {name: target / f"{name}.qcow2" for name in VARIANTS}


def oracle_facts(variant: str) -> dict[str, Any]:
    """The facts oracles.py recorded for ``variant`` when it was built."""
    facts: dict[str, Any] = json.loads((image_dir() / f"{variant}.json").read_text())
    return facts


def without_fallback_loader(disk: Path, out: Path) -> Path:
    """The UEFI Debian disk (btrfs-uefi) as raw, its ESP's EFI/BOOT/BOOTX64.EFI deleted
    by mtools (mdel): a real disk whose firmware finds no fallback loader."""
    raw = out / "btrfs-uefi.raw"
    run("qemu-img", "convert", "-q", "-O", "raw", disk, raw)
    esp = f"{raw}@@{esp_offset(raw)}"
    assert "BOOTX64" in run("mdir", "-b", "-i", esp, "::/EFI/BOOT")
    run("mdel", "-i", esp, "::/EFI/BOOT/BOOTX64.EFI")
    return raw


def esp_offset(raw: Path) -> int:
    """The byte offset of the EFI system partition, as sfdisk lists it."""
    table = json.loads(run("sfdisk", "--json", raw))["partitiontable"]
    esp = next(p for p in table["partitions"]
               if p["type"].upper() == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    return int(esp["start"]) * int(table.get("sectorsize", 512))
