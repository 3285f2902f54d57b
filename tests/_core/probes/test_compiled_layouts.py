"""The probes', the partition reader's and the qcow2 and VMDK readers' constants, compiled in
from the c_ declarations.

Issue 18. What the probes find is checked against blkid in tests/_core/test_filesystems.py; here,
that the extension was built from the declarations as they are now (a declaration
changed without a rebuild fails here, by name, rather than as a wrong probe result).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import TESTS

import imgscan
from imgscan._core import c_btrfs, c_fat, c_gpt, c_mbr, c_qcow2, partitions, qcow2, signatures
from imgscan._core.probes import compiled_layouts, dos, linux


def in_checkout(path: Path) -> Path:
    """``path`` (a generated .pxi beside the imported module) in the checkout under test:
    setup.py writes them there (pip builds in place), and an installed package, which
    the tests may import instead of the checkout, does not carry them."""
    return TESTS.parent / path.relative_to(Path(imgscan.__file__).parent.parent)


@pytest.mark.parametrize("path", compiled_layouts.LAYOUTS, ids=lambda path: path.name)
def test_the_built_constants_are_the_declarations_of_now(path: Path) -> None:
    expected = compiled_layouts.render(compiled_layouts.LAYOUTS[path]())
    assert in_checkout(path).read_text() == expected, \
        f"{path.name} is stale: rebuild (python3 setup.py build_ext --inplace)"


def test_the_compiled_module_holds_the_declared_values() -> None:
    """The names the module exports to probe_volume, as c_btrfs declares them."""
    assert (linux.BTRFS_SB, linux.BTRFS_SB_BYTES) == (c_btrfs.BTRFS_SUPER_INFO_OFFSET,
                                                      c_btrfs.BTRFS_SUPER_INFO_SIZE)


def test_the_partition_reader_and_the_mbr_probe_hold_the_declared_values() -> None:
    """The Python-level names the partition reader, the FAT probe and the registry's MBR
    probe export, as c_mbr, c_gpt and c_fat declare them (the C offsets are checked by
    the readers' tests against sfdisk, sgdisk and blkid)."""
    assert (partitions.MBR_SECTOR_SIZE, partitions.MBR_BOOT_CODE_SIZE,
            partitions.MBR_ENTRY_COUNT, partitions.MBR_EXTENDED_TYPES,
            partitions.MBR_TYPE_GPT_PROTECTIVE) == (
        c_mbr.SECTOR_SIZE, c_mbr.BOOT_CODE_SIZE, c_mbr.ENTRY_COUNT, c_mbr.EXTENDED_TYPES,
        c_mbr.TYPE_GPT_PROTECTIVE)
    assert (partitions.GPT_SIGNATURE, partitions.GPT_SECTOR_SIZES,
            partitions.GPT_ATTR_LEGACY_BIOS_BOOTABLE) == (
        c_gpt.SIGNATURE, c_gpt.SECTOR_SIZES, c_gpt.ATTR_LEGACY_BIOS_BOOTABLE)
    assert (signatures.MBR_SECTOR, signatures.MBR_SIGNATURE_AT) == (c_mbr.SECTOR_SIZE,
                                                                    c_mbr.SIGNATURE_OFFSET)
    fs_types = {c_fat.FAT32_BOOT_SECTOR.offset("file_system_type"),
                c_fat.FAT16_BOOT_SECTOR.offset("file_system_type")}
    assert {offset for offset, _ in dos.FAT_MAGICS} == fs_types


def test_the_qcow2_reader_holds_the_declared_values() -> None:
    """The Python-level names the qcow2 reader compiles in, as c_qcow2 declares them (the
    header's offsets are checked by tests/_core/test_qcow2.py against qemu-img)."""
    assert (qcow2.CRYPT_NAMES, qcow2.COMPRESSION_NAMES, qcow2.FEATURE_KINDS) == (
        c_qcow2.CRYPT_NAMES, c_qcow2.COMPRESSION_NAMES, c_qcow2.FEATURE_KINDS)


def test_a_qcow2_header_the_reader_does_not_read_so_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """qcow2.pyx reads each header field as be32, be64 or a byte: a declaration whose
    widths differ from those reads stops the build rather than mis-reading headers."""
    monkeypatch.setitem(compiled_layouts.QCOW2_HEADER_WIDTHS, "l1_size", 8)
    with pytest.raises(ValueError, match="c_qcow2 no longer matches"):
        compiled_layouts.qcow2_constants()


@pytest.mark.parametrize("field, width", [("numGTEsPerGT", 8), ("compressAlgorithm", 4)])
def test_a_vmdk_header_the_reader_does_not_read_so_is_refused(
        monkeypatch: pytest.MonkeyPatch, field: str, width: int) -> None:
    """vmdk_sparse.pyx reads each sparse header field with le16, le32, le64 or as a byte
    into a C struct: a declaration whose widths differ stops the build."""
    compiled_layouts.vmdk_constants()
    monkeypatch.setitem(compiled_layouts.VMDK_HEADER_READS, field,
                        (width, compiled_layouts.VMDK_HEADER_READS[field][1]))
    with pytest.raises(ValueError, match="c_vmdk no longer matches"):
        compiled_layouts.vmdk_constants()


@pytest.mark.parametrize("constants", compiled_layouts.LAYOUTS.values(),
                         ids=lambda constants: constants.__name__)
def test_every_constant_is_named_once(constants: Callable[[], list[tuple[str, str, object]]],
                                      ) -> None:
    names = [name for _, name, _ in constants()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name, value", [
    # The fourth entry would run into the boot signature.
    ("PARTITION_RECORD_OFFSET", c_mbr.SIGNATURE_OFFSET - 3 * c_mbr.MBR_PARTITION.size),
    # The signature would end past the one sector the probe reads.
    ("SIGNATURE_OFFSET", c_mbr.SECTOR_SIZE - 1),
])
def test_the_build_refuses_an_mbr_the_unchecked_probe_cannot_read(
        monkeypatch: pytest.MonkeyPatch, name: str, value: int) -> None:
    """signatures.pyx reads the four entries and the signature from one sector without
    bounds checks; the build (not an ``assert``, which ``python -O`` strips) refuses a
    declaration that would put them outside it."""
    compiled_layouts.signatures_constants()
    monkeypatch.setattr(c_mbr, name, value)
    with pytest.raises(ValueError, match=r"signatures\.pyx's MBR probe"):
        compiled_layouts.signatures_constants()
