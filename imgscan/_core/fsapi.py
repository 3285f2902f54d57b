"""The one read-only file-system interface: open by path, list, stat, read, readlink.

Every filesystem reader of the core (ext2/3/4, XFS, Btrfs, NTFS) is a
:class:`FileSystem`: it implements six primitives on inode numbers and this
base class does the rest the same way for all of them, so path resolution,
symlink confinement and the caps are written once:

* paths are absolute inside the filesystem; ``..`` never climbs above its
  root, and a symlink's target (absolute or relative) is resolved inside the
  same filesystem, never on the host;
* at most ``limits.FS_MAX_SYMLINK_FOLLOWS`` symlinks are followed while
  resolving one path (Linux's 40), and at most ``limits.FS_MAX_PATH_COMPONENTS``
  components are walked, so a loop of links or a path made of a million ``.``
  costs a bounded amount of work;
* a read returns at most ``limits.FS_MAX_FILE_READ`` bytes at once; holes read
  as zeros (the readers' ``_read`` fills them).

Names are ``str``; bytes that are not UTF-8 come through as surrogate escapes,
as ``os.fsdecode`` gives them, so every name round-trips. Comparison is the
reader's business: case-sensitive for the Linux filesystems, through
``$UpCase`` for NTFS.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, Literal

    Kind = Literal["file", "dir", "symlink", "other"]

#: POSIX file type bits of ``st_mode`` (the Linux filesystems store them on disk).
S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000


def kind_of_mode(mode: int) -> Kind:
    """The kind of a POSIX ``st_mode``."""
    fmt = mode & S_IFMT
    if fmt == S_IFREG:
        return "file"
    if fmt == S_IFDIR:
        return "dir"
    if fmt == S_IFLNK:
        return "symlink"
    return "other"


class FileNotFound(ImageError):
    """A path names nothing on the filesystem (or a component is not a directory)."""


class Stat:
    """What ``stat`` says of one inode: its number, kind, mode, size, owner and times."""

    __slots__ = ("gid", "ino", "kind", "mode", "mtime", "nlink", "size", "uid")

    def __init__(self, ino: int, kind: Kind, size: int, mode: int = 0, uid: int = 0,
                 gid: int = 0, nlink: int = 1, mtime: int | None = None) -> None:
        self.ino = ino
        self.kind: Kind = kind
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.nlink = nlink
        #: Seconds since the epoch, or None where the filesystem keeps no such time.
        self.mtime = mtime

    def __repr__(self) -> str:
        return f"Stat(ino={self.ino}, kind={self.kind!r}, size={self.size}, mode=0o{self.mode:o})"


class DirEntry:
    """One name in a directory: the name, the inode it links to and that inode's kind."""

    __slots__ = ("ino", "kind", "name")

    def __init__(self, name: str, ino: int, kind: Kind) -> None:
        self.name = name
        self.ino = ino
        self.kind: Kind = kind

    def __repr__(self) -> str:
        return f"DirEntry({self.name!r}, {self.ino}, {self.kind!r})"


class FileSystem:
    """A filesystem read through a guest-byte reader; subclasses supply the primitives.

    ``filesystem`` is the blkid name (``ext4``, ``xfs``, ``btrfs``, ``ntfs``);
    ``name`` names the volume in errors (e.g. ``disk.qcow2 partition 2``);
    ``root`` is the root directory's inode number. :meth:`facts` gives the
    volume's label, UUID and state for ``imgscan info``.
    """

    filesystem: str = ""
    #: The separator of paths given to this filesystem (NTFS also takes ``\\``).
    separators: str = "/"

    def __init__(self, name: str, root: int) -> None:
        self.name = name
        self.root = root

    # -- primitives each reader implements ------------------------------------------
    def _stat(self, ino: int) -> Stat:
        """The inode ``ino``'s stat."""
        raise NotImplementedError

    def _lookup(self, dir_ino: int, name: str) -> int | None:
        """The inode that ``name`` links to in directory ``dir_ino``, or None."""
        raise NotImplementedError

    def _entries(self, dir_ino: int) -> Iterator[DirEntry]:
        """Every entry of directory ``dir_ino``, ``.`` and ``..`` left out."""
        raise NotImplementedError

    def _readlink(self, ino: int) -> str:
        """The target of symlink ``ino``."""
        raise NotImplementedError

    def _read(self, ino: int, offset: int, length: int) -> bytes:
        """``length`` bytes of regular file ``ino`` from ``offset`` (within its size)."""
        raise NotImplementedError

    def facts(self) -> dict[str, Any]:
        """The volume's facts: ``filesystem``, ``label``, ``uuid``, ``state`` and more."""
        raise NotImplementedError

    # -- the interface ---------------------------------------------------------------
    def resolve(self, path: str, *, follow: bool = True) -> int:
        """The inode ``path`` names; the last component's symlink is followed if ``follow``."""
        return self._resolve(path, follow)[0]

    def stat(self, path: str, *, follow: bool = True) -> Stat:
        """The stat of ``path`` (of the link itself when ``follow`` is False)."""
        return self._resolve(path, follow)[1]

    def _resolve(self, path: str, follow: bool) -> tuple[int, Stat]:
        """The inode ``path`` names and its stat; each inode on the way is stat'ed once,
        and the walk to ``path``'s directory is kept (:attr:`_parent`) for the next
        lookup in that directory."""
        parts = self._components(path)
        parent = parts[:-1]
        kept = self._parent
        if parent and kept is not None and kept[0] == parent:
            _, ino, st, above, walked, follows = kept
            trail = list(above)
        else:
            ino, st, trail, walked, follows = self.root, self._stat(self.root), [], 0, 0
            if parent:
                ino, st, walked, follows = self._walk(path, parent, ino, st, trail, True,
                                                      walked, follows)
                self._parent = (parent, ino, st, tuple(trail), walked, follows)
        return self._walk(path, parts[-1:], ino, st, trail, follow, walked, follows)[:2]

    #: The last directory a path was resolved in: its components, inode, stat, the
    #: directories above it (for ``..``) and the components walked and symlinks followed
    #: to reach it, so the caps count as if it were walked again. Reading a directory's
    #: files one after the other walks the path to it once, not once a file (a fuzzed
    #: volume of nested directories: 10,846 stats for 255 files 40 levels down). The
    #: volumes are read only, so it never goes stale.
    _parent: tuple[list[str], int, Stat, tuple[tuple[int, Stat], ...], int, int] | None = None

    def _walk(self, path: str, parts: list[str], ino: int, st: Stat,
              trail: list[tuple[int, Stat]], follow: bool, walked: int, follows: int
              ) -> tuple[int, Stat, int, int]:
        """From directory ``ino`` (``st``; ``trail`` the directories above it, updated in
        place) through ``parts``: the inode reached, its stat, and the components walked
        and symlinks followed so far (``path`` names the lookup in errors)."""
        pending = parts[::-1]
        while pending:
            part = pending.pop()
            walked += 1
            limits.enforce(walked, "FS_MAX_PATH_COMPONENTS", self.name, f"path {path!r}",
                           None, "path components walked")
            if part == ".":
                continue
            if part == "..":
                ino, st = trail.pop() if trail else (self.root, self._stat(self.root))
                continue
            if st.kind != "dir":
                raise FileNotFound(self.name, f"path {path!r}", None,
                                   f"a component before {part!r} is not a directory")
            child = self._lookup(ino, part)
            if child is None:
                raise FileNotFound(self.name, f"path {path!r}", None, f"no {part!r}")
            child_st = self._stat(child)
            if child_st.kind == "symlink" and (pending or follow):
                follows += 1
                limits.enforce(follows, "FS_MAX_SYMLINK_FOLLOWS", self.name, f"path {path!r}",
                               None, "symlinks followed")
                target = self._readlink(child)
                more = self._components(target)
                more.reverse()
                pending.extend(more)
                if target[:1] in self.separators:
                    ino, st = self.root, self._stat(self.root)
                    trail.clear()
                continue
            trail.append((ino, st))
            ino, st = child, child_st
        return ino, st, walked, follows

    def lookup(self, path: str, *, follow: bool = True) -> Stat | None:
        """The stat of ``path``, or None when it names nothing."""
        try:
            return self.stat(path, follow=follow)
        except FileNotFound:
            return None

    def exists(self, path: str) -> bool:
        return self.lookup(path) is not None

    def is_dir(self, path: str) -> bool:
        st = self.lookup(path)
        return st is not None and st.kind == "dir"

    def listdir(self, path: str = "/") -> list[DirEntry]:
        """The entries of directory ``path``, in on-disk order, ``.`` and ``..`` left out."""
        ino, st = self._resolve(path, True)
        if st.kind != "dir":
            raise FileNotFound(self.name, f"path {path!r}", None, "not a directory")
        return list(self._entries(ino))

    def entry_stat(self, entry: DirEntry) -> Stat:
        """The stat of a :meth:`listdir` entry (its link itself), without a path walk."""
        return self._stat(entry.ino)

    def entry_target(self, entry: DirEntry) -> str:
        """The target of a :meth:`listdir` entry of kind ``symlink``."""
        return self._readlink(entry.ino)

    def readlink(self, path: str) -> str:
        """The target of the symlink ``path``."""
        ino, st = self._resolve(path, False)
        if st.kind != "symlink":
            raise FileNotFound(self.name, f"path {path!r}", None, "not a symlink")
        return self._readlink(ino)

    def read_file(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of the regular file ``path`` from ``offset``: ``length`` or up to its end."""
        ino, st = self._resolve(path, True)
        if st.kind != "file":
            raise FileNotFound(self.name, f"path {path!r}", None, f"a {st.kind}, not a file")
        offset = min(max(offset, 0), st.size)
        count = st.size - offset if length is None else min(length, st.size - offset)
        limits.enforce(count, "FS_MAX_FILE_READ", self.name, f"file {path!r}", None,
                       "bytes read at once")
        return self._read(ino, offset, count) if count > 0 else b""

    def reader(self, path: str) -> tuple[Callable[[int, int], bytes], int]:
        """``(read(offset, length), size)`` of the regular file ``path``, resolved once:
        for a caller that reads one file piece by piece (a stream decoder), so the path
        is not walked again for every piece. Each read is clamped to the file and capped
        as :meth:`read_file` caps it."""
        ino, st = self._resolve(path, True)
        if st.kind != "file":
            raise FileNotFound(self.name, f"path {path!r}", None, f"a {st.kind}, not a file")
        size = st.size

        def read(offset: int, length: int) -> bytes:
            offset = min(max(offset, 0), size)
            count = min(length, size - offset)
            limits.enforce(count, "FS_MAX_FILE_READ", self.name, f"file {path!r}", offset,
                           "bytes read at once")
            return self._read(ino, offset, count) if count > 0 else b""
        return read, size

    def _components(self, path: str) -> list[str]:
        for sep in self.separators[1:]:
            path = path.replace(sep, self.separators[0])
        return [p for p in path.split(self.separators[0]) if p]
