"""The threat matrix (issue 8): every class of ../shared/docs/threats.md, one row per variant.

Each row builds a hostile image, with the real tool wherever the structure is one a
tool writes (qemu-img create -b / data_file= / subformat=..., qemu-img convert,
qemu-io, sfdisk, genisoimage, cryptsetup luksFormat on a plain file) and hand-edited
bytes only for the malformed part, at the offset the format's spec gives. Formats no
tool here writes in the needed form are edited from a tool-made image by the spec
(differencing VHD, VHDX and VDI; a VMware-style stream footer) or come from the corpus
(a real BitLocker volume). The row states the finding
id and severity the image must give. Then, for every row:

* ``imgscan.open(p).info()`` lists that finding with that severity, or, for an image
  imgscan refuses to decode at all, opening raises the error whose kind maps to that
  finding (``imgscan.findings.finding_id``);
* the ``safe`` profile gives it the verdict that the README's table of the gate's
  decisions gives its findings (helpers.safe_gate: fail for every class at warning
  or error severity in the image's own structures), and ``self-contained`` fails the
  classes that make an image depend on other files;
* the same bytes under another name (``.iso``, ``.raw``, ``.txt``) give the same
  findings: detection never looks at the name;
* ``imgscan info --json`` and ``imgscan check --profile safe`` (one process for all
  rows) say the same.

The legitimate twin of each format (extended L2 entries, compressed clusters, QED,
QCOW v1, hybrid ISOs, a VMware-style stream footer, a partitioned guest, ...), made by
the tools alone, must give no finding at all and pass ``safe``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    KiB,
    MiB,
    decompress,
    overwrite,
    qemu_create,
    run_keyed,
    sparse_copy,
    sparse_file,
)
from helpers.ova_packages import build_ova
from helpers.patchers import (
    ntfs_poke,
    patch_gpt,
    vhd_refresh_footer_checksums,
    vhd_refresh_header_checksum,
    vhd_set_footers,
    vhdx_reseal,
)
from helpers.safe_gate import expected_verdict
from oracles import CORPUS, HAVE_QEMU, qemu_info, qemu_io, run

import imgscan
from imgscan.findings import finding_id
from imgscan.policy import check, load_profile

SECRET = "secret,id=sec0,data=imgscan-test"
BITLK = CORPUS / "cryptsetup" / "bitlk-images.tar.xz"
FAST_PBKDF = ("--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")
#: Classes that make an image read other files: the ``self-contained`` rule must fail.
DEPENDENCY_CLASSES = ("backing-file", "data-file", "external-extent")
#: Every class of threats.md.
CLASSES = ("backing-file", "data-file", "external-extent", "descriptor-ambiguous",
           "footer-mismatch", "multiple-formats", "truncated", "size-mismatch",
           "resource-exhaustion", "unknown-feature", "encrypted", "dirty", "compression-bomb")

Builder = Callable[[Path], Path]


class Row:
    """One (class, variant): how to build the image and what it must give."""

    def __init__(self, finding: str, variant: str, severity: str | None,
                 refused: type[imgscan.ImageError] | None, build: Builder,
                 tools: tuple[str, ...]) -> None:
        self.finding = finding
        self.variant = variant
        self.severity = severity
        self.refused = refused
        self.build = build
        self.tools = tools

    @property
    def id(self) -> str:
        return f"{self.finding}/{self.variant}"


ROWS: list[Row] = []


def threat(finding: str, variant: str, severity: str | None = None, *,
           refused: type[imgscan.ImageError] | None = None,
           tools: tuple[str, ...] = ("qemu-img", "qemu-io")) -> Callable[[Builder], Builder]:
    """Register a builder as the row ``finding/variant``: the image gives ``finding``
    with ``severity``, or (``refused``) opening it raises that error."""
    assert finding in CLASSES
    assert (severity is None) != (refused is None)

    def register(build: Builder) -> Builder:
        ROWS.append(Row(finding, variant, severity, refused, build, tools))
        return build

    return register


# -- small builders the rows share --------------------------------------------------------

def qcow2(d: Path, *opts: str, size: str = "1M", name: str = "disk.qcow2") -> Path:
    """``qemu-img create -f qcow2 [-o OPTS]`` with 4 KiB of data at 0."""
    path = qemu_create(d / name, size, *(["-o", ",".join(opts)] if opts else []), fmt="qcow2")
    qemu_io(path, "write -P 0x5a 0 4k")
    return path


def backed(d: Path, fmt: str, backing: str, backing_fmt: str = "raw") -> Path:
    """An image of ``fmt`` naming ``backing`` (not opened: ``-u``), as qemu-img writes it."""
    return qemu_create(d / f"disk.{fmt}", "1M", "-u", "-b", backing, "-F", backing_fmt, fmt=fmt)


def u64(path: Path, offset: int, order: str = ">") -> int:
    value: int = struct.unpack(order + "Q", path.read_bytes()[offset:offset + 8])[0]
    return value


def u32(path: Path, offset: int, order: str = ">") -> int:
    value: int = struct.unpack(order + "I", path.read_bytes()[offset:offset + 4])[0]
    return value


def sfdisk(path: Path, script: str) -> None:
    subprocess.run(["sfdisk", "-q", str(path)], input=script, text=True, check=True,
                   capture_output=True)


def sfdisk_label(path: Path) -> str:
    """The label sfdisk reads from the file (``dos``, ``gpt``), or "" for none."""
    proc = subprocess.run(["sfdisk", "--dump", str(path)], capture_output=True, text=True,
                          check=False)
    labels = [x.split(":", 1)[1].strip() for x in proc.stdout.splitlines()
              if x.startswith("label:")]
    return labels[0] if labels else ""


def mbr_disk(d: Path) -> Path:
    """A raw 16 MiB disk with two MBR partitions, by sfdisk."""
    path = sparse_file(d / "mbr.raw", 16 * MiB)
    sfdisk(path, "label: dos\n2048,8192,83\n,,7\n")
    return path


def iso(d: Path) -> Path:
    """A small ISO 9660 image of one file, by genisoimage."""
    tree = d / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "readme.txt").write_text("imgscan threat matrix\n")
    path = d / "cd.iso"
    run("genisoimage", "-quiet", "-V", "THREATS", "-o", path, tree)
    return path


def vmdk_descriptor(d: Path, edit: Callable[[str], str], subformat: str = "monolithicFlat",
                    size: str = "1M") -> Path:
    """A qemu-made descriptor VMDK (text only, extent files beside it) edited as text."""
    path = d / "disk.vmdk"
    run("qemu-img", "create", "-q", "-f", "vmdk", "-o", f"subformat={subformat}", path, size)
    # qemu ends the file with a NUL byte, after which nothing is read
    path.write_text(edit(path.read_text().rstrip("\x00")))
    return path


def stream_vmdk(d: Path) -> Path:
    """A streamOptimized VMDK converted by qemu-img from a sparse one with data at 0."""
    src = d / "src.vmdk"
    run("qemu-img", "create", "-q", "-f", "vmdk", src, "1M")
    qemu_io(src, "write -P 0x5a 0 64k", "write -P 0x5b 512k 4k", fmt="vmdk")
    path = d / "stream.vmdk"
    run("qemu-img", "convert", "-q", "-f", "vmdk", "-O", "vmdk", "-o",
        "subformat=streamOptimized", src, path)
    src.unlink()
    return path


def stream_vmdk_with_footer(d: Path) -> Path:
    """qemu's streamOptimized VMDK laid out as VMware streams it: gdOffset in the header
    is GD_AT_END (-1) and the real header follows the data as a footer (spec: footer
    marker, footer, end-of-stream marker). qemu reads the same disk from it."""
    path = stream_vmdk(d)
    original = d / "as-qemu-wrote-it.vmdk"
    sparse_copy(path, original)
    buf = bytearray(path.read_bytes())
    footer = bytes(buf[:512])
    struct.pack_into("<Q", buf, 56, 0xFFFFFFFFFFFFFFFF)
    buf += bytes(-len(buf) % 512)
    buf += struct.pack("<QII", 1, 0, 3).ljust(512, b"\0") + footer + bytes(512)
    path.write_bytes(bytes(buf))
    run("qemu-img", "compare", "-q", "-f", "vmdk", "-F", "vmdk", original, path)
    original.unlink()
    return path


def vhd(d: Path, subformat: str = "dynamic", size: str = "8M", *opts: str) -> Path:
    """``qemu-img create -f vpc`` (a VHD; qemu calls the format vpc) with data at 0."""
    path = qemu_create(d / "disk.vhd", size, "-o", ",".join((f"subformat={subformat}", *opts)),
                       fmt="vpc")
    qemu_io(path, "write -P 0x5a 0 64k", fmt="vpc")
    return path


def vhdx(d: Path, size: str = "16M") -> Path:
    path = qemu_create(d / "disk.vhdx", size, "-o", "block_size=1M", fmt="vhdx")
    qemu_io(path, "write -P 0x5a 0 64k", fmt="vhdx")
    return path


def vdi(d: Path) -> Path:
    path = qemu_create(d / "disk.vdi", "4M", fmt="vdi")
    qemu_io(path, "write -P 0x5a 0 64k", fmt="vdi")
    return path


def qed(d: Path) -> Path:
    path = qemu_create(d / "disk.qed", "4M", fmt="qed")
    qemu_io(path, "write -P 0x5a 0 64k", fmt="qed")
    return path


def luks_format(path: Path, *opts: str, size: int = 8 * MiB) -> Path:
    """``cryptsetup luksFormat`` on a plain file (no device-mapper involved)."""
    key = path.with_suffix(".key")
    key.write_bytes(b"imgscan-test")
    sparse_file(path, size)
    run("cryptsetup", "luksFormat", "--batch-mode", *FAST_PBKDF, "--key-file", key, *opts,
        path)
    return path


def l2_entry_of_cluster0(path: Path) -> int:
    """File offset of the qcow2 L2 entry that maps guest cluster 0 (spec: L1 at header 40)."""
    data = path.read_bytes()
    l1 = struct.unpack_from(">Q", data, 40)[0]
    l2: int = struct.unpack_from(">Q", data, l1)[0] & 0x00FFFFFFFFFFFE00
    return l2


def deflate_bomb(size: int) -> bytes:
    """``size`` zero bytes as a raw deflate stream (qcow2's compressed cluster format)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    return c.compress(bytes(size)) + c.flush()


# == backing-file =========================================================================

@threat("backing-file", "qcow2-relative", "warning")
def _qcow2_relative(d: Path) -> Path:
    return backed(d, "qcow2", "base.raw")


@threat("backing-file", "qcow2-absolute", "error")
def _qcow2_absolute(d: Path) -> Path:
    return backed(d, "qcow2", "/etc/passwd")


@threat("backing-file", "qcow2-dotdot", "error")
def _qcow2_dotdot(d: Path) -> Path:
    return backed(d, "qcow2", "../../etc/passwd")


@threat("backing-file", "qcow2-json", "error")
def _qcow2_json(d: Path) -> Path:
    return backed(d, "qcow2", 'json:{"driver":"raw","file":{"driver":"file",'
                              '"filename":"/etc/shadow"}}')


@threat("backing-file", "qcow2-protocol", "error")
def _qcow2_protocol(d: Path) -> Path:
    return backed(d, "qcow2", "nbd://attacker.example:10809/disk")


@threat("backing-file", "qcow-relative", "warning")
def _qcow_relative(d: Path) -> Path:
    return backed(d, "qcow", "base.raw")


@threat("backing-file", "qcow-dotdot", "error")
def _qcow_dotdot(d: Path) -> Path:
    return backed(d, "qcow", "../base.qcow", "qcow")


@threat("backing-file", "qed-relative", "warning")
def _qed_relative(d: Path) -> Path:
    return backed(d, "qed", "base.raw")


@threat("backing-file", "qed-absolute", "error")
def _qed_absolute(d: Path) -> Path:
    return backed(d, "qed", "/dev/sda")


@threat("backing-file", "vmdk-parentFileNameHint", "warning")
def _vmdk_parent(d: Path) -> Path:
    qemu_create(d / "base.vmdk", "1M", fmt="vmdk")
    return qemu_create(d / "disk.vmdk", None, "-b", "base.vmdk", "-F", "vmdk", fmt="vmdk")


@threat("backing-file", "vmdk-parentFileNameHint-absolute", "error")
def _vmdk_parent_absolute(d: Path) -> Path:
    base = qemu_create(d / "base.vmdk", "1M", fmt="vmdk")
    return qemu_create(d / "disk.vmdk", None, "-b", str(base), "-F", "vmdk", fmt="vmdk")


@threat("backing-file", "vhd-parent", "error")
def _vhd_parent(d: Path) -> Path:
    """qemu-img makes no differencing VHD: a dynamic one becomes one (spec: disk type 4 in
    both footers, the parent's name in the dynamic header's Parent Unicode Name)."""
    path = vhd(d)
    buf = bytearray(path.read_bytes())
    header = struct.unpack_from(">Q", buf, 16)[0]
    name = "../parent.vhd".encode("utf-16-be")
    buf[header + 64:header + 64 + len(name)] = name
    vhd_refresh_header_checksum(buf, header)
    vhd_set_footers(buf, 60, ">I", 4)
    path.write_bytes(bytes(buf))
    return path


@threat("backing-file", "vhdx-parent", "error")
def _vhdx_parent(d: Path) -> Path:
    """qemu-img makes no differencing VHDX: add a parent locator item (spec 2.6.2.6) to a
    qemu-made one's metadata and set HasParent in its file parameters."""
    path = vhdx(d)
    buf = bytearray(path.read_bytes())
    moff = _vhdx_metadata_region(buf)
    count = struct.unpack_from("<H", buf, moff + 10)[0]
    entries = [buf[moff + 32 + 32 * i:moff + 64 + 32 * i] for i in range(count)]
    item_end = max(struct.unpack_from("<II", e, 16)[0] + struct.unpack_from("<II", e, 16)[1]
                   for e in entries)
    item = (item_end + 4095) // 4096 * 4096
    key, value = "absolute_win32_path".encode("utf-16-le"), "C:\\base.vhdx".encode("utf-16-le")
    ptype = _mixed_guid("B04AEFB7-D19E-4A81-B789-25B8E9445913")
    locator = ptype + struct.pack("<HH", 0, 1) + struct.pack(
        "<IIHH", 32, 32 + len(key), len(key), len(value)) + key + value
    buf[moff + item:moff + item + len(locator)] = locator
    e = moff + 32 + 32 * count
    buf[e:e + 16] = _mixed_guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
    struct.pack_into("<III", buf, e + 16, item, len(locator), 0x2 | 0x4)  # virtual, required
    struct.pack_into("<H", buf, moff + 10, count + 1)
    fp = _vhdx_metadata_item(buf, moff, _mixed_guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B"))
    struct.pack_into("<I", buf, fp + 4, struct.unpack_from("<I", buf, fp + 4)[0] | 0x2)
    path.write_bytes(bytes(buf))
    return path


def _mixed_guid(text: str) -> bytes:
    raw = bytes.fromhex(text.replace("-", ""))
    return raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]


def _vhdx_metadata_region(buf: bytes | bytearray) -> int:
    """File offset of the metadata region, from the first region table (spec: 192 KiB)."""
    table = 192 * KiB
    guid = _mixed_guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
    for i in range(struct.unpack_from("<I", buf, table + 8)[0]):
        e = table + 16 + 32 * i
        if buf[e:e + 16] == guid:
            offset: int = struct.unpack_from("<Q", buf, e + 16)[0]
            return offset
    raise AssertionError("no metadata region")


def _vhdx_metadata_item(buf: bytes | bytearray, moff: int, guid: bytes) -> int:
    for i in range(struct.unpack_from("<H", buf, moff + 10)[0]):
        e = moff + 32 + 32 * i
        if buf[e:e + 16] == guid:
            return moff + int(struct.unpack_from("<I", buf, e + 16)[0])
    raise AssertionError("metadata item not found")


@threat("backing-file", "vdi-parent", "warning")
def _vdi_parent(d: Path) -> Path:
    """qemu-img makes no differencing VDI: image type 4 (header 0x4c) and a link UUID
    (0x1a8) name a parent by UUID, as VirtualBox writes them."""
    path = vdi(d)
    overwrite(path, 0x4C, struct.pack("<I", 4))
    overwrite(path, 0x1A8, bytes(range(1, 17)))
    return path


# == data-file ============================================================================

@threat("data-file", "qcow2-bit-and-extension", "error")
def _data_file(d: Path) -> Path:
    return qemu_create(d / "disk.qcow2", "1M", "-o", "data_file=disk.data", fmt="qcow2")


@threat("data-file", "qcow2-extension-alone", "error")
def _data_file_extension_alone(d: Path) -> Path:
    """The data-file header extension of a qemu-made image, incompatible bit 2 cleared."""
    path = _data_file(d)
    overwrite(path, 72, struct.pack(">Q", u64(path, 72) & ~(1 << 2)))
    return path


@threat("data-file", "qcow2-bit-alone", "error")
def _data_file_bit_alone(d: Path) -> Path:
    """Incompatible bit 2 (spec: external data file) set on a plain v3 image."""
    path = qcow2(d)
    overwrite(path, 72, struct.pack(">Q", u64(path, 72) | (1 << 2)))
    return path


# == external-extent ======================================================================

@threat("external-extent", "monolithicFlat", "warning")
def _flat(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t)


@threat("external-extent", "twoGbMaxExtentSparse", "warning")
def _split_sparse(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t, "twoGbMaxExtentSparse")


@threat("external-extent", "twoGbMaxExtentFlat", "warning")
def _split_flat(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t, "twoGbMaxExtentFlat")


@threat("external-extent", "vmfs", "warning")
def _vmfs(d: Path) -> Path:
    """An ESX descriptor: createType vmfs, a VMFS extent (qemu opens it as flat)."""
    return vmdk_descriptor(d, lambda t: t.replace('"monolithicFlat"', '"vmfs"')
                           .replace(' FLAT "disk-flat.vmdk" 0', ' VMFS "disk-flat.vmdk"'))


@threat("external-extent", "name-with-slash", "error")
def _extent_slash(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t.replace('"disk-flat.vmdk"', '"sub/disk-flat.vmdk"'))


@threat("external-extent", "name-dotdot", "error")
def _extent_dotdot(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t.replace('"disk-flat.vmdk"', '"../disk-flat.vmdk"'))


@threat("external-extent", "name-absolute", "error")
def _extent_absolute(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t.replace('"disk-flat.vmdk"', '"/dev/sda"'))


@threat("external-extent", "name-json", "error")
def _extent_json(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t.replace('"disk-flat.vmdk"', '"json:{}"'))


@threat("external-extent", "many-extents", "warning")
def _many_extents(d: Path) -> Path:
    """512 FLAT extents of 4 sectors each, all in one sibling file (qemu opens it)."""
    def edit(text: str) -> str:
        line = next(x for x in text.splitlines() if x.startswith("RW "))
        many = "\n".join(f'RW 4 FLAT "disk-flat.vmdk" {4 * i}' for i in range(512))
        return text.replace(line, many)
    path = vmdk_descriptor(d, edit)
    assert qemu_info(path)["virtual-size"] == MiB
    return path


# == descriptor-ambiguous ================================================================

def _ambiguous(d: Path, replacement: str) -> Path:
    return vmdk_descriptor(d, lambda t: t.replace('createType="monolithicFlat"', replacement))


@threat("descriptor-ambiguous", "duplicate-createType", "error")
def _duplicate(d: Path) -> Path:
    return _ambiguous(d, 'createType="monolithicFlat"\ncreateType="vmfs"')


@threat("descriptor-ambiguous", "case-variant", "error")
def _case_variant(d: Path) -> Path:
    return _ambiguous(d, 'CreateType="vmfsSparse"\ncreateType="monolithicFlat"')


@threat("descriptor-ambiguous", "in-a-comment", "error")
def _in_comment(d: Path) -> Path:
    return _ambiguous(d, '# createType="vmfs"\ncreateType="monolithicFlat"')


@threat("descriptor-ambiguous", "spaces-around-equals", "error")
def _spaces(d: Path) -> Path:
    return _ambiguous(d, 'createType = "monolithicFlat"')


@threat("descriptor-ambiguous", "unquoted", "error")
def _unquoted(d: Path) -> Path:
    return _ambiguous(d, 'createType=monolithicFlat')


@threat("descriptor-ambiguous", "single-quotes", "error")
def _single_quotes(d: Path) -> Path:
    return _ambiguous(d, "createType='monolithicFlat'")


@threat("descriptor-ambiguous", "text-after-nul", "error")
def _after_nul(d: Path) -> Path:
    return vmdk_descriptor(d, lambda t: t + '\0createType="vmfs"\n')


# == footer-mismatch =====================================================================

@threat("footer-mismatch", "vmdk-stream-grain-size", "error")
def _stream_grain(d: Path) -> Path:
    """The header and the footer (which qemu uses) disagree on grainSize (spec: 20)."""
    path = stream_vmdk_with_footer(d)
    overwrite(path, 20, struct.pack("<Q", u64(path, 20, "<") * 2))
    return path


@threat("footer-mismatch", "vmdk-stream-grain-directory", "error")
def _stream_gd(d: Path) -> Path:
    """The header names the grain directory (so qemu reads no footer) while the footer
    names the redundant one (spec: rgdOffset at 48, gdOffset at 56)."""
    path = stream_vmdk_with_footer(d)
    footer = path.stat().st_size - 1024
    overwrite(path, 56, struct.pack("<Q", u64(path, footer + 56, "<")))
    overwrite(path, footer + 56, struct.pack("<Q", u64(path, 48, "<")))
    return path


@threat("footer-mismatch", "vmdk-stream-descriptor-offset", "error")
def _stream_descriptor(d: Path) -> Path:
    path = stream_vmdk_with_footer(d)
    overwrite(path, 28, struct.pack("<Q", u64(path, 28, "<") * 2))  # descriptorOffset
    return path


@threat("footer-mismatch", "vhd-header-copy", "warning")
def _vhd_copy(d: Path) -> Path:
    """The footer copy at offset 0 and the footer at the end differ (timestamp)."""
    path = vhd(d)
    buf = bytearray(path.read_bytes())
    struct.pack_into(">I", buf, len(buf) - 512 + 24, 12345)
    vhd_refresh_footer_checksums(buf)
    path.write_bytes(bytes(buf))
    return path


@threat("footer-mismatch", "gpt-primary-vs-backup", "warning", tools=("sfdisk",))
def _gpt_mismatch(d: Path) -> Path:
    path = sparse_file(d / "gpt.raw", 8 * MiB)
    sfdisk(path, "label: gpt\n2048,,L\n")
    patch_gpt(path, 8 * MiB - 512, header=lambda h: h.__setitem__(56, h[56] ^ 1))  # disk GUID
    return path


# == multiple-formats ====================================================================

@threat("multiple-formats", "qcow2-in-iso-system-area", "error",
        tools=("qemu-img", "qemu-io", "genisoimage", "isoinfo"))
def _qcow2_in_iso(d: Path) -> Path:
    """A whole small qcow2 in the ISO's 32 KiB system area: a CD to one reader, a disk
    to qemu (CVE-2024-40767)."""
    path = iso(d)
    small = qcow2(d, "cluster_size=512", size="64k", name="small.qcow2")
    data = small.read_bytes()
    assert len(data) <= 32 * KiB
    overwrite(path, 0, data)
    assert qemu_info(path)["format"] == "qcow2"
    assert "Volume id: THREATS" in run("isoinfo", "-d", "-i", path)
    return path


@threat("multiple-formats", "qcow2-beside-mbr", "error", tools=("qemu-img", "qemu-io", "sfdisk"))
def _qcow2_mbr(d: Path) -> Path:
    """A v2 header ends at 72: bytes 446..511 take an sfdisk partition table."""
    table = mbr_disk(d).read_bytes()[446:512]
    path = qcow2(d, "compat=0.10", size="16M")
    overwrite(path, 446, table)
    assert qemu_info(path)["format"] == "qcow2" and sfdisk_label(path) == "dos"
    return path


@threat("multiple-formats", "vdi-beside-mbr", "error", tools=("qemu-img", "qemu-io", "sfdisk"))
def _vdi_mbr(d: Path) -> Path:
    """The VDI header's parent UUID (0x1b8..0x1c7) overlaps MBR entry 1, which stays
    zero; sfdisk's partition 1 goes into entry 2 (462) and the boot signature at 510."""
    mbr = mbr_disk(d).read_bytes()
    path = vdi(d)
    overwrite(path, 462, mbr[446:462])
    overwrite(path, 510, b"\x55\xaa")
    assert qemu_info(path)["format"] == "vdi" and sfdisk_label(path) == "dos"
    return path


@threat("multiple-formats", "qcow2-with-vhd-footer", "error")
def _qcow2_vhd(d: Path) -> Path:
    """A fixed VHD's footer (qemu-made) appended to a qcow2: two container signatures."""
    footer = vhd(d, "fixed", "1M").read_bytes()[-512:]
    path = qcow2(d)
    with open(path, "ab") as f:
        f.write(footer)
    assert qemu_info(path)["format"] == "qcow2"
    assert qemu_info(path, "vpc")["format"] == "vpc"
    return path


# == truncated ===========================================================================

def _header_and_backing_name(d: Path, compat: str) -> Path:
    """A qemu-made qcow2 cut right after its backing file name: only the header (72 bytes
    for v2, 104 for v3), its extensions and the name are in the file; qemu reads the
    rest as zeros and opens it."""
    path = qemu_create(d / "disk.qcow2", "1M", "-u", "-b", "base.raw", "-F", "raw", "-o",
                       f"compat={compat},cluster_size=512", fmt="qcow2")
    name_at, name_len = u64(path, 8), u32(path, 16)
    with open(path, "r+b") as f:
        f.truncate(name_at + name_len)
    assert qemu_info(path)["format"] == "qcow2"
    return path


@threat("truncated", "qcow2-v2-header-and-backing-name", "error")
def _short_v2(d: Path) -> Path:
    return _header_and_backing_name(d, "0.10")


@threat("truncated", "qcow2-v3-header-and-backing-name", "error")
def _short_v3(d: Path) -> Path:
    return _header_and_backing_name(d, "1.1")


@threat("truncated", "qcow2-header-cut", refused=imgscan.TruncatedImage)
def _cut_header(d: Path) -> Path:
    path = qcow2(d)
    with open(path, "r+b") as f:
        f.truncate(90)
    return path


@threat("truncated", "qcow2-l1-past-eof", "error")
def _l1_past_eof(d: Path) -> Path:
    path = qcow2(d)
    overwrite(path, 40, struct.pack(">Q", 1 << 40))  # spec: l1_table_offset
    return path


@threat("truncated", "vhd-bat-past-eof", refused=imgscan.TruncatedImage)
def _bat_past_eof(d: Path) -> Path:
    path = vhd(d)
    buf = bytearray(path.read_bytes())
    header = struct.unpack_from(">Q", buf, 16)[0]
    struct.pack_into(">Q", buf, header + 16, len(buf) - 16)  # spec: table offset
    vhd_refresh_header_checksum(buf, header)
    path.write_bytes(bytes(buf))
    return path


@threat("truncated", "vhd-missing-footer", "warning")
def _vhd_no_footer(d: Path) -> Path:
    path = vhd(d)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 512)
    return path


@threat("truncated", "gpt-disk-cut-short", "warning", tools=("sfdisk",))
def _gpt_cut(d: Path) -> Path:
    path = sparse_file(d / "gpt.raw", 16 * MiB)
    sfdisk(path, "label: gpt\n2048,,L\n")
    with open(path, "r+b") as f:
        f.truncate(8 * MiB)
    return path


# == size-mismatch =======================================================================

@threat("size-mismatch", "vhd-current-size-vs-chs", "info")
def _vhd_chs(d: Path) -> Path:
    """force_size: qemu keeps the size asked for, which no CHS geometry gives exactly."""
    return vhd(d, "dynamic", "5000000", "force_size=on")


@threat("size-mismatch", "vmdk-stream-header-vs-footer-capacity", "error")
def _stream_capacity(d: Path) -> Path:
    path = stream_vmdk_with_footer(d)
    overwrite(path, 12, struct.pack("<Q", u64(path, 12, "<") * 2))  # spec: capacity
    return path


@threat("size-mismatch", "luks-payload-past-eof", "warning", tools=("cryptsetup",))
def _luks_payload(d: Path) -> Path:
    """A LUKS1 header whose payload offset (spec: 104, in sectors) lies past the file."""
    path = luks_format(d / "disk.luks", "--type", "luks1")
    overwrite(path, 104, struct.pack(">I", 1 << 20))
    return path


@threat("size-mismatch", "vhd-fixed-data-area-vs-size", "info")
def _vhd_fixed_longer(d: Path) -> Path:
    """A fixed VHD is its data area then the footer: 64 KiB more data area than the
    footer's disk size."""
    path = vhd(d, "fixed", "1M")
    data = path.read_bytes()
    path.write_bytes(data[:-512] + bytes(64 * KiB) + data[-512:])
    return path


# == resource-exhaustion =================================================================

@threat("resource-exhaustion", "qcow2-l1-size", refused=imgscan.LimitExceeded)
def _l1_size(d: Path) -> Path:
    path = qcow2(d)
    overwrite(path, 36, struct.pack(">I", 0x7FFFFFFF))  # spec: l1_size
    return path


@threat("resource-exhaustion", "qcow2-snapshot-count", refused=imgscan.LimitExceeded)
def _snapshots(d: Path) -> Path:
    path = qcow2(d)
    overwrite(path, 60, struct.pack(">I", 0x7FFFFFFF))  # spec: nb_snapshots
    return path


@threat("resource-exhaustion", "qcow2-refcount-table", refused=imgscan.LimitExceeded)
def _refcount_table(d: Path) -> Path:
    path = qcow2(d)
    overwrite(path, 56, struct.pack(">I", 0x7FFFFFFF))  # spec: refcount_table_clusters
    return path


@threat("resource-exhaustion", "vhd-bat-entries", refused=imgscan.LimitExceeded)
def _vhd_bat(d: Path) -> Path:
    path = vhd(d)
    buf = bytearray(path.read_bytes())
    header = struct.unpack_from(">Q", buf, 16)[0]
    struct.pack_into(">I", buf, header + 28, 0x40000001)  # spec: max table entries
    vhd_refresh_header_checksum(buf, header)
    path.write_bytes(bytes(buf))
    return path


@threat("resource-exhaustion", "vmdk-extent-count", refused=imgscan.LimitExceeded)
def _vmdk_extents(d: Path) -> Path:
    def edit(text: str) -> str:
        line = next(x for x in text.splitlines() if x.startswith("RW "))
        return text.replace(line, "\n".join(['RW 1 ZERO'] * 5000))
    return vmdk_descriptor(d, edit)


@threat("resource-exhaustion", "gpt-entry-count", "error", tools=("sfdisk",))
def _gpt_entries(d: Path) -> Path:
    path = sparse_file(d / "gpt.raw", 8 * MiB)
    sfdisk(path, "label: gpt\n2048,,L\n")
    for header in (512, 8 * MiB - 512):
        patch_gpt(path, header, header=lambda h: struct.pack_into("<I", h, 80, 0xFFFFFFFF))
    return path


@threat("resource-exhaustion", "mbr-ebr-chain", "error", tools=("sfdisk",))
def _ebr_chain(d: Path) -> Path:
    """An extended partition by sfdisk, then 5000 hand-linked EBRs (spec: entry 2 links
    to the next EBR, relative to the extended partition)."""
    path = sparse_file(d / "chain.raw", 16 * MiB)
    links = 5000
    sfdisk(path, f"label: dos\nstart=2048,size={2 * links + 2},type=5\n")
    with open(path, "r+b") as f:
        for i in range(links):
            entry = struct.pack("<B3xB3xII", 0, 0x83, 1, 1)
            link = struct.pack("<B3xB3xII", 0, 0x05, 2 * (i + 1), 2)
            f.seek((2048 + 2 * i) * 512 + 446)
            f.write(entry + link + bytes(32) + b"\x55\xaa")
    return path


@threat("resource-exhaustion", "lvm-many-pvs", "warning", tools=("sfdisk", "lvm", "losetup"))
def _many_pvs(d: Path) -> Path:
    """One PV made by pvcreate (a 17 MiB metadata area) and vgcreate, its committed text
    grown to 16 MiB of NUL padding (raw_locn size and checksums rewritten), copied into
    each of 256 GPT partitions made by sfdisk: exactly limits.LVM_MAX_PHYSICAL_VOLUMES, so
    only the 16 MiB to checksum per PV, far past limits.LVM_MAX_METADATA_BYTES_PER_DISK,
    can stop the walk (the PV cap's own boundary is tests/_core/test_lvm.py's)."""
    from helpers.lvm_disk import cloned_pvs, pad_metadata, single_pv

    pv = single_pv(d, 20 * MiB, "--metadatasize", "17m")
    pad_metadata(pv, 16 * MiB)
    return cloned_pvs(d, pv, 256)


# == unknown-feature =====================================================================

@threat("unknown-feature", "qcow2-incompatible-bit", "error")
def _incompatible_bit(d: Path) -> Path:
    path = qcow2(d)
    overwrite(path, 72, struct.pack(">Q", u64(path, 72) | (1 << 20)))
    return path


@threat("unknown-feature", "qcow2-version-4", refused=imgscan.UnsupportedFeature)
def _version_4(d: Path) -> Path:
    path = qcow2(d)
    overwrite(path, 4, struct.pack(">I", 4))
    return path


@threat("unknown-feature", "vmdk-version-4", refused=imgscan.UnsupportedFeature)
def _vmdk_version(d: Path) -> Path:
    path = qemu_create(d / "disk.vmdk", "1M", fmt="vmdk")
    overwrite(path, 4, struct.pack("<I", 4))
    return path


@threat("unknown-feature", "vhdx-required-metadata", refused=imgscan.UnsupportedFeature)
def _vhdx_required(d: Path) -> Path:
    path = vhdx(d)
    buf = bytearray(path.read_bytes())
    moff = _vhdx_metadata_region(buf)
    count = struct.unpack_from("<H", buf, moff + 10)[0]
    e = moff + 32 + 32 * count
    buf[e:e + 16] = bytes(range(16, 32))
    struct.pack_into("<III", buf, e + 16, 64 * KiB, 8, 0x4)  # IsRequired
    struct.pack_into("<H", buf, moff + 10, count + 1)
    path.write_bytes(bytes(buf))
    return path


@threat("unknown-feature", "vdi-image-type", refused=imgscan.UnsupportedFeature)
def _vdi_type(d: Path) -> Path:
    path = vdi(d)
    overwrite(path, 0x4C, struct.pack("<I", 9))
    return path


# == encrypted ===========================================================================

def _encrypted_qcow2(d: Path, fmt: str, *opts: str) -> Path:
    """``qemu-img create --object secret -o encrypt.key-secret=... OPTS``; a LUKS PBKDF
    timing failure on a loaded machine is retried with a longer iteration time."""
    path = d / f"disk.{fmt}"
    options = ",".join((*opts, "encrypt.key-secret=sec0"))
    run_keyed(lambda i: ["qemu-img", "create", "-q", "-f", fmt, "--object", SECRET, "-o",
                         options.replace("ITER", str(100 << i)), path, "1M"])
    return path


@threat("encrypted", "qcow2-luks", "error")
def _qcow2_luks(d: Path) -> Path:
    return _encrypted_qcow2(d, "qcow2", "encrypt.format=luks", "encrypt.iter-time=ITER")


@threat("encrypted", "qcow2-aes", "error")
def _qcow2_aes(d: Path) -> Path:
    return _encrypted_qcow2(d, "qcow2", "compat=0.10", "encrypt.format=aes")


@threat("encrypted", "qcow-aes", "error")
def _qcow_aes(d: Path) -> Path:
    return _encrypted_qcow2(d, "qcow", "encrypt.format=aes")


@threat("encrypted", "luks1", "error", tools=("cryptsetup",))
def _luks1(d: Path) -> Path:
    return luks_format(d / "disk.img", "--type", "luks1")


@threat("encrypted", "luks2", "error", tools=("cryptsetup",))
def _luks2(d: Path) -> Path:
    return luks_format(d / "disk.img", "--type", "luks2", "--luks2-metadata-size", "16k",
                       "--luks2-keyslots-size", "1m", "--offset", "4096")


@threat("encrypted", "luks-in-a-partition", "error", tools=("cryptsetup", "sfdisk"))
def _luks_partition(d: Path) -> Path:
    disk = mbr_disk(d)
    volume = luks_format(d / "volume.img", "--type", "luks2", "--luks2-metadata-size", "16k",
                         "--luks2-keyslots-size", "1m", "--offset", "4096", size=4 * MiB)
    overwrite(disk, 2048 * 512, volume.read_bytes()[:2 * MiB])
    return disk


@threat("encrypted", "bitlocker-in-a-partition", "error", tools=("sfdisk",))
def _bitlocker(d: Path) -> Path:
    """A real BitLocker volume (cryptsetup's test images: no tool here writes one) in an
    sfdisk partition."""
    if not BITLK.is_file():
        pytest.skip(f"{BITLK} is absent")
    with tarfile.open(BITLK) as tar:
        member = tar.extractfile("bitlk-images/bitlk-aes-xts-128.img")
        assert member is not None
        volume = member.read()
    path = sparse_file(d / "disk.raw", 2 * MiB + len(volume) + MiB)
    sfdisk(path, f"label: dos\nstart=4096,size={len(volume) // 512},type=7\n")
    overwrite(path, 2 * MiB, volume)
    return path


# == dirty ===============================================================================

@threat("dirty", "qcow2-dirty-bit", "warning")
def _qcow2_dirty(d: Path) -> Path:
    """Lazy refcounts keep the dirty bit until a clean close; qemu-io is killed first."""
    path = qemu_create(d / "disk.qcow2", "1M", "-o", "lazy_refcounts=on", fmt="qcow2")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", "-c", "sigraise 9",
                    str(path)], capture_output=True, check=False)
    assert qemu_info(path)["dirty-flag"] is True
    return path


@threat("dirty", "qcow2-corrupt-bit", "warning")
def _qcow2_corrupt(d: Path) -> Path:
    path = qcow2(d)
    overwrite(path, 72, struct.pack(">Q", u64(path, 72) | (1 << 1)))
    return path


@threat("dirty", "vhdx-log-pending", "warning")
def _vhdx_log(d: Path) -> Path:
    """qemu's last log entry made pending again: the log GUID back in the current header
    (spec 2.2.2), the sector the entry wrote zeroed in place."""
    path = vhdx(d, "64M")
    qemu_io(path, "write -P 0x4d 40M 64k", fmt="vhdx")
    buf = bytearray(path.read_bytes())
    seqs = [struct.unpack_from("<Q", buf, h + 8)[0] for h in (64 * KiB, 128 * KiB)]
    hdr = 64 * KiB if seqs[0] > seqs[1] else 128 * KiB
    log_offset = struct.unpack_from("<Q", buf, hdr + 72)[0]
    assert buf[log_offset:log_offset + 4] == b"loge"
    buf[hdr + 48:hdr + 64] = buf[log_offset + 32:log_offset + 48]
    vhdx_reseal(buf, hdr, 4 * KiB)
    target = struct.unpack_from("<Q", buf, log_offset + 64 + 16)[0]
    buf[target:target + 4096] = bytes(4096)
    path.write_bytes(bytes(buf))
    return path


@threat("dirty", "qed-need-check", "warning")
def _qed_need_check(d: Path) -> Path:
    path = qed(d)
    overwrite(path, 16, struct.pack("<Q", 2))  # spec: features, QED_F_NEED_CHECK
    return path


WINDOWS = Path(__file__).resolve().parent / "fixtures" / "windows"


def _windows_fixture(d: Path, name: str) -> Path:
    return decompress(WINDOWS / f"{name}.img.xz", d / "windows.img")


@threat("dirty", "windows-hibernated", "warning", tools=())
def _hibernated(d: Path) -> Path:
    return _windows_fixture(d, "uefi")


@threat("dirty", "ntfs-volume-dirty", "warning", tools=("ntfsinfo",))
def _ntfs_dirty(d: Path) -> Path:
    """VOLUME_IS_DIRTY (0x0001) in $Volume's $VOLUME_INFORMATION flags, in MFT record 3
    and its $MFTMirr copy: each FILE record found at a 1 KiB boundary whose number
    (offset 44) is 3, edited through its update sequence array."""
    path = _windows_fixture(d, "bios")
    buf = bytearray(path.read_bytes())
    pos, edited = buf.find(b"FILE"), 0
    while pos >= 0:
        if pos % 1024 == 0 and struct.unpack_from("<I", buf, pos + 44)[0] == 3:
            attr = struct.unpack_from("<H", buf, pos + 20)[0]
            while struct.unpack_from("<I", buf, pos + attr)[0] not in (0x70, 0xFFFFFFFF):
                attr += struct.unpack_from("<I", buf, pos + attr + 4)[0]
            if struct.unpack_from("<I", buf, pos + attr)[0] == 0x70:
                value = attr + struct.unpack_from("<H", buf, pos + attr + 20)[0]
                flags = struct.unpack_from("<H", buf, pos + value + 10)[0] | 1
                ntfs_poke(buf, pos, value + 10, struct.pack("<H", flags))
                edited += 1
        pos = buf.find(b"FILE", pos + 1)
    assert edited >= 2, edited  # $MFT and $MFTMirr (and $LogFile's copies)
    path.write_bytes(bytes(buf))
    return path


# == compression-bomb ====================================================================

@threat("compression-bomb", "qcow2-zlib-cluster", "error")
def _qcow2_bomb(d: Path) -> Path:
    """Guest cluster 0 of a compressed qcow2 (qemu-img convert -c) aimed at a deflate
    stream of 64 MiB of zeros (spec: compressed L2 entry, bit 62)."""
    src = qcow2(d, name="src.qcow2")
    path = d / "disk.qcow2"
    run("qemu-img", "convert", "-c", "-O", "qcow2", src, path)
    entry_at = l2_entry_of_cluster0(path)
    assert u64(path, entry_at) & (1 << 62)
    cluster_bits = u32(path, 20)
    stream = deflate_bomb(64 * MiB)
    host = (path.stat().st_size + 511) // 512 * 512
    overwrite(path, host, stream)
    sectors = (len(stream) + 511) // 512
    shift = 62 - (cluster_bits - 8)
    overwrite(path, entry_at, struct.pack(">Q", (1 << 62) | ((sectors - 1) << shift) | host))
    return path


@threat("compression-bomb", "vmdk-stream-grain", "error")
def _vmdk_bomb(d: Path) -> Path:
    """The first grain of a qemu-made streamOptimized VMDK replaced by a zlib stream of
    256 KiB of zeros (spec: grain marker, then the compressed size at -4)."""
    path = stream_vmdk(d)
    buf = bytearray(path.read_bytes())
    grain = 512  # the first sector holding a grain marker of LBA 0 and a zlib stream
    while buf[grain:grain + 8] != bytes(8) or buf[grain + 12] != 0x78:
        grain += 512
    bomb = zlib.compress(bytes(4 * 65536), 9)
    struct.pack_into("<I", buf, grain + 8, len(bomb))
    buf[grain + 12:grain + 12 + len(bomb)] = bomb
    path.write_bytes(bytes(buf))
    return path


# -- OVA packages (tests/helpers/ova_packages.py: qemu-img, tar, sha256sum) -------------
OVA_TOOLS = ("qemu-img", "tar", "sha256sum", "sfdisk")


def ova_package(d: Path, disks: int = 1) -> Path:
    """An OVA of ``disks`` streamOptimized copies of an MBR-partitioned disk."""
    raw = mbr_disk(d)
    return build_ova(d / "pkg", "pkg", [(f"disk{i}.vmdk", raw) for i in range(1, disks + 1)])


@threat("truncated", "ova-member-past-eof", "error", tools=OVA_TOOLS)
def _ova_cut(d: Path) -> Path:
    """The OVA ends inside its second disk (``tar --block-number`` gives the member's
    header block)."""
    path = ova_package(d, 2)
    listing = run("tar", "--block-number", "-tvf", path).splitlines()
    last = next(line for line in listing if line.endswith(" disk2.vmdk"))
    header = int(last.split(":", 1)[0].split()[1])
    with open(path, "r+b") as f:
        f.truncate((header + 1) * 512 + 100)
    return path


@threat("resource-exhaustion", "ovf-descriptor-nesting", "error", tools=OVA_TOOLS)
def _ovf_nesting(d: Path) -> Path:
    """The descriptor nests elements a thousand deep (the package is still read from its
    members: the finding is on the descriptor)."""
    path = ova_package(d)
    ovf = d / "pkg" / "pkg.ovf"
    ovf.write_text(ovf.read_text().replace("</Envelope>",
                                           "<a>" * 1000 + "</a>" * 1000 + "</Envelope>"))
    path.unlink()
    run("tar", "--format=ustar", "-cf", path, "pkg.ovf", "disk1.vmdk", cwd=d / "pkg")
    return path


# == the matrix ==========================================================================

def _missing(tools: tuple[str, ...]) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Row], Path]:
    """The image of a row, built once per session in its own directory."""
    root = tmp_path_factory.mktemp("threats")
    built: dict[str, Path] = {}

    def image(row: Row) -> Path:
        if missing := _missing(row.tools):
            pytest.skip(f"{', '.join(missing)} not installed")
        if row.id not in built:
            d = root / row.id.replace("/", "--")
            d.mkdir(exist_ok=True)
            built[row.id] = row.build(d)
        return built[row.id]

    return image


def outcome(path: Path) -> list[tuple[str, str]] | str:
    """The image's findings as sorted (id, severity) pairs, or the error that refuses it."""
    try:
        with imgscan.open(path) as img:
            return sorted((f["id"], f["severity"]) for f in img.info()["findings"])
    except imgscan.ImageError as exc:
        return type(exc).__name__


def test_every_class_has_a_row() -> None:
    assert {r.finding for r in ROWS} == set(CLASSES)
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_threat(hostile: Callable[[Row], Path], row: Row) -> None:
    path = hostile(row)
    if row.refused is not None:
        with pytest.raises(row.refused) as exc:
            imgscan.open(path).info()
        assert finding_id(exc.value) == row.finding
        return
    with imgscan.open(path) as img:
        info = img.info()
    found = [(f["id"], f["severity"]) for f in info["findings"]]
    assert (row.finding, row.severity) in found, info["findings"]
    result = check(info, load_profile("safe"))
    assert result["verdict"] == expected_verdict(info), result["rules"]
    if row.finding in DEPENDENCY_CLASSES:
        contained = next(r for r in result["rules"] if r["id"] == "self-contained")
        assert contained["status"] == "fail", contained


SUFFIXES = (".iso", ".raw", ".txt", "")


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_findings_never_depend_on_the_name(hostile: Callable[[Row], Path], row: Row) -> None:
    path = hostile(row)
    expected = outcome(path)
    for suffix in SUFFIXES:
        other = path.with_name("renamed" + suffix)
        os.link(path, other)
        try:
            assert outcome(other) == expected, suffix
        finally:
            other.unlink()


def imgscan_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m imgscan ARGS`` running the very imgscan these tests imported."""
    path = [str(Path(imgscan.__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    return subprocess.run([sys.executable, "-m", "imgscan", *args], capture_output=True,
                          text=True, check=False, env=env, cwd=Path(__file__).parent)


def test_cli_info_and_safe_check(hostile: Callable[[Row], Path]) -> None:
    """``imgscan info --json`` and ``imgscan check --profile safe --json`` over every row
    at once: the same finding, or an error object of the same kind."""
    rows, paths, not_made = [], [], []
    for row in ROWS:
        try:
            paths.append(str(hostile(row)))
        except pytest.skip.Exception as exc:   # a tool or a corpus file is absent
            not_made.append(f"{row.id} ({exc.msg})")
            continue
        rows.append(row)
    info = imgscan_cli("info", "--json", *paths)
    assert info.returncode == 2  # some rows are refused
    lines = [json.loads(x) for x in info.stdout.splitlines()]
    checked = imgscan_cli("check", "--profile", "safe", "--json", *paths)
    assert checked.returncode == 2
    verdicts = [json.loads(x) for x in checked.stdout.splitlines()]
    assert len(lines) == len(verdicts) == len(rows)
    for row, obj, verdict in zip(rows, lines, verdicts, strict=True):
        if row.refused is not None:
            assert obj["error"]["type"] == row.refused.__name__, row.id
            assert "error" in verdict, row.id
        else:
            assert {"id": row.finding, "severity": row.severity} in [
                {"id": f["id"], "severity": f["severity"]} for f in obj["findings"]], row.id
            assert verdict["verdict"] == expected_verdict(obj), row.id
    if not_made:   # the rows made were checked; the others are reported, not dropped
        pytest.skip(f"rows not made: {'; '.join(not_made)}")


# == legitimate twins ====================================================================

#: Legitimate images of each format, made by the tools alone: no finding at all.
Twin = Callable[[Path], Path]
TWINS: dict[str, tuple[Twin, tuple[str, ...]]] = {}


def twin(name: str, tools: tuple[str, ...] = ("qemu-img", "qemu-io")) -> Callable[[Twin], Twin]:
    def register(build: Twin) -> Twin:
        TWINS[name] = (build, tools)
        return build
    return register


@twin("qcow2-v3-extended-l2")
def _t_extl2(d: Path) -> Path:
    path = qcow2(d, "extended_l2=on", "cluster_size=64k", size="4M")
    qemu_io(path, "write -P 0x11 8k 4k", "write -z 1M 64k")
    return path


@twin("qcow2-v2")
def _t_v2(d: Path) -> Path:
    return qcow2(d, "compat=0.10")


@twin("qcow2-compressed")
def _t_compressed(d: Path) -> Path:
    src = qcow2(d, name="src.qcow2", size="2M")
    path = d / "disk.qcow2"
    run("qemu-img", "convert", "-c", "-O", "qcow2", src, path)
    return path


@twin("qcow2-zstd-lazy-refcounts")
def _t_zstd(d: Path) -> Path:
    return qcow2(d, "compression_type=zstd", "lazy_refcounts=on")


@twin("qed")
def _t_qed(d: Path) -> Path:
    return qed(d)


@twin("qcow-v1")
def _t_qcow(d: Path) -> Path:
    path = qemu_create(d / "disk.qcow", "1M", fmt="qcow")
    qemu_io(path, "write -P 0x5a 0 4k", fmt="qcow")
    return path


@twin("iso-hybrid-xorriso", ("xorriso",))
def _t_iso_xorriso(d: Path) -> Path:
    tree = d / "tree"
    (tree / "isolinux").mkdir(parents=True)
    sparse_copy("/usr/lib/ISOLINUX/isolinux.bin", tree / "isolinux")
    path = d / "hybrid.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
        "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
        "-boot-load-size", "4", "-boot-info-table", "-o", path, tree)
    return path


@twin("iso-isohybrid", ("genisoimage", "isohybrid"))
def _t_iso_isohybrid(d: Path) -> Path:
    tree = d / "tree"
    (tree / "isolinux").mkdir(parents=True)
    sparse_copy("/usr/lib/ISOLINUX/isolinux.bin", tree / "isolinux")
    path = d / "hybrid.iso"
    run("genisoimage", "-quiet", "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
        "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-o", path, tree)
    run("isohybrid", path)
    return path


@twin("iso-plain", ("genisoimage",))
def _t_iso(d: Path) -> Path:
    return iso(d)


@twin("vhd-fixed")
def _t_vhd_fixed(d: Path) -> Path:
    return vhd(d, "fixed", "8M")


@twin("vhd-dynamic")
def _t_vhd_dynamic(d: Path) -> Path:
    return vhd(d, "dynamic", "8M")


@twin("vmdk-monolithicSparse")
def _t_vmdk(d: Path) -> Path:
    path = qemu_create(d / "disk.vmdk", "1M", fmt="vmdk")
    qemu_io(path, "write -P 0x5a 0 4k", fmt="vmdk")
    return path


@twin("vmdk-streamOptimized")
def _t_stream(d: Path) -> Path:
    return stream_vmdk(d)


@twin("vmdk-streamOptimized-with-footer")
def _t_stream_footer(d: Path) -> Path:
    return stream_vmdk_with_footer(d)


@twin("qcow2-of-a-partitioned-disk", ("qemu-img", "sfdisk"))
def _t_qcow2_mbr(d: Path) -> Path:
    """An MBR inside the guest disk is no second format: only one at file offset 0 is."""
    path = d / "disk.qcow2"
    run("qemu-img", "convert", "-O", "qcow2", mbr_disk(d), path)
    return path


@twin("vhd-fixed-of-a-partitioned-disk", ("qemu-img", "sfdisk"))
def _t_vhd_mbr(d: Path) -> Path:
    """A fixed VHD's first sector is the guest's: its MBR is the guest's partition table."""
    path = d / "disk.vhd"
    run("qemu-img", "convert", "-O", "vpc", "-o", "subformat=fixed", mbr_disk(d), path)
    return path


@twin("vdi")
def _t_vdi(d: Path) -> Path:
    return vdi(d)


@twin("vhdx")
def _t_vhdx(d: Path) -> Path:
    return vhdx(d)


@twin("raw-gpt", ("sfdisk",))
def _t_gpt(d: Path) -> Path:
    path = sparse_file(d / "gpt.raw", 8 * MiB)
    sfdisk(path, "label: gpt\n2048,,L\n")
    return path


@twin("raw-mbr", ("sfdisk",))
def _t_mbr(d: Path) -> Path:
    return mbr_disk(d)


@twin("windows", ())
def _t_windows(d: Path) -> Path:
    return _windows_fixture(d, "bios")


@twin("ova", OVA_TOOLS)
def _t_ova(d: Path) -> Path:
    return ova_package(d, 2)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_legitimate_twin(tmp_path: Path, name: str) -> None:
    build, tools = TWINS[name]
    if missing := _missing(tools):
        pytest.skip(f"{', '.join(missing)} not installed")
    path = build(tmp_path)
    with imgscan.open(path) as img:
        info = img.info()
    assert info["findings"] == []
    result = check(info, load_profile("safe"))
    assert result["verdict"] == "pass", [r for r in result["rules"] if r["status"] != "pass"]


pytestmark = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-img / qemu-io not installed")
