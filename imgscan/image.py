"""The public face of one image: its facts, its extent map and its guest bytes."""

from __future__ import annotations

import os

from . import limits
from ._core.container import Container
from ._core.extents import ExtentMap
from ._core.paths import resolve_external, unsafe_reason
from ._core.registry import detect, open_as
from ._core.source import Source
from ._core.stream import DiskStream
from ._core.vdisk import VirtualDisk
from .errors import ImageError, LimitExceeded
from .findings import Finding, fact_findings, finding_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

    from .layout import Layout

SCHEMA_VERSION = 1


def _open_source(path: str) -> Source:
    try:
        return Source(path)
    except OSError as exc:
        raise ImageError(path, "file", None, exc.strerror or str(exc)) from exc


class Image:
    """One disk image, decoded from its content (the file name is never consulted).

    Facts are attributes named as in the JSON contract; :meth:`info` returns
    the contract object. Guest bytes come from :meth:`read` or :meth:`stream`.
    Other files the image names (backing file, external data file) are opened
    only when ``external_dir`` is given, and only inside it.
    """

    def __init__(self, path: str | os.PathLike[str], *, external_dir: str | None = None,
                 _depth: int = 0, _format: str | None = None) -> None:
        self.path = os.fspath(path)
        self.external_dir = external_dir
        self._depth = _depth
        self._source = _open_source(self.path)
        try:
            # A backing file is opened as the format its child names, unprobed.
            self._container: Container = (
                detect(self._source) if _format is None else open_as(self._source, _format))
        except BaseException:
            self._source.close()
            raise
        self._disk: VirtualDisk | None = None
        self._opened: list[Image | Source] = []
        self._info: dict[str, Any] | None = None
        self._external: list[Source | None] | None = None

    # -- facts ----------------------------------------------------------------
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
        return self._source.size

    @property
    def allocated_size(self) -> int:
        return self.extents().allocated_size

    @property
    def cluster_size(self) -> int | None:
        return self._container.cluster_size

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

    def info(self) -> dict[str, Any]:
        """The ``imgscan info --json`` object of the JSON contract (schema 1)."""
        if self._info is None:
            map_failure: list[Finding] = []
            try:
                allocated: int | None = self.allocated_size
            except ImageError as exc:
                allocated = None
                map_failure.append(Finding(finding_id(exc), "error", str(exc)))
            from .layout import of_image  # partition tables and filesystem probes
            layout = of_image(self)
            windows, windows_findings = self._windows(layout)
            # Collected after the map: walking the tables may add findings (truncated, ...).
            findings = [*self.findings, *map_failure, *layout.findings, *windows_findings]
            self._info = {
                "schema_version": SCHEMA_VERSION,
                "path": self.path,
                "format": self.format,
                "subformat": self.subformat,
                "virtual_size": self.virtual_size,
                "file_size": self.file_size,
                "allocated_size": allocated,
                "cluster_size": self.cluster_size,
                "encrypted": self.encrypted,
                "encryption": self.encryption,
                "backing_file": self.backing_file,
                "backing_format": self.backing_format,
                "data_file": self.data_file,
                "snapshots": self.snapshots,
                "dirty": self.dirty,
                "partition_table": layout.partition_table,
                "partitions": layout.partitions,
                "filesystem": layout.filesystem,
                "boot_mode": layout.boot_mode,
                "windows": windows,
                "findings": [f.as_dict() for f in findings],
                "format_specific": self.format_specific,
                "boot_evidence": layout.boot_evidence,
                "partition_table_details": layout.details,
                "volume": layout.volume,
            }
        return self._info

    def _windows(self, layout: Layout) -> tuple[dict[str, Any] | None, list[Finding]]:
        """The contract's ``windows`` object and its findings; nothing is imported
        or read unless the layout has an NTFS volume."""
        if not any(p.get("filesystem") == "ntfs" for p in layout.partitions) \
                and layout.filesystem != "ntfs":
            return None, []
        from .guest.windows import inspect
        try:
            return inspect(self.disk().read, layout)
        except ImageError as exc:
            return None, [Finding(finding_id(exc), "warning",
                                  f"windows: inspection stopped: {exc}")]

    # -- layout and guest bytes ---------------------------------------------
    def extents(self) -> ExtentMap:
        """The extent map (decoded on first use): which guest ranges are stored where."""
        self._attach_external()
        return self._container.extent_map()

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
            self._external = [
                None if unsafe_reason(name) is not None
                else self._open_external_source("extent file", name)
                for name in container.external_files()
            ]
            container.attach_external_sources(self._external)
        return self._external

    def read(self, offset: int, length: int) -> bytes:
        """``length`` guest bytes at ``offset`` (fewer at the end of the disk)."""
        return self.disk().read(offset, length)

    def stream(self) -> DiskStream:
        """The guest disk as a seekable, read-only binary file object."""
        return DiskStream(self.disk())

    def _open_external_source(self, what: str, name: str) -> Source | None:
        if self.external_dir is None:
            return None
        source = _open_source(resolve_external(self.path, what, name, self.external_dir))
        self._opened.append(source)
        return source

    def _open_backing(self) -> VirtualDisk | None:
        name = self.backing_file
        if name is None or self.external_dir is None:
            return None
        if self._depth >= limits.MAX_BACKING_DEPTH:
            raise LimitExceeded(self.path, "backing chain", None,
                                f"deeper than limits.MAX_BACKING_DEPTH={limits.MAX_BACKING_DEPTH}")
        path = resolve_external(self.path, "backing file", name, self.external_dir)
        parent = Image(path, external_dir=self.external_dir, _depth=self._depth + 1,
                       _format=self.backing_format)
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

    def __enter__(self) -> Image:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<imgscan.Image {self.path!r} {self.format} {self.virtual_size} bytes>"


def open(path: str | os.PathLike[str], *, external_dir: str | None = None) -> Image:
    """Open and decode an image; see :class:`Image`."""
    return Image(path, external_dir=external_dir)
