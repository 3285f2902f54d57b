"""A ``grub.cfg`` written by the real ``grub-mkconfig`` of the host (Debian's GRUB 2
and its /etc/grub.d scripts), for a guest whose kernels the test names.

grub-mkconfig describes the system it runs on: it asks ``grub-probe`` for the device
of ``/`` and lists ``/boot/vmlinuz-*``. So it runs chrooted into a fresh ext4 volume
mounted from a loop device (``losetup``), with the host's ``/usr`` bound read-only
and ``/etc/grub.d`` copied in. Its ``/etc/default/grub`` is the test's, plus
``GRUB_DEVICE`` (and ``GRUB_DEVICE_UUID`` with a ``/dev/disk/by-uuid`` link to it):
10_linux refuses loop devices backed by files, and the settings file is sourced
after the probe precisely so that it may name the root device.
Needs root, losetup, mount, chroot and grub-mkconfig (grub-common).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers import unmount

#: Two Debian kernels: the newer one is the first entry grub-mkconfig writes.
KERNELS = ["6.1.0-57-cloud-amd64", "6.1.0-10-amd64"]
#: The root filesystem UUID the configurations name.
UUID = "2b5c7a4e-6f0d-4c7b-9a53-0c1f7d2e8a11"
#: /etc/default/grub of a Debian cloud image, GRUB_DEFAULT left to the test.
SETTINGS = ('GRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=Debian\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
            'GRUB_CMDLINE_LINUX="console=ttyS0"\nGRUB_DISABLE_OS_PROBER=true\n')

TOOLS = ("grub-mkconfig", "grub-editenv", "losetup", "mount", "chroot", "mkfs.ext4")


def available() -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in TOOLS) \
        and Path("/etc/grub.d/10_linux").is_file()


def grub_mkconfig(work: Path, kernels: list[str], settings: str, *,
                  device: str = "/dev/vda1", uuid: str | None = None) -> str:
    """The grub.cfg grub-mkconfig writes for ``kernels`` (versions: empty
    ``/boot/vmlinuz-V`` and ``/boot/initrd.img-V`` files) with ``settings`` as
    /etc/default/grub; root named ``device``, or ``UUID=uuid`` when ``uuid`` is given."""
    work.mkdir(parents=True, exist_ok=True)
    volume, mnt = work / "root.ext4", work / "mnt"
    with open(volume, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(volume)], check=True)
    mnt.mkdir()
    loop = subprocess.run(["losetup", "-f", "--show", str(volume)], check=True,
                          capture_output=True, text=True).stdout.strip()
    mounted: list[Path] = []
    try:
        subprocess.run(["mount", loop, str(mnt)], check=True)
        mounted.append(mnt)
        for d in ("usr", "dev/disk/by-uuid", "proc", "sys", "boot/grub", "etc/default",
                  "tmp", "run"):
            (mnt / d).mkdir(parents=True, exist_ok=True)
        for link in ("bin", "sbin", "lib", "lib64"):
            (mnt / link).symlink_to(f"usr/{link}")
        subprocess.run(["cp", "-a", "/dev/null", "/dev/zero", "/dev/urandom", loop,
                        str(mnt / "dev")], check=True)
        shutil.copytree("/etc/grub.d", mnt / "etc/grub.d", symlinks=True)
        extra = f"GRUB_DEVICE={device}\n"
        if uuid is not None:
            extra += f"GRUB_DEVICE_UUID={uuid}\n"
            # The device node the link leads to: the loop device under the root's name.
            subprocess.run(["cp", "-a", loop, str(mnt / device.lstrip("/"))], check=True)
            (mnt / "dev/disk/by-uuid" / uuid).symlink_to("../../" + device.rsplit("/", 1)[1])
        (mnt / "etc/default/grub").write_text(settings + "\n" + extra)
        for version in kernels:
            (mnt / f"boot/vmlinuz-{version}").write_text("kernel\n")
            (mnt / f"boot/initrd.img-{version}").write_text("initrd\n")
        for source, target, opts in (("/usr", "usr", ["--bind", "-o", "ro"]),
                                     ("proc", "proc", ["-t", "proc"]),
                                     ("/sys", "sys", ["--bind"])):
            subprocess.run(["mount", *opts, source, str(mnt / target)], check=True)
            mounted.append(mnt / target)
        subprocess.run(["chroot", str(mnt), "grub-mkconfig", "-o", "/boot/grub/grub.cfg"],
                       check=True, capture_output=True)
        return (mnt / "boot/grub/grub.cfg").read_text()
    finally:
        for point in reversed(mounted):
            # never left for pytest's clean-up to walk into (the host's /usr is bound
            # under it); nothing is read from it after
            unmount(point, lazy=True)
        subprocess.run(["losetup", "-d", loop], check=False)


def grub_editenv(path: Path, *assignments: str) -> bytes:
    """A grubenv made by ``grub-editenv PATH create`` and ``set`` of ``assignments``."""
    subprocess.run(["grub-editenv", str(path), "create"], check=True)
    if assignments:
        subprocess.run(["grub-editenv", str(path), "set", *assignments], check=True)
    return path.read_bytes()


def grub_editenv_list(path: Path) -> str:
    """``grub-editenv PATH list``: the oracle of what GRUB's load_env reads."""
    return subprocess.run(["grub-editenv", str(path), "list"], check=True,
                          capture_output=True, text=True).stdout
