"""The filesystem readers on third-party images of the shared corpus (../shared/corpus/real):
each volume opens with the reader its blkid type names, gives blkid's UUID and label, and
every directory lists and every file reads without error; ext volumes list as debugfs
lists them (the corpus facts come from blkid, see MANIFEST.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import decompress
from oracles import CORPUS, corpus_facts, needs_corpus

from imgscan._core.fsapi import FileSystem
from imgscan._core.fsopen import open_filesystem

pytestmark = needs_corpus

SECTOR = 512
#: Whole-disk filesystems of the corpus.
WHOLE = ["cryptsetup/img_fs_ext4.img.xz", "cryptsetup/img_fs_xfs.img.xz",
         "cryptsetup/img_fs_vfat.img.xz"]


def _reader(path: Path) -> Any:
    f = path.open("rb")

    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)
    return read


def _walk(fs: FileSystem) -> dict[str, bytes | None]:
    """Every path under the root: a file's bytes, None for anything else."""
    seen: dict[str, bytes | None] = {}
    pending = ["/"]
    while pending:
        top = pending.pop()
        for e in fs.listdir(top):
            path = top.rstrip("/") + "/" + e.name
            kind = fs.entry_stat(e).kind
            seen[path] = fs.read_file(path) if kind == "file" else None
            if kind == "dir":
                pending.append(path)
    return seen


def _check(fs: FileSystem, blkid: dict[str, str]) -> dict[str, bytes | None]:
    facts = fs.facts()
    assert str(facts["uuid"]).lower() == blkid["UUID"].lower()
    assert (facts.get("label") or None) == blkid.get("LABEL")     # blkid omits an empty one
    return _walk(fs)


def _debugfs_root(image: Path) -> set[str]:
    out = subprocess.run(["debugfs", "-R", "ls -p /", str(image)], capture_output=True,
                         text=True, check=True).stdout
    names = {m.group(1) for m in re.finditer(r"^/\d+/\d+/\d+/\d+/([^/]*)/", out, re.M)}
    return names - {".", ".."}


@pytest.mark.parametrize("member", WHOLE)
def test_whole_disk_volume(member: str, tmp_path: Path) -> None:
    blkid = corpus_facts()[member]["whole_disk_blkid"]
    image = decompress(CORPUS / member, tmp_path / Path(member).stem)
    fs = open_filesystem(_reader(image), 0, image.stat().st_size, member, blkid["TYPE"])
    seen = _check(fs, blkid)
    if blkid["TYPE"].startswith("ext"):
        if shutil.which("debugfs") is None:
            pytest.skip("debugfs (e2fsprogs) not installed")
        assert {p[1:] for p in seen if p.count("/") == 1} == _debugfs_root(image)


def test_partitions_of_an_mbr_disk(tmp_path: Path) -> None:
    """dfvfs/mbr.raw: an ext2 primary and an ext4 logical partition (Linux fdisk)."""
    member = "dfvfs/mbr.raw.gz"
    image = decompress(CORPUS / member, tmp_path / "mbr.raw")
    read = _reader(image)
    checked = 0
    for part in corpus_facts()[member]["partitions"]:
        blkid = part.get("blkid")
        if not blkid:
            continue
        fs = open_filesystem(read, part["start"] * SECTOR, part["size"] * SECTOR,
                             part["node"], blkid["TYPE"])
        assert fs.filesystem == blkid["TYPE"]
        _check(fs, blkid)
        checked += 1
    assert checked == 2
