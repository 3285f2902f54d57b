"""The XFS reader against mkfs.xfs volumes, read back through a read-only loop mount and xfs_db.

Both superblock versions (v5, the default, and v4 with ``-m crc=0``) hold the
same layout (tests/helpers/xfs_images.py): every directory form, a btree data
fork, holes, unwritten extents, inline and remote symlinks. Every listing, kind,
size, link target and file hash must equal the mounted view; inode facts equal
xfs_db's; the log's state equals xfs_logprint's.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.xfs_images import (
    BTREE_DIR_ENTRIES,
    LONG_TARGET,
    NODE_DIR_ENTRIES,
    build,
    build_proto,
    can_loop_mount,
    mkfs,
    mounted,
    populate,
    xfs_db,
    xfs_db_fields,
)
from oracles import needs_qemu

import imgscan
from imgscan import limits
from imgscan._core.c_xfs import XFS_DINODE, XFS_DSB
from imgscan._core.crc32c import crc32c_with_zeroed_field
from imgscan._core.fsapi import FileNotFound
from imgscan._core.xfs import XfsFileSystem
from imgscan.errors import CorruptImage, ImageError, LimitExceeded, UnsupportedFeature

pytestmark = pytest.mark.skipif(not can_loop_mount(),
                                reason="needs mkfs.xfs and root for loop mounts")

Read = Callable[[int, int], bytes]
Tree = dict[str, tuple[str, int, str]]


def file_reader(path: Path) -> tuple[Read, int]:
    data = path.read_bytes()

    def read(offset: int, length: int) -> bytes:
        return data[offset:offset + length]

    return read, len(data)


def open_fs(path: Path, name: str = "vol") -> XfsFileSystem:
    read, size = file_reader(path)
    return XfsFileSystem(read, 0, size, name)


def mounted_tree(image: Path) -> Tree:
    """path -> (kind, size, sha256 or link target) of everything, from a read-only mount."""
    with mounted(image, "ro") as mnt:
        return dir_tree(mnt)


def dir_tree(mnt: Path) -> Tree:
    """path -> (kind, size, sha256 or link target) of everything under ``mnt``."""
    tree: Tree = {}
    for top, dirs, files in os.walk(mnt):
        for name in dirs + files:
            full = Path(top) / name
            rel = "/" + full.relative_to(mnt).as_posix()
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = ("symlink", st.st_size, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = ("dir", st.st_size, "")
            else:
                tree[rel] = ("file", st.st_size, hashlib.sha256(full.read_bytes()).hexdigest())
    return tree


def reader_tree(fs: XfsFileSystem) -> Tree:
    tree: Tree = {}
    pending = ["/"]
    while pending:
        top = pending.pop()
        for entry in fs.listdir(top):
            path = top.rstrip("/") + "/" + entry.name
            st = fs.stat(path, follow=False)
            assert st.kind == entry.kind, path
            if st.kind == "symlink":
                tree[path] = ("symlink", st.size, fs.readlink(path))
            elif st.kind == "dir":
                tree[path] = ("dir", st.size, "")
                pending.append(path)
            else:
                tree[path] = ("file", st.size, hashlib.sha256(fs.read_file(path)).hexdigest())
    return tree


def assert_same_tree(got: Tree, expected: Tree) -> None:
    assert got.keys() == expected.keys()
    for path, (kind, size, what) in expected.items():
        if kind == "dir":        # directory sizes are the filesystem's own bookkeeping
            assert got[path][0] == "dir", path
        else:
            assert got[path] == (kind, size, what), path


@pytest.fixture(scope="session")
def xfs_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Tree]]:
    """The layout on a v5 volume with its read-only mounted view, and on a v4 volume (which
    the kernel no longer mounts) made by ``mkfs.xfs -p`` with the tree it copied."""
    work = tmp_path_factory.mktemp("xfs")
    image = build(work / "v5.img")
    out = {"v5": (image, mounted_tree(image))}
    source = work / "v4-source"
    source.mkdir()
    populate(source, rich=False)
    out["v4"] = (build_proto(work / "v4.img", source, "-m", "crc=0"), dir_tree(source))
    return out


@pytest.fixture(scope="session")
def dirty_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A v5 volume shut down with a committed write in its log (fsync forces the log; the
    shutdown keeps the metadata from being written back), then unmounted: the log is dirty."""
    image = mkfs(tmp_path_factory.mktemp("xfs-dirty") / "dirty.img")
    with mounted(image) as mnt:
        (mnt / "written").write_bytes(b"in the log only\n")
        subprocess.run(["xfs_io", "-c", "fsync", str(mnt / "written")], check=True)
        subprocess.run(["xfs_io", "-x", "-c", "shutdown", str(mnt)], check=True)
    return image


def ino_by_db(image: Path, path: str) -> int:
    """The inode number of ``path``, by xfs_db's own path walk."""
    return int(xfs_db(image, f"path {path}", "inode").split()[-1])


def data_fork_bytes(image: Path, ino: int, block_size: int) -> int:
    """Directory data bytes (below the 32 GiB leaf offset) by ``xfs_db bmap``."""
    total = 0
    for line in xfs_db(image, f"inode {ino}", "bmap -d").splitlines():
        m = re.match(r"data offset (\d+) startblock \d+ \(\S+\) count (\d+)", line)
        if m and int(m.group(1)) * block_size < 32 << 30:
            total += int(m.group(2)) * block_size
    return total


# -- the whole tree --------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v5", "v4"])
def test_tree_equals_the_mounted_view(xfs_images: dict[str, tuple[Path, Tree]],
                                      version: str) -> None:
    image, expected = xfs_images[version]
    fs = open_fs(image)
    assert_same_tree(reader_tree(fs), expected)
    assert len(fs.listdir("/node")) == NODE_DIR_ENTRIES + 1
    if version == "v5":
        assert len(fs.listdir("/bdir")) == BTREE_DIR_ENTRIES


@pytest.mark.parametrize("version", ["v5", "v4"])
def test_every_fork_form_is_covered(xfs_images: dict[str, tuple[Path, Tree]],
                                    version: str) -> None:
    """xfs_db confirms the layout holds the forms the tree test claims to cover."""
    image, _ = xfs_images[version]
    want = {"/sf": "1", "/blk": "2", "/leaf": "2", "/node": "3", "/short": "1", "/long": "2"}
    if version == "v5":
        want |= {"/bdir": "3", "/frag": "3"}
    for path, fmt in want.items():
        got = xfs_db_fields(image, ino_by_db(image, path), "core.format")["core.format"]
        assert got == fmt, path


@pytest.mark.parametrize("version", ["v5", "v4"])
def test_inode_facts_equal_xfs_db(xfs_images: dict[str, tuple[Path, Tree]],
                                  version: str) -> None:
    image, _ = xfs_images[version]
    fs = open_fs(image)
    for path in ("/sf", "/big", "/holes", "/long", "/node/up", "/empty", "/node"):
        st = fs.stat(path, follow=False)
        db = xfs_db_fields(image, st.ino, "core.mode", "core.size", "core.uid", "core.gid",
                           "core.nlinkv2")
        assert st.ino == ino_by_db(image, path)
        assert st.mode == int(db["core.mode"], 8), path
        assert st.size == int(db["core.size"]), path
        assert (st.uid, st.gid, st.nlink) == (int(db["core.uid"]), int(db["core.gid"]),
                                              int(db["core.nlinkv2"])), path


def test_paths_holes_and_links(xfs_images: dict[str, tuple[Path, Tree]]) -> None:
    image, _ = xfs_images["v5"]
    fs = open_fs(image)
    assert fs.readlink("/long") == LONG_TARGET
    assert fs.read_file("/long") == b"hi1\n"              # a remote symlink, resolved inside
    assert fs.read_file("/node/up/f2") == b"hi2\n"
    assert fs.read_file("/holes", 0, 400 * 1024) == bytes(400 * 1024)
    assert fs.read_file("/holes", 400 * 1024, 15) == b"after the hole\n"
    prealloc = fs.read_file("/prealloc")
    assert prealloc[:256 * 1024] == bytes(256 * 1024)     # unwritten: zeros
    assert prealloc[256 * 1024:].startswith(b"written inside an unwritten extent\n")
    assert fs.read_file("/frag", 8192 * 1999, 4096) == bytes([1999 % 251 + 1]) * 4096
    assert fs.read_file("/frag", 4096, 4096) == bytes(4096)
    assert fs.read_file(os.fsdecode(b"/caf\xe9")) == b"latin-1 name\n"
    with pytest.raises(FileNotFound):
        fs.read_file("/dead")
    assert fs.lookup("/node/file_with_a_longish_name_04999") is not None
    assert fs.lookup("/node/file_with_a_longish_name_05000") is None


def test_facts(xfs_images: dict[str, tuple[Path, Tree]]) -> None:
    for version, (image, _) in xfs_images.items():
        facts = open_fs(image).facts()
        blkid = subprocess.run(["blkid", "-p", "-o", "export", str(image)], capture_output=True,
                               text=True, check=True).stdout
        tags = dict(line.split("=", 1) for line in blkid.splitlines() if "=" in line)
        assert facts["filesystem"] == "xfs"
        assert facts["label"] == tags["LABEL"] == "imgscan"
        assert facts["uuid"] == tags["UUID"]
        assert facts["version"] == version
        assert facts["block_size"] == int(xfs_db(image, "sb 0", "print blocksize").split()[-1])
        assert facts["free_blocks"] == int(xfs_db(image, "sb 0", "print fdblocks").split()[-1])
        assert facts["dirty"] is False
        assert "<CLEAN>" in subprocess.run(["xfs_logprint", "-t", str(image)],
                                           capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("xfs_io") is None, reason="xfs_io not installed")
def test_dirty_log(dirty_image: Path) -> None:
    logprint = subprocess.run(["xfs_logprint", "-t", str(dirty_image)], capture_output=True,
                              text=True).stdout
    assert "<DIRTY>" in logprint
    assert open_fs(dirty_image).facts()["dirty"] is True


@pytest.mark.parametrize("opts", [("-i", "nrext64=1"), ("-b", "size=1024", "-n", "size=8192")],
                         ids=["nrext64", "1k-blocks-8k-dirblocks"])
def test_geometry_variants(tmp_path: Path, opts: tuple[str, ...]) -> None:
    """64-bit extent counters, and directory blocks of several filesystem blocks."""
    image = mkfs(tmp_path / "variant.img", *opts)
    with mounted(image) as mnt:
        (mnt / "dir").mkdir()
        for i in range(3000):
            (mnt / "dir" / f"a_name_of_some_length_{i:05d}").touch()
        with open(mnt / "frag", "wb") as f:
            for i in range(300):
                f.seek(i * 8192)
                f.write(bytes([i % 251 + 1]) * 1024)
        os.symlink(LONG_TARGET, mnt / "long")
    fs = open_fs(image)
    assert_same_tree(reader_tree(fs), mounted_tree(image))
    assert fs.stat("/frag").size == 299 * 8192 + 1024


@needs_qemu
def test_through_qcow2(xfs_images: dict[str, tuple[Path, Tree]], tmp_path: Path) -> None:
    image, expected = xfs_images["v5"]
    qcow2 = tmp_path / "xfs.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(image), str(qcow2)],
                   check=True)
    with imgscan.open(qcow2) as img:
        fs = XfsFileSystem(img.read, 0, img.virtual_size, "xfs.qcow2")
        for path in ("/frag", "/big", "/holes",
                     "/bdir/entry_with_a_rather_long_name_number_002999"):
            assert hashlib.sha256(fs.read_file(path)).hexdigest() == expected[path][2]


def test_volume_at_an_offset(xfs_images: dict[str, tuple[Path, Tree]]) -> None:
    image, expected = xfs_images["v4"]
    raw = image.read_bytes()
    disk = bytes(1 << 20) + raw

    def read(offset: int, length: int) -> bytes:
        return disk[offset:offset + length]

    fs = XfsFileSystem(read, 1 << 20, len(raw), "disk partition 1")
    assert hashlib.sha256(fs.read_file("/big")).hexdigest() == expected["/big"][2]


# -- hostile volumes --------------------------------------------------------------------------
def patched(image: Path, *edits: tuple[int, bytes],
            resum: tuple[int, int, int] | None = None) -> XfsFileSystem:
    """``image`` with ``edits`` written over it; ``resum`` = (start, length, CRC field) of a
    v5 structure whose CRC-32C is made right again, so the edit reaches the check behind it."""
    data = bytearray(image.read_bytes())
    for pos, raw in edits:
        data[pos:pos + len(raw)] = raw
    if resum is not None:
        start, length, field = resum
        crc = crc32c_with_zeroed_field(bytes(data[start:start + length]), field)
        data[start + field:start + field + 4] = crc.to_bytes(4, "little")
    frozen = bytes(data)
    return XfsFileSystem(lambda o, n: frozen[o:o + n], 0, len(frozen), "bad.img")


def inode_byte(image: Path, ino: int) -> int:
    out = xfs_db(image, f"convert inode {ino} byte")
    return int(out.split()[0], 0)


def test_unknown_incompat_feature_refused(xfs_images: dict[str, tuple[Path, Tree]]) -> None:
    image, _ = xfs_images["v5"]
    at = XFS_DSB.offset("sb_features_incompat")
    current = int.from_bytes(image.read_bytes()[at:at + 4], "big")
    with pytest.raises(UnsupportedFeature, match="incompatible features 0x40000000") as exc:
        patched(image, (at, (current | 1 << 30).to_bytes(4, "big")),
                resum=(0, 512, XFS_DSB.offset("sb_crc")))
    assert exc.value.offset == at


def test_corrupt_structures(xfs_images: dict[str, tuple[Path, Tree]]) -> None:
    image, _ = xfs_images["v5"]
    with pytest.raises(CorruptImage, match="XFSB"):
        patched(image, (0, b"XXXX"))
    with pytest.raises(CorruptImage, match="geometry"):
        patched(image, (XFS_DSB.offset("sb_blocklog"), b"\x11"))
    with pytest.raises(CorruptImage, match="superblock at offset 224: CRC mismatch"):
        patched(image, (XFS_DSB.offset("sb_fname"), b"tampered"))
    ino = ino_by_db(image, "/node")
    at = inode_byte(image, ino)
    fs = patched(image, (at, b"NO"))
    with pytest.raises(CorruptImage, match="IN magic"):
        fs.listdir("/node")
    huge = XFS_DINODE.offset("di_nextents")
    fs = patched(image, (at + huge, (0xFFFFFFFF).to_bytes(4, "big")))
    with pytest.raises(CorruptImage, match="CRC mismatch"):
        fs.listdir("/node")
    fs = patched(image, (at + huge, (0xFFFFFFFF).to_bytes(4, "big")),
                 resum=(at, 512, XFS_DINODE.offset("di_crc")))
    with pytest.raises(ImageError):
        fs.listdir("/node")
    frag = ino_by_db(image, "/frag")
    at = inode_byte(image, frag)
    fs = patched(image, (at + XFS_DINODE.size, b"\x00\x30"),          # bmbt root level 48
                 resum=(at, 512, XFS_DINODE.offset("di_crc")))
    with pytest.raises(LimitExceeded, match="XFS_MAX_BMBT_DEPTH"):
        fs.read_file("/frag")
    # truncated: the volume claims more than the reader holds
    raw = image.read_bytes()[:8 << 20]
    fs = XfsFileSystem(lambda o, n: raw[o:o + n], 0, len(image.read_bytes()), "short.img")
    with pytest.raises(ImageError):
        reader_tree(fs)


# -- caps at their boundary --------------------------------------------------------------------
def _boundary(monkeypatch: pytest.MonkeyPatch, cap: str, value: int,
              attempt: Callable[[], Any]) -> None:
    monkeypatch.setattr(limits, cap, value)
    attempt()
    monkeypatch.setattr(limits, cap, value - 1)
    with pytest.raises(LimitExceeded, match=cap) as exc:
        attempt()
    assert exc.value.structure
    assert isinstance(exc.value.offset, int)


def _frag_cap(xfs_images: dict[str, tuple[Path, Tree]], monkeypatch: pytest.MonkeyPatch,
              cap: str, field: str) -> None:
    """``cap`` at the value xfs_db shows in ``field`` of /frag's inode (a btree fork)."""
    image, _ = xfs_images["v5"]
    ino = ino_by_db(image, "/frag")
    value = int(xfs_db_fields(image, ino, field)[field])
    _boundary(monkeypatch, cap, value, lambda: open_fs(image).read_file("/frag", 0, 10))


def test_fork_extents_cap(xfs_images: dict[str, tuple[Path, Tree]],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    _frag_cap(xfs_images, monkeypatch, "XFS_MAX_FORK_EXTENTS", "core.nextents")


def test_bmbt_depth_cap(xfs_images: dict[str, tuple[Path, Tree]],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    _frag_cap(xfs_images, monkeypatch, "XFS_MAX_BMBT_DEPTH", "u3.bmbt.level")


def test_directory_bytes_cap(xfs_images: dict[str, tuple[Path, Tree]],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    image, _ = xfs_images["v5"]
    ino = ino_by_db(image, "/node")
    block_size = int(xfs_db(image, "sb 0", "print blocksize").split()[-1])
    _boundary(monkeypatch, "XFS_MAX_DIRECTORY_BYTES", data_fork_bytes(image, ino, block_size),
              lambda: open_fs(image).listdir("/node"))
