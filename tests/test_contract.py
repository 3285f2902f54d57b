"""The ``info`` object keeps every key and type of the public JSON contract (schema 1)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from oracles import SHARED

import imgscan

SAMPLE = Path(str(resources.files("imgscan") / "samples" / "demo.qcow2"))
CONTRACT = SHARED / "docs" / "json-contract.md"

# key -> accepted Python types, from ../shared/docs/json-contract.md
INFO_KEYS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "path": (str,),
    "format": (str,),
    "subformat": (str, type(None)),
    "virtual_size": (int,),
    "file_size": (int,),
    "allocated_size": (int, type(None)),
    "cluster_size": (int, type(None)),
    "encrypted": (bool,),
    "encryption": (str, type(None)),
    "backing_file": (str, type(None)),
    "backing_format": (str, type(None)),
    "data_file": (str, type(None)),
    "snapshots": (int,),
    "dirty": (bool,),
    "partition_table": (str,),
    "partitions": (list,),
    "filesystem": (str, type(None)),
    "boot_mode": (str,),
    "windows": (dict, type(None)),
    "linux": (dict, type(None)),
    "source": (dict, type(None)),
    "findings": (list,),
}


def _images(tmp_path: Path) -> list[Path]:
    raw = tmp_path / "disk.img"
    with open(raw, "wb") as f:
        f.truncate(1 << 20)
    empty = tmp_path / "empty.img"
    empty.touch()
    return [SAMPLE, raw, empty]


def test_info_has_every_contract_key_with_its_type(tmp_path: Path) -> None:
    for path in _images(tmp_path):
        with imgscan.open(path) as img:
            info: dict[str, Any] = json.loads(json.dumps(img.info()))
        for key, types in INFO_KEYS.items():
            assert key in info, (path, key)
            assert isinstance(info[key], types), (path, key, info[key])
        assert info["schema_version"] == 1
        assert info["partition_table"] in {"mbr", "gpt", "none", "unknown"}
        assert info["boot_mode"] in {"bios", "uefi", "hybrid", "unknown"}
        for finding in info["findings"]:
            assert set(finding) == {"id", "severity", "message"}
            assert finding["severity"] in {"error", "warning", "info"}


@pytest.mark.skipif(not CONTRACT.is_file(), reason=f"{CONTRACT} is absent")
def test_key_list_matches_the_published_contract() -> None:
    text = CONTRACT.read_text()
    info_section = text.split("## `imgscan info --json IMAGE`")[1].split("Each partition:")[0]
    published = set(re.findall(r"^\| `([a-z_]+)` \|", info_section, flags=re.MULTILINE))
    assert published == set(INFO_KEYS)
