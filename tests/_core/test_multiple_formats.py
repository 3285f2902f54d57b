"""A container header beside an MBR partition table (threat `multiple-formats`).

The conflicting file is a qcow2 made by qemu-img whose first sector's tail
(partition table and boot signature, bytes 446..511) is copied from a raw disk
partitioned by sfdisk: qemu-img must still call it qcow2 and sfdisk must
still read a dos label from it, so both readings are real (CVE-2024-40767,
LP#2079850). Legitimate hybrids are checked with the rule itself: a raw disk
(the MBR is its partition table), a fixed VHD made by qemu-img from that disk
(guest sector 0 is the file's sector 0), and a container declaring the MBR as
its own (what the ISO 9660 decoder does for hybrid ISOs via ``details["hybrid"]``;
ISO end-to-end tests belong to that decoder).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from oracles import needs_qemu, qemu_info, run

import imgscan
from imgscan._core.container import Container
from imgscan._core.extents import ExtentMap
from imgscan._core.registry import mbr_beside_header, mbr_partitions, read_ends
from imgscan._core.source import Source

TABLE = slice(446, 512)


def _sfdisk_label(path: Path) -> str:
    proc = subprocess.run(["sfdisk", "--dump", str(path)], capture_output=True, text=True,
                          check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("label:"):
            return line.split(":", 1)[1].strip()
    return ""


@pytest.fixture(scope="session")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw disk with two MBR partitions, partitioned by sfdisk."""
    path = tmp_path_factory.mktemp("mbr") / "disk.raw"
    run("qemu-img", "create", "-q", "-f", "raw", path, "16M")
    subprocess.run(["sfdisk", "-q", str(path)], input="label: dos\n2048,8192,83\n,,7\n",
                   text=True, check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def qcow2_with_mbr(disk: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mbr") / "hybrid.qcow2"
    # compat=0.10: the v2 header ends at byte 72, so 446..511 are unused padding.
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", path, "16M")
    data = bytearray(path.read_bytes())
    data[TABLE] = disk.read_bytes()[TABLE]
    path.write_bytes(bytes(data))
    return path


@needs_qemu
def test_qcow2_beside_mbr(qcow2_with_mbr: Path) -> None:
    assert qemu_info(qcow2_with_mbr)["format"] == "qcow2"
    assert _sfdisk_label(qcow2_with_mbr) == "dos"
    with imgscan.open(qcow2_with_mbr) as img:
        assert img.format == "qcow2"
        found = [f for f in img.findings if f.id == "multiple-formats"]
        assert len(found) == 1
        assert found[0].severity == "error"
        assert "MBR" in found[0].message and "2 partition entries" in found[0].message


@needs_qemu
def test_plain_qcow2_has_no_conflict(tmp_path: Path) -> None:
    path = tmp_path / "plain.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", path, "16M")
    with imgscan.open(path) as img:
        assert [f.id for f in img.findings] == []


@needs_qemu
def test_raw_disk_mbr_is_its_partition_table(disk: Path) -> None:
    assert _sfdisk_label(disk) == "dos"
    with imgscan.open(disk) as img:
        assert img.format == "raw"
        assert "multiple-formats" not in [f.id for f in img.findings]


@needs_qemu
def test_fixed_vhd_carries_the_guest_mbr(disk: Path, tmp_path: Path) -> None:
    path = tmp_path / "fixed.vhd"
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed",
        disk, path)
    # qemu probes a fixed VHD as raw (its footer is at the end); read as vpc, it is one.
    assert qemu_info(path, "vpc")["virtual-size"] >= 16 << 20
    with imgscan.open(path) as img:
        assert img.format == "vhd"
        assert "multiple-formats" not in [f.id for f in img.findings]


class _Declared(Container):
    """A container that declares the MBR in its file as its own, as a hybrid ISO does."""

    format = "hybrid-test"

    def build_extent_map(self) -> ExtentMap:
        emap = ExtentMap(self.virtual_size)
        emap._append(0, self.virtual_size, "unallocated")
        return emap


@needs_qemu
def test_declared_hybrid_is_not_a_conflict(qcow2_with_mbr: Path) -> None:
    with Source(str(qcow2_with_mbr)) as src:
        plain = _Declared(src, 16 << 20)
        assert mbr_beside_header(src, plain, []) is not None
        by_details = _Declared(src, 16 << 20)
        by_details.details["hybrid"] = "mbr"
        assert mbr_beside_header(src, by_details, []) is None
        by_attribute = _Declared(src, 16 << 20)
        by_attribute.hybrid_signatures = ("mbr",)
        assert mbr_beside_header(src, by_attribute, []) is None


@needs_qemu
def test_partition_table_plausibility(disk: Path) -> None:
    sector = bytearray(disk.read_bytes()[:512])
    assert mbr_partitions(bytes(sector)) == 2
    bare = bytearray(512)
    bare[510:512] = b"\x55\xaa"
    assert mbr_partitions(bytes(bare)) == 0        # a boot signature, no partition
    bad = bytearray(sector)
    bad[446] = 0x12                                # invalid boot indicator
    assert mbr_partitions(bytes(bad)) == 0
    unsigned = bytearray(sector)
    unsigned[511] = 0
    assert mbr_partitions(bytes(unsigned)) == 0


def _stamp_luks2_secondary(path: Path, offset: int) -> None:
    """A LUKS2 secondary binary header's first fields at ``offset`` (a spec offset): the
    magic, version 2, a 16 KiB header size and its own offset, as blkid checks them."""
    prefix = bytearray(512)
    prefix[0:8] = b"SKUL\xba\xbe\x00\x02"
    prefix[8:16] = (16384).to_bytes(8, "big")
    prefix[256:264] = offset.to_bytes(8, "big")
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(prefix)


@needs_qemu
@pytest.mark.parametrize("offset", [256 * 1024, 512 * 1024, 4 << 20],
                         ids=["second-region-table", "header-section-reserve", "payload"])
def test_vhdx_beside_luks2_secondary_header(tmp_path: Path, offset: int) -> None:
    # Detection reads the LUKS2 secondary headers after the VHDX decoder has opened the
    # file, from its reads where they hold one (the second region table copy, read with
    # the first): the conflict is found wherever the header lies, blkid the oracle.
    path = tmp_path / "hybrid.vhdx"
    run("qemu-img", "create", "-q", "-f", "vhdx", path, "64M")
    _stamp_luks2_secondary(path, offset)
    assert run("blkid", "-p", "-o", "value", "-s", "TYPE", path).strip() == "crypto_LUKS"
    with Source(str(path)) as src:
        assert read_ends(src).unread != 0     # left for after the open (opens_far)
    with imgscan.open(path) as img:
        assert img.format == "vhdx"
        assert img.virtual_size == qemu_info(path, "vhdx")["virtual-size"]
        found = [f for f in img.findings if f.id == "multiple-formats"]
        assert len(found) == 1 and found[0].severity == "error"
        assert "(vhdx, luks)" in found[0].message
        # the stamped region table copy is damaged: a finding, the first copy used
        damaged = [f for f in img.findings if "region table at 262144" in f.message]
        assert len(damaged) == (offset == 256 * 1024)


@needs_qemu
@pytest.mark.parametrize("offset", [256 * 1024, 4 << 20], ids=["past-the-tables", "payload"])
def test_qcow2_beside_luks2_secondary_header(tmp_path: Path, offset: int) -> None:
    # qcow2's decoder opens no far bytes (Candidate.opens_far false): its file's LUKS2
    # secondary headers are read with its ends, not left for after the open, and the
    # conflict is found as for a VHDX, blkid the oracle (qemu-img for the format and size).
    path = tmp_path / "hybrid.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", path, "64M")
    _stamp_luks2_secondary(path, offset)
    assert run("blkid", "-p", "-o", "value", "-s", "TYPE", path).strip() == "crypto_LUKS"
    info = qemu_info(path)
    assert info["format"] == "qcow2"
    with Source(str(path)) as src:
        assert read_ends(src).unread == 0
    with imgscan.open(path) as img:
        assert img.format == "qcow2"
        assert img.virtual_size == info["virtual-size"]
        found = [f for f in img.findings if f.id == "multiple-formats"]
        assert len(found) == 1 and found[0].severity == "error"
        assert "(qcow2, luks)" in found[0].message


@needs_qemu
def test_plain_vhdx_has_no_conflict(tmp_path: Path) -> None:
    path = tmp_path / "plain.vhdx"
    run("qemu-img", "create", "-q", "-f", "vhdx", path, "64M")
    # blkid: exit status 2, nothing found
    assert subprocess.run(["blkid", "-p", str(path)], capture_output=True).returncode == 2
    with imgscan.open(path) as img:
        assert img.format == "vhdx"
        assert img.findings == []
