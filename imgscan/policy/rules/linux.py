"""Rules on the Linux installation: release, kernel and drivers, boot names, network,
login, shutdown state.

Source: import-rules.md section 1.3 (Huawei IMS Linux constraints and what its
registration-time automatic configuration repairs), 1.5 (the supported and the
UEFI-capable releases). Each rule reads the ``linux`` object
(``needs_linux=True``): the framework answers ``unknown`` when there is none.
Releases are written ``ID MIN-MAX`` (or ``ID VERSION``) with the os-release ``ID``
and dotted ``VERSION_ID`` values (``rhel 8.0-8.7``, ``ubuntu 22.04``); see
:func:`release_listed`.
"""

from __future__ import annotations

import re

from imgscan.units import human_size
from imgscan.vocabulary import FAIL, LINUX, PASS, UNKNOWN, WARN

from ..framework import Outcome, architecture, default_kernel, rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ..framework import Facts


def _version(text: str) -> tuple[int, ...]:
    """The leading dotted numbers of a version (``"6.1.0-57-cloud"`` -> ``(6, 1, 0)``)."""
    m = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def release_listed(distro: str | None, version_id: str | None,
                   releases: Sequence[str]) -> str | None:
    """The entry of ``releases`` (``ID MIN-MAX`` or ``ID VERSION``) naming this release,
    or None. A version given with fewer parts than the range compares on those parts
    (Debian's ``VERSION_ID`` ``12`` is in ``12.0``; CentOS Stream's ``8`` in ``8.0-8.5``)."""
    if not distro or not version_id:
        return None
    have = _version(version_id)
    if not have:
        return None
    for entry in releases:
        name, _, span = entry.partition(" ")
        if name.lower() != distro.lower():
            continue
        low, _, high = span.partition("-")
        lo, hi = _version(low), _version(high or low)
        if lo[:len(have)] <= have <= hi[:len(have)]:
            return entry
    return None


def _release(lx: Mapping[str, Any]) -> str:
    return str(lx.get("pretty_name") or
               " ".join(str(x) for x in (lx.get("distro"), lx.get("version_id")) if x)
               or "an unidentified Linux")


@rule("linux-os-supported", "the Linux release is on the cloud's supported list",
      needs_linux=True)
def linux_os_supported(f: Facts, lx: Mapping[str, Any], *, releases: Sequence[str]) -> Outcome:
    ev = {**f.ev("linux.distro"), **f.ev("linux.version_id"), **f.ev("linux.pretty_name")}
    if not lx.get("distro"):
        return Outcome(UNKNOWN, "the distribution could not be identified (no os-release "
                       "or release file read)", ev)
    entry = release_listed(lx.get("distro"), lx.get("version_id"), releases)
    if entry is not None:
        return Outcome(PASS, f"{_release(lx)} is supported ({entry})", ev)
    return Outcome(FAIL, f"{_release(lx)} is not on the supported list: it registers as "
                   "Other_Linux, without automatic configuration", ev,
                   "register with os_version Other_Linux and prepare drivers, fstab and "
                   "GRUB yourself, or use a supported release")


@rule("linux-architecture", "the OS runs fully virtualized on a supported architecture",
      needs_linux=True)
def linux_architecture(f: Facts, lx: Mapping[str, Any], *, arches: Sequence[str]) -> Outcome:
    return architecture(f, LINUX, arches,
                        "no ELF header of the init program or /bin/sh could be read",
                        "use a build of the distribution for one of those architectures")


@rule("linux-boot-mode", "x86 boots by BIOS (UEFI only for the listed releases); Arm by UEFI",
      needs_linux=True)
def linux_boot_mode(f: Facts, lx: Mapping[str, Any], *, uefi_releases: Sequence[str],
                    uefi_only_arches: Sequence[str]) -> Outcome:
    mode = f.info.get("boot_mode")
    seen = "; ".join(f.info.get("boot_evidence") or []) or "no boot path"
    ev = {**f.ev("boot_mode", source=seen), **f.ev("linux.arch"), **f.ev("linux.bootloader")}
    arch = lx.get("arch")
    if arch in uefi_only_arches:
        if mode in ("uefi", "hybrid"):
            return Outcome(PASS, f"{arch} boots by UEFI ({seen})", ev)
        return Outcome(FAIL, f"{arch} images must boot by UEFI; this disk boots by {mode} "
                       f"({seen})", ev, "install GRUB for EFI on an ESP (grub-install "
                       "--target=arm64-efi) and export again")
    if mode in ("bios", "hybrid"):
        return Outcome(PASS, f"boot mode {mode} ({seen})", ev)
    if mode == "uefi":
        entry = release_listed(lx.get("distro"), lx.get("version_id"), uefi_releases)
        if entry is not None:
            return Outcome(PASS, f"UEFI boot, and {_release(lx)} may boot by UEFI ({entry})",
                           ev, None)
        return Outcome(FAIL, f"UEFI boot only ({seen}), and {_release(lx)} is not on the "
                       "list of releases that may boot by UEFI", ev,
                       "install GRUB for BIOS (grub-install --target=i386-pc /dev/sda, with a "
                       "BIOS boot partition on GPT) and export again")
    return Outcome(FAIL, f"no BIOS boot path ({seen})", ev,
                   "install a boot loader in the MBR: grub-install --target=i386-pc /dev/sda")


@rule("linux-boot-same-disk", "/boot and the root filesystem are on this disk",
      needs_linux=True)
def linux_boot_same_disk(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ev = {**f.ev("linux.boot_partition"), **f.ev("linux.root"), **f.ev("linux.fstab")}
    away = [e for e in lx.get("fstab") or []
            if e.get("mountpoint") in ("/boot", "/usr", "/") and e.get("on_this_disk") is False]
    if away:
        names = ", ".join(f"{e['mountpoint']} ({e['spec']})" for e in away)
        return Outcome(FAIL, f"{names} on another disk: the system spans disks", ev,
                       "move /boot and /usr onto the system disk (or export every disk as "
                       "one image) before export")
    if lx.get("boot_partition") is None:
        return Outcome(UNKNOWN, "no kernel or boot loader configuration was found on this "
                       "disk", ev)
    return Outcome(PASS, f"/boot on partition {lx['boot_partition']}, root on partition "
                   f"{(lx.get('root') or {}).get('partition')}", ev)


@rule("virtio-drivers", "the default kernel has the VirtIO drivers built in or in its initramfs",
      needs_linux=True)
def virtio_drivers(f: Facts, lx: Mapping[str, Any], *, modules: Sequence[str]) -> Outcome:
    return _drivers_at_boot(f, lx, "virtio", modules,
                            "add the modules to the initramfs and rebuild it: Debian/Ubuntu: "
                            "list them in /etc/initramfs-tools/modules, update-initramfs -u; "
                            "RHEL/SUSE: add_drivers+=\" virtio_blk virtio_scsi virtio_net "
                            "virtio_pci \" in /etc/dracut.conf.d/virtio.conf, dracut -f")


@rule("hyperv-drivers", "the default kernel has the Hyper-V drivers built in or in its initramfs",
      needs_linux=True)
def hyperv_drivers(f: Facts, lx: Mapping[str, Any], *, modules: Sequence[str]) -> Outcome:
    return _drivers_at_boot(f, lx, "hyperv", modules,
                            "add hv_vmbus, hv_storvsc and hv_netvsc to the initramfs and "
                            "rebuild it: Debian/Ubuntu: /etc/initramfs-tools/modules, "
                            "update-initramfs -u; RHEL/SUSE: add_drivers+=\" hv_vmbus "
                            "hv_storvsc hv_netvsc \" in /etc/dracut.conf.d/hv.conf, dracut -f")


def _drivers_at_boot(f: Facts, lx: Mapping[str, Any], family: str, modules: Sequence[str],
                     remedy: str) -> Outcome:
    """Whether the default kernel's ``family`` drivers (its ``virtio`` or ``hyperv``
    object) are built in or in its initramfs: a driver only under /lib/modules is not
    loaded before the root filesystem is mounted."""
    kernel = default_kernel(lx)
    ev = {**f.ev("linux.default_kernel"), **f.ev("linux.kernels")}
    if kernel is None:
        return Outcome(UNKNOWN, "no installed kernel was found", ev)
    states = kernel.get(family) or {}
    missing = {m: states.get(m) for m in modules if states.get(m) not in ("builtin", "initramfs")}
    where = f"kernel {kernel.get('version')}"
    error = kernel.get("initramfs_error")
    if missing and error:
        return Outcome(UNKNOWN, f"{where}: its initramfs {kernel.get('initramfs')} could not be "
                       f"read ({error.get('message')}), so {', '.join(missing)} cannot be "
                       "judged", ev)
    if not missing:
        return Outcome(PASS, f"{where}: " + ", ".join(f"{m} {states[m]}" for m in modules), ev)
    only_modules = [m for m, s in missing.items() if s == "module"]
    absent = [m for m, s in missing.items() if s != "module"]
    parts = ([f"{', '.join(only_modules)} only under /lib/modules, not in the initramfs "
              f"({kernel.get('initramfs') or 'no initramfs'})"] if only_modules else []) + \
        ([f"{', '.join(absent)} not found"] if absent else [])
    return Outcome(FAIL, f"{where}: {'; '.join(parts)}", ev, remedy)


@rule("kernel-version", "the kernel is newer than the oldest the cloud boots", needs_linux=True)
def kernel_version(f: Facts, lx: Mapping[str, Any], *, newer_than: str) -> Outcome:
    kernel = default_kernel(lx)
    ev = {**f.ev("linux.default_kernel"), **f.ev("linux.kernels")}
    if kernel is None:
        return Outcome(UNKNOWN, "no installed kernel was found", ev)
    version = str(kernel.get("version"))
    if _version(version) > _version(newer_than):
        return Outcome(PASS, f"kernel {version} (newer than {newer_than})", ev)
    return Outcome(FAIL, f"kernel {version} is not newer than {newer_than}: it has no "
                   "VirtIO support", ev, "upgrade the kernel")


@rule("no-xen-pv-drivers", "no Xen PV drivers forced into the initramfs", auto_fixed=True,
      needs_linux=True)
def no_xen_pv_drivers(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ev = f.ev("linux.kernels")
    kernels = lx.get("kernels") or []
    xen = [str(k.get("version")) for k in kernels if k.get("xen_pv")]
    if xen:
        return Outcome(FAIL, f"Xen PV drivers in the initramfs of kernel {', '.join(xen)}", ev,
                       "uninstall the UVP / Xen PV driver package (xen-platform-pci, xen-vbd, "
                       "xen-vnif), or drop those modules from /etc/initramfs-tools/modules or "
                       "/etc/dracut.conf.d, and rebuild the initramfs")
    unread = [str(k.get("initramfs")) for k in kernels if k.get("initramfs_error")]
    if unread:
        return Outcome(UNKNOWN, f"the initramfs {', '.join(unread)} could not be read", ev)
    return Outcome(PASS, "no Xen PV drivers in any initramfs", ev)


@rule("devices-by-uuid", "GRUB and fstab name disks by UUID, not by device node",
      auto_fixed=True, needs_linux=True)
def devices_by_uuid(f: Facts, lx: Mapping[str, Any], *, accepted: Sequence[str]) -> Outcome:
    ev = {**f.ev("linux.root_device_by"), **f.ev("linux.kernel_cmdline"),
          **f.ev("linux.fstab")}
    problems = []
    by = lx.get("root_device_by")
    if by is not None and by not in accepted:
        problems.append(f"the boot loader names the root by {by} ({lx.get('kernel_cmdline')})")
    for e in lx.get("fstab") or []:
        if e.get("by") not in (*accepted, "other"):
            problems.append(f"fstab mounts {e.get('mountpoint')} by {e.get('by')} "
                            f"({e.get('spec')})")
    if problems:
        return Outcome(FAIL, "; ".join(problems), ev,
                       "use UUID=... in /etc/fstab (blkid shows them) and GRUB_DISABLE_LINUX_"
                       "UUID=false in /etc/default/grub, then update-grub / grub2-mkconfig")
    if by is None and not lx.get("fstab"):
        return Outcome(UNKNOWN, "neither the boot loader's root nor an fstab was read", ev)
    return Outcome(PASS, f"root by {by or 'an unread name'}; every fstab disk by "
                   f"{' or '.join(accepted)}", ev)


@rule("fstab-nofail", "fstab mounts no filesystem of another disk without nofail",
      needs_linux=True)
def fstab_nofail(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ev = f.ev("linux.fstab")
    away = [e for e in lx.get("fstab") or [] if e.get("on_this_disk") is False
            and not e.get("nofail") and "noauto" not in str(e.get("options")).split(",")]
    if away:
        names = ", ".join(f"{e.get('mountpoint')} ({e.get('spec')})" for e in away)
        return Outcome(FAIL, f"fstab mounts filesystems that are not on this disk at boot: "
                       f"{names}; the instance may not boot or log in", ev,
                       "add nofail to those fstab lines' options, or remove the lines")
    return Outcome(PASS, "every fstab filesystem of another disk has nofail (or none)", ev)


@rule("persistent-net-rules", "no udev rules pin network interface names to MAC addresses",
      needs_linux=True)
def persistent_net_rules(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ev = f.ev("linux.persistent_net_rules")
    rules = lx.get("persistent_net_rules") or []
    if rules:
        return Outcome(FAIL, f"{', '.join(rules)} pin interface names to the source VM's MAC "
                       "addresses: the new NIC comes up as eth1 without configuration", ev,
                       "rm " + " ".join(rules) + " (CentOS 6: also create an empty "
                       "/etc/udev/rules.d/75-persistent-net-generator.rules)")
    return Outcome(PASS, "no persistent-net rules", ev)


@rule("linux-dhcp", "the network interface gets its address by DHCP", needs_linux=True)
def linux_dhcp(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ev = {**f.ev("linux.network"), **f.ev("linux.cloud_init")}
    interfaces = lx.get("network") or []
    static = [i for i in interfaces if i.get("method") == "static"]
    if static:
        names = ", ".join(f"{i.get('interface')} ({i.get('source')})" for i in static)
        return Outcome(FAIL, f"static address on {names}", ev,
                       "configure the NIC for DHCP (ifupdown: iface eth0 inet dhcp; ifcfg: "
                       "BOOTPROTO=dhcp; netplan: dhcp4: true)")
    dhcp = [i for i in interfaces if i.get("method") == "dhcp"]
    if dhcp:
        return Outcome(PASS, "DHCP on " + ", ".join(str(i.get("interface")) for i in dhcp), ev)
    ci = lx.get("cloud_init") or {}
    if ci.get("installed") and ci.get("enabled") is not False:
        return Outcome(PASS, "no interface configured in the image; cloud-init configures "
                       "the network (DHCP by default)", ev)
    return Outcome(FAIL, "no network interface is configured, and cloud-init is not there to "
                   "configure one", ev,
                   "configure the NIC for DHCP (ifupdown: auto eth0 / iface eth0 inet dhcp)")


@rule("linux-login-credentials", "cloud-init is installed and enabled, or root has a password",
      needs_linux=True)
def linux_login_credentials(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ci = lx.get("cloud_init") or {}
    ev = {**f.ev("linux.cloud_init"), **f.ev("linux.root_password")}
    if ci.get("installed") and ci.get("enabled") is not False:
        sources = ci.get("datasources")
        said = f" (datasources {', '.join(sources)})" if sources else ""
        return Outcome(PASS, f"cloud-init installed and enabled{said}", ev)
    password = lx.get("root_password")
    why = "cloud-init is not installed" if not ci.get("installed") else "cloud-init is disabled"
    if password == "set":
        return Outcome(WARN, f"{why}; root has a password, so you can log in, but keys, "
                       "hostname and passwords will not be set at launch", ev,
                       "install cloud-init (apt/yum/zypper install cloud-init) and enable it")
    state = {"locked": "root is locked", "empty": "root has an empty password",
             None: "root's password state is not known"}.get(password, f"root: {password}")
    return Outcome(FAIL, f"no way to log in: {why}, and {state}", ev,
                   "install and enable cloud-init, or set a root password: passwd root")


@rule("linux-clean-shutdown", "the root filesystem and the image were closed cleanly",
      needs_linux=True)
def linux_clean_shutdown(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ev = {**f.ev("dirty", source="container header"), **f.ev("linux.clean")}
    problems, fixes = [], []
    if f.info.get("dirty"):
        problems.append("the image was not closed cleanly")
        fixes.append("qemu-img check -r all IMAGE")
    clean = lx.get("clean")
    fs = (lx.get("root") or {}).get("filesystem")
    if clean is False:
        problems.append(f"the root {fs} filesystem was not unmounted cleanly")
        fixes.append("shut the source VM down cleanly (shutdown -h now), or run fsck on the "
                     "root filesystem, then export again")
    if problems:
        return Outcome(FAIL, "; ".join(problems), ev, "; ".join(fixes))
    if clean is None:
        return Outcome(UNKNOWN, f"the root {fs} filesystem records no clean state", ev)
    return Outcome(PASS, f"the root {fs} filesystem is clean", ev)


@rule("lvm-system-disk", "the root is not on LVM (IMS injects no files into LVM disks)",
      needs_linux=True)
def lvm_system_disk(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    root = lx.get("root") or {}
    ev = f.ev("linux.root")
    if root.get("lvm"):
        return Outcome(FAIL, f"the root is the logical volume {root['lvm']}: the cloud cannot "
                       "inject files (passwords, keys) into it at launch", ev,
                       "rely on cloud-init for passwords and keys, or use a plain partition")
    return Outcome(PASS, "the root is not a logical volume", ev)


@rule("no-vmware-tools", "VMware Tools are not installed", auto_fixed=True, needs_linux=True)
def no_vmware_tools(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ev = f.ev("linux.vmware_tools")
    tools = lx.get("vmware_tools")
    if tools is None:
        return Outcome(UNKNOWN, "whether VMware Tools are installed was not read", ev)
    if tools:
        return Outcome(FAIL, "VMware Tools (vmtoolsd) are installed", ev,
                       "remove them (apt/yum remove open-vm-tools, or vmware-uninstall-"
                       "tools.pl) before export")
    return Outcome(PASS, "no VMware Tools", ev)


# -- the peers' Linux requirements (import-rules.md section 2.1) ------------------

@rule("linux-root-filesystem", "the root filesystem is of a type the cloud's import reads",
      needs_linux=True)
def linux_root_filesystem(f: Facts, lx: Mapping[str, Any], *,
                          filesystems: Sequence[str]) -> Outcome:
    root = lx.get("root") or {}
    fs = root.get("filesystem")
    ev = f.ev("linux.root")
    if fs in filesystems:
        return Outcome(PASS, f"root filesystem {fs}", ev)
    return Outcome(FAIL, f"root filesystem {fs}: the import reads only "
                   f"{', '.join(filesystems)}", ev,
                   f"copy the root to a {filesystems[0]} filesystem (mkfs, rsync -aAXH) and "
                   "update fstab and the boot loader")


@rule("linux-bootloader", "the boot loader is one the cloud supports", needs_linux=True)
def linux_bootloader(f: Facts, lx: Mapping[str, Any], *, bootloaders: Sequence[str]) -> Outcome:
    found = lx.get("bootloader")
    ev = f.ev("linux.bootloader")
    if found in bootloaders:
        return Outcome(PASS, f"boot loader {found}", ev)
    if found is None:
        return Outcome(FAIL, "no boot loader configuration was found", ev,
                       "install GRUB 2 (grub-install, update-grub / grub2-mkconfig)")
    return Outcome(FAIL, f"boot loader {found}: the cloud supports {', '.join(bootloaders)}",
                   ev, "install GRUB 2 (grub-install, update-grub / grub2-mkconfig)")


@rule("no-swap-on-os-disk", "no swap partition or swap file on the OS disk", needs_linux=True)
def no_swap_on_os_disk(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    """Azure puts swap on the resource disk (cloud-init / waagent); swap on the OS disk
    wears it and slows it."""
    swap = [e for e in lx.get("fstab") or [] if e.get("type") == "swap"
            and e.get("on_this_disk") is not False]
    ev = f.ev("linux.fstab", swap)
    if not swap:
        return Outcome(PASS, "fstab mounts no swap on this disk", ev)
    return Outcome(FAIL, "swap on the OS disk: " + ", ".join(str(e.get("spec")) for e in swap),
                   ev, "remove the swap lines from /etc/fstab (swapoff -a) and let cloud-init "
                   "or waagent make swap on the resource disk")


@rule("kernel-cmdline", "the default kernel command line has the options the cloud needs",
      needs_linux=True)
def kernel_cmdline(f: Facts, lx: Mapping[str, Any], *, required: Sequence[str]) -> Outcome:
    """Each of ``required`` is a word of the line, or begins one before a comma
    (``console=ttyS0,115200`` is ``console=ttyS0`` at 115200 baud)."""
    line = lx.get("kernel_cmdline")
    ev = f.ev("linux.kernel_cmdline")
    if line is None:
        return Outcome(UNKNOWN, "the default boot entry's command line was not read", ev)
    words = str(line).split()
    missing = [r for r in required if not any(w == r or w.startswith(r + ",") for w in words)]
    if not missing:
        return Outcome(PASS, f"command line has {' '.join(required)}", ev)
    return Outcome(FAIL, f"command line lacks {' '.join(missing)}", ev,
                   f"add {' '.join(missing)} to GRUB_CMDLINE_LINUX in /etc/default/grub, "
                   "then update-grub / grub2-mkconfig -o /boot/grub2/grub.cfg")


@rule("selinux-disabled", "SELinux is disabled", needs_linux=True)
def selinux_disabled(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    state = lx.get("selinux")
    ev = f.ev("linux.selinux")
    if state in (None, "disabled"):
        return Outcome(PASS, "SELinux " + (state or "not configured"), ev)
    return Outcome(FAIL, f"SELinux is {state}", ev,
                   "set SELINUX=disabled in /etc/selinux/config")


@rule("cloud-init-installed", "cloud-init is installed and enabled", needs_linux=True)
def cloud_init_installed(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    ci = lx.get("cloud_init") or {}
    ev = f.ev("linux.cloud_init")
    if ci.get("installed") and ci.get("enabled") is not False:
        return Outcome(PASS, "cloud-init installed and enabled", ev)
    why = "disabled" if ci.get("installed") else "not installed"
    return Outcome(FAIL, f"cloud-init is {why}", ev,
                   "install and enable cloud-init (apt/yum/zypper install cloud-init; "
                   "rm /etc/cloud/cloud-init.disabled)")


@rule("sshd-enabled", "the OpenSSH server is installed and starts at boot", needs_linux=True)
def sshd_enabled(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    state = lx.get("sshd") or {}
    ev = f.ev("linux.sshd")
    if state.get("installed") and state.get("enabled"):
        return Outcome(PASS, "sshd installed and enabled", ev)
    why = "not enabled (no boot link, or masked)" if state.get("installed") else \
        "not installed"
    return Outcome(FAIL, f"sshd is {why}: no SSH login on the new instance", ev,
                   "install and enable the OpenSSH server (apt install openssh-server / yum "
                   "install openssh-server; systemctl enable ssh or sshd)")


@rule("root-fs-features", "the root ext4 filesystem has none of the features the import "
      "cannot read", needs_linux=True)
def root_fs_features(f: Facts, lx: Mapping[str, Any], *, forbidden: Sequence[str],
                     forbidden_together: Sequence[Sequence[str]] = ()) -> Outcome:
    """``forbidden``: features none of which may be on; ``forbidden_together``: sets of
    features that may not all be on at once (Alibaba: ``project`` with ``quota``)."""
    fs = (lx.get("root") or {}).get("filesystem")
    features = lx.get("root_features")
    ev = {**f.ev("linux.root"), **f.ev("linux.root_features")}
    if fs not in ("ext2", "ext3", "ext4"):
        return Outcome(PASS, f"root filesystem {fs}: no ext4 feature rule applies", ev)
    if features is None:
        return Outcome(UNKNOWN, f"the root {fs} superblock's features were not read", ev)
    bad = [x for x in forbidden if x in features]
    together = [group for group in forbidden_together if all(x in features for x in group)]
    if together and not bad:
        bad = list(together[0][1:])   # turning all but one off is enough
    if not bad:
        avoided = [*forbidden, *(" with ".join(g) for g in forbidden_together)]
        return Outcome(PASS, f"root {fs} has none of {', '.join(avoided)}", ev)
    said = ", ".join([*[x for x in forbidden if x in features],
                      *(" with ".join(g) for g in together)])
    return Outcome(FAIL, f"root {fs} has {said}", ev,
                   f"turn them off on the unmounted filesystem (resize2fs -s DEVICE for "
                   f"64bit; tune2fs -O ^{',^'.join(bad)} DEVICE otherwise), or copy the root "
                   f"to a filesystem made with mkfs.ext4 -O ^{',^'.join(bad)}")


@rule("uefi-fallback-loader", "a disk that boots by UEFI has the fallback loader "
      "\\EFI\\BOOT\\BOOT<arch>.EFI", needs_linux=True)
def uefi_fallback_loader(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    """An imported instance has no NVRAM boot entry: its firmware starts the ESP's
    removable-media path or nothing (AWS VM Import, import-rules.md 2.1)."""
    mode = f.info.get("boot_mode")
    ev = {**f.ev("boot_mode", source="partition table and boot code"),
          **f.ev("linux.efi_fallback_loader")}
    if mode in ("bios", "hybrid"):
        return Outcome(PASS, f"boot mode {mode}: the BIOS path needs no EFI loader", ev)
    found = lx.get("efi_fallback_loader")
    if found:
        return Outcome(PASS, "the ESP has the fallback loader", ev)
    if found is None:
        return Outcome(UNKNOWN, "no EFI system partition is mounted by the guest's fstab, so "
                       "its loaders were not looked at", ev)
    return Outcome(FAIL, "the ESP has no \\EFI\\BOOT\\BOOT<arch>.EFI: firmware without an "
                   "NVRAM entry finds nothing to start", ev,
                   "grub-install --target=x86_64-efi --removable (or copy shimx64.efi / "
                   "grubx64.efi to /boot/efi/EFI/BOOT/BOOTX64.EFI)")


@rule("provisioning-agent", "cloud-init or the Azure Linux agent (waagent) is installed and "
      "enabled", needs_linux=True)
def provisioning_agent(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    """Azure provisions a VM (user, keys, host name) through cloud-init or WALinuxAgent
    and waits for one of them to report ready (create-upload-generic.md)."""
    ci = lx.get("cloud_init") or {}
    agent = lx.get("waagent") or {}
    ev = {**f.ev("linux.cloud_init"), **f.ev("linux.waagent")}
    if ci.get("installed") and ci.get("enabled") is not False:
        return Outcome(PASS, "cloud-init installed and enabled", ev)
    if agent.get("installed") and agent.get("enabled"):
        return Outcome(PASS, "the Azure Linux agent (waagent) installed and enabled", ev)
    why = [("cloud-init disabled" if ci.get("installed") else "no cloud-init"),
           ("waagent not enabled" if agent.get("installed") else "no waagent")]
    return Outcome(FAIL, f"nothing provisions the VM: {', '.join(why)}", ev,
                   "install and enable cloud-init (apt/yum install cloud-init) or the Azure "
                   "Linux agent (apt install walinuxagent / yum install WALinuxAgent; "
                   "systemctl enable walinuxagent or waagent)")


@rule("modules-not-blacklisted", "the kernel modules the cloud needs are not blacklisted",
      needs_linux=True)
def modules_not_blacklisted(f: Facts, lx: Mapping[str, Any], *,
                            modules: Sequence[str]) -> Outcome:
    """``modules``: what must stay loadable (Azure: ``udf`` for its provisioning
    media, ``vfat``)."""
    found = lx.get("modprobe_blacklist")
    ev = f.ev("linux.modprobe_blacklist")
    if found is None:
        return Outcome(UNKNOWN, "the modprobe configuration could not be read", ev)
    bad = [m for m in modules if m.replace("-", "_") in found]
    if not bad:
        return Outcome(PASS, f"{', '.join(modules)} not blacklisted", ev)
    return Outcome(FAIL, f"blacklisted: {', '.join(bad)}", ev,
                   f"remove the blacklist / install lines for {', '.join(bad)} from "
                   f"{f.source(LINUX, 'modprobe_blacklist') or '/etc/modprobe.d'} and rebuild "
                   "the initramfs (update-initramfs -u / dracut -f)")


@rule("user-ssh-key", "a user other than root can log in over SSH with a key",
      needs_linux=True)
def user_ssh_key(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    """AWS VM Import (import-rules.md 2.1): the imported instance gets no key pair of its
    own, so a non-root user's ``~/.ssh/authorized_keys`` is the way in; cloud-init,
    when enabled, makes one from the launch's key pair instead."""
    users = lx.get("ssh_key_users")
    ci = lx.get("cloud_init") or {}
    ev = {**f.ev("linux.ssh_key_users"), **f.ev("linux.cloud_init")}
    if users:
        return Outcome(PASS, f"key login for {', '.join(users)}", ev)
    if ci.get("installed") and ci.get("enabled") is not False:
        return Outcome(PASS, "no user has a key in the image; cloud-init adds the launch's "
                       "key pair", ev)
    if users is None:
        return Outcome(UNKNOWN, "/etc/passwd could not be read", ev)
    return Outcome(FAIL, "no user other than root has an authorized SSH key, and no "
                   "cloud-init adds one", ev,
                   "in the source VM: useradd -m -s /bin/bash ec2-user; install -d -m 700 "
                   "-o ec2-user ~ec2-user/.ssh; add the public key to "
                   "~ec2-user/.ssh/authorized_keys (mode 600)")


@rule("linux-free-space", "the root filesystem has free space for the cloud's drivers",
      needs_linux=True)
def linux_free_space(f: Facts, lx: Mapping[str, Any], *, min_mib: int) -> Outcome:
    free = lx.get("root_free_bytes")
    fs = (lx.get("root") or {}).get("filesystem")
    ev = f.ev("linux.root_free_bytes")
    if free is None:
        return Outcome(UNKNOWN, f"the free space of the root {fs} filesystem is not read "
                       "(ext2/3/4 and XFS only)", ev)
    shown = human_size(int(free))
    if free >= min_mib << 20:
        return Outcome(PASS, f"{shown} free on the root filesystem (at least {min_mib} MiB)",
                       ev)
    return Outcome(FAIL, f"only {shown} free on the root filesystem (the import needs room "
                   f"for its drivers: {min_mib} MiB here)", ev,
                   "free space in the source VM (apt clean / dnf clean all, old kernels, "
                   "logs), or grow the disk and the root filesystem (growpart, resize2fs / "
                   "xfs_growfs), then export again")


@rule("single-root-partition", "the system disk holds one Linux filesystem, the root",
      needs_linux=True)
def single_root_partition(f: Facts, lx: Mapping[str, Any], *,
                          allowed: Sequence[str]) -> Outcome:
    """Alibaba ECS takes a Linux system disk with a single root partition
    (import-rules.md 2.1): a separate ``/boot``, ``/home`` or ``/var`` on the disk, or
    a root on LVM, is refused. ``allowed``: mount points that may be separate (the
    ESP of a UEFI disk)."""
    root = lx.get("root") or {}
    ev = {**f.ev("linux.root"), **f.ev("linux.fstab")}
    extra = [e for e in lx.get("fstab") or [] if e.get("on_this_disk")
             and str(e.get("mountpoint")).startswith("/") and e.get("mountpoint") != "/"
             and e.get("mountpoint") not in allowed and e.get("type") != "swap"]
    problems = [f"{e['mountpoint']} ({e.get('spec')})" for e in extra]
    if root.get("lvm"):
        problems.insert(0, f"the root is the logical volume {root['lvm']}")
    if not problems:
        return Outcome(PASS, f"one root filesystem (partition {root.get('partition')})", ev)
    return Outcome(FAIL, f"more than a single root partition: {', '.join(problems)}", ev,
                   "move those directories into the root filesystem (rsync -aAXH), remove "
                   "their fstab lines, and export a disk whose only Linux partition is the "
                   "root")


@rule("no-qemu-guest-agent", "the QEMU guest agent is not installed", needs_linux=True)
def no_qemu_guest_agent(f: Facts, lx: Mapping[str, Any]) -> Outcome:
    found = lx.get("qemu_guest_agent")
    ev = f.ev("linux.qemu_guest_agent")
    if found is None:
        return Outcome(UNKNOWN, "whether qemu-ga is installed was not read", ev)
    if not found:
        return Outcome(PASS, "no QEMU guest agent", ev)
    return Outcome(FAIL, "the QEMU guest agent (qemu-ga) is installed", ev,
                   "apt remove qemu-guest-agent / yum remove qemu-guest-agent before export")
