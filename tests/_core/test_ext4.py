"""The ext2/3/4 reader against mke2fs-made filesystems, with debugfs as the oracle.

Every filesystem is made by ``mkfs.ext* -d DIR`` from one generated tree (a
5000-entry htree directory, a sparse file, fast and slow symlinks, a deep
path, a non-UTF-8 name) and read back by debugfs (``ls -p``, ``cat``,
``stat``); the tree itself is the second witness for the files' bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import sparse_copy, unmount
from oracles import needs_qemu, run
from test_limits import _cap_boundary

import imgscan
from imgscan import limits
from imgscan._core import c_ext4
from imgscan._core.ext4 import Ext4FileSystem
from imgscan._core.fsapi import FileNotFound, Stat
from imgscan._core.partitions import read_partition_table
from imgscan.errors import CorruptImage, ImageError, LimitExceeded, UnsupportedFeature

needs_e2fsprogs = pytest.mark.skipif(
    shutil.which("mkfs.ext4") is None or shutil.which("debugfs") is None,
    reason="e2fsprogs (mkfs.ext4, debugfs) is not installed")
pytestmark = needs_e2fsprogs

#: mkfs variants: name -> mkfs arguments.
VARIANTS = {
    "ext2": ("-t", "ext2"),
    "ext3": ("-t", "ext3"),
    "ext4": ("-t", "ext4"),
    "ext4-nojournal": ("-t", "ext4", "-O", "^has_journal"),
    "ext4-inline": ("-t", "ext4", "-O", "inline_data"),
    "ext4-64bit-csum": ("-t", "ext4", "-O", "64bit,metadata_csum"),
    "ext4-1k": ("-t", "ext4", "-b", "1024"),
    "ext4-4k": ("-t", "ext4", "-b", "4096"),
    "ext4-i128": ("-t", "ext4", "-I", "128"),
}
#: Links in the symlink chain of the tree (chain/l0 -> l1 -> ... -> target).
CHAIN = 6
BIG_DIR = 5000
BAD_NAME = b"bad-\xff\xfe"


def _tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n')
    big = root / "big"
    big.mkdir()
    for i in range(BIG_DIR):
        (big / f"entry-{i:05d}").write_bytes(b"" if i % 7 else str(i).encode())
    with open(root / "holes", "wb") as f:      # data, a hole, data, a hole at the end
        f.write(b"A" * 5000)
        f.seek(3 << 20)
        f.write(b"B" * 3000)
        f.truncate(5 << 20)
    (root / "random").write_bytes(os.urandom(300_000))
    deep = root / "deep"
    for part in "abcdefghij":
        deep = deep / part
    deep.mkdir(parents=True)
    (deep / "leaf").write_text("deep leaf\n")
    (root / "fast-link").symlink_to("etc/os-release")
    (root / "slow-link").symlink_to("/" + "s" * 200)
    os.mknod(os.path.join(os.fsencode(root), BAD_NAME), 0o100644)
    chain = root / "chain"
    chain.mkdir()
    (chain / "target").write_text("end of chain\n")
    for n in range(CHAIN):
        (chain / f"l{n}").symlink_to(f"l{n + 1}" if n + 1 < CHAIN else "target")


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ext4tree") / "tree"
    _tree(root)
    return root


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory, tree: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ext4img")
    made = {}
    for name, args in VARIANTS.items():
        path = out / f"{name}.img"
        with open(path, "wb") as f:
            f.truncate(64 << 20)
        run("mke2fs", "-q", "-F", *args, "-L", name[:16], "-d", tree, path)
        made[name] = path
    return made


def _open(path: Path, offset: int = 0, size: int | None = None) -> Ext4FileSystem:
    data = path.read_bytes()

    def read(pos: int, length: int) -> bytes:
        return data[pos:pos + length]
    return Ext4FileSystem(read, offset, len(data) - offset if size is None else size, path.name)


def _patched(data: bytearray) -> Ext4FileSystem:
    def read(pos: int, length: int) -> bytes:
        return bytes(data[pos:pos + length])
    return Ext4FileSystem(read, 0, len(data), "patched")


def debugfs(path: Path, request: str) -> bytes:
    proc = subprocess.run(["debugfs", "-R", request, str(path)], capture_output=True, check=True)
    return proc.stdout


def debugfs_names(path: Path, directory: str) -> dict[str, int]:
    """name -> inode of ``ls -p`` (``/ino/mode/uid/gid/name/size/`` lines)."""
    names = {}
    for line in debugfs(path, f"ls -p {directory}").splitlines():
        fields = line.split(b"/")
        if len(fields) >= 7 and fields[5] not in (b".", b".."):
            names[fields[5].decode("utf-8", "surrogateescape")] = int(fields[1])
    return names


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_tree_matches_debugfs(images: dict[str, Path], tree: Path, variant: str) -> None:
    path = images[variant]
    fs = _open(path)
    assert fs.facts()["filesystem"] == run("blkid", "-p", "-o", "value", "-s", "TYPE",
                                           path).strip()
    for top in ("/", "/big", "/etc", "/chain", "/deep/a/b/c/d/e/f/g/h/i/j"):
        assert {e.name: e.ino for e in fs.listdir(top)} == debugfs_names(path, top), top
    for dirpath, _dirs, files in os.walk(os.fsencode(tree)):
        rel = dirpath[len(os.fsencode(tree)):].decode("utf-8", "surrogateescape") or "/"
        for raw in files:
            name = os.path.join(rel, raw.decode("utf-8", "surrogateescape"))
            full = os.path.join(dirpath, raw)
            if os.path.islink(full):
                assert fs.readlink(name) == os.fsdecode(os.readlink(full))
                continue
            got = fs.read_file(name)
            # debugfs is run on the files outside /big (5000 runs per variant would take
            # minutes) and, with inline_data, on files too big to be inline (debugfs cat
            # pads an inline file's bytes).
            inline = variant == "ext4-inline" and os.path.getsize(full) < 4096
            oracle = not rel.startswith("/big") and os.fsencode(name).isascii() and not inline
            want = debugfs(path, f"cat {name}") if oracle else None
            if want is not None:
                assert got == want, name
            if variant != "ext4-inline":      # mke2fs -d cuts sparse files with inline_data
                with open(full, "rb") as f:
                    assert got == f.read(), name
    assert fs.read_file("/fast-link").startswith(b"PRETTY_NAME")
    assert fs.read_file("/holes", 3 << 20, 10) == b"B" * 10


@pytest.mark.parametrize("variant", ["ext4", "ext2"])
def test_stat_matches_debugfs(images: dict[str, Path], variant: str) -> None:
    path = images[variant]
    fs = _open(path)
    for name in ("/random", "/holes", "/etc", "/slow-link"):
        st = fs.stat(name, follow=False)
        out = debugfs(path, f"stat {name}").decode()
        assert st.ino == int(re.search(r"Inode: (\d+)", out).group(1))  # type: ignore[union-attr]
        assert st.size == int(re.search(r"Size: (\d+)", out).group(1))  # type: ignore[union-attr]
        assert f"{st.mode & 0o7777:04o}" == re.search(r"Mode:\s+(\d+)", out).group(1)  # type: ignore[union-attr]


def test_facts_match_dumpe2fs(images: dict[str, Path]) -> None:
    for name, path in images.items():
        facts = _open(path).facts()
        dump = run("dumpe2fs", "-h", path)
        field = dict(re.findall(r"^([^:\n]+):\s+(.*)$", dump, re.M))
        assert facts["uuid"] == field["Filesystem UUID"]
        assert facts["label"] == field["Filesystem volume name"]
        assert facts["block_size"] == int(field["Block size"])
        assert facts["inode_count"] == int(field["Inode count"])
        assert facts["free_blocks"] == int(field["Free blocks"]), name
        assert facts["inode_size"] == int(field["Inode size"])
        assert facts["features"] == field["Filesystem features"].split(), name
        assert facts["state"] == field["Filesystem state"] and not facts["dirty"]
        assert (facts["journal"] is not None) == ("has_journal" in facts["features"])


def test_dirty_is_reported(images: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "dirty.img"
    sparse_copy(images["ext4"], path)
    run("debugfs", "-w", "-R", "feature needs_recovery", path)
    facts = _open(path).facts()
    assert facts["dirty"] and "needs_recovery" in facts["features"]
    assert _open(path).read_file("/etc/os-release").startswith(b"PRETTY_NAME")


@needs_qemu
def test_through_a_qcow2_partition(images: dict[str, Path], tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(80 << 20)
    subprocess.run(["sfdisk", "-q", str(raw)], input=b"label: gpt\nstart=2048, type=L\n",
                   check=True)
    subprocess.run(["dd", f"if={images['ext4']}", f"of={raw}", "bs=1M", "seek=1",
                    "conv=notrunc", "status=none"], check=True)
    qcow = tmp_path / "disk.qcow2"
    run("qemu-img", "convert", "-O", "qcow2", raw, qcow)
    with imgscan.open(qcow) as img:
        table = read_partition_table(img.read, img.virtual_size, str(qcow))
        part = table.partitions[0]
        fs = Ext4FileSystem(img.read, part.start, part.size, f"{qcow.name} partition 1")
        assert fs.read_file("/etc/os-release") == _open(images["ext4"]).read_file(
            "/etc/os-release")
        assert [e.name for e in fs.listdir("/big")] == [e.name for e in
                                                        _open(images["ext4"]).listdir("/big")]


def test_unknown_incompat_is_refused(images: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(images["ext4"].read_bytes())
    at = c_ext4.SUPERBLOCK_OFFSET + c_ext4.EXT2_SUPER_BLOCK.offset("s_feature_incompat")
    data[at:at + 4] = (int.from_bytes(data[at:at + 4], "little") | 0x0001).to_bytes(4, "little")
    with pytest.raises(UnsupportedFeature, match="compression"):
        _patched(data)


def test_corrupt_extent_header(images: dict[str, Path]) -> None:
    fs = _open(images["ext4"])
    i = fs.volume.inode(fs.resolve("/random"))
    data = bytearray(images["ext4"].read_bytes())
    data[i.disk + c_ext4.EXT2_INODE.offset("i_block")] ^= 0xFF
    bad = _patched(data)
    with pytest.raises(CorruptImage, match="extent"):
        bad.read_file("/random")


def test_missing_paths(images: dict[str, Path]) -> None:
    fs = _open(images["ext4"])
    assert fs.lookup("/nope") is None
    with pytest.raises(FileNotFound):
        fs.read_file("/etc/os-release/x")
    assert fs.stat("/../etc/./os-release").kind == "file"


# -- caps ---------------------------------------------------------------------------------
def _debugfs_map_blocks(path: Path, name: str) -> int:
    """Extent tree / indirect blocks of a file, as debugfs stat lists them."""
    out = debugfs(path, f"stat {name}").decode()
    return len(re.findall(r"\((?:ETB\d+|IND|DIND|TIND)\)", out))


def test_symlink_follows_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _open(images["ext4"])
    _cap_boundary(monkeypatch, "FS_MAX_SYMLINK_FOLLOWS", CHAIN,
                  lambda: fs.read_file("/chain/l0"), located=False)


def test_path_components_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _open(images["ext4"])
    path = "/deep/a/b/c/d/e/f/g/h/i/j/leaf"
    parts = len([p for p in path.split("/") if p])
    _cap_boundary(monkeypatch, "FS_MAX_PATH_COMPONENTS", parts, lambda: fs.read_file(path),
                  located=False)


def test_file_read_cap(images: dict[str, Path], tree: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _open(images["ext4"])
    size = (tree / "random").stat().st_size
    _cap_boundary(monkeypatch, "FS_MAX_FILE_READ", size, lambda: fs.read_file("/random"),
                  located=False)


def test_map_blocks_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = images["ext2"]               # 1 KiB blocks: /random needs IND + DIND + 2 INDs
    blocks = _debugfs_map_blocks(path, "/random")
    assert blocks >= 2
    fs = _open(path)
    _cap_boundary(monkeypatch, "EXT4_MAX_MAP_BLOCKS", blocks, lambda: fs.read_file("/random"))


def test_extent_depth_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = images["ext4-1k"]
    out = debugfs(path, "ex /big").decode()      # the 5000-entry directory's extent tree
    depth = max(int(m) for m in re.findall(r"^\s*(\d+)/", out, re.M))

    def attempt() -> object:
        return _open(path).listdir("/big")
    exc = _cap_boundary(monkeypatch, "EXT4_MAX_EXTENT_DEPTH", depth, attempt) \
        if depth else None
    assert depth == 0 or isinstance(exc, LimitExceeded)


def test_directory_bytes_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = images["ext4"]
    size = int(re.search(r"Size: (\d+)", debugfs(path, "stat /big").decode()).group(1))  # type: ignore[union-attr]
    # a volume of its own each time: a directory read once is kept (see the test below)
    _cap_boundary(monkeypatch, "EXT4_MAX_DIRECTORY_BYTES", size,
                  lambda: _open(path).listdir("/big"))


def test_a_directory_is_read_once(images: dict[str, Path]) -> None:
    """A path walk looks names up one at a time: the directories on the way are read from
    the disk once, not once per lookup (a fuzzed volume whose root claimed 64 MiB cost a
    tenth of a second per path before). The names found are debugfs's."""
    data = images["ext4"].read_bytes()
    reads: list[int] = []

    def read(pos: int, length: int) -> bytes:
        reads.append(length)
        return data[pos:pos + length]
    fs = Ext4FileSystem(read, 0, len(data), "counted")
    names = sorted(debugfs_names(images["ext4"], "/big"))[:50]
    assert all(fs.exists(f"/big/{name}") for name in names)
    after_first = len(reads)
    assert all(fs.exists(f"/big/{name}") for name in names)
    assert len(reads) == after_first


def test_hostile_superblocks_are_errors(images: dict[str, Path]) -> None:
    base = images["ext4"].read_bytes()
    S = c_ext4.EXT2_SUPER_BLOCK
    for field, value in (("s_log_block_size", 40), ("s_inode_size", 100),
                         ("s_inodes_per_group", 0), ("s_blocks_per_group", 0),
                         ("s_magic", 0)):
        data = bytearray(base)
        at = c_ext4.SUPERBLOCK_OFFSET + S.offset(field)
        data[at:at + S.field_size(field)] = value.to_bytes(S.field_size(field), "little")
        with pytest.raises(ImageError):
            _patched(data).listdir("/")
    assert limits.EXT4_MAX_EXTENT_DEPTH == 5


needs_loop = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                                reason="loop mounts need root")


@needs_loop
@pytest.mark.parametrize("fstype", ["ext4", "ext2"])
def test_fragmented_files(tmp_path: Path, fstype: str) -> None:
    """Two files written alternately, 1 KiB at a time, through a loop mount: their blocks
    interleave (many extents under an index node, or double-indirect maps)."""
    path = tmp_path / f"{fstype}.img"
    with open(path, "wb") as f:
        f.truncate(16 << 20)
    run("mke2fs", "-q", "-F", "-t", fstype, "-b", "1024", path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = "loop,nodelalloc" if fstype == "ext4" else "loop"
    run("mount", "-o", opts, path, mnt)
    want = {"a": bytearray(), "b": bytearray()}
    try:
        files = {n: os.open(mnt / n, os.O_WRONLY | os.O_CREAT | os.O_SYNC) for n in want}
        for _ in range(700):
            for n, fd in files.items():
                chunk = os.urandom(1024)
                os.write(fd, chunk)
                want[n] += chunk
        for fd in files.values():
            os.close(fd)
    finally:
        unmount(mnt)
    fs = _open(path)
    for n, data in want.items():
        assert fs.read_file(f"/{n}") == bytes(data) == debugfs(path, f"cat /{n}")
        assert fs.read_file(f"/{n}", 300_001, 5000) == bytes(data[300_001:305_001])
    assert _debugfs_map_blocks(path, "/a") >= 1


def test_casefold_directory(tmp_path: Path) -> None:
    """A casefolded directory finds names whatever their case. The kernel here has no
    Unicode tables to mount one, so the flag is set by debugfs on a directory mke2fs -d
    filled (its entries are linear, as a small casefolded directory's are)."""
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "Hello.TXT").write_text("hi\n")
    (tree / "d" / "Straße").write_text("strasse\n")
    path = tmp_path / "cf.img"
    with open(path, "wb") as f:
        f.truncate(16 << 20)
    run("mke2fs", "-q", "-F", "-t", "ext4", "-O", "casefold", "-d", tree, path)
    flags = int(re.search(r"Flags: (0x[0-9a-f]+)", debugfs(path, "stat /d").decode())
                .group(1), 16)  # type: ignore[union-attr]
    run("debugfs", "-w", "-R", f"set_inode_field /d flags {flags | c_ext4.EXT4_CASEFOLD_FL:#x}",
        path)
    fs = _open(path)
    inos = debugfs_names(path, "/d")
    assert fs.facts()["casefold"]
    assert fs.stat("/d/hello.txt").ino == fs.stat("/d/HELLO.txt").ino == inos["Hello.TXT"]
    assert fs.stat("/d/STRASSE").ino == inos["Straße"]
    assert fs.read_file("/d/hello.txt") == b"hi\n"
    assert {e.name for e in fs.listdir("/d")} == set(inos)


def test_lookups_in_one_directory_walk_its_path_once(images: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk to a path's directory is kept for the next lookup there: the second
    read of a file 11 directories down looks up one name, not 12, and gives the bytes
    debugfs gives; ``..`` and ``.`` after it, a lookup in another directory, and a
    missing name there are answered as a fresh volume's walk answers them."""
    fs = _open(images["ext4"])
    leaf = "/deep/a/b/c/d/e/f/g/h/i/j/leaf"
    looked: list[str] = []
    lookup = fs._lookup

    def counted(ino: int, name: str) -> int | None:
        looked.append(name)
        return lookup(ino, name)

    monkeypatch.setattr(fs, "_lookup", counted)
    first = fs.read_file(leaf)
    assert len(looked) == 12
    looked.clear()
    assert fs.read_file(leaf) == first == debugfs(images["ext4"], f"cat {leaf}")
    assert looked == ["leaf"]
    def fields(st: Stat) -> list[object]:
        return [getattr(st, name) for name in Stat.__slots__]

    for path in ("/deep/a/b/c/d/e/f/g/h/i/j/..", "/deep/a/b/c/d/e/f/g/h/i/j/.",
                 "/deep/a/b/c/d/e/f/g/h/i/j/../j/leaf", "/etc/os-release", leaf):
        assert fields(fs.stat(path)) == fields(_open(images["ext4"]).stat(path)), path
    assert fs.lookup("/deep/a/b/c/d/e/f/g/h/i/j/nope") is None
