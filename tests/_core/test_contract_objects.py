"""The contract objects assembled natively (imgscan._core.contract_objects) keep the
published contract's keys in its order, and the partition reader's in-place check of
sector 0 and LBA 1 (issue 18) still sends every disk with a table to the full reader.

Oracles: ../shared/docs/json-contract.md (key order) and sgdisk (the GPT's partitions).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from helpers import overwrite, sparse_file
from oracles import SHARED

import imgscan
from imgscan._core.partitions import read_partition_table

SAMPLE = Path(str(resources.files("imgscan") / "samples" / "demo.qcow2"))
CONTRACT = SHARED / "docs" / "json-contract.md"


def _published(section_start: str, section_end: str) -> list[str]:
    text = CONTRACT.read_text()
    section = text.split(section_start)[1].split(section_end)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)


@pytest.mark.skipif(not CONTRACT.is_file(), reason=f"{CONTRACT} is absent")
def test_info_and_partition_keys_in_the_published_order() -> None:
    with imgscan.open(SAMPLE) as img:
        info = img.info()
    keys = _published("## `imgscan info --json IMAGE`", "Each partition:")
    assert list(info)[:len(keys)] == keys
    assert info["partitions"], "the sample disk has an MBR with partitions"
    part_keys = _published("Each partition:", "The `windows` object")
    for part in info["partitions"]:
        assert list(part)[:len(part_keys)] == part_keys


@pytest.mark.skipif(not shutil.which("sgdisk"),
                    reason="sgdisk not installed (apt-get install gdisk)")
def test_gpt_without_protective_mbr_is_still_read(tmp_path: Path) -> None:
    """Sector 0 zeroed (no 0x55AA): only LBA 1's signature sends the reader on."""
    disk = sparse_file(tmp_path / "gpt.img", 64 << 20)
    subprocess.run(["sgdisk", "-n", "1:2048:+8M", "-t", "1:8300", "-n", "2:0:+16M",
                    "-t", "2:ef00", str(disk)], check=True, capture_output=True)
    listed = subprocess.run(["sgdisk", "-p", str(disk)], check=True, capture_output=True,
                            text=True).stdout
    expected = [(int(m[0]), int(m[1])) for m in re.findall(
        r"^\s+(\d+)\s+(\d+)\s+\d+", listed, flags=re.MULTILINE)]
    overwrite(disk, 0, bytes(512))
    data = disk.read_bytes()

    def read(offset: int, length: int) -> bytes:
        return data[offset:offset + length]

    table = read_partition_table(read, len(data), str(disk))
    assert table.kind == "gpt"
    assert [(p.number, p.first_lba) for p in table.partitions] == expected == [(1, 2048),
                                                                              (2, 18432)]
    assert any("GPT without a protective MBR" in f.message for f in table.findings)
    # and a disk of zeros has no table, and no findings
    assert read_partition_table(lambda o, n: bytes(n), 1 << 20, "zeros").kind == "none"
