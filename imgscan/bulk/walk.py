"""Discovery: which files under the given paths are disk images, decided by content.

The walk (:class:`Walk`, in the scanning process) only lists: it descends
directories without following directory symlinks (a link back up would loop),
visits each file and directory once by ``(device, inode)`` (hard links, bind
mounts, symlinks to a file already seen), and never opens anything that is
not a regular file: opening a FIFO blocks until a writer comes, a device may
be a tape. What each regular file *is* is decided in a worker, so that the
reads are spread over the pool, by the same detection ``imgscan info`` runs.

A file is an image when it carries a container signature (the registry's
cheap magic hints, then that format's own probe, so a decoder module is
imported only when its magic is there), or, decoded as raw, when its first
sectors hold a partition table (an MBR with sane entries, a GPT header) or a
filesystem the probes know (:func:`raw_is_image`), or when it is named
``.img``, ``.raw`` or ``.iso``. Anything else (text, logs, random bytes) is
skipped after its first sectors are read: the worker reads an image's facts
once and keeps them only if it is one, instead of deciding first and reading
again (the common case in an image library is an image).
"""

from __future__ import annotations

import errno
import os
from operator import attrgetter
from stat import S_IFREG, S_ISDIR, S_ISREG

from .._core import c_gpt
from .._core.registry import mbr_partitions
from ..remote import is_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from typing import Any

#: Bytes of the file's head the header digest covers (the whole file when smaller).
HEADER_DIGEST_BYTES = 64 * 1024
#: Bytes of the file's head :func:`raw_is_image` reads: the MBR and a GPT header at LBA 1
#: of either sector size. A scan that keeps no digest reads only these: the 64 KiB of a
#: digest cost 7 of a small image's 12 us of this read (benchmarks/README.md, issue 18).
RAW_HEAD_BYTES = max(c_gpt.SECTOR_SIZES) + len(c_gpt.SIGNATURE)
#: Names that make a file raw even without a partition table or filesystem
#: (a blank disk, or one whose first sectors were wiped).
RAW_SUFFIXES = (".img", ".raw", ".iso")


def header_digest(path: str) -> str:
    """xxh3-64 (hex) of the file's first 64 KiB, the whole file when smaller.

    Raises OSError for a path that is not a regular file (never opened blocking).
    """
    st = os.stat(path)
    head = read_head(path, st.st_dev, st.st_ino)
    if head is None:
        raise OSError(errno.EINVAL, "not a regular file", path)
    return head_digest(head)


#: xxhash's digest function once :func:`head_digest` first ran.
_xxh3_64_hexdigest: Callable[[bytes], str] | None = None


def head_digest(head: bytes) -> str:
    """The header digest of a file whose first bytes are ``head``."""
    global _xxh3_64_hexdigest
    if _xxh3_64_hexdigest is None:
        # Imported here: a scan without a catalog and `imgscan info` of many images keep
        # no digest, and xxhash is 0.7 ms of the pool's start, when one core does all the
        # work. Kept: an import statement run again costs a few hundred ns an image.
        from xxhash import xxh3_64_hexdigest
        _xxh3_64_hexdigest = xxh3_64_hexdigest
    return _xxh3_64_hexdigest(head[:HEADER_DIGEST_BYTES])


class Walk:
    """The regular files under ``paths``, each once, in a stable order.

    Iterating yields ``(path, stat_result)`` for regular files and
    ``(path, OSError)`` for entries that cannot be looked at (a dangling
    symlink, a directory without permission); ``skipped`` counts the
    entries that are never opened (FIFOs, sockets, devices, symlinks to
    directories); with ``name_skipped``, ``skipped_paths`` names them (a Dask
    scan's listings, whose client counts an entry two listings share once).
    Paths keep the form they were given in (``find`` style).
    """

    def __init__(self, paths: Iterable[str], name_skipped: bool = False) -> None:
        self.paths = list(paths)
        self.skipped = 0
        self.skipped_paths: list[str] | None = [] if name_skipped else None
        self._seen: set[int] = set()

    def __iter__(self) -> Iterator[tuple[str, os.stat_result | OSError]]:
        for root in self.paths:
            if is_url(root):
                yield from _objects(root)
                continue
            try:
                st = os.stat(root)       # a path the user named is followed, even a symlink
            except OSError as exc:
                yield root, exc
                continue
            if S_ISDIR(st.st_mode):
                if self._first_visit(st):
                    yield from self._directory(root)
            elif self._wanted(root, st):
                yield root, st

    def _first_visit(self, st: os.stat_result) -> bool:
        key = st.st_dev << 64 | st.st_ino     # one int: a library of millions stays small
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _skip(self, path: str) -> None:
        self.skipped += 1
        if self.skipped_paths is not None:
            self.skipped_paths.append(path)

    def _wanted(self, path: str, st: os.stat_result) -> bool:
        """Whether a path not a directory is walked: a regular file met for the first
        time (through another name, a hard link or a symlink, it is not); anything
        else (a FIFO, a device, a socket) is counted as skipped."""
        if S_ISREG(st.st_mode):
            return self._first_visit(st)
        self._skip(path)
        return False

    def _directory(self, top: str) -> Iterator[tuple[str, os.stat_result | OSError]]:
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=_name)
            except OSError as exc:
                yield directory, exc
                continue
            subdirs = []
            for entry in entries:
                path = entry.path
                try:
                    if entry.is_symlink():
                        st = os.stat(path)              # a file symlink is followed ...
                        if S_ISDIR(st.st_mode):         # ... a directory symlink never
                            self._skip(path)
                            continue
                    else:
                        st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    yield path, exc
                    continue
                if S_ISDIR(st.st_mode):
                    if self._first_visit(st):
                        subdirs.append(path)
                elif self._wanted(path, st):
                    yield path, st
            stack.extend(reversed(subdirs))    # depth first, in name order


#: A directory entry's name, the walk's order (a C call, not a Python function's frame).
_name = attrgetter("name")


def _objects(root: str) -> Iterator[tuple[str, os.stat_result | OSError]]:
    """The objects under a URL prefix (``s3://BUCKET/PREFIX/``), listed lazily page by
    page by :mod:`imgscan.remote.listing` in a child process (the client's threads must
    not start in the scanning process, which forks its workers); an ``http(s)://`` URL
    is the one object it names.

    Each comes with a stat result the catalog's identity reads: the size, the
    last-modified time, and the ETag's digest as the inode (the device is 0), so a
    rescan tells a changed object from an unchanged one without reading it.
    """
    import json
    import subprocess
    import sys
    import tempfile

    from xxhash import xxh3_64_hexdigest

    # -P and the package's own root first on the path: the child imports the imgscan
    # this process runs, never a checkout's sources that happen to be its working
    # directory (a Dask worker started in one, say).
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryFile() as errors, subprocess.Popen(
            [sys.executable, "-P", "-m", "imgscan.remote.listing", root], env=env,
            stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL) as child:
        assert child.stdout is not None
        reported = False
        try:
            for line in child.stdout:
                item = json.loads(line)
                if isinstance(item, dict):
                    reported = True
                    yield root, OSError(errno.EIO, item["error"])
                    continue
                url, size, etag, modified_ns = item
                inode = int(xxh3_64_hexdigest(etag.encode()), 16) >> 2 if etag else 0
                yield url, listed_stat(size, modified_ns, inode, 0, -(-size // 512))
            if child.wait() != 0 and not reported:      # died without a word on stdout
                errors.seek(0)
                said = errors.read()[-1000:].decode(errors="replace").strip().splitlines()
                yield root, OSError(errno.EIO, "the listing process failed (exit status "
                                    f"{child.returncode}): {said[-1] if said else 'no message'}")
        finally:
            child.kill()


def listed_stat(size: int, mtime_ns: int, inode: int, device: int,
                blocks: int) -> os.stat_result:
    """A regular file's stat result made of what a scan reads of it (its identity for
    the catalog, its stored blocks for the fingerprint's time limit): an object's, or
    a file's listed in another process (:mod:`.dask_pool`)."""
    return os.stat_result(
        (S_IFREG | 0o444, inode, device, 1, 0, 0, size, 0, mtime_ns // 10**9, 0),
        {"st_mtime_ns": mtime_ns, "st_blocks": blocks})


def read_head(path: str, device: int, inode: int,
              size: int = HEADER_DIGEST_BYTES) -> bytes | None:
    """The first ``size`` bytes of ``path``, or None when it is no longer the
    regular file the walk saw (``device``, ``inode``): replaced since by a FIFO or
    another file. Opened without blocking, so a FIFO never hangs the reader.
    An object named by a URL is read by one range request."""
    if is_url(path):
        from ..remote.opening import open_source
        with open_source(path) as src:
            return src.read(0, min(src.size, size), "header")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (device, inode):
            return None
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def raw_is_image(path: str, head_of: Callable[[], bytes], info: Mapping[str, Any]) -> bool:
    """Whether a file no container claims (decoded as raw) is a disk image (``head_of``
    gives at least its first RAW_HEAD_BYTES, or the whole file when smaller).

    Yes when it is named like a raw image, when the filesystem probes found a volume
    in it (``info["filesystem"]``: the info object of a raw file is what the probes say
    of its bytes), or when its head holds an MBR with sane entries or a GPT header. The
    head is read last, only when the name and the facts did not decide: in a library of
    ``.raw`` files that is a read and an MBR parse less an image (benchmarks/README.md,
    issue 18).
    """
    if path.lower().endswith(RAW_SUFFIXES) or info.get("filesystem") is not None:
        return True
    head = head_of()
    return bool(mbr_partitions(head[:512])
                # a GPT header at LBA 1, for 512- and 4096-byte sectors
                or any(head[ss:ss + len(c_gpt.SIGNATURE)] == c_gpt.SIGNATURE
                       for ss in c_gpt.SECTOR_SIZES))
