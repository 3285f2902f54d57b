"""imgscan's Linux facts (the contract's ``linux`` object) beside libguestfs's, on the real
Debian 12 disks of tests/fixtures/linux: virt-inspector for distro, version, arch, the
root filesystem and the mountpoints, virt-cat for os-release's PRETTY_NAME and VERSION_ID
(virt-inspector names Debian's product after /etc/debian_version, not os-release).

Each libguestfs run boots an appliance VM (20-30 s under TCG), so the live comparison is
marked ``slow`` and needs libguestfs-tools and a host kernel (CI installs neither): its
output is recorded once per machine into the fixture cache directory, beside the disks
it describes (``<variant>.virt-inspector.xml``, ``<variant>.os-release``). What does not
change when the disks are rebuilt (no UUIDs, no device names) is also committed, in
tests/fixtures/linux/virt-inspector.json, and every run compares imgscan's facts with
it; the live test checks that file against virt-inspector again
(``IMGSCAN_UPDATE_GOLDEN=1`` rewrites it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import peer_virt_inspector
import pytest
from helpers import FIXTURES
from helpers.linux_images import cache_root, image_dir, oracle_facts

import imgscan

#: virt-inspector's facts of each disk that a rebuild does not change (see the module).
RECORDED = FIXTURES / "linux" / "virt-inspector.json"

#: The variants whose root differs in kind (ext4 partition, XFS on LVM with a separate
#: /boot, Btrfs subvolume beside an ESP), with the volume oracles.py recorded the root as.
ROOTS = {"ext4-bios": "1", "xfs-lvm-boot": "lv:vg0/root", "btrfs-uefi": "2"}


def _record(path: Path, make: list[str]) -> str:
    """``path``'s text, made by running ``make`` first if the cache lacks it."""
    if not path.exists():
        if why := peer_virt_inspector.why_not_runnable():
            pytest.skip(f"{why}; nothing recorded at {path}")
        with open(cache_root() / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)   # parallel sessions share the cache
            if not path.exists():
                done = subprocess.run(make, capture_output=True, text=True, check=False,
                                      env=peer_virt_inspector.environment(),
                                      timeout=peer_virt_inspector.TIMEOUT)
                if done.returncode:
                    raise RuntimeError(f"{make[0]} failed ({done.returncode}):\n"
                                       f"{done.stderr[-4000:]}")
                staging = path.with_name(f".{path.name}.{os.getpid()}")
                staging.write_text(done.stdout)
                staging.rename(path)
    return path.read_text()


def libguestfs(variant: str, disk: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """virt-inspector's one operating system on ``disk``, and its os-release as virt-cat
    reads it."""
    xml = _record(image_dir() / f"{variant}.virt-inspector.xml",
                  peer_virt_inspector.command(disk))
    text = _record(image_dir() / f"{variant}.os-release",
                   ["virt-cat", "--format=qcow2", "-a", str(disk), "/etc/os-release"])
    (system,) = peer_virt_inspector.parse(xml)
    release = dict(line.split("=", 1) for line in shlex.split(text, comments=True))
    return system, release


def lasting(system: dict[str, Any]) -> dict[str, Any]:
    """The facts of virt-inspector's ``system`` that a rebuild of the disk keeps."""
    types = {device: f["type"] for device, f in system["filesystems"].items()}
    return {"distro": system["distro"], "major_version": system["major_version"],
            "arch": system["arch"], "package_format": system["package_format"],
            "root": {"filesystem": system["root"]["filesystem"],
                     "subvolume": system["root"]["subvolume"]},
            "mountpoints": {point: types[device]
                            for point, device in sorted(system["mountpoints"].items())}}


@pytest.mark.parametrize("variant", ROOTS)
def test_linux_facts_as_virt_inspector_recorded(linux_disks: dict[str, Path],
                                                variant: str) -> None:
    recorded = json.loads(RECORDED.read_text())[variant]
    with imgscan.open(linux_disks[variant]) as img:
        linux = img.info()["linux"]
    assert (linux["distro"], linux["arch"]) == (recorded["distro"], recorded["arch"])
    assert linux["version_id"].split(".")[0] == recorded["major_version"]
    root = linux["root"]
    assert {"filesystem": root["filesystem"], "subvolume": root["subvolume"]} == \
        recorded["root"]
    assert {m["mountpoint"]: m["filesystem"] for m in linux["mounts"]} == \
        recorded["mountpoints"]


@pytest.mark.slow
def test_the_recording_is_what_virt_inspector_says(linux_disks: dict[str, Path]) -> None:
    live = {variant: lasting(libguestfs(variant, linux_disks[variant])[0])
            for variant in ROOTS}
    if os.environ.get("IMGSCAN_UPDATE_GOLDEN") == "1":
        RECORDED.write_text(json.dumps(live, indent=1, sort_keys=True) + "\n")
    assert json.loads(RECORDED.read_text()) == live


@pytest.mark.slow
@pytest.mark.parametrize("variant", ROOTS)
def test_virt_inspector_finds_the_root_blkid_recorded(linux_disks: dict[str, Path],
                                                      variant: str) -> None:
    system, release = libguestfs(variant, linux_disks[variant])
    blkid = oracle_facts(variant)["volumes"][ROOTS[variant]]["blkid"]
    assert (system["root"]["filesystem"], system["root"]["uuid"]) == \
        (blkid["TYPE"], blkid["UUID"])
    assert system["root"]["subvolume"] == ("@" if variant == "btrfs-uefi" else None)
    assert (system["name"], system["distro"], system["arch"]) == ("linux", "debian", "x86_64")
    assert (system["major_version"], release["VERSION_ID"], release["ID"]) == \
        ("12", "12", "debian")
    assert system["mountpoints"]["/"] == system["root"]["device"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ROOTS)
def test_linux_facts_as_libguestfs_sees_them(linux_disks: dict[str, Path],
                                             variant: str) -> None:
    system, release = libguestfs(variant, linux_disks[variant])
    with imgscan.open(str(linux_disks[variant])) as img:
        linux = img.info()["linux"]
    assert linux is not None, "imgscan found no Linux root"
    assert (linux["distro"], linux["arch"]) == (system["distro"], system["arch"])
    assert linux["version_id"] == release["VERSION_ID"]
    assert linux["version_id"].split(".")[0] == system["major_version"]
    assert linux["pretty_name"] == release["PRETTY_NAME"]
    root = linux["root"]
    assert (root["filesystem"], root["uuid"], root["subvolume"]) == \
        (system["root"]["filesystem"], system["root"]["uuid"], system["root"]["subvolume"])
    mounted = {e["mountpoint"] for e in linux["fstab"] if e["on_this_disk"]}
    assert mounted == set(system["mountpoints"])
