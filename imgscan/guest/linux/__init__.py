"""Linux guest inspection: the contract's ``linux`` object, each fact with its evidence.

Source: ../shared/docs/json-contract.md (the ``linux`` object) and import-rules.md
section 1.3 (what Huawei IMS needs of a Linux system disk). :func:`inspect` finds
the root filesystem and mounts its ``/boot`` and ``/usr`` (:mod:`.rootfs`, over
the disk's volumes of :mod:`.volumes`), then asks one collector per fact, each
reading the guest through :class:`~.tree.GuestTree`:

* release (:mod:`.release`), architecture (:mod:`.elf`), kernels, their initramfs
  and VirtIO drivers (:mod:`.kernels`), the boot loader (:mod:`.boot`);
* ``/etc/fstab`` (:mod:`.fstab`), network (:mod:`.network`), udev persistent-net
  rules (:mod:`.netrules`), cloud-init (:mod:`.cloudinit`), the root password
  (:mod:`.shadow`), SELinux (:mod:`.selinux`), VMware Tools (:mod:`.vmtools`).

A collector that stops on a damaged structure costs only its own fact: the fact
is null (or empty) and a ``linux:`` finding says why, filed under the ``linux``
stage. Extension keys beside the contract's: ``vmware_tools`` and ``qemu_guest_agent``
(:mod:`.vmtools`), ``sshd`` and ``waagent`` (:mod:`.daemons`), ``modprobe_blacklist``
(:mod:`.modprobe`), ``ssh_key_users`` (:mod:`.authkeys`), ``root_features`` (the root
filesystem's feature flags), ``root_free_bytes`` (its free space), ``efi_fallback_loader``
(:mod:`.efi`), ``mounts`` (the
separate volumes mounted), ``boot_entries`` and ``boot_problems`` (every boot menu
entry and what could not be read of the menu).
"""

from __future__ import annotations

from imgscan.errors import ImageError
from imgscan.findings import Finding, finding_id

# Modules, not their functions: several collectors share their module's name, and
# importing the function here would hide the module (imgscan.guest.linux.fstab).
from . import (
    authkeys,
    boot,
    cloudinit,
    daemons,
    efi,
    elf,
    fstab,
    kernels,
    modprobe,
    netrules,
    network,
    release,
    selinux,
    shadow,
    vmtools,
)
from .rootfs import Root, find_root
from .volumes import disk_volumes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan.layout import Layout

    from .tree import GuestTree

    Read = Callable[[int, int], bytes]

__all__ = ["inspect"]


def inspect(read: Read, layout: Layout, name: str = "guest disk"
            ) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The ``linux`` object of the disk ``read`` reads (None when it holds no Linux
    root) and the findings of the inspection; ``name`` names the image in errors."""
    findings: list[Finding] = []
    disk = disk_volumes(read, layout)
    root = find_root(disk, name, findings)
    if root is None:
        return None, findings
    return Collector(root, findings).linux(), findings


class Collector:
    """The facts of one Linux root, gathered with their evidence and findings."""

    def __init__(self, root: Root, findings: list[Finding]) -> None:
        self.root = root
        self.tree: GuestTree = root.tree
        self.findings = findings
        self.evidence: dict[str, str] = {}
        #: The root filesystem's own facts (state, features), once clean() read them.
        self.fs_facts: dict[str, Any] | None = None

    def gather(self, fact: str, collect: Callable[[], tuple[Any, str | None]],
               empty: Any) -> Any:
        """``collect()``'s value, its evidence filed under ``fact``; ``empty`` and a
        finding when it stops on a damaged or oversized structure."""
        try:
            value, where = collect()
        except ImageError as exc:
            self.findings.append(Finding(finding_id(exc), "warning",
                                         f"linux: {fact} not read: {exc}"))
            return empty
        if where:
            self.evidence[fact] = where
        return value

    def linux(self) -> dict[str, Any]:
        tree, root = self.tree, self.root
        info = self.gather("release", lambda: release.release(tree),
                           {"distro": None, "distro_like": [], "name": None,
                            "version_id": None, "pretty_name": None})
        if "release" in self.evidence:
            where = self.evidence.pop("release")
            self.evidence.update(dict.fromkeys(info, where))
        menu = self.gather("bootloader", lambda: (boot.bootloader(tree), None),
                           {"bootloader": None, "default_kernel": None,
                            "kernel_cmdline": None, "root_device_by": None,
                            "boot_entries": [], "boot_problems": [], "evidence": {}})
        self.evidence.update(menu.pop("evidence"))
        cmdline: str | None = menu["kernel_cmdline"]
        installed = self.gather("kernels", lambda: kernels.kernels(tree), [])
        for k in installed:
            error = k.get("initramfs_error")
            if error:
                self.findings.append(Finding(error["id"], "warning",
                                             f"linux: initramfs {k['initramfs']} not read, its "
                                             f"drivers not known: {error['message']}"))
        arch = self.gather("arch", lambda: elf.arch(tree), None)
        obj: dict[str, Any] = {
            "root": {"partition": root.volume.partition, "lvm": root.volume.lvm,
                     "filesystem": root.volume.filesystem, "uuid": root.volume.uuid,
                     "subvolume": root.subvolume},
            **info,
            "arch": arch,
            "kernels": installed,
            "default_kernel": menu["default_kernel"],
            "bootloader": menu["bootloader"],
            "boot_partition": self.boot_partition(),
            "kernel_cmdline": cmdline,
            "root_device_by": menu["root_device_by"],
            "fstab": self.gather("fstab", lambda: fstab.fstab(tree, root.disk.ids), []),
            "cloud_init": self.gather("cloud_init", lambda: cloudinit.cloud_init(tree, cmdline),
                                      {"installed": False, "enabled": None,
                                       "datasources": None}),
            "network": self.gather("network", lambda: network.network(tree), []),
            "persistent_net_rules": self.gather("persistent_net_rules",
                                                lambda: netrules.persistent_net_rules(tree), []),
            "clean": self.clean(),
            "root_password": self.gather("root_password", lambda: shadow.root_password(tree), None),
            "selinux": self.gather("selinux", lambda: selinux.selinux(tree, cmdline), None),
            "vmware_tools": self.gather("vmware_tools", lambda: vmtools.vmware_tools(tree), None),
            "sshd": self.gather("sshd", lambda: daemons.sshd(tree),
                                {"installed": False, "enabled": None}),
            "waagent": self.gather("waagent", lambda: daemons.waagent(tree),
                                   {"installed": False, "enabled": None}),
            "qemu_guest_agent": self.gather("qemu_guest_agent",
                                            lambda: vmtools.qemu_guest_agent(tree), None),
            "modprobe_blacklist": self.gather(
                "modprobe_blacklist", lambda: modprobe.blacklisted(tree, cmdline), None),
            "ssh_key_users": self.gather("ssh_key_users", lambda: authkeys.key_users(tree),
                                         None),
            "root_features": self.root_features(),
            "root_free_bytes": self.root_free_bytes(),
            "efi_fallback_loader": self.gather("efi_fallback_loader",
                                               lambda: efi.fallback_loader(tree, arch), None),
            "mounts": [{"mountpoint": m.mountpoint, "volume": m.source,
                        "filesystem": m.fs.filesystem} for m in reversed(tree.mounts)],
            "boot_entries": menu["boot_entries"],
            "boot_problems": menu["boot_problems"],
        }
        self.evidence["root"] = f"{root.volume.source}: etc/ with a release file, usr/ or bin/"
        obj["evidence"] = self.evidence
        return obj

    def boot_partition(self) -> int | None:
        """The partition holding /boot: the separate one mounted, the root's when /boot is
        not separate, None when fstab puts /boot on another disk."""
        separate = self.root.mount("/boot")
        if separate is not None:
            self.evidence["boot_partition"] = f"/etc/fstab /boot ({separate.source})"
            return separate.volume.partition
        if self.root.boot_elsewhere:
            self.evidence["boot_partition"] = "/etc/fstab names a /boot not on this disk"
            return None
        self.evidence["boot_partition"] = f"/boot on the root ({self.root.volume.source})"
        return self.root.volume.partition

    def root_features(self) -> list[str] | None:
        """The root filesystem's feature flags (ext2/3/4: the superblock's compat,
        incompat and ro_compat names, as dumpe2fs lists them); None for other
        filesystems."""
        features = (self.fs_facts or {}).get("features")  # read by clean()
        if features is None:
            return None
        self.evidence["root_features"] = f"{self.root.volume.source} " \
            f"{self.root.volume.filesystem} superblock feature flags"
        return list(features)

    def root_free_bytes(self) -> int | None:
        """Free bytes of the root filesystem, from its superblock's free block count
        (ext2/3/4, XFS); None for other filesystems."""
        facts = self.fs_facts or {}  # read by clean()
        blocks, size = facts.get("free_blocks"), facts.get("block_size")
        if not isinstance(blocks, int) or not isinstance(size, int):
            return None
        self.evidence["root_free_bytes"] = f"{self.root.volume.source} " \
            f"{self.root.volume.filesystem} superblock: {blocks} free blocks of {size} bytes"
        return blocks * size

    def clean(self) -> bool | None:
        """Whether the root filesystem was unmounted cleanly, from its own state."""
        try:
            facts = self.fs_facts = self.root.fs.facts()
        except ImageError as exc:
            self.findings.append(Finding(finding_id(exc), "warning",
                                         f"linux: root filesystem state not read: {exc}"))
            return None
        dirty = facts.get("dirty")
        self.evidence["clean"] = f"{self.root.volume.source} {self.root.volume.filesystem} " \
            f"superblock: {facts.get('state')}"
        return None if dirty is None else not dirty
