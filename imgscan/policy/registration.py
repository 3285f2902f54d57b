"""The parameters to register an image with, per cloud, where the image's facts decide them.

Rules say whether a cloud takes an image; these say how to tell the cloud what it
is: the boot firmware (Huawei/OpenStack ``hw_firmware_type``, AWS ``--boot-mode``,
Azure ``HyperVGeneration``, Alibaba ``BootMode``, Google ``UEFI_COMPATIBLE``), the
disk bus the guest has drivers for (OpenStack ``hw_disk_bus``), the OS
(``os_distro``, Huawei ``os_version``) and the smallest system disk (``min_disk``).
Sources: import-rules.md sections 1.2-1.5 and 1.9 (Huawei IMS, Open Telekom Cloud) and
2.1 (AWS ``import-image --boot-mode``, Azure ``HyperVGeneration``, Glance image
properties, Alibaba ``ImportImage`` ``BootMode``/``Architecture``/``Platform``, Google
``--guest-os-features``). A parameter whose fact was not read is left out: a guess
would be worse than the cloud's default.

Each suggestion is ``{"value": ..., "from": the facts it follows from}``.
"""

from __future__ import annotations

from imgscan.vocabulary import LINUX, WINDOWS

from .framework import default_kernel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Suggestions = dict[str, dict[str, Any]]

GiB = 1 << 30

#: os-release ``ID`` -> OpenStack ``os_distro`` (libosinfo-style short names, as the
#: Glance "useful image properties" list spells them).
OS_DISTRO = {"ubuntu": "ubuntu", "debian": "debian", "centos": "centos", "rhel": "rhel",
             "fedora": "fedora", "sles": "sles", "opensuse-leap": "opensuse",
             "opensuse": "opensuse", "ol": "rhel", "rocky": "rocky", "almalinux": "almalinux",
             "arch": "arch", "freebsd": "freebsd", "gentoo": "gentoo"}
#: The guest arch -> its architecture name in AWS's naming and in the others' (Alibaba,
#: Google): the columns :data:`AWS_NAMING` and :data:`OTHER_NAMING`.
ARCH_NAMES = {"x86_64": ("x86_64", "x86_64"), "aarch64": ("aarch64", "arm64"),
              "arm64": ("aarch64", "arm64"), "x86": ("i686", "i386")}
AWS_NAMING, OTHER_NAMING = 0, 1


def _entry(value: Any, source: str) -> dict[str, Any]:
    return {"value": value, "from": source}


def _guest(info: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    if info.get("windows"):
        return WINDOWS, info["windows"]
    if info.get("linux"):
        return LINUX, info["linux"]
    return None, {}


def _firmware(info: Mapping[str, Any]) -> str | None:
    """``bios`` or ``uefi``: the firmware the disk boots by (``hybrid`` boots by BIOS,
    every cloud's default), None when no boot path was found."""
    mode = info.get("boot_mode")
    return {"bios": "bios", "hybrid": "bios", "uefi": "uefi"}.get(str(mode))


def _boot_source(info: Mapping[str, Any]) -> str:
    return f"boot_mode {info.get('boot_mode')}"


def _firmware_entry(info: Mapping[str, Any], key: str, bios: str, uefi: str) -> Suggestions:
    """``{key: bios or uefi}``, the cloud's word for the firmware the disk boots by;
    {} when no boot path was found."""
    firmware = _firmware(info)
    if firmware is None:
        return {}
    return {key: _entry(uefi if firmware == "uefi" else bios, _boot_source(info))}


def _platform_entry(info: Mapping[str, Any], key: str, capitalised: bool = True) -> Suggestions:
    """``{key: Windows or Linux}`` (``windows`` / ``linux`` unless ``capitalised``), the
    guest OS found; {} when none was."""
    os, _ = _guest(info)
    if os is None:
        return {}
    return {key: _entry(os.capitalize() if capitalised else os, f"{os} object found")}


def _architecture_entry(info: Mapping[str, Any], key: str, naming: int,
                        upper: bool = False) -> Suggestions:
    """``{key: the guest's arch}`` in the cloud's naming (a column of :data:`ARCH_NAMES`),
    upper-cased for ``upper``; {} when the arch is not read or not named there."""
    os, g = _guest(info)
    if g.get("arch") not in ARCH_NAMES:
        return {}
    name = ARCH_NAMES[g["arch"]][naming]
    return {key: _entry(name.upper() if upper else name, f"{os}.arch")}


def _min_disk_gib(info: Mapping[str, Any], floor: int) -> dict[str, Any]:
    size = int(info.get("virtual_size") or 0)
    gib = max(floor, -(-size // GiB))
    return _entry(gib, f"virtual_size {size} rounded up to GiB (at least {floor})")


def _bits(arch: str | None) -> str:
    return "32bit" if arch == "x86" else "64bit"


def _os_name(info: Mapping[str, Any]) -> tuple[str, str] | None:
    """A readable OS name and the facts it was made from."""
    os, g = _guest(info)
    if os == WINDOWS and g.get("product_name"):
        return str(g["product_name"]), "windows.product_name, windows.arch"
    if os == LINUX and g.get("name") and g.get("version_id"):
        return f"{g['name']} {g['version_id']}", "linux.name, linux.version_id, linux.arch"
    return None


def huawei(info: Mapping[str, Any], floor: int = 40) -> Suggestions:
    """IMS ``POST /v2/cloudimages/action``: ``os_version`` (the product and its bits, to be
    matched against the cloud's list), ``min_disk`` (at least the virtual size)."""
    out: Suggestions = {"min_disk": _min_disk_gib(info, floor)}
    _, g = _guest(info)
    named = _os_name(info)
    if named is not None:
        out["os_version"] = _entry(f"{named[0]} {_bits(g.get('arch'))}", named[1])
    out |= _firmware_entry(info, "hw_firmware_type", "bios", "uefi")
    return out


def otc(info: Mapping[str, Any]) -> Suggestions:
    """Open Telekom Cloud IMS: as Huawei, with ``min_disk`` from 1 GiB (section 1.9)."""
    return huawei(info, floor=1)


def _disk_bus(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """``virtio`` when the guest has the VirtIO block driver at boot, ``scsi`` (with
    ``hw_scsi_model=virtio-scsi``) for VirtIO SCSI only, else ``ide``."""
    os, g = _guest(info)
    if os == WINDOWS:
        drivers = g.get("drivers") or {}
        if drivers.get("viostor") in (0, 1, 2, 3):
            return _entry("virtio", "windows.drivers.viostor")
        if drivers.get("vioscsi") in (0, 1, 2, 3):
            return _entry("scsi", "windows.drivers.vioscsi")
        return _entry("ide", "windows.drivers (no viostor, no vioscsi)")
    if os == LINUX:
        kernel = default_kernel(g)
        if kernel is None:
            return None
        virtio = kernel.get("virtio") or {}
        where = f"linux.kernels[{kernel.get('version')}].virtio"
        if virtio.get("virtio_blk") in ("builtin", "initramfs"):
            return _entry("virtio", f"{where}.virtio_blk")
        if virtio.get("virtio_scsi") in ("builtin", "initramfs"):
            return _entry("scsi", f"{where}.virtio_scsi")
        return _entry("ide", f"{where} (no virtio_blk, no virtio_scsi at boot)")
    return None


def openstack(info: Mapping[str, Any]) -> Suggestions:
    """Glance image properties: ``disk_format`` as the content is (never the file name:
    ``require_image_format_match``), ``hw_firmware_type``, ``hw_disk_bus``, ``os_type``,
    ``os_distro``, ``min_disk``."""
    fmt = info.get("format")
    out: Suggestions = {"disk_format": _entry(fmt, _glance_format_source(info)),
                        "container_format": _entry("bare", "one disk image file")}
    out |= _firmware_entry(info, "hw_firmware_type", "bios", "uefi")
    if _firmware(info) == "uefi":
        out["hw_machine_type"] = _entry("q35", _boot_source(info))
    bus = _disk_bus(info)
    if bus is not None:
        out["hw_disk_bus"] = bus
        if bus["value"] == "scsi":
            out["hw_scsi_model"] = _entry("virtio-scsi", bus["from"])
    out |= _platform_entry(info, "os_type", capitalised=False)
    os, g = _guest(info)
    if os == WINDOWS:
        out["os_distro"] = _entry("windows", "windows object found")
    elif os == LINUX and g.get("distro") in OS_DISTRO:
        out["os_distro"] = _entry(OS_DISTRO[str(g["distro"])], "linux.distro")
    if os == LINUX and g.get("version_id"):
        out["os_version"] = _entry(g["version_id"], "linux.version_id")
    out["min_disk"] = _min_disk_gib(info, 1)
    return out


def _glance_format_source(info: Mapping[str, Any]) -> str:
    """Where ``disk_format`` comes from. A raw disk holding a GPT may also be registered
    as ``gpt`` from Glance 2025.1 on (import-rules.md 2.1: "plus gpt (2025.1)"); ``raw``
    stays the suggestion because it is still the catch-all every release and deployment
    takes, and ``gpt`` is one a deployer may leave out of ``[image_format]/disk_formats``."""
    if info.get("format") == "raw" and info.get("partition_table") == "gpt":
        return "format (content); a GPT disk: disk_format=gpt also from Glance 2025.1"
    return "format (content)"


def aws(info: Mapping[str, Any]) -> Suggestions:
    """``aws ec2 import-image --boot-mode legacy-bios|uefi`` (``uefi-preferred`` is not
    accepted for import), ``--platform``, ``--architecture``."""
    return (_firmware_entry(info, "--boot-mode", "legacy-bios", "uefi")
            | _platform_entry(info, "--platform")
            | _architecture_entry(info, "--architecture", AWS_NAMING))


def azure(info: Mapping[str, Any]) -> Suggestions:
    """``az disk create --hyper-v-generation V1|V2 --os-type ... --upload-size-bytes``:
    Gen1 boots by BIOS, Gen2 by UEFI; the upload size is the fixed VHD's file size."""
    out = _firmware_entry(info, "HyperVGeneration", "V1", "V2") \
        | _platform_entry(info, "--os-type")
    if info.get("format") == "vhd" and info.get("subformat") == "fixed":
        out["--upload-size-bytes"] = _entry(info.get("file_size"), "file_size (fixed VHD)")
    return out


def gcp(info: Mapping[str, Any]) -> Suggestions:
    """``gcloud compute images create --guest-os-features=UEFI_COMPATIBLE`` for a disk
    that boots by UEFI; ``--architecture``."""
    out: Suggestions = {}
    if info.get("boot_mode") in ("uefi", "hybrid"):
        out["--guest-os-features"] = _entry("UEFI_COMPATIBLE", _boot_source(info))
    return out | _architecture_entry(info, "--architecture", OTHER_NAMING, upper=True)


def alibaba(info: Mapping[str, Any]) -> Suggestions:
    """``ImportImage``: ``BootMode`` (BIOS / UEFI), ``Platform``, ``Architecture``
    (x86_64 / arm64), ``DiskDeviceMapping.DiskImageSize`` (GiB, at least 5)."""
    out = _firmware_entry(info, "BootMode", "BIOS", "UEFI")
    os, g = _guest(info)
    named = _os_name(info)
    if os == LINUX and g.get("distro"):
        out["Platform"] = _entry(g.get("name") or g["distro"], "linux.name")
    elif os == WINDOWS and named is not None:
        out["Platform"] = _entry("Windows Server" if "Server" in named[0] else "Windows",
                                 "windows.product_name")
    out |= _architecture_entry(info, "Architecture", OTHER_NAMING)
    out["DiskImageSize"] = _min_disk_gib(info, 5)
    return out


#: Every cloud a profile may name in its ``registration`` key.
CLOUDS: dict[str, Callable[[Mapping[str, Any]], Suggestions]] = {
    "huawei": huawei, "otc": otc, "openstack": openstack, "aws": aws, "azure": azure,
    "gcp": gcp, "alibaba": alibaba}


def suggest(cloud: str | None, info: Mapping[str, Any]) -> Suggestions:
    """The registration parameters of ``cloud`` for ``info`` ({} when there is none)."""
    return CLOUDS[cloud](info) if cloud else {}
