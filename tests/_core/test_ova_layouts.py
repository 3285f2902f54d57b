"""OVAs laid out as ovftool and third-party tools lay them out, archived by GNU tar as
ustar, GNU and pax, checked against ``tar`` and ``qemu-img``.

ovftool writes the descriptor, then the manifest and certificate, then the disks;
other tools add pax extended headers, GNU long-name (``L``) entries for names past
100 bytes, or put the descriptor after the disks, which DSP0243 §5.3 forbids: such a
package is read all the same, with a ``package-order`` warning.

Every package holds a streamOptimized data disk (GPT, ext4) first and the UEFI
Windows fixture second, and is signed (openssl). Oracles: ``tar --block-number -tvf``
for each member's name, size and header block; ``qemu-img info`` on each member
``tar -x`` extracts for the disks' format, create type and virtual size; the system
disk is the one with a boot path, whatever its place.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.ova_packages import build_ova, gpt_ext4_disk, signer
from oracles import needs_qemu, qemu_info, run

import imgscan
from imgscan._core.c_tar import BLOCK

pytestmark = [needs_qemu, pytest.mark.skipif(shutil.which("openssl") is None,
                                             reason="openssl not installed")]

#: A member name past ustar's 100-byte name field and without a directory to split
#: into its prefix: GNU tar stores it in an ``L`` entry, pax in a ``path`` record.
LONG = "vm-" + "x" * 110

#: Member order: ovftool's, and the descriptor after the disks.
ORDERS = {"ovftool": ("ovf", "mf", "cert", "disk1", "disk2"),
          "descriptor-last": ("disk1", "disk2", "mf", "cert", "ovf")}
#: (tar format, member names, order); ustar cannot hold the long names.
LAYOUTS = [("ustar", "short", "ovftool"), ("gnu", "short", "ovftool"),
           ("pax", "short", "ovftool"), ("gnu", "long", "ovftool"),
           ("pax", "long", "ovftool"), ("ustar", "short", "descriptor-last"),
           ("gnu", "long", "descriptor-last"), ("pax", "long", "descriptor-last")]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory,
             windows_disks: dict[str, Path]) -> dict[str, Path]:
    """The package's files, once with short member names and once with long ones."""
    base = tmp_path_factory.mktemp("layouts")
    data = gpt_ext4_disk(base / "data.img")
    key = signer(base / "key")
    out = {}
    for names, stem in (("short", "vm"), ("long", LONG)):
        d = base / names
        build_ova(d, "vm", [(f"{stem}-disk1.vmdk", data),
                            (f"{stem}-disk2.vmdk", windows_disks["uefi"])],
                  signed_by=key, firmware="efi", tar_format="gnu")
        out[names] = d
    return out


def _archive(d: Path, fmt: str, order: str, stem: str) -> Path:
    files = {"ovf": "vm.ovf", "mf": "vm.mf", "cert": "vm.cert",
             "disk1": f"{stem}-disk1.vmdk", "disk2": f"{stem}-disk2.vmdk"}
    ova = d / f"{fmt}-{order}.ova"
    run("tar", f"--format={fmt}", "-cf", ova, *(files[k] for k in ORDERS[order]), cwd=d)
    return ova


def _tar_listing(ova: Path) -> list[tuple[int, int, str]]:
    """(header block, size, name) of each member, from ``tar --block-number -tvf``."""
    out = []
    for line in run("tar", "--block-number", "-tvf", ova).splitlines():
        m = re.match(r"block (\d+): \S+ \S+\s+(\d+) \S+ \S+ (.+)$", line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


@pytest.mark.parametrize(("fmt", "names", "order"), LAYOUTS,
                         ids=["-".join(layout) for layout in LAYOUTS])
def test_layouts_agree_with_tar_and_qemu_img(packages: dict[str, Path], tmp_path: Path,
                                             fmt: str, names: str, order: str) -> None:
    d = packages[names]
    stem = "vm" if names == "short" else LONG
    ova = _archive(d, fmt, order, stem)
    with imgscan.open(ova, verify_manifest=True) as img:
        info: dict[str, Any] = img.info()
    ova_info = info["ova"]

    # the members: names, sizes and header blocks as tar lists them, bytes as it extracts
    listing = _tar_listing(ova)
    assert [(m["name"], m["size"]) for m in ova_info["members"]] == \
        [(name, size) for _, size, name in listing]
    out = tmp_path / "x"
    out.mkdir()
    run("tar", "-xf", ova, "-C", out)
    data = ova.read_bytes()
    for m, (block, _, name) in zip(ova_info["members"], listing, strict=True):
        # tar numbers a GNU long-name member by its L entry, which precedes the member's
        # own header (one block, then the name padded to blocks); pax by its own header
        extended = (BLOCK + -(-(len(name) + 1) // BLOCK) * BLOCK
                    if fmt == "gnu" and len(name) > 100 else 0)
        assert m["offset"] == (block + 1) * BLOCK + extended, name
        assert data[m["offset"]:m["offset"] + m["size"]] == (out / name).read_bytes(), name

    # the disks, against qemu-img on the members tar extracted
    assert [d["href"] for d in info["disks"]] == [f"{stem}-disk1.vmdk", f"{stem}-disk2.vmdk"]
    for disk in info["disks"]:
        qemu = qemu_info(out / disk["href"])
        assert disk["format"] == qemu["format"] == "vmdk"
        assert disk["subformat"] == qemu["format-specific"]["data"]["create-type"] \
            == "streamOptimized"
        assert disk["virtual_size"] == qemu["virtual-size"]
        assert disk["file_size"] == (out / disk["href"]).stat().st_size
    # the system disk is the second, the one with a boot path
    assert [d["system"] for d in info["disks"]] == [False, True]
    assert ova_info["system_disk"] == 1 and info["boot_mode"] == "uefi"
    assert info["disks"][0]["boot_mode"] == "unknown"

    assert ova_info["manifest"]["verified"] is True
    assert ova_info["signature"]["verified"] is True
    container = [f for f, stage in zip(info["findings"], info["finding_stages"], strict=True)
                 if stage == "container"]
    if order == "ovftool":
        assert container == []
    else:
        assert [(f["id"], f["severity"]) for f in container] == [("package-order", "warning")]
        assert "'vm.ovf' is not the archive's first member" in container[0]["message"]


def test_a_tar_without_a_descriptor_is_not_a_package(tmp_path: Path) -> None:
    """A GNU tar of files that are not an OVF package is not read as one (nor as raw
    disk data claiming to be a package)."""
    (tmp_path / "a.txt").write_text("hello\n")
    run("tar", "--format=gnu", "-cf", tmp_path / "a.tar", "a.txt", cwd=tmp_path)
    from imgscan._core import ova
    from imgscan._core.source import Source
    with Source(str(tmp_path / "a.tar")) as src:
        assert ova.open_package(src) is None
