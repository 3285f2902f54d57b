"""The boot loader collector on guest trees holding real configurations: grub.cfg
written by grub-mkconfig, grubenv written by grub-editenv, BLS entries and loader
configurations as the distributions ship them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.grub_mkconfig import KERNELS, UUID, available, grub_editenv
from helpers.linux_tree import Content, guest_tree

from imgscan.guest.linux.boot import bootloader

ADVANCED = "gnulinux-advanced-/dev/vda1"
needs_mkconfig = pytest.mark.skipif(not available(),
                                    reason="needs root, loop devices and grub-mkconfig")


@needs_mkconfig
def test_grub_mkconfig_uuid_default_zero(tmp_path: Path, debian_uuid_cfg: str) -> None:
    facts = bootloader(guest_tree(tmp_path, {"boot/grub/grub.cfg": debian_uuid_cfg}))
    assert facts["bootloader"] == "grub2"
    assert facts["default_kernel"] == KERNELS[0]
    assert facts["kernel_cmdline"] == f"root=UUID={UUID} ro console=ttyS0 quiet"
    assert facts["root_device_by"] == "uuid"
    assert facts["evidence"]["default_kernel"] == "/boot/grub/grub.cfg (root volume)"
    # One top entry, then the submenu: normal and recovery entry per kernel.
    entries = facts["boot_entries"]
    assert [e["version"] for e in entries] == [KERNELS[0], KERNELS[0], KERNELS[0],
                                               KERNELS[1], KERNELS[1]]
    assert [e["submenu"] for e in entries][1:] == [["Advanced options for Debian GNU/Linux"]] * 4
    assert {e["root_device_by"] for e in entries} == {"uuid"}
    assert "single" in entries[2]["cmdline"]
    assert facts["boot_problems"] == []


@needs_mkconfig
@pytest.mark.parametrize(("saved", "version", "recovery"), [
    (f"{ADVANCED}>gnulinux-{KERNELS[1]}-advanced-/dev/vda1", KERNELS[1], False),
    ("Advanced options for Debian GNU/Linux>"
     f"Debian GNU/Linux, with Linux {KERNELS[0]} (recovery mode)", KERNELS[0], True),
    ("1>3", KERNELS[1], True),
    ("0", KERNELS[0], False),
    ("no such entry", KERNELS[0], False),
    (f"{ADVANCED}>no such entry", KERNELS[0], False),
])
def test_grub_mkconfig_saved_entry(tmp_path: Path, debian_saved_cfg: str, saved: str,
                                   version: str, recovery: bool) -> None:
    """GRUB_DEFAULT=saved: ``set default="${saved_entry}"`` with the grubenv that
    grub-set-default writes (an id path, a title path, numbers, unknown names)."""
    env = grub_editenv(tmp_path / "grubenv", f"saved_entry={saved}")
    facts = bootloader(guest_tree(tmp_path, {"boot/grub/grub.cfg": debian_saved_cfg,
                                             "boot/grub/grubenv": env}))
    assert facts["default_kernel"] == version
    assert ("single" in facts["kernel_cmdline"]) is recovery
    assert facts["root_device_by"] == "device"


@needs_mkconfig
def test_grub_mkconfig_next_entry_wins(tmp_path: Path, debian_uuid_cfg: str) -> None:
    """grub-reboot's next_entry overrides the default for one boot (00_header)."""
    env = grub_editenv(tmp_path / "grubenv", "next_entry=1>2")
    facts = bootloader(guest_tree(tmp_path, {"boot/grub/grub.cfg": debian_uuid_cfg,
                                             "boot/grub/grubenv": env}))
    assert facts["default_kernel"] == KERNELS[1]


@needs_mkconfig
def test_grub_on_separate_boot_and_efi_stub(tmp_path: Path, debian_uuid_cfg: str) -> None:
    """A separate /boot and an EFI stub that ``configfile``s the real grub.cfg, as
    Debian's grub-efi and RHEL 9 install it: the stub is followed."""
    stub = (f"search.fs_uuid {UUID} root hd0,gpt2\nset prefix=($root)'/grub'\n"
            "configfile $prefix/grub.cfg\n")
    tree = guest_tree(tmp_path, {"etc/fstab": ""}, mounts={
        "/boot": {"grub/grub.cfg": debian_uuid_cfg},
        "/boot/efi": {"EFI/debian/grub.cfg": stub},
    })
    facts = bootloader(tree)
    assert facts["default_kernel"] == KERNELS[0]
    assert facts["evidence"]["bootloader"] == "/boot/grub/grub.cfg (/boot volume)"
    # Only the stub: it is read, and leads to the same file.
    tree = guest_tree(tmp_path / "stub", {"etc/fstab": ""}, mounts={
        "/boot": {"grub/unicode.pf2": "", "grub2/grub.cfg": debian_uuid_cfg},
        "/boot/efi": {"EFI/debian/grub.cfg": stub.replace("'/grub'", "'/grub2'")},
    })
    facts = bootloader(tree)
    assert facts["default_kernel"] == KERNELS[0]


# -- Red Hat: BLS entries, kernelopts in grubenv -----------------------------------------
#: The part of RHEL 9's /boot/grub2/grub.cfg (rhboot's 00_header and 10_linux) that
#: chooses and lists the entries.
RHEL9_CFG = """\
set pager=1

if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
elif [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi

if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option
function load_video {
  insmod all_video
}
insmod part_msdos
insmod xfs
set root='hd0,msdos1'
if [ x$feature_platform_search_hint = xy ]; then
  search --no-floppy --fs-uuid --set=root --hint='hd0,msdos1'  4d1a-boot
else
  search --no-floppy --fs-uuid --set=root 4d1a-boot
fi
### BEGIN /etc/grub.d/10_linux ###
insmod blscfg
blscfg
### END /etc/grub.d/10_linux ###
"""
MACHINE = "3f2504e04f8941d39a0c0305e82c3301"
OLD, NEW = "5.14.0-70.13.1.el9_0.x86_64", "5.14.0-427.13.1.el9_4.x86_64"


def _bls(version: str, options: str) -> str:
    return (f"title Red Hat Enterprise Linux ({version}) 9.4 (Plow)\nversion {version}\n"
            f"linux /vmlinuz-{version}\ninitrd /initramfs-{version}.img $tuned_initrd\n"
            f"options {options}\ngrub_users $grub_users\ngrub_arg --unrestricted\n"
            "grub_class rhel\n")


@pytest.mark.parametrize(("saved", "version"), [(None, NEW), (OLD, OLD), ("rescue", NEW)])
def test_rhel_bls(tmp_path: Path, saved: str | None, version: str) -> None:
    if saved is not None and saved != "rescue":
        saved = f"{MACHINE}-{saved}"
    env = grub_editenv(tmp_path / "grubenv",
                       "kernelopts=root=/dev/mapper/rhel-root ro rd.lvm.lv=rhel/root",
                       *([f"saved_entry={saved}"] if saved else []))
    boot: dict[str, Content] = {"grub2/grub.cfg": RHEL9_CFG, "grub2/grubenv": env,
            f"loader/entries/{MACHINE}-{OLD}.conf": _bls(OLD, "$kernelopts"),
            f"loader/entries/{MACHINE}-{NEW}.conf":
                _bls(NEW, "root=UUID=8a9b-root ro crashkernel=1G-4G:192M $tuned_params")}
    facts = bootloader(guest_tree(tmp_path, {"etc/fstab": ""}, mounts={"/boot": boot}))
    assert facts["bootloader"] == "grub2"
    assert facts["default_kernel"] == version
    by = {e["version"]: e for e in facts["boot_entries"]}
    assert [e["version"] for e in facts["boot_entries"]] == [NEW, OLD]
    assert by[OLD]["cmdline"] == "root=/dev/mapper/rhel-root ro rd.lvm.lv=rhel/root"
    assert by[OLD]["root_device_by"] == "lvm"
    assert by[NEW]["root_device_by"] == "uuid"
    assert by[NEW]["id"] == f"{MACHINE}-{NEW}"


# -- GRUB Legacy, SYSLINUX/EXTLINUX, systemd-boot ----------------------------------------
#: CentOS 6's /boot/grub/grub.conf as anaconda writes it.
CENTOS6 = """\
# grub.conf generated by anaconda
default=1
timeout=5
splashimage=(hd0,0)/grub/splash.xpm.gz
hiddenmenu
title CentOS 6 (2.6.32-754.35.1.el6.x86_64)
\troot (hd0,0)
\tkernel /vmlinuz-2.6.32-754.35.1.el6.x86_64 ro root=/dev/mapper/vg_c6-lv_root \
rd_LVM_LV=vg_c6/lv_root rhgb quiet
\tinitrd /initramfs-2.6.32-754.35.1.el6.x86_64.img
title CentOS (2.6.32-754.el6.x86_64)
\troot (hd0,0)
\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=/dev/xvda1 rhgb quiet
\tinitrd /initramfs-2.6.32-754.el6.x86_64.img
"""


@pytest.mark.parametrize(("default", "version"), [
    ("default=1", "2.6.32-754.el6.x86_64"), ("default=7", "2.6.32-754.35.1.el6.x86_64"),
    ("default saved", "2.6.32-754.el6.x86_64")])
def test_grub_legacy(tmp_path: Path, default: str, version: str) -> None:
    conf = CENTOS6.replace("default=1", default)
    facts = bootloader(guest_tree(tmp_path, {"boot/grub/grub.conf": conf,
                                             "boot/grub/default": "1\n#\n"}))
    assert facts["bootloader"] == "grub-legacy"
    assert facts["default_kernel"] == version
    assert [e["root_device_by"] for e in facts["boot_entries"]] == ["lvm", "device"]


#: Alpine's /boot/extlinux.conf as update-extlinux writes it.
ALPINE = """\
# Generated by update-extlinux 6.04_pre1-r15
DEFAULT menu.c32
PROMPT 0
MENU TITLE Alpine/Linux Boot Menu
MENU HIDDEN
MENU AUTOBOOT Alpine will be booted automatically in # seconds.
TIMEOUT 10
LABEL virt
  MENU DEFAULT
  MENU LABEL Linux virt
  LINUX vmlinuz-virt
  INITRD initramfs-virt
  APPEND root=UUID=0e8c2c3b-7a1e-4f0b-9f5e-3d1f2c4b5a6d modules=sd-mod,usb-storage,ext4 \
quiet rootfstype=ext4

MENU SEPARATOR
"""


def test_extlinux_alpine(tmp_path: Path) -> None:
    facts = bootloader(guest_tree(tmp_path, {"boot/extlinux.conf": ALPINE}))
    assert facts["bootloader"] == "extlinux"
    assert facts["default_kernel"] is None        # vmlinuz-virt names a flavour
    assert facts["boot_entries"][0]["kernel"] == "vmlinuz-virt"
    assert facts["root_device_by"] == "uuid"


def test_syslinux_default_label_and_global_append(tmp_path: Path) -> None:
    cfg = ("DEFAULT linux\nAPPEND root=/dev/sda1 ro\n"
           "LABEL old\n KERNEL /boot/vmlinuz-4.19.0-6-amd64\n"
           "LABEL linux\n KERNEL /boot/vmlinuz-5.10.0-28-amd64\n")
    facts = bootloader(guest_tree(tmp_path, {"boot/syslinux/syslinux.cfg": cfg}))
    assert facts["bootloader"] == "syslinux"
    assert facts["default_kernel"] == "5.10.0-28-amd64"
    assert facts["kernel_cmdline"] == "root=/dev/sda1 ro"


def test_systemd_boot(tmp_path: Path) -> None:
    entry = ("title      Fedora Linux 39\nversion    {v}\nmachine-id {m}\n"
             "options    root=PARTUUID=6e1f1c2a-01 rw\noptions    quiet\n"
             "linux      /{m}/{v}/linux\n")
    efi: dict[str, Content] = {
        "loader/loader.conf": f"timeout 3\ndefault {MACHINE}-6.5.6-300.fc39.x86_64.conf\n"}
    for v in ("6.5.6-300.fc39.x86_64", "6.7.5-200.fc39.x86_64"):
        efi[f"loader/entries/{MACHINE}-{v}.conf"] = entry.format(v=v, m=MACHINE)
    facts = bootloader(guest_tree(tmp_path, {"etc/fstab": ""}, mounts={"/boot/efi": efi}))
    assert facts["bootloader"] == "systemd-boot"
    assert facts["default_kernel"] == "6.5.6-300.fc39.x86_64"
    assert facts["kernel_cmdline"] == "root=PARTUUID=6e1f1c2a-01 rw quiet"
    assert facts["root_device_by"] == "partuuid"


def test_nothing(tmp_path: Path) -> None:
    facts = bootloader(guest_tree(tmp_path, {"etc/fstab": ""}))
    assert facts["bootloader"] is None and facts["default_kernel"] is None
    assert facts["evidence"] == {} and facts["boot_entries"] == []
