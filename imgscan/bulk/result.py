"""What one scanned file gave: the record the runner yields and the catalog stores.

The runner (:mod:`imgscan.bulk.runner`) makes one per file it considered, the
catalog (:mod:`imgscan.bulk.catalog`) stores it, the reports render it. It
holds the contract objects as they are (``info``, ``check``), so every consumer
reads the same keys as ``imgscan info --json`` and ``imgscan check --json``.
"""

from __future__ import annotations

from ..fingerprints import Fingerprint as Fingerprint
from ..records import Record as _Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    #: ``scanned``: read now; ``unchanged``: the catalog already holds it (same
    #: size, mtime, inode and header digest), nothing was read; ``error``: it could
    #: not be read, or the worker failed, ran out of time or memory (see ``error``).
    Status = Literal["scanned", "unchanged", "error"]


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


class ScanResult(_Record):
    """One file's outcome.

    ``info``: the contract's info object (None for errors and unchanged files);
    ``check``: the contract's check object, when a profile was applied; with several
    profiles, the object ``check --json`` prints for them (``checks``, one check object
    per profile, ``verdicts`` and the worst ``verdict``: see
    :func:`imgscan.report.json.checks_object`);
    ``error``: ``{"type", "structure", "offset", "message"}`` as in the CLI's
    error object, ``type`` an ImageError class name or ``Timeout``,
    ``WorkerCrashed``, ``MemoryLimit``, ``OSError``; ``elapsed``: seconds spent
    on the file in its worker; ``rendered``: instead of ``info``, the image's
    ``imgscan info`` output as its worker wrote it (:func:`imgscan.bulk.runner.read_each`
    given a ``render`` function), or its ``imgscan scan --json`` line
    (:meth:`imgscan.bulk.runner.ScanRun.for_report`).
    """

    __slots__ = (
        "check",
        "elapsed",
        "error",
        "fingerprint",
        "identity",
        "info",
        "path",
        "rendered",
        "status",
    )

    def __init__(self, path: str, status: Status, identity: FileIdentity | None,
                 info: dict[str, Any] | None = None, check: dict[str, Any] | None = None,
                 error: dict[str, Any] | None = None, fingerprint: Fingerprint | None = None,
                 elapsed: float = 0.0, rendered: str | None = None) -> None:
        self.path = path
        self.status = status
        self.identity = identity
        self.info = info
        self.check = check
        self.error = error
        self.fingerprint = fingerprint
        self.elapsed = elapsed
        self.rendered = rendered
