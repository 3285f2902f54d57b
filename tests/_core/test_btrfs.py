"""The Btrfs reader against volumes made by mkfs.btrfs and the kernel, read back mounted.

Oracles: the read-only loop-mounted view (names, kinds, sizes, modes, link targets,
file bytes), ``btrfs inspect-internal dump-super`` (uuid, label, generation) and
``btrfs subvolume list`` / ``get-default``. Never imgscan itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import sparse_copy
from oracles import needs_qemu, run
from test_limits import _cap_boundary

import imgscan
from imgscan import limits
from imgscan._core import c_btrfs as C
from imgscan._core.btrfs import BtrfsFileSystem
from imgscan._core.fsapi import FileSystem
from imgscan.errors import CorruptImage, ImageError, LimitExceeded, UnsupportedFeature

HAVE_MKFS = shutil.which("mkfs.btrfs") is not None and shutil.which("btrfs") is not None
needs_mkfs = pytest.mark.skipif(not HAVE_MKFS, reason="btrfs-progs (mkfs.btrfs) not installed")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_mount = pytest.mark.skipif(not (IS_ROOT and HAVE_MKFS and shutil.which("mount")),
                                 reason="loop mounts need root and btrfs-progs")

pytestmark = needs_mkfs

BIG_DIR_ENTRIES = 3000
MIB = 1 << 20


def file_reader(path: Path) -> tuple[Callable[[int, int], bytes], int]:
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size

    def read(offset: int, length: int) -> bytes:
        return os.pread(fd, length, offset)

    return read, size


def open_fs(path: Path, **kw: object) -> BtrfsFileSystem:
    read, size = file_reader(path)
    return BtrfsFileSystem(read, 0, size, path.name, **kw)  # type: ignore[arg-type]


def _text(seed: int, size: int) -> bytes:
    """Compressible, distinct bytes: lines of words and numbers."""
    line = b"".join(b"line %d of file %d: the quick brown fox\n" % (i, seed) for i in range(64))
    return (line * (size // len(line) + 1))[:size]


def _populate(root: Path) -> None:
    """A tree with the shapes a reader must get right (regular files of every size,
    a big directory, symlinks, holes, odd names)."""
    (root / "etc").mkdir()
    (root / "etc" / "os-release").write_bytes(b'NAME="Debian GNU/Linux"\nID=debian\n')
    (root / "etc" / "empty").write_bytes(b"")
    (root / "etc" / "hostname").write_bytes(b"btrfs-test\n")
    (root / "bin").mkdir()
    (root / "bin" / "random").write_bytes(os.urandom(3 * MIB + 123))
    (root / "bin" / "text").write_bytes(_text(1, 700_000))
    big = root / "big"
    big.mkdir()
    for i in range(BIG_DIR_ENTRIES):
        (big / f"entry-{i:05d}-{'x' * (i % 40)}").write_bytes(b"%d\n" % i)
    (root / "links").mkdir()
    os.symlink("../etc/os-release", root / "links" / "relative")
    os.symlink("/etc/hostname", root / "links" / "absolute")
    os.symlink("x" * 300, root / "links" / "long")
    os.symlink("missing", root / "links" / "dangling")
    (root / "deep" / "a" / "b" / "c").mkdir(parents=True)
    (root / "deep" / "a" / "b" / "c" / "leaf").write_bytes(b"leaf\n")
    odd = os.fsencode(root) + b"/name-\xff\xfe-latin1"
    with open(odd, "wb") as f:
        f.write(b"odd\n")
    with open(root / "holes", "wb") as f:
        f.truncate(5 * MIB)
        f.seek(MIB)
        f.write(b"A" * 10_000)
        f.seek(4 * MIB + 7)
        f.write(b"B" * 5000)
    os.chmod(root / "etc" / "hostname", 0o600)


@contextlib.contextmanager
def mounted(image: Path, where: Path, options: str = "loop") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "btrfs", "-o", options, image, where)
    try:
        yield where
    finally:
        subprocess.run(["umount", os.fspath(where)], check=True)


def _build_rootdir(work: Path, name: str, *mkfs: str) -> Path:
    src = work / f"{name}-src"
    src.mkdir()
    _populate(src)
    img = work / f"{name}.img"
    with open(img, "wb") as f:
        f.truncate(256 * MIB)
    run("mkfs.btrfs", "-q", "-L", f"lbl-{name}", *mkfs, "--rootdir", src, img)
    return img


def _build_mounted(work: Path) -> Path:
    """Subvolumes, a default subvolume, zlib / lzo / zstd files, holes and prealloc."""
    img = work / "mounted.img"
    with open(img, "wb") as f:
        f.truncate(512 * MIB)
    run("mkfs.btrfs", "-q", "-L", "mounted", "-m", "dup", img)
    with mounted(img, work / "mnt") as m:
        run("btrfs", "subvolume", "create", m / "@")
        run("btrfs", "subvolume", "create", m / "@home")
        run("btrfs", "subvolume", "create", m / "@" / "nested")
        _populate(m / "@")
        (m / "@home" / "user").mkdir()
        (m / "@home" / "user" / ".profile").write_bytes(b"export PATH\n")
        (m / "@" / "nested" / "inside").write_bytes(b"nested subvolume\n")
        for algo in ("zlib", "lzo", "zstd"):
            d = m / "@" / algo
            d.mkdir()
            run("btrfs", "property", "set", d, "compression", algo)
            (d / "text").write_bytes(_text(7, 1_000_000 + 17))
            (d / "small").write_bytes(_text(8, 3000))           # inline, compressed
            (d / "mixed").write_bytes(_text(9, 200_000) + os.urandom(70_000)
                                      + _text(10, 300_000))
            with open(d / "sparse", "wb") as f:
                f.truncate(2 * MIB)
                f.seek(300_000)
                f.write(_text(11, 500_000))
            # A partial overwrite inside a compressed extent: extents with an offset.
            with open(d / "text", "r+b") as f:
                f.seek(200_000)
                f.write(b"Z" * 5000)
        with open(m / "@" / "prealloc", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, 3 * MIB)
            f.write(b"head")
        run("btrfs", "subvolume", "snapshot", m / "@", m / "@snap")
        subvol_id = re.search(r"Subvolume ID:\s+(\d+)",
                              run("btrfs", "subvolume", "show", m / "@"))
        assert subvol_id
        run("btrfs", "subvolume", "set-default", subvol_id.group(1), m)
    return img


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("btrfs")
    out = {"single": _build_rootdir(work, "single", "-m", "single"),
           "dup": _build_rootdir(work, "dup", "-m", "dup")}
    for csum in ("sha256", "blake2", "xxhash"):
        out[csum] = _build_rootdir(work, csum, "--csum", csum)
    if IS_ROOT:
        out["mounted"] = _build_mounted(work)
    return out


@pytest.fixture(scope="session")
def mounted_image(images: dict[str, Path]) -> Path:
    if "mounted" not in images:
        pytest.skip("loop mounts need root")
    return images["mounted"]


# -- the oracle: walk a read-only mount ------------------------------------------------
def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mount_view(top: Path) -> dict[str, tuple[str, int, int, str]]:
    """path -> (kind, size, mode, sha256 or link target) of everything under ``top``."""
    view: dict[str, tuple[str, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            st = os.lstat(full)
            rel = "/" + os.path.relpath(full, top)
            kind = _kind(st.st_mode)
            extra = ""
            if kind == "symlink":
                extra = os.readlink(full)
            elif kind == "file":
                with open(full, "rb") as f:
                    extra = _sha(f.read())
            size = st.st_size if kind != "dir" else 0
            view[rel] = (kind, size, st.st_mode, extra)
    return view


def fs_view(fs: FileSystem, top: str = "/") -> dict[str, tuple[str, int, int, str]]:
    view: dict[str, tuple[str, int, int, str]] = {}
    pending = [top.rstrip("/") or ""]
    while pending:
        d = pending.pop()
        for e in fs.listdir(d or "/"):
            path = f"{d}/{e.name}"
            st = fs.stat(path, follow=False)
            assert st.kind == e.kind, path
            extra = ""
            if st.kind == "dir":
                pending.append(path)
            elif st.kind == "symlink":
                extra = fs.readlink(path)
            elif st.kind == "file":
                extra = _sha(fs.read_file(path))
            view[path[len(top.rstrip("/")):]] = (st.kind, st.size if st.kind != "dir" else 0,
                                                 st.mode, extra)
    return view


def _assert_same(ours: dict[str, tuple[str, int, int, str]],
                 theirs: dict[str, tuple[str, int, int, str]]) -> None:
    assert sorted(ours) == sorted(theirs)
    for path, want in theirs.items():
        assert ours[path] == want, path


def _dump_super(path: Path) -> dict[str, str]:
    out = run("btrfs", "inspect-internal", "dump-super", path)
    facts = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            facts[parts[0]] = parts[1].strip()
    return facts


# -- mkfs --rootdir volumes ---------------------------------------------------------------
@needs_mount
@pytest.mark.parametrize("name", ["single", "dup", "sha256", "blake2", "xxhash"])
def test_rootdir_volume_matches_mount(name: str, images: dict[str, Path],
                                      tmp_path: Path) -> None:
    fs = open_fs(images[name])
    with mounted(images[name], tmp_path / "m", "ro,loop") as m:
        theirs = mount_view(m)
    _assert_same(fs_view(fs), theirs)


@pytest.mark.parametrize("name", ["single", "dup", "sha256", "blake2", "xxhash"])
def test_facts_match_dump_super(name: str, images: dict[str, Path]) -> None:
    fs = open_fs(images[name])
    sup = _dump_super(images[name])
    facts = fs.facts()
    assert facts["filesystem"] == "btrfs"
    assert facts["uuid"] == sup["fsid"]
    assert facts["label"] == sup["label"] == f"lbl-{name}"
    assert facts["generation"] == int(sup["generation"])
    assert facts["dirty"] is (int(sup["log_root"]) != 0)
    assert facts["checksum"] == {"crc32c": "crc32c", "sha256": "sha256", "blake2": "blake2b",
                                 "xxhash64": "xxhash64"}[sup["csum_type"].split()[1].strip("()")]
    assert facts["default_subvolume"] == 5
    assert facts["subvolumes"] == [{"id": 5, "path": "/"}]
    assert facts["profiles"]["metadata"] == ["single" if name == "single" else "dup"]
    assert facts["profiles"]["data"] == ["single"]


def test_files_links_and_holes(images: dict[str, Path]) -> None:
    """The cases that need no mount, against what _populate wrote."""
    fs = open_fs(images["single"])
    assert fs.read_file("/etc/os-release") == b'NAME="Debian GNU/Linux"\nID=debian\n'
    assert fs.read_file("/links/relative") == fs.read_file("/etc/os-release")
    assert fs.read_file("/links/absolute") == b"btrfs-test\n"
    assert fs.readlink("/links/long") == "x" * 300
    assert fs.read_file("/etc/empty") == b""
    assert fs.stat("/etc/hostname").mode & 0o777 == 0o600
    assert fs.read_file("/bin/text") == _text(1, 700_000)
    assert fs.read_file("/bin/text", 123_456, 70_000) == _text(1, 700_000)[123_456:193_456]
    holes = fs.read_file("/holes")
    assert len(holes) == 5 * MIB
    assert holes[MIB:MIB + 10_000] == b"A" * 10_000
    assert holes[4 * MIB + 7:4 * MIB + 5007] == b"B" * 5000
    assert holes.count(0) == 5 * MIB - 15_000
    assert fs.read_file("/name-\udcff\udcfe-latin1") == b"odd\n"
    names = [e.name for e in fs.listdir("/big")]
    assert len(names) == BIG_DIR_ENTRIES
    assert fs.exists("/big/entry-02999-" + "x" * (2999 % 40))
    assert not fs.exists("/big/entry-03000-")
    assert fs.read_file("/deep/a/../a/b/c/leaf") == b"leaf\n"
    assert fs.stat("/../../etc/hostname").size == 11


# -- kernel-written volumes: subvolumes, compression -----------------------------------
def test_mounted_volume_matches_mount(mounted_image: Path, tmp_path: Path) -> None:
    """Every subvolume, read from the top level and from its own root, equals the mount."""
    top = open_fs(mounted_image, subvolume=5)
    with mounted(mounted_image, tmp_path / "m", "ro,loop,subvolid=5") as m:
        theirs = mount_view(m)
    _assert_same(fs_view(top), theirs)
    default = open_fs(mounted_image)
    with mounted(mounted_image, tmp_path / "d", "ro,loop") as m:
        theirs = mount_view(m)
    _assert_same(fs_view(default), theirs)


def test_compressed_extents_present(mounted_image: Path) -> None:
    """The volume really holds zlib, lzo and zstd extents (regular and inline)."""
    out = subprocess.run(["btrfs", "inspect-internal", "dump-tree", mounted_image],
                         capture_output=True, check=True).stdout.decode("utf-8", "replace")
    for algo in (1, 2, 3):
        assert f"compression {algo}" in out
    assert re.search(r"inline extent data size \d+ ram_bytes \d+ compression [123]", out)
    fs = open_fs(mounted_image)
    for name in ("zlib", "lzo", "zstd"):
        text = bytearray(_text(7, 1_000_000 + 17))
        text[200_000:205_000] = b"Z" * 5000
        assert fs.read_file(f"/{name}/text") == bytes(text)
        assert fs.read_file(f"/{name}/small") == _text(8, 3000)
        assert fs.read_file(f"/{name}/text", 150_000, 100_000) == bytes(text[150_000:250_000])


def test_subvolumes_match_btrfs_tools(mounted_image: Path, tmp_path: Path) -> None:
    fs = open_fs(mounted_image)
    with mounted(mounted_image, tmp_path / "m", "ro,loop,subvolid=5") as m:
        listed = run("btrfs", "subvolume", "list", m)
        default = run("btrfs", "subvolume", "get-default", m)
    want = [(int(i), "/" + p) for i, p in re.findall(r"ID (\d+) .* path (\S+)", listed)]
    assert fs.subvolumes() == [(5, "/"), *sorted(want)]
    default_id = int(re.search(r"ID (\d+)", default).group(1))  # type: ignore[union-attr]
    assert fs.default_subvolume == default_id == fs.tree
    assert fs.facts()["default_subvolume"] == default_id
    assert fs.facts()["profiles"]["metadata"] == ["dup"]
    home = fs.open_subvolume("/@home")
    assert home.read_file("/user/.profile") == b"export PATH\n"
    ids = dict((p, i) for i, p in fs.subvolumes())
    assert fs.open_subvolume(ids["/@/nested"]).read_file("/inside") == b"nested subvolume\n"
    # Crossing into a nested subvolume from its parent, and back out with "..".
    assert fs.read_file("/nested/inside") == b"nested subvolume\n"
    assert fs.read_file("/nested/../etc/hostname") == b"btrfs-test\n"
    assert [e.name for e in fs.listdir("/nested")] == ["inside"]


def test_prealloc_reads_as_zeros(mounted_image: Path) -> None:
    fs = open_fs(mounted_image)
    data = fs.read_file("/prealloc")
    assert data == b"head" + bytes(3 * MIB - 4)


@needs_qemu
def test_through_qcow2(mounted_image: Path, tmp_path: Path) -> None:
    q = tmp_path / "btrfs.qcow2"
    run("qemu-img", "convert", "-O", "qcow2", "-c", mounted_image, q)
    with imgscan.open(q) as img:
        fs = BtrfsFileSystem(img.read, 0, img.virtual_size, "btrfs.qcow2")
        direct = open_fs(mounted_image)
        assert fs.facts() == direct.facts()
        assert fs.read_file("/zstd/mixed") == direct.read_file("/zstd/mixed")
        assert fs.read_file("/bin/random") == direct.read_file("/bin/random")


@needs_mount
def test_raid1_is_refused(tmp_path: Path) -> None:
    devs = []
    for i in (1, 2):
        d = tmp_path / f"dev{i}.img"
        with open(d, "wb") as f:
            f.truncate(256 * MIB)
        devs.append(d)
    loops = [run("losetup", "--show", "-f", d).strip() for d in devs]
    try:
        run("mkfs.btrfs", "-q", "-d", "raid1", "-m", "raid1", *loops)
    finally:
        for loop in loops:
            subprocess.run(["losetup", "-d", loop], check=False)
    with pytest.raises(UnsupportedFeature, match="raid1"):
        open_fs(devs[0])


# -- hostile input -------------------------------------------------------------------------
def _patched(src: Path, dst: Path, patches: list[tuple[int, bytes]]) -> Path:
    sparse_copy(src, dst)
    with open(dst, "r+b") as f:
        for at, data in patches:
            f.seek(at)
            f.write(data)
    return dst


def test_bad_superblock_checksum(images: dict[str, Path], tmp_path: Path) -> None:
    """A damaged primary falls back to the mirror at 64 MiB; both damaged is corrupt."""
    field = C.BTRFS_SUPER_BLOCK.offset("generation")
    primary, mirror = C.BTRFS_SUPER_MIRROR_OFFSETS[:2]
    one = _patched(images["single"], tmp_path / "one.img", [(primary + field, b"\x77")])
    assert open_fs(one).facts() == open_fs(images["single"]).facts()
    both = _patched(one, tmp_path / "both.img", [(mirror + field, b"\x77")])
    with pytest.raises(CorruptImage, match="checksum") as exc:
        open_fs(both)
    assert exc.value.offset == primary


def test_corrupt_tree_block_is_named(images: dict[str, Path], tmp_path: Path) -> None:
    """Flip a byte in the root tree's block: a checksum error naming the root tree."""
    fs = open_fs(images["single"])
    root = fs._s.sb["root"]
    physical, _ = fs._map(root, "test")
    bad = _patched(images["single"], tmp_path / "bad.img", [(physical + 200, b"\x55\xaa")])
    with pytest.raises(CorruptImage, match="checksum") as exc:
        open_fs(bad)
    assert exc.value.offset == physical


def _resealed(src: Path, dst: Path, block: int, nodesize: int,
              patches: list[tuple[int, bytes]]) -> Path:
    """A copy of ``src`` with the tree block at ``block`` patched and its crc32c redone,
    so the reader's structural checks, not the checksum, must catch the damage."""
    from imgscan._core.crc32c import crc32c

    sparse_copy(src, dst)
    with open(dst, "r+b") as f:
        f.seek(block)
        data = bytearray(f.read(nodesize))
        for at, raw in patches:
            data[at:at + len(raw)] = raw
        data[:4] = crc32c(bytes(data[C.BTRFS_CSUM_SIZE:])).to_bytes(4, "little")
        f.seek(block)
        f.write(data)
    return dst


@pytest.mark.parametrize("damage", ["key order", "item outside", "level", "nritems"])
def test_damaged_tree_block(damage: str, images: dict[str, Path], tmp_path: Path) -> None:
    fs = open_fs(images["single"])
    physical, _ = fs._map(fs._s.sb["root"], "test")
    nodesize = fs._s.nodesize
    H, It = C.BTRFS_HEADER, C.BTRFS_ITEM
    with open(images["single"], "rb") as f:
        f.seek(physical)
        block = f.read(nodesize)
    assert block[H.offset("level")] == 0
    first, second = H.size, H.size + It.size
    patches = {
        "key order": [(first, block[second:second + 17]), (second, block[first:first + 17])],
        "item outside": [(second + It.offset("offset"), (nodesize - 50).to_bytes(4, "little"))],
        "level": [(H.offset("level"), b"\x01")],
        "nritems": [(H.offset("nritems"), (10_000).to_bytes(4, "little"))],
    }[damage]
    bad = _resealed(images["single"], tmp_path / "bad.img", physical, nodesize, patches)
    with pytest.raises(CorruptImage, match=r"out of order|outside|level 1|does not fit") as exc:
        open_fs(bad)
    assert exc.value.offset is not None and physical <= exc.value.offset < physical + nodesize


def test_truncated_volume(images: dict[str, Path]) -> None:
    read, _size = file_reader(images["single"])
    with pytest.raises(ImageError):
        BtrfsFileSystem(read, 0, 40_000, "short")


# -- caps -----------------------------------------------------------------------------------
def test_tree_level_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fs = open_fs(images["single"])
    level = fs._tree_root[1]
    assert level >= 1          # the big directory makes the FS tree two levels deep
    _cap_boundary(monkeypatch, "BTRFS_MAX_TREE_LEVEL", level,
                  lambda: open_fs(images["single"]).listdir("/big"), located=False)


def test_nodes_visited_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fs = open_fs(images["single"])
    counted = []
    real = fs._node

    def counting(bytenr: int, level: int, structure: str) -> tuple[bytes, int, int]:
        counted.append(bytenr)
        return real(bytenr, level, structure)

    fs.listdir("/big")                    # stat()s cached: what is left is the listing
    ino = fs.resolve("/big")
    monkeypatch.setattr(fs, "_node", counting)
    list(fs._entries(ino))
    visited = len(counted)
    monkeypatch.undo()
    assert visited > 2
    _cap_boundary(monkeypatch, "BTRFS_MAX_NODES_VISITED", visited,
                  lambda: fs.listdir("/big"), located=False)


def test_chunks_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = len(open_fs(images["single"])._s.chunks)
    _cap_boundary(monkeypatch, "BTRFS_MAX_CHUNKS", chunks, lambda: open_fs(images["single"]))


def test_inline_extent_cap(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fs = open_fs(images["single"])
    size = fs.stat("/etc/os-release").size
    _cap_boundary(monkeypatch, "BTRFS_MAX_INLINE_EXTENT", size,
                  lambda: fs.read_file("/etc/os-release"))


def test_decompressed_extent_cap(mounted_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Compressed extents decompress to at most 128 KiB: the real value of a big file.
    def attempt() -> None:
        open_fs(mounted_image).read_file("/zstd/text")

    _cap_boundary(monkeypatch, "BTRFS_MAX_DECOMPRESSED_EXTENT", 128 * 1024, attempt)


def test_subvolumes_cap(mounted_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = open_fs(mounted_image)
    count = len(fs.subvolumes()) - 1          # the top level has no back reference
    _cap_boundary(monkeypatch, "BTRFS_MAX_SUBVOLUMES", count, fs.subvolumes)


def test_limits_refuse_with_limit_exceeded() -> None:
    assert limits.BTRFS_MAX_DECOMPRESSED_EXTENT == 128 * 1024
    with pytest.raises(LimitExceeded):
        limits.enforce(limits.BTRFS_MAX_TREE_LEVEL + 1, "BTRFS_MAX_TREE_LEVEL", "x", "y", 0,
                       "tree level")


# -- the LZO1X decoder on hand-made streams (real ones are read above) -----------------
def test_lzo1x_bounds() -> None:
    from imgscan._core.lzo import lzo1x_decompress

    end = b"\x11\x00\x00"                       # the end marker: a distance-0 match
    assert lzo1x_decompress(end, 0) == b""
    literals = b"\x15abcd" + end                # 17 + 4: four literals first
    assert lzo1x_decompress(literals, 4) == b"abcd"
    with pytest.raises(ValueError, match="past the limit"):
        lzo1x_decompress(literals, 3)
    with pytest.raises(ValueError, match="ends early"):
        lzo1x_decompress(literals[:4], 100)
    with pytest.raises(ValueError, match="after its end"):
        lzo1x_decompress(literals + b"\x00", 100)
    # A match 8 bytes back after 4 bytes of output reaches before the output.
    with pytest.raises(ValueError, match="before the output"):
        lzo1x_decompress(b"\x15abcd\x7c\x00" + end, 100)
    # A run of overlapping matches stops at the limit: a bomb costs the limit, no more.
    bomb = b"\x12a" + b"\xfc\x00" * 2 + end      # literal "a", then 8-byte matches 8 back
    with pytest.raises(ValueError):
        lzo1x_decompress(bomb, 4)


def test_volume_at_an_offset(images: dict[str, Path]) -> None:
    """A volume that starts 1 MiB into the disk (a partition): every offset is shifted."""
    read, size = file_reader(images["dup"])

    def disk(offset: int, length: int) -> bytes:
        head = bytes(max(0, min(MIB - offset, length)))
        rest = read(max(offset - MIB, 0), length - len(head)) if length > len(head) else b""
        return head + rest

    fs = BtrfsFileSystem(disk, MIB, size, "disk partition 1")
    assert fs.facts() == open_fs(images["dup"]).facts()
    assert fs.read_file("/bin/text") == _text(1, 700_000)
    with pytest.raises(ImageError) as exc:
        BtrfsFileSystem(disk, MIB + 4096, size - 4096, "disk partition 2")
    assert exc.value.path == "disk partition 2"
