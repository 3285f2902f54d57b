"""The container stage: one image file's facts, its extent map and its guest bytes.

:class:`DiskImage` decodes the container and reads the virtual disk; it knows
nothing of what the disk holds. It also says whether the guest bytes can be
read at all, and why not (:meth:`DiskImage.guest`), which is all the next stage
(:mod:`imgscan.layout`) needs of it. :class:`imgscan.image.Image` adds the
whole inspection on top.
"""

from __future__ import annotations

import os

from . import limits
from ._core.container import Container
from ._core.extents import ExtentMap
from ._core.registry import detect, may_be_package, open_as, read_ends
from ._core.signatures import Peek
from ._core.source import NOT_EXPECTED, Source
from ._core.vdisk import VirtualDisk
from .errors import ImageError, UnsafePath
from .findings import (
    BACKING_FILE,
    DATA_FILE,
    ENCRYPTED,
    EXTERNAL_EXTENT,
    Finding,
    fact_findings,
    finding_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType
    from typing import Any, Self

    from ._core.ova import Package
    from ._core.stream import DiskStream

    Read = Callable[[int, int], bytes]
    Prefetch = Callable[[list[tuple[int, int]], str, list[tuple[int, int]]], None]

#: Logical sector sizes a container may state (``details["logical_sector_size"]``, VHDX).
SECTOR_SIZES = (512, 4096)


def _is_local(source: Source) -> bool:
    """A file's own source (or a window of it): a remote one is a subclass that fetches
    from a store, described by imgscan.remote, imported only for such a source (start-up)."""
    return type(source) is Source


def _open_source(path: str, reads_all: bool = False,
                 identity: tuple[int, int] | None = None) -> Source:
    """The source of ``path``: a local file, or a remote object when ``path`` is a URL
    (imgscan.remote, imported only when the path could be one; ``reads_all`` as there).
    ``identity`` as :class:`Source`'s: an object, which has no device and inode, is never
    the file expected."""
    if "://" in path:
        from .remote import is_url
        if is_url(path):
            if identity is not None:
                raise ImageError(path, "file", None, NOT_EXPECTED)
            from .remote.opening import open_source
            return open_source(path, reads_all=reads_all)
    try:
        # positional: a keyword would build a dict for the type's call (0.8 k instructions)
        return Source(path, True, identity)
    except OSError as exc:
        raise ImageError(path, "file", None, exc.strerror or str(exc)) from exc


def refusal(exc: ImageError, refused_id: str) -> Finding:
    """Why the guest bytes could not be read, as a finding: a file imgscan refuses to
    open is a fact of the image (``info``, with ``refused_id``), anything else an error."""
    if isinstance(exc, UnsafePath):
        return Finding(refused_id, "info", str(exc))
    return Finding(finding_id(exc), "error", str(exc))


class GuestBytes:
    """What the layout stage may know of a container: a reader of the guest disk and its
    size, the container's hints (sector size, El Torito boot catalog), or why not.

    ``read`` is None exactly when ``why_not`` says why the guest bytes cannot be read.
    """

    __slots__ = ("el_torito", "path", "prefetch", "read", "refused_id", "sector_size", "size",
                 "why_not")

    def __init__(self, path: str, read: Read | None, size: int, sector_size: int | None,
                 el_torito: Sequence[Mapping[str, Any]] | None, refused_id: str,
                 why_not: Finding | None = None, prefetch: Prefetch | None = None) -> None:
        self.path = path
        self.read = read
        #: ``prefetch(ranges, structure, near)``: announce guest ranges that will be read next
        #: (the disk's ``VirtualDisk.prefetch``), or None when no file of the disk does
        #: anything with an announcement (local files).
        self.prefetch = prefetch
        self.size = size
        self.sector_size = sector_size
        self.el_torito = el_torito
        #: The finding id of a read refused because it needs a file imgscan may not open.
        self.refused_id = refused_id
        self.why_not = why_not

    def failed(self, exc: ImageError) -> Finding:
        """Why reading stopped with ``exc``."""
        return refusal(exc, self.refused_id)


class DiskImage:
    """One disk image, decoded from its content (the file name is never consulted).

    Facts are attributes named as in the JSON contract. Guest bytes come from
    :meth:`read` or :meth:`stream`.
    Other files the image names (backing file, external data file) are opened
    only when ``external_dir`` is given, and only inside it.

    An OVF package (an OVA, or an ``.ovf`` with its disks beside it) is read in
    place: ``package`` holds its descriptor, manifest and disks, and the
    container is its first disk that has bytes (``disk_index``), decoded
    through a window of the archive. ``verify_manifest`` hashes every file the
    package's manifest lists.

    ``identity`` (``(device, inode)``, a local file's) is the file the caller expects:
    the one a scan's walk listed. The open checks it with the ``fstat`` it makes of the
    file's descriptor anyway, before any byte is read or the descriptor is set up for a
    device, and raises ImageError for any other file now at ``path``.
    """

    def __init__(self, path: str | os.PathLike[str], *, external_dir: str | None = None,
                 verify_manifest: bool = False, reads_all: bool = False,
                 identity: tuple[int, int] | None = None, _depth: int = 0,
                 _format: str | None = None, _package: Package | None = None,
                 _disk: int = 0) -> None:
        self.path = os.fspath(path)
        self.external_dir = external_dir
        #: Whether every stored byte is read by design (a fingerprint): remote files the
        #: image names are then allowed their size beyond the fetch cap, as it is.
        self._reads_all = reads_all
        self._depth = _depth
        #: The OVF package this disk belongs to, and the disk's index in it.
        self.package = _package
        self.disk_index = _disk
        #: The package file itself, owned (and closed) by the image that opened it.
        self._package_source: Source | None = None
        #: The file's two ends, read once for the package check and detection.
        peek: Peek | None = None
        if _package is not None:
            self._source = _package.open_disk(_disk)
        else:
            self._source = _open_source(self.path, reads_all, identity)
            if _format is None:
                peek = self._open_package(verify_manifest)
        try:
            # A backing file is opened as the format its child names, unprobed.
            self._container: Container = (
                detect(self._source, peek) if _format is None
                else open_as(self._source, _format))
        except BaseException:
            self._source.close()
            if self._package_source is not None:
                self._package_source.close()
            raise
        self._disk: VirtualDisk | None = None
        self._opened: list[DiskImage | Source] = []
        self._external: list[Source | None] | None = None

    def _open_package(self, verify_manifest: bool) -> Peek | None:
        """When the file is an OVF package: read it, and take its first disk with bytes.

        Returns the file's two ends when it is not a package (detection reads them)."""
        try:
            peek = read_ends(self._source)
            if not may_be_package(peek):
                return peek
            from ._core.ova import open_package  # xml.etree's import: only for a package

            package = open_package(self._source, verify_manifest=verify_manifest)
            if package is None:
                return peek
            readable = [i for i, d in enumerate(package.disks) if d.why_not is None]
            if not readable:
                why = "; ".join(d.why_not or "" for d in package.disks) or "it declares none"
                raise ImageError(self.path, "OVF package", None,
                                 f"no disk of the package can be read: {why}")
            disk = package.open_disk(readable[0])
        except BaseException:
            self._source.close()
            raise
        self.package = package
        self.disk_index = readable[0]
        self._package_source = self._source
        self._source = disk
        return None

    def package_disk(self, index: int) -> DiskImage:
        """Disk ``index`` of this image's OVF package, opened as an image of its own
        (itself for its own disk); closed with this one."""
        if self.package is None:
            raise ValueError(f"{self.path} is not an OVF package")
        if index == self.disk_index:
            return self
        other = DiskImage(self.path, external_dir=self.external_dir, _package=self.package,
                          _disk=index)
        self._opened.append(other)
        return other

    # -- facts ----------------------------------------------------------------
    @property
    def facts(self) -> Container:
        """The decoder's facts (format, sizes, encryption, backing file, snapshots...) as
        plain attributes, for the contract object, which reads a dozen of them per image:
        one property call each was about 20 k instructions of a small image's ``info``
        (issue 18). The properties below are the same facts one at a time."""
        return self._container

    @property
    def format(self) -> str:
        return self._container.format

    @property
    def subformat(self) -> str | None:
        return self._container.subformat

    @property
    def virtual_size(self) -> int:
        return self._container.virtual_size

    @property
    def file_size(self) -> int:
        """Bytes of the file; of the whole package for the image that opened one."""
        if self._package_source is not None and self.package is not None:
            return self.package.size
        return self._source.size

    @property
    def own_path(self) -> str:
        """The name errors give this disk's own file: ``pkg.ova [disk1.vmdk]`` for a disk
        of a package."""
        return self._source.path

    @property
    def own_file_size(self) -> int:
        """Bytes of this disk's own file: its member, for a disk of a package."""
        return self._source.size

    @property
    def source(self) -> dict[str, Any] | None:
        """The contract's ``source`` object (URL, size, ETag, storage class, requests and
        bytes fetched so far) of an image read from a URL; None for a local file."""
        if _is_local(self._source):
            return None
        from .remote import source_object
        return source_object(self._source)

    def raise_store_failure(self) -> None:
        """Raise the first request the store of a remote image failed, if any: a stage
        that could not read its bytes may have reported that as a finding of the image
        ("filesystem not identified"), and a dead store is no fact of the image."""
        if _is_local(self._source):
            return
        from .remote import store_failure
        failure = store_failure(self._source)
        if failure is not None:
            raise failure

    @property
    def allocated_size(self) -> int:
        return self.extents().allocated_size

    @property
    def cluster_size(self) -> int | None:
        """The allocation unit. A VMDK descriptor's comes from its extent files'
        headers, which are opened (inside ``external_dir`` only) before it is told."""
        # An extent file that cannot be opened: the guest stage reports it. Only a
        # container whose map reads other files has any to open (a try, not an import of
        # contextlib and a suppress() context: this runs once per info object).
        container = self._container
        if container.map_reads_external:
            try:
                self._attach_external()
            except ImageError:
                return container.cluster_size   # as far as the descriptor tells it
        return container.cluster_size

    @property
    def encrypted(self) -> bool:
        return self._container.encrypted

    @property
    def encryption(self) -> str | None:
        return self._container.encryption

    @property
    def backing_file(self) -> str | None:
        return self._container.backing_file

    @property
    def backing_format(self) -> str | None:
        return self._container.backing_format

    @property
    def data_file(self) -> str | None:
        return self._container.data_file

    @property
    def snapshots(self) -> int:
        return self._container.snapshots

    @property
    def dirty(self) -> bool:
        return self._container.dirty

    @property
    def format_specific(self) -> dict[str, Any]:
        return self._container.details

    @property
    def findings(self) -> list[Finding]:
        """Findings of the decoder, then those that follow from the facts."""
        return [*self._container.findings, *fact_findings(self._container)]

    def guest(self) -> GuestBytes:
        """The guest bytes as the layout stage reads them, or why they cannot be read.

        Never raises: an encrypted container, a backing file outside
        ``external_dir``, a file that may not be opened or a damaged map each
        become the reason, as a finding.
        """
        facts = self._container  # attributes, not a property call each (issue 18)
        details = facts.details
        refused = DATA_FILE if facts.data_file is not None else EXTERNAL_EXTENT
        why: Finding | None = None
        if facts.encrypted:
            why = Finding(ENCRYPTED, "info", f"the guest data is encrypted ({facts.encryption})")
        elif facts.backing_file is not None and self.external_dir is None:
            why = Finding(BACKING_FILE, "info",
                          f"part of the disk lives in backing file {facts.backing_file!r}, "
                          "which is opened only inside the directory given as external_dir")
        else:
            try:
                disk = self.disk()
            except ImageError as exc:
                why = refusal(exc, refused)
        if why is not None:
            return GuestBytes(self.path, None, 0, None, None, refused, why)
        hint = details.get("logical_sector_size")
        return GuestBytes(self.path, disk.read, disk.size,
                          hint if hint in SECTOR_SIZES else None, details.get("el_torito"),
                          refused, prefetch=disk.prefetch if disk.wants_prefetch else None)

    # -- layout and guest bytes ---------------------------------------------
    def extents(self) -> ExtentMap:
        """The extent map (decoded on first use): which guest ranges are stored where."""
        container = self._container
        if container.map_reads_external:
            self._attach_external()
        return container.extent_map()

    def disk(self) -> VirtualDisk:
        """The virtual disk reader, opening backing / data files only inside ``external_dir``."""
        if self._disk is None:
            files: list[Source | None] = [self._source]
            if self._container.map_reads_external:
                files.extend(self._attach_external())
            else:
                for name in self._container.external_files():
                    files.append(self._open_external_source("external data file", name))
            self._disk = VirtualDisk(self._container, files, self._open_backing())
        return self._disk

    def _attach_external(self) -> list[Source | None]:
        """Open the files a container's map reads (VMDK extents) and hand them to it, once.

        A name that may never be opened (absolute, ``..``, ``json:``) stays
        ``None`` here rather than failing the whole map: the decoder reports
        it as a finding and its range reads as :class:`UnsafePath`.
        """
        container = self._container
        if not container.map_reads_external:
            return []
        if self._external is None:
            names = container.external_files()
            self._external = []
            if names:
                # the paths module is imported for an image that names other files only (a
                # relative import in a function costs about 1 us each call, its package's
                # check included: a VMDK that names none, as a sparse one, skips it)
                from ._core.paths import unsafe_reason
                self._external = [
                    None if unsafe_reason(name) is not None
                    else self._open_external_source("extent file", name)
                    for name in names
                ]
            container.attach_external_sources(self._external)
        return self._external

    def read(self, offset: int, length: int) -> bytes:
        """``length`` guest bytes at ``offset`` (fewer at the end of the disk)."""
        return self.disk().read(offset, length)

    def stream(self) -> DiskStream:
        """The guest disk as a seekable, read-only binary file object."""
        # imported on first use: `imgscan info` reads through the disk, not a stream
        from ._core.stream import DiskStream
        return DiskStream(self.disk())

    def _open_external_source(self, what: str, name: str) -> Source | None:
        if self.external_dir is None:
            return None
        from ._core.paths import resolve_external
        source = _open_source(resolve_external(self.path, what, name, self.external_dir),
                              self._reads_all)
        self._opened.append(source)
        return source

    def _open_backing(self) -> VirtualDisk | None:
        name = self.backing_file
        if name is None or self.external_dir is None:
            return None
        limits.enforce(self._depth + 1, "MAX_BACKING_DEPTH", self.path, "backing chain", None,
                       "backing chain depth")
        from ._core.paths import resolve_external
        path = resolve_external(self.path, "backing file", name, self.external_dir)
        parent = DiskImage(path, external_dir=self.external_dir, reads_all=self._reads_all,
                           _depth=self._depth + 1, _format=self.backing_format)
        self._opened.append(parent)
        return parent.disk()

    # -- lifetime -------------------------------------------------------------
    def close(self) -> None:
        for item in self._opened:
            item.close()
        self._opened.clear()
        self._external = None
        self._disk = None
        self._source.close()
        if self._package_source is not None:
            self._package_source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<imgscan.{type(self).__name__} {self.path!r} {self.format} "
                f"{self.virtual_size} bytes>")

