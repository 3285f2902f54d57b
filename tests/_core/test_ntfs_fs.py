"""NTFS through the filesystem interface (imgscan/_core/ntfs_fs.py) against sleuthkit.

Volumes are tests/fixtures/ntfs (mkntfs + ntfs-3g). Oracles: ``fls -r -p``
(every directory's names, streams folded into their file) and ``icat`` (each
file's bytes); the path rules of the fsapi base (``..`` stays at the root,
``\\`` separators, case-insensitive names) are checked on the same volumes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import TESTS, unpack_fixtures

from imgscan._core.fsapi import FileNotFound
from imgscan._core.fsopen import open_filesystem
from imgscan._core.ntfs_fs import NtfsFileSystem
from imgscan.errors import UnsupportedFeature

FIXTURES = TESTS / "fixtures" / "ntfs"
NAMES = ("c512", "win", "s4k")
#: Files compared with icat per volume (one icat run each).
SAMPLED_FILES = 40
needs_tsk = pytest.mark.skipif(not all(shutil.which(t) for t in ("fls", "icat")),
                               reason="sleuthkit (fls/icat) absent")


@pytest.fixture(scope="session")
def ntfs_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return unpack_fixtures(FIXTURES, NAMES, tmp_path_factory.mktemp("ntfs_fs"))


def filesystem(path: Path) -> NtfsFileSystem:
    data = path.read_bytes()

    def read(offset: int, length: int) -> bytes:
        return data[offset:offset + length]

    return NtfsFileSystem(read, 0, len(data), path.name)


def fls_tree(img: Path) -> tuple[dict[str, set[str]], dict[str, int]]:
    """({directory: names}, {regular file path: inode}) of the allocated entries."""
    out = subprocess.run(["fls", "-r", "-p", os.fspath(img)], capture_output=True,
                         check=True).stdout.decode("utf-8", "surrogateescape")
    dirs: dict[str, set[str]] = defaultdict(set)
    files: dict[str, int] = {}
    dirs[""] = set()
    for line in out.splitlines():
        m = re.match(r"^(\S)/(\S) (\*? ?)(\d+)-\d+-\d+:\t(.*)$", line)
        if not m or m.group(3).strip() or m.group(5).startswith("$OrphanFiles"):
            continue
        path = m.group(5)
        parent, _, name = path.rpartition("/")
        name = name.split(":", 1)[0]            # a named stream belongs to its file
        dirs[parent].add(name)
        if m.group(1) == "d":
            dirs.setdefault(path, set())
        elif ":" not in path.rpartition("/")[2]:
            files[path] = int(m.group(4))
    return dirs, files


@needs_tsk
@pytest.mark.parametrize("name", NAMES)
def test_listings_match_fls(ntfs_images: dict[str, Path], name: str) -> None:
    fs = filesystem(ntfs_images[name])
    dirs, _ = fls_tree(ntfs_images[name])
    assert len(dirs) > 3
    for directory, names in dirs.items():
        entries = fs.listdir("/" + directory)
        assert {e.name for e in entries} == names, directory
        for e in entries:
            assert e.kind == ("dir" if directory + "/" + e.name in dirs
                              or (not directory and e.name in dirs) else "file")


@needs_tsk
@pytest.mark.parametrize("name", NAMES)
def test_file_bytes_match_icat(ntfs_images: dict[str, Path], name: str) -> None:
    img = ntfs_images[name]
    fs = filesystem(img)
    _, files = fls_tree(img)
    checked = 0
    chosen = [p for p in files if not p.startswith("$")][:SAMPLED_FILES]
    for path in [*chosen, "$UpCase", "$AttrDef", "$Boot"]:
        inode = files[path]
        oracle = subprocess.run(["icat", os.fspath(img), str(inode)], capture_output=True,
                                check=True).stdout
        st = fs.stat(path)
        assert st.kind == "file" and st.ino == inode, path
        assert st.size == len(oracle), path
        assert fs.read_file(path) == oracle, path
        if len(oracle) > 3:
            assert fs.read_file(path, 1, len(oracle) - 2) == oracle[1:-1], path
        checked += 1
    assert checked >= 3


@needs_tsk
def test_lookup_is_case_insensitive_with_either_separator(ntfs_images: dict[str, Path]) -> None:
    fs = filesystem(ntfs_images["win"])
    _, files = fls_tree(ntfs_images["win"])
    path = next(p for p in files if "/" in p and not p.startswith("$"))
    ino = fs.stat(path).ino
    assert fs.stat(path.upper()).ino == ino
    assert fs.stat("\\" + path.replace("/", "\\").lower()).ino == ino
    assert fs.stat("/" + path.replace("/", "\\")).ino == ino


def test_dotdot_never_climbs_above_the_root(ntfs_images: dict[str, Path]) -> None:
    fs = filesystem(ntfs_images["c512"])
    assert fs.resolve("/..") == fs.root
    assert fs.resolve("\\..\\..\\.") == fs.root
    assert fs.resolve("dir\\..\\..\\..\\dir") == fs.resolve("/dir")
    assert [e.name for e in fs.listdir("/../dir/..")] == [e.name for e in fs.listdir("/")]


def test_errors_name_the_volume_and_path(ntfs_images: dict[str, Path]) -> None:
    fs = filesystem(ntfs_images["c512"])
    with pytest.raises(FileNotFound, match=r"c512\.img: path '/nothing/here'"):
        fs.stat("/nothing/here")
    with pytest.raises(FileNotFound, match="a dir, not a file"):
        fs.read_file("/dir")
    with pytest.raises(FileNotFound, match="not a directory"):
        fs.listdir("/$UpCase")
    with pytest.raises(FileNotFound, match="not a directory"):
        fs.stat("/$UpCase/x")
    assert fs.lookup("/nothing") is None


def test_stat_and_facts(ntfs_images: dict[str, Path]) -> None:
    fs = filesystem(ntfs_images["c512"])
    root = fs.stat("/")
    assert root.kind == "dir" and root.ino == 5
    upcase = fs.stat("/$UpCase")
    assert (upcase.kind, upcase.size) == ("file", 131072)
    assert upcase.mtime is not None and upcase.mtime > 0
    mft_time = fs.stat("/$MFT").mtime          # FILETIME 0 (mkntfs): no time, not 1601
    assert mft_time is None or mft_time > 0
    facts = fs.facts()
    assert facts["filesystem"] == "ntfs" and facts["label"] == "Small512"


def test_dispatcher_opens_ntfs_and_names_missing_readers(ntfs_images: dict[str, Path]) -> None:
    data = ntfs_images["c512"].read_bytes()

    def read(offset: int, length: int) -> bytes:
        return data[offset:offset + length]

    fs = open_filesystem(read, 0, len(data), "vol", "ntfs")
    assert isinstance(fs, NtfsFileSystem)
    with pytest.raises(UnsupportedFeature, match="no reader for swap"):
        open_filesystem(read, 0, len(data), "vol", "swap")
    with pytest.raises(UnsupportedFeature, match="no filesystem recognised"):
        open_filesystem(read, 0, len(data), "vol", None)


def test_dispatcher_says_when_a_reader_is_not_merged_yet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from imgscan._core import fsopen
    monkeypatch.setitem(fsopen.READERS, "ext4", ("no_such_reader_module", "X"))
    with pytest.raises(UnsupportedFeature, match="no reader for ext4 yet"):
        open_filesystem(lambda o, n: b"", 0, 0, "vol", "ext4")
