"""XFS volumes made by mkfs.xfs and populated through a loop mount (root only).

One layout serves the reader's tests and the fuzz seeds: every directory form
(short-form, block, leaf, node, and a btree-format directory grown over
fragmented free space), a file in 2000 extents (a btree data fork), files with
holes and unwritten extents, inline and remote symlinks, a non-UTF-8 name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from helpers import unmount

MiB = 1 << 20
#: mkfs.xfs refuses v5 filesystems under 300 MiB; the file is sparse.
VOLUME_SIZE = 320 * MiB
LONG_TARGET = "/" + "./" * 400 + "sf/f1"     # past a 512-byte inode: remote
DEAD_TARGET = "x" * 300
BTREE_DIR_ENTRIES = 3000
NODE_DIR_ENTRIES = 5000


def can_loop_mount() -> bool:
    """mkfs.xfs is installed and this process may loop-mount (root)."""
    return shutil.which("mkfs.xfs") is not None and os.geteuid() == 0


@contextlib.contextmanager
def mounted(image: Path, *opts: str) -> Iterator[Path]:
    """``image`` loop-mounted on a fresh directory for the duration."""
    mnt = Path(tempfile.mkdtemp(prefix="xfs-mnt-"))
    subprocess.run(["mount", "-o", ",".join(("loop", *opts)), str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        unmount(mnt)
        mnt.rmdir()


def mkfs(path: Path, *opts: str, size: int = VOLUME_SIZE) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.xfs", "-q", "-f", *opts, str(path)], check=True)
    return path


def populate(root: Path, *, rich: bool = True) -> None:
    """The layout the tests compare: every directory form, fork form and symlink form.

    ``rich`` adds what only a live filesystem makes (a btree directory, a btree fork, an
    unwritten extent); a protofile copy (v4, which the kernel no longer mounts) has the rest.
    """
    (root / "sf").mkdir()
    for i in range(1, 4):
        (root / "sf" / f"f{i}").write_bytes(f"hi{i}\n".encode())
    for name, count in (("blk", 40), ("leaf", 400), ("node", NODE_DIR_ENTRIES)):
        (root / name).mkdir()
        for i in range(count):
            (root / name / f"file_with_a_longish_name_{i:05d}").write_bytes(b"%d\n" % i)
    (root / "big").write_bytes(os.urandom(3 * MiB + 123))
    (root / "empty").touch()
    os.symlink("sf/f1", root / "short")
    os.symlink(LONG_TARGET, root / "long")
    os.symlink(DEAD_TARGET, root / "dead")
    os.symlink("../sf", root / "node" / "up")
    (root / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name\n")
    with open(root / "holes", "wb") as f:
        f.seek(400 * 1024)
        f.write(b"after the hole\n" * 100)
        f.truncate(2 * MiB)
    if rich:
        populate_live(root)


def populate_live(root: Path) -> None:
    """A btree directory, a btree data fork and an unwritten extent (on a mounted volume)."""
    # A btree-format directory: free space fragmented first, so its blocks scatter.
    (root / "scratch").mkdir()
    (root / "bdir").mkdir()
    for i in range(3000):
        (root / "scratch" / f"s{i}").write_bytes(b"x" * 4096)
    os.sync()
    for i in range(0, 3000, 2):
        (root / "scratch" / f"s{i}").unlink()
    os.sync()
    for i in range(BTREE_DIR_ENTRIES):
        (root / "bdir" / f"entry_with_a_rather_long_name_number_{i:06d}").touch()
        if i % 50 == 0:
            (root / "scratch" / f"t{i}").write_bytes(b"y" * 4096)
    # A file in 2000 extents: every other 4 KiB written.
    with open(root / "frag", "wb") as f:
        for i in range(2000):
            f.seek(i * 8192)
            f.write(bytes([i % 251 + 1]) * 4096)
    with open(root / "prealloc", "wb") as f:
        os.posix_fallocate(f.fileno(), 0, MiB)
        f.seek(256 * 1024)
        f.write(b"written inside an unwritten extent\n")


def build(path: Path, *opts: str) -> Path:
    """A populated XFS volume at ``path`` (mkfs options ``opts``), cleanly unmounted."""
    mkfs(path, "-L", "imgscan", *opts)
    with mounted(path) as mnt:
        populate(mnt)
    return path


def protofile(source: Path) -> str:
    """mkfs.xfs's prototype of the tree at ``source`` (files, directories, symlinks)."""
    lines = ["/dev/null", "0 0", "d--755 0 0"]

    def walk(top: Path) -> None:
        for entry in sorted(os.scandir(top), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            perm = f"{st.st_mode & 0o777:03o}"
            if entry.is_symlink():
                lines.append(f"{entry.name} l--{perm} 0 0 {os.readlink(entry.path)}")
            elif entry.is_dir():
                lines.append(f"{entry.name} d--{perm} 0 0")
                walk(Path(entry.path))
                lines.append("$")
            else:
                lines.append(f"{entry.name} ---{perm} 0 0 {entry.path}")

    walk(source)
    lines.append("$")
    return "\n".join(lines) + "\n"


def build_proto(path: Path, source: Path, *opts: str) -> Path:
    """``source`` (made by :func:`populate` without ``rich``) copied in by ``mkfs.xfs -p``."""
    proto = path.with_suffix(".proto")
    proto.write_bytes(protofile(source).encode("utf-8", "surrogateescape"))
    mkfs(path, "-L", "imgscan", "-p", str(proto), *opts)
    return path


def xfs_db(image: Path, *commands: str) -> str:
    args = ["xfs_db", "-r"]
    for c in commands:
        args += ["-c", c]
    return subprocess.run([*args, str(image)], capture_output=True, text=True,
                          check=True).stdout


def xfs_db_fields(image: Path, ino: int, *fields: str) -> dict[str, str]:
    """``xfs_db``'s view of inode ``ino``: ``field -> value`` (the text before any comment)."""
    out = xfs_db(image, f"inode {ino}", "print " + " ".join(fields))
    got = {}
    for line in out.splitlines():
        key, _, value = line.partition(" = ")
        got[key.strip()] = value.split(" (")[0].strip()
    return got
