"""libguestfs's ``virt-inspector`` as a peer of imgscan's Linux inspection (issue 14):
the OS facts it reports, and whole-process timings beside ``imgscan info --json``.

    python benchmarks/peer_virt_inspector.py [--runs N] IMAGE.qcow2 ...

virt-inspector (Debian package libguestfs-tools) boots a small appliance VM that
supermin assembles from the *host's* kernel: it needs a kernel image in /boot and its
modules in /lib/modules (``linux-image-cloud-amd64`` where the host has none, as in a
container). Its XML is documented in virt-inspector(1) and its RELAX NG schema
(/usr/share/doc/guestfs-tools/virt-inspector.rng.gz). :func:`why_not_runnable` says why it
cannot run here; :func:`inspect` runs it and :func:`parse` turns its XML into plain facts.

The appliance runs under TCG (``force_tcg``) unless the caller sets
``LIBGUESTFS_BACKEND_SETTINGS``: nested KVM in the sandboxes this project runs in stops
the appliance's kernel with "KVM internal error ... emulation failure" and then hangs,
where TCG boots it in about 20 seconds.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from whole_process import HEADER, compare

#: A whole virt-inspector run takes 20-30 s under TCG on a busy 2-core machine; past
#: this the appliance is taken to have hung (as it does under broken nested KVM).
TIMEOUT = 600


def why_not_runnable() -> str | None:
    """Why virt-inspector cannot run on this host, or None when it can."""
    if shutil.which("virt-inspector") is None:
        return "virt-inspector is not installed (Debian package libguestfs-tools)"
    kernels = [k for k in glob.glob("/boot/vmlinuz-*")
               if Path("/lib/modules", Path(k).name.removeprefix("vmlinuz-")).is_dir()]
    if not kernels:
        return ("libguestfs's appliance needs a host kernel in /boot with its modules in "
                "/lib/modules (Debian package linux-image-cloud-amd64)")
    return None


def environment() -> dict[str, str]:
    """The environment virt-inspector runs in: libguestfs's own qemu launcher (no
    libvirtd) under TCG, unless the caller chose otherwise."""
    env = dict(os.environ)
    env.setdefault("LIBGUESTFS_BACKEND", "direct")
    env.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
    return env


def command(image: Path, fmt: str = "qcow2") -> list[str]:
    """virt-inspector on ``image``, read-only (its default), without the installed
    applications and icon, which are not facts imgscan reports."""
    return ["virt-inspector", "--no-applications", "--no-icon", f"--format={fmt}",
            "-a", str(image)]


def inspect(image: Path, fmt: str = "qcow2") -> str:
    """virt-inspector's XML for ``image``."""
    done = subprocess.run(command(image, fmt), capture_output=True, text=True,
                          env=environment(), timeout=TIMEOUT, check=False)
    if done.returncode:
        raise RuntimeError(f"virt-inspector failed ({done.returncode}) on {image}:\n"
                           f"{done.stderr[-4000:]}")
    return done.stdout


def _text(node: ET.Element, tag: str) -> str | None:
    found = node.find(tag)
    return None if found is None else found.text


def _subvolume(device: str) -> str | None:
    """The subvolume of libguestfs's Btrfs device name ``btrfsvol:/dev/sdX2/@``."""
    if not device.startswith("btrfsvol:"):
        return None
    parts = device.removeprefix("btrfsvol:").split("/", 3)   # "", "dev", "sdX2", "@"
    return parts[3] if len(parts) == 4 else None


def parse(xml: str) -> list[dict[str, Any]]:
    """One dict per ``<operatingsystem>``: the facts by virt-inspector's own names, with
    the root's filesystem resolved (``root``: device, type, uuid, subvolume) and the
    mountpoints as mountpoint -> device."""
    systems = []
    for node in ET.fromstring(xml).iter("operatingsystem"):
        filesystems = {fs.get("dev", ""): {"type": _text(fs, "type"), "uuid": _text(fs, "uuid"),
                                           "label": _text(fs, "label")}
                       for fs in node.iterfind("filesystems/filesystem")}
        device = _text(node, "root") or ""
        root_fs = filesystems.get(device, {})
        systems.append({
            "name": _text(node, "name"),
            "distro": _text(node, "distro"),
            "product_name": _text(node, "product_name"),
            "major_version": _text(node, "major_version"),
            "minor_version": _text(node, "minor_version"),
            "arch": _text(node, "arch"),
            "hostname": _text(node, "hostname"),
            "package_format": _text(node, "package_format"),
            "package_management": _text(node, "package_management"),
            "osinfo": _text(node, "osinfo"),
            "root": {"device": device, "filesystem": root_fs.get("type"),
                     "uuid": root_fs.get("uuid"), "subvolume": _subvolume(device)},
            "mountpoints": {mp.text or "": mp.get("dev", "")
                            for mp in node.iterfind("mountpoints/mountpoint")},
            "filesystems": filesystems,
        })
    return systems


def facts(image: Path, fmt: str = "qcow2") -> list[dict[str, Any]]:
    """virt-inspector's parsed facts for ``image`` (see :func:`parse`)."""
    return parse(inspect(image, fmt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("images", nargs="+", type=Path)
    args = parser.parse_args()
    if why := why_not_runnable():
        sys.exit(why)
    imgscan = shutil.which("imgscan") or sys.exit("imgscan is not on PATH (pip install .)")
    for image in args.images:
        for system in facts(image):
            print(f"{image.name}: {system}")
    os.environ.update(environment())   # the timed runs below inherit it
    print("\n" + HEADER)
    for image in args.images:
        print(compare(f"info --json, {image.name}", [imgscan, "info", "--json", str(image)],
                      command(image), args.runs))


if __name__ == "__main__":
    main()
