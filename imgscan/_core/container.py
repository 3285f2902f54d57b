"""What every container decoder hands to the stages after it.

A decoder reads its format's header and tables from a :class:`Source` and
describes the guest disk as an :class:`ExtentMap`; the facts it found go into
the attributes below, named as in the JSON contract. Nothing here reads guest
bytes: that is the virtual disk reader's job.
"""

from __future__ import annotations

from imgscan.errors import CorruptImage, UnsupportedFeature
from imgscan.findings import COMPRESSION_BOMB, Finding

from .extents import ExtentMap
from .source import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan.findings import Severity


class Container:
    """A decoded container: facts plus a lazily built extent map."""

    format: str = "raw"
    subformat: str | None = None
    cluster_size: int | None = None
    encrypted: bool = False
    encryption: str | None = None
    backing_file: str | None = None
    backing_format: str | None = None
    data_file: str | None = None
    snapshots: int = 0
    dirty: bool = False
    #: True when :meth:`build_extent_map` reads tables in other files (a VMDK
    #: descriptor's sparse extents each carry their own grain directory): the
    #: caller then opens :meth:`external_files` first and hands them over
    #: through :meth:`attach_external_sources`.
    map_reads_external: bool = False
    #: False when :meth:`decompress` carries state from one call to the next
    #: (a stream continued across units): guest reads must then not run in
    #: several threads at once, as a fingerprint's would.
    concurrent_reads: bool = True
    #: Signatures of other formats that legitimately share this container's
    #: file (e.g. ``("mbr",)``): not reported as ``multiple-formats``.
    hybrid_signatures: tuple[str, ...] = ()

    def __init__(self, source: Source, virtual_size: int) -> None:
        self.source = source
        self.virtual_size = virtual_size
        self.findings: list[Finding] = []
        #: Format-specific facts (``format_specific`` in the JSON output).
        self.details: dict[str, Any] = {}
        self._map: ExtentMap | None = None

    @property
    def path(self) -> str:
        return self.source.path

    def add_finding(self, id: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(id, severity, message))

    def compression_bomb(self, structure: str, host: int, unit: int) -> CorruptImage:
        """Record a ``compression-bomb`` finding; return the error to raise.

        For a compressed cluster, grain or block whose stream would inflate
        beyond its ``unit`` bytes (see :mod:`imgscan._core.inflate`).
        """
        self.add_finding(COMPRESSION_BOMB, "error",
                         f"{structure} at host offset {host} inflates beyond its "
                         f"{unit}-byte unit")
        return CorruptImage(self.path, structure, host,
                            f"the stream inflates beyond {unit} bytes")

    def extent_map(self) -> ExtentMap:
        """The guest disk's extent map, decoded on first use and kept."""
        if self._map is None:
            self._map = self.build_extent_map()
        return self._map

    def build_extent_map(self) -> ExtentMap:
        raise NotImplementedError

    def external_files(self) -> list[str]:
        """Names of the other files the extent map's ``file`` indexes 1.. refer to."""
        return []

    def attach_external_sources(self, sources: list[Source | None]) -> None:
        """Receive ``external_files()`` opened (``None``: not allowed), before the map is built."""
        self.external_sources = sources

    def decompress(self, host: int, stored_length: int) -> bytes:
        """The guest bytes of one compressed cluster stored at ``host``."""
        raise UnsupportedFeature(self.path, "compressed cluster", host,
                                 f"{self.format} has no compressed clusters")


class Format:
    """One registered container format: a content probe and a decoder.

    ``probe`` is true when the file carries the format's signature, even if
    truncated: the decoder then raises, so a damaged image is never taken
    for raw.
    """

    __slots__ = ("name", "open", "probe")

    def __init__(self, name: str, probe: Callable[[Source], bool],
                 open: Callable[[Source], Container]) -> None:
        self.name = name
        self.probe = probe
        self.open = open


def backing_file_name(raw: bytes) -> str | None:
    """A backing file name as qemu keeps it, a C string: it ends at the first NUL, and an
    empty name means no backing file; undecodable bytes survive as surrogates."""
    name = raw.split(b"\x00", 1)[0]
    if not name:
        return None
    return name.decode("utf-8", errors="surrogateescape")
