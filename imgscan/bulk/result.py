"""What one scanned file gave: the record the runner yields and the catalog stores.

The runner (:mod:`imgscan.bulk.runner`) makes one per file it considered, the
catalog (:mod:`imgscan.bulk.catalog`) stores it, the reports render it. It
holds the contract objects as they are (``info``, ``check``), so every consumer
reads the same keys as ``imgscan info --json`` and ``imgscan check --json``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, Self

    #: ``scanned``: read now; ``unchanged``: the catalog already holds it (same
    #: size, mtime, inode and header digest), nothing was read; ``error``: it could
    #: not be read, or the worker failed, ran out of time or memory (see ``error``).
    Status = Literal["scanned", "unchanged", "error"]


class _Record:
    """Value semantics (equality, repr) over ``__slots__``.

    Plain classes rather than dataclasses: ``dataclasses`` and ``typing`` cost
    about 8 ms to import, a noticeable share of a whole ``imgscan scan``.
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (as ``dataclasses.replace``)."""
        return type(self)(**{**{n: getattr(self, n) for n in self.__slots__}, **changes})

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class FileIdentity(_Record):
    """How a rescan recognises an unchanged file without reading it all.

    ``header_digest`` is the xxh3-64 (hex) of the first 64 KiB (the whole file
    when smaller): a rewritten header with the same size and mtime still counts
    as a change.
    """

    __slots__ = ("device", "header_digest", "inode", "mtime_ns", "size")

    def __init__(self, size: int, mtime_ns: int, inode: int, device: int,
                 header_digest: str) -> None:
        self.size = size
        self.mtime_ns = mtime_ns
        self.inode = inode
        self.device = device
        self.header_digest = header_digest


class Fingerprint(_Record):
    """The content fingerprint of a guest-visible disk (see :mod:`imgscan.fingerprints`).

    ``chunks`` holds the chunk digests, 16 bytes each in order (empty for
    stream algorithms, whose ``chunk_size`` is 0).
    """

    __slots__ = ("algorithm", "chunk_size", "chunks", "digest", "virtual_size")

    def __init__(self, algorithm: str, digest: str, virtual_size: int, chunk_size: int,
                 chunks: bytes) -> None:
        self.algorithm = algorithm
        self.digest = digest
        self.virtual_size = virtual_size
        self.chunk_size = chunk_size
        self.chunks = chunks


class ScanResult(_Record):
    """One file's outcome.

    ``info``: the contract's info object (None for errors and unchanged files);
    ``check``: the contract's check object, when a profile was applied;
    ``error``: ``{"type", "structure", "offset", "message"}`` as in the CLI's
    error object, ``type`` an ImageError class name or ``Timeout``,
    ``WorkerCrashed``, ``MemoryLimit``, ``OSError``; ``elapsed``: seconds spent
    on the file in its worker.
    """

    __slots__ = (
        "check",
        "elapsed",
        "error",
        "fingerprint",
        "identity",
        "info",
        "path",
        "status",
    )

    def __init__(self, path: str, status: Status, identity: FileIdentity | None,
                 info: dict[str, Any] | None = None, check: dict[str, Any] | None = None,
                 error: dict[str, Any] | None = None, fingerprint: Fingerprint | None = None,
                 elapsed: float = 0.0) -> None:
        self.path = path
        self.status = status
        self.identity = identity
        self.info = info
        self.check = check
        self.error = error
        self.fingerprint = fingerprint
        self.elapsed = elapsed
