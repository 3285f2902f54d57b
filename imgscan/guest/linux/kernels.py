"""Installed kernels, each with its initramfs and how it gets the VirtIO and Xen drivers.

Source: ../shared/docs/json-contract.md (``linux.kernels``) and import-rules.md
section 1.3: Huawei IMS needs ``virtio_blk virtio_scsi virtio_net virtio_pci
virtio_ring virtio`` in the initramfs (or built in) and a kernel newer than
2.6.24, and removes "PV drivers" at registration.

A kernel is installed when its image is: ``/boot/vmlinuz-V`` (``vmlinux-V``,
``Image-V``), or ``/usr/lib/modules/V/vmlinuz`` as Fedora's and RHEL's BLS
layouts keep it. A module tree without an image is what a removed kernel leaves
behind, not a kernel.

Each driver is in one state, the first that holds: ``builtin`` (``=y`` in the
kernel's config, ``/boot/config-V`` or ``/usr/lib/modules/V/config``, or listed
in ``modules.builtin``), ``initramfs`` (its module file is a member of the
kernel's initramfs), ``module`` (listed in the module tree's ``modules.dep``, else
``modules.order``), else None. Module names compare as the kernel's module loader
compares them: without the ``.ko`` (and ``.xz``/``.zst``/``.gz``) suffix, ``-`` as ``_``.

``xen_pv`` is True when the initramfs holds one of the out-of-tree Xen PV drivers
for HVM guests (the "unmodified drivers" of Xen, Citrix and Huawei's UVP:
``xen-platform-pci``, ``xen-vbd``, ``xen-vnif``, ``xen-scsi``, ``xen-balloon``,
``xen-hcall``): those are the PV drivers IMS removes. The kernel's own Xen
frontends (``xen-blkfront``, ``xen-netfront``) are not: Huawei asks for them in
the initramfs next to VirtIO; their states are the extension key ``xen``.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import ImageError
from imgscan.findings import finding_id

from .initramfs import tree_members
from .versions import newest_first

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .tree import GuestTree

#: The contract's four drivers, then the two IMS also lists (extension keys of ``virtio``).
VIRTIO_DRIVERS = ("virtio_blk", "virtio_scsi", "virtio_net", "virtio_pci", "virtio_ring",
                  "virtio")
#: The kernel's Xen frontends (the extension key ``xen``).
XEN_FRONTENDS = ("xen_blkfront", "xen_netfront")
#: The Hyper-V drivers Azure needs in the initramfs (import-rules.md 2.1; the extension
#: key ``hyperv``): the VMBus, its storage and its network driver.
HYPERV_DRIVERS = ("hv_vmbus", "hv_storvsc", "hv_netvsc")
#: The Kconfig symbol that builds each driver (virtio_ring is part of CONFIG_VIRTIO).
CONFIG_SYMBOLS = {
    "virtio_blk": "CONFIG_VIRTIO_BLK",
    "virtio_scsi": "CONFIG_SCSI_VIRTIO",
    "virtio_net": "CONFIG_VIRTIO_NET",
    "virtio_pci": "CONFIG_VIRTIO_PCI",
    "virtio_ring": "CONFIG_VIRTIO",
    "virtio": "CONFIG_VIRTIO",
    "xen_blkfront": "CONFIG_XEN_BLKDEV_FRONTEND",
    "xen_netfront": "CONFIG_XEN_NETDEV_FRONTEND",
    "hv_vmbus": "CONFIG_HYPERV",
    "hv_storvsc": "CONFIG_HYPERV_STORAGE",
    "hv_netvsc": "CONFIG_HYPERV_NET",
}
#: The out-of-tree Xen PV drivers IMS removes (module names, normalised).
XEN_PV_MODULES = frozenset(("xen_platform_pci", "xen_vbd", "xen_vnif", "xen_scsi",
                            "xen_balloon", "xen_hcall"))

#: Kernel images in /boot: the prefix before the version.
IMAGE_PREFIXES = ("vmlinuz-", "vmlinux-", "Image-")
#: Module trees; /usr/lib/modules first, the real one where /lib links to usr/lib.
MODULE_ROOTS = ("/usr/lib/modules", "/lib/modules")
#: Where each distribution family puts the initramfs of kernel ``{v}``.
INITRAMFS_NAMES = ("/boot/initrd.img-{v}", "/boot/initramfs-{v}.img", "/boot/initrd-{v}",
                   "/boot/initrd-{v}.img", "/boot/initramfs-{v}")
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")



def module_name(path: str) -> str | None:
    """The module name of a module file path (``.../xen-blkfront.ko.xz`` -> ``xen_blkfront``);
    None when the path is not a module file."""
    base = path[path.rfind("/") + 1:]      # posixpath.basename, without its call's cost
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            return base[:-len(suffix)].replace("-", "_")
    return None


# -- finding the kernels -----------------------------------------------------------------
def _listing(tree: GuestTree, path: str) -> list[str]:
    names = tree.listdir(path)
    limits.enforce(len(names), "LINUX_MAX_ENTRIES", tree.where(path), "directory", None,
                   "entries")
    return names


def installed(tree: GuestTree) -> dict[str, str]:
    """Each installed kernel's version -> its image path."""
    images: dict[str, str] = {}
    for name in sorted(_listing(tree, "/boot")):
        for prefix in IMAGE_PREFIXES:
            path = f"/boot/{name}"
            if name.startswith(prefix) and len(name) > len(prefix) \
                    and tree.kind(path) == "file":
                images.setdefault(name[len(prefix):], path)
    for root in MODULE_ROOTS:
        for version in sorted(_listing(tree, root)):
            path = f"{root}/{version}/vmlinuz"
            if version not in images and tree.kind(path) == "file":
                images[version] = path
    return images


def _modules_dir(tree: GuestTree, version: str) -> str | None:
    return next((f"{root}/{version}" for root in MODULE_ROOTS
                 if tree.kind(f"{root}/{version}") == "dir"), None)


def _module_names(text: str | None) -> set[str]:
    """The module names of a modules.dep / modules.order / modules.builtin text."""
    names: set[str] = set()
    for line in (text or "").splitlines():
        name = module_name(line.partition(":")[0].strip())
        if name is not None:
            names.add(name)
    return names


def _builtin_by_config(text: str | None) -> set[str]:
    """The drivers whose Kconfig symbol is ``=y`` in a kernel config text."""
    set_y = {line[:-2] for line in (text or "").splitlines() if line.endswith("=y")}
    return {driver for driver, symbol in CONFIG_SYMBOLS.items() if symbol in set_y}


def kernel(tree: GuestTree, version: str, image: str) -> dict[str, Any]:
    """The contract's kernel object for ``version`` (with the extension keys ``xen`` and
    ``hyperv``)."""
    modules = _modules_dir(tree, version)
    config = tree.text(f"/boot/config-{version}")
    if config is None and modules is not None:
        config = tree.text(f"{modules}/config")
    builtin = _builtin_by_config(config)
    available: set[str] = set()
    if modules is not None:
        builtin |= _module_names(tree.text(f"{modules}/modules.builtin"))
        dep = tree.text(f"{modules}/modules.dep")
        available = _module_names(dep if dep is not None
                                  else tree.text(f"{modules}/modules.order"))
    initramfs = next((path for path in (name.format(v=version) for name in INITRAMFS_NAMES)
                      if tree.kind(path) == "file"), None)
    in_initramfs: set[str] = set()
    unreadable: ImageError | None = None
    if initramfs is not None:
        try:
            in_initramfs = {name for name in map(module_name,
                                                 tree_members(tree, initramfs) or [])
                            if name is not None}
        except ImageError as exc:
            # One corrupt initramfs costs its own facts, not the kernel list: what is
            # not built in is then not known (None), never "module".
            unreadable = exc

    def state(driver: str) -> str | None:
        if driver in builtin:
            return "builtin"
        if unreadable is not None:
            return None
        if driver in in_initramfs:
            return "initramfs"
        return "module" if driver in available else None

    found = {
        "version": version,
        "image": image,
        "initramfs": initramfs,
        "virtio": {driver: state(driver) for driver in VIRTIO_DRIVERS},
        "xen_pv": bool(in_initramfs & XEN_PV_MODULES),
        "xen": {driver: state(driver) for driver in XEN_FRONTENDS},
        "hyperv": {driver: state(driver) for driver in HYPERV_DRIVERS},
    }
    if unreadable is not None:
        found["initramfs_error"] = {"id": finding_id(unreadable), "message": str(unreadable)}
    return found


def kernels(tree: GuestTree) -> tuple[list[dict[str, Any]], str]:
    """Every installed kernel, newest first, and the evidence: where the images are."""
    images = installed(tree)
    versions = newest_first(images)
    found = [kernel(tree, version, images[version]) for version in versions]
    evidence = ", ".join(tree.where(images[v]) for v in versions)
    return found, evidence or tree.where("/boot")
