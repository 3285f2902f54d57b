"""A Linux root as its running system sees it: the root filesystem with the separate
``/boot`` and ``/usr`` of this disk mounted where ``/etc/fstab`` says.

Every fact collector of :mod:`imgscan.guest.linux` reads the guest through a
:class:`GuestTree`, never a filesystem reader directly, so that ``/boot/grub/grub.cfg``
is found on the boot partition and ``/usr/lib/os-release`` on the ``/usr`` volume
without any collector knowing the disk has them apart. Paths are absolute guest
paths; symlinks resolve inside the guest (a link in the root filesystem into a
separate ``/usr`` is followed onto that volume), never on the host.

Absence is not an error here: a collector asks for a file and gets ``None`` when
it is not there (or is not a regular file), and builds its fact from that. A
file larger than the cap the caller names is refused with ``LimitExceeded``
naming the volume, the path and the cap, never read whole.
"""

from __future__ import annotations

import posixpath

from imgscan import limits
from imgscan._core.fsapi import FileNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from imgscan._core.fsapi import FileSystem, Kind, Stat


class Mount:
    """One filesystem of the guest tree: where it is mounted and how to name it."""

    __slots__ = ("fs", "mountpoint", "source")

    def __init__(self, mountpoint: str, fs: FileSystem, source: str) -> None:
        #: ``/``, ``/boot``, ``/usr``: normalised, no trailing slash but for ``/``.
        self.mountpoint = mountpoint
        self.fs = fs
        #: What evidence calls the volume, e.g. ``partition 1`` or ``lvm vg0/root``.
        self.source = source


class GuestTree:
    """Read-only access to a Linux guest's files across its mounts (see the module)."""

    def __init__(self, mounts: list[Mount]) -> None:
        if not mounts or mounts[0].mountpoint != "/":
            raise ValueError("the first mount of a guest tree is its root, '/'")
        # Longest mount point first, so /boot/efi wins over /boot over /.
        self.mounts = sorted(mounts, key=lambda m: len(m.mountpoint), reverse=True)
        self.root = mounts[0]

    # -- where a path lives ------------------------------------------------------------
    def mount_of(self, path: str) -> tuple[Mount, str]:
        """The mount holding the normalised absolute ``path``, and the path inside it."""
        path = posixpath.normpath("/" + path.lstrip("/"))
        if path.startswith("//"):
            path = path[1:]
        for m in self.mounts:
            mp = m.mountpoint
            if mp == "/":
                return m, path
            if path == mp or path.startswith(mp + "/"):
                return m, path[len(mp):] or "/"
        return self.root, path      # unreachable: "/" is always mounted

    def _stat(self, path: str, follow: bool) -> tuple[Mount, str, Stat] | None:
        """The mount, inner path and stat of ``path``; symlinks crossing mounts are
        followed component by component (at most FS_MAX_SYMLINK_FOLLOWS links)."""
        mount, inner = self.mount_of(path)
        try:
            return mount, inner, mount.fs.stat(inner, follow=follow)
        except FileNotFound:
            pass
        # Slow path: the walk inside one filesystem failed, perhaps at a symlink that
        # leads onto another mount (/lib -> usr/lib with /usr separate). Resolve here.
        resolved = self._resolve_across(path, follow)
        if resolved is None:
            return None
        mount, inner = self.mount_of(resolved)
        try:
            return mount, inner, mount.fs.stat(inner, follow=False)
        except FileNotFound:
            return None

    def _resolve_across(self, path: str, follow: bool) -> str | None:
        """``path`` with every symlink replaced by its target, each looked up on the
        mount its prefix lives on; None when a component is missing."""
        pending = [p for p in path.split("/") if p][::-1]
        done = "/"
        follows = 0
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                done = posixpath.dirname(done)
                continue
            candidate = posixpath.join(done, part)
            mount, inner = self.mount_of(candidate)
            try:
                st = mount.fs.stat(inner, follow=False)
            except FileNotFound:
                return None
            if st.kind == "symlink" and (pending or follow):
                follows += 1
                limits.enforce(follows, "FS_MAX_SYMLINK_FOLLOWS", mount.fs.name,
                               f"path {path!r}", None, "symlinks followed")
                target = mount.fs.readlink(inner)
                pending.extend([p for p in target.split("/") if p][::-1])
                if target.startswith("/"):
                    done = "/"
                continue
            done = candidate
        return done

    # -- the interface -----------------------------------------------------------------
    def kind(self, path: str, *, follow: bool = True) -> Kind | None:
        """``file``, ``dir``, ``symlink`` or ``other``; None when ``path`` names nothing."""
        found = self._stat(path, follow)
        return None if found is None else found[2].kind

    def exists(self, path: str) -> bool:
        return self._stat(path, True) is not None

    def size(self, path: str) -> int | None:
        """The size of the regular file ``path``; None when it is not one."""
        found = self._stat(path, True)
        return found[2].size if found is not None and found[2].kind == "file" else None

    def readlink(self, path: str) -> str | None:
        """The target of the symlink ``path`` as written; None when it is not a symlink."""
        found = self._stat(path, False)
        if found is None or found[2].kind != "symlink":
            return None
        mount, inner, _ = found
        return mount.fs.readlink(inner)

    def listdir(self, path: str) -> list[str]:
        """The names in directory ``path`` (on-disk order); ``[]`` when it is not one."""
        found = self._stat(path, True)
        if found is None or found[2].kind != "dir":
            return []
        mount, inner, _ = found
        return [e.name for e in mount.fs.listdir(inner)]

    def read(self, path: str, cap: str = "LINUX_MAX_CONFIG_BYTES") -> bytes | None:
        """The whole regular file ``path``, or None when there is none; a file larger
        than the limit ``cap`` (a name in :mod:`imgscan.limits`) is refused."""
        found = self._stat(path, True)
        if found is None or found[2].kind != "file":
            return None
        mount, inner, st = found
        limits.enforce(st.size, cap, mount.fs.name, f"file {path!r}", None, "bytes")
        return mount.fs.read_file(inner)

    def text(self, path: str, cap: str = "LINUX_MAX_CONFIG_BYTES") -> str | None:
        """:meth:`read` decoded as UTF-8 (undecodable bytes replaced)."""
        data = self.read(path, cap)
        return None if data is None else data.decode("utf-8", "replace")

    def reader(self, path: str) -> tuple[Callable[[int, int], bytes], int] | None:
        """``(read(offset, length), size)`` of the regular file ``path``, its path walked
        once (a stream decoder reads it piece by piece); None when it is not one."""
        found = self._stat(path, True)
        if found is None or found[2].kind != "file":
            return None
        mount, inner, _ = found
        return mount.fs.reader(inner)

    def where(self, path: str) -> str:
        """Evidence for ``path``: the guest path and the volume it was read from."""
        mount, _ = self.mount_of(path)
        return f"{path} ({mount.source})"
