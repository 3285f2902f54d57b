"""The walk's listing of a URL prefix in a child process (imgscan.bulk.walk._objects), and
what makes a raw file an image (imgscan.bulk.walk.raw_is_image)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MiB
from oracles import run

from imgscan.bulk.walk import RAW_HEAD_BYTES, Walk, raw_is_image


def test_a_listing_process_that_dies_is_an_error_naming_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing child that exits without its error line (killed, or unable to import
    imgscan) is the prefix's error, with the child's last word: never an empty,
    silently successful listing."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no module named x' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    entries = list(Walk(["s3://bucket/prefix/"]))
    assert len(entries) == 1
    root, error = entries[0]
    assert root == "s3://bucket/prefix/" and isinstance(error, OSError)
    assert "exit status 3" in str(error) and "no module named x" in str(error)


def _no_head() -> bytes:
    raise AssertionError("the head was read")


@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_a_raw_file_is_an_image_by_its_name_facts_or_table_its_head_read_last(
        tmp_path: Path, label: str) -> None:
    """raw_is_image decides by the name and the facts first and reads the head only when
    they do not: a ``.raw`` file or one whose probes found a filesystem is an image
    without a read; an unsuffixed file is one by its partition table (sfdisk writes it
    and, as the oracle, reads it back), random bytes are not."""
    disk = tmp_path / "disk.bin"
    with open(disk, "wb") as f:
        f.truncate(2 * MiB)
    subprocess.run(["sfdisk", "-q", str(disk)], input=f"label: {label}\nstart=64, type=L\n",
                   text=True, check=True, capture_output=True)
    assert f"label: {label}" in run("sfdisk", "-d", disk)
    head = disk.read_bytes()[:RAW_HEAD_BYTES]
    assert raw_is_image(str(disk), lambda: head, {"filesystem": None})
    noise = random.Random(7).randbytes(RAW_HEAD_BYTES)
    assert not raw_is_image(str(disk), lambda: noise, {"filesystem": None})
    assert raw_is_image(str(tmp_path / "blank.RAW"), _no_head, {"filesystem": None})
    assert raw_is_image(str(disk), _no_head, {"filesystem": {"type": "ext4"}})
