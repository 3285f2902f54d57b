"""What a scan writes into the catalog: its scans, each result, rescans, missing files.

Writes take the lock up front (``BEGIN IMMEDIATE``), are batched until
:meth:`~.schema.CatalogFile.commit`, and each result lands whole or not at all
(a savepoint): see the package docstring's "Concurrency" and "Rescans".
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection
from typing import Any

from ...errors import error_member
from ...fingerprints import zero_digest as _fingerprint_zero_digest
from ...report.json import each_check
from ...version import __version__
from ...vocabulary import status_rank
from ..result import FileIdentity, ScanResult
from .schema import CatalogFile, key, now, under

#: Digest length of a chunked fingerprint's chunks (XXH3-128).
CHUNK_DIGEST_SIZE = 16
#: Errors of the run rather than of the file: a rescan tries such files again.
TRANSIENT_ERRORS = frozenset({"Timeout", "WorkerCrashed", "MemoryLimit", "OSError"})
#: Most unreadable paths a scan may report and still mark files missing.
MAX_UNREADABLE = 400

#: Columns ``record`` writes, in the order of :meth:`CatalogWriter._row`.
_RECORD_COLUMNS = (
    "path", "size", "mtime_ns", "inode", "device", "header_digest", "status", "format",
    "subformat", "virtual_size", "boot_mode", "profile", "verdict", "error_type",
    "error_structure", "error_offset", "error_message", "info_json", "check_json",
    "fingerprint_algorithm", "fingerprint", "nonzero_chunks", "imgscan_version",
    "scanned_at", "elapsed", "first_seen_scan", "last_seen_scan", "scanned_in_scan",
)
_UPSERT = (
    f"INSERT INTO images ({', '.join(_RECORD_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_RECORD_COLUMNS))}) ON CONFLICT(path) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RECORD_COLUMNS
                if c not in ("path", "first_seen_scan", "last_seen_scan"))
    # Two scans may record one file in either order: the newer scan's sighting must
    # stand, or its finish_scan would take the file for missing.
    + ", last_seen_scan = max(coalesce(last_seen_scan, 0), excluded.last_seen_scan)"
)

#: The digest of a chunk of ``length`` zero bytes, as the fingerprint computes it;
#: cached: every record asks for the same one or two lengths.
_zero_digest = functools.cache(_fingerprint_zero_digest)


def _nonzero_chunks(virtual_size: int, chunk_size: int, chunks: bytes) -> set[bytes]:
    """The distinct chunk digests of a fingerprint, zero chunks left out.

    Only the last chunk can be shorter than ``chunk_size``, so two zero digests
    cover every chunk.
    """
    n = len(chunks) // CHUNK_DIGEST_SIZE
    digests = {chunks[i:i + CHUNK_DIGEST_SIZE]
               for i in range(0, n * CHUNK_DIGEST_SIZE, CHUNK_DIGEST_SIZE)}
    digests.discard(_zero_digest(chunk_size))
    tail = virtual_size - (n - 1) * chunk_size
    if n and 0 < tail < chunk_size:
        digests.discard(_zero_digest(tail))
    return digests


class CatalogWriter(CatalogFile):
    """The scan's side of a catalog (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        super().__init__(path, create=create)
        #: What the current scan needs of a stored row to reuse it (see ``lookup``).
        self._profile: str | None = None
        self._fingerprint: str | None = None
        self._verify_manifest = False
        self._counts: dict[int, dict[str, int]] = {}

    def begin_scan(self, roots: list[str], profile: str | None,
                   fingerprint: str | None = None, verify_manifest: bool = False) -> int:
        """Record a new scan of ``roots`` and return its id.

        ``profile`` is the profile name the scan judges by (None: info only),
        ``fingerprint`` the fingerprint algorithm it computes (None: none),
        ``verify_manifest`` whether OVF packages are verified (their manifest's digests
        and signature); :meth:`lookup` reuses only rows that already have all three.
        """
        self._profile, self._fingerprint = profile, fingerprint
        self._verify_manifest = verify_manifest
        db = self._write()
        cur = db.execute(
            "INSERT INTO scans (started_at, roots, profile, fingerprint_algorithm, "
            "imgscan_version) VALUES (?, ?, ?, ?, ?)",
            (now(), json.dumps([key(r) for r in roots]), profile, fingerprint,
             __version__))
        self.commit()
        scan_id = cur.lastrowid
        assert scan_id is not None
        self._counts[scan_id] = {"scanned": 0, "unchanged": 0, "errors": 0}
        return scan_id

    def lookup(self, path: str) -> FileIdentity | None:
        """The stored identity of ``path``, when its row can stand for this scan.

        None (read the file again) when there is no row, it is marked missing,
        it was written by another imgscan version, its error was one of the run
        (:data:`TRANSIENT_ERRORS`), or the image was read without what the
        current scan asks for (a check by the profile given to
        :meth:`begin_scan`, a fingerprint by its algorithm, an OVF package's manifest
        verified: its stored info says so, ``ova.manifest.verified`` null only when
        not asked). An image that could
        not be read for what it is (an ImageError) stays an error until it changes.
        """
        row = self._db.execute(
            "SELECT size, mtime_ns, inode, device, header_digest, status, error_type, "
            "imgscan_version, profile, fingerprint_algorithm, "
            "json_type(info_json, '$.ova.manifest') = 'object' "
            "AND json_extract(info_json, '$.ova.manifest.verified') IS NULL "
            "FROM images WHERE path = ?", (key(path),)).fetchone()
        if row is None or row[4] is None:
            return None
        status, error_type, version, profile, algorithm, unverified = row[5:]
        if status == "missing" or version != __version__ or error_type in TRANSIENT_ERRORS:
            return None
        if status == "scanned" and (
                (self._profile is not None and profile != self._profile)
                or (self._fingerprint is not None and algorithm != self._fingerprint)
                or (self._verify_manifest and unverified)):
            return None
        return FileIdentity(*row[:5])

    def stored(self, path: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None,
                                         dict[str, Any] | None]:
        """The info, check and error objects last recorded for ``path``: what an
        unchanged file reports, so a rescan's output and exit status still show
        every failing verdict and unreadable image."""
        row = self._db.execute(
            "SELECT info_json, check_json, error_type, error_structure, error_offset, "
            "error_message, format FROM images WHERE path = ?", (key(path),)).fetchone()
        if row is None:
            return None, None, None
        info_json, check_json, error_type, structure, offset, message, fmt = row
        info = json.loads(info_json) if info_json is not None else None
        check = json.loads(check_json) if check_json is not None else None
        if check is not None:
            check["info"] = info
        error = None
        if error_type is not None:
            error = error_member(error_type, structure, offset, message,
                                 fmt if error_type == "UnsupportedFormat" else None)
        return info, check, error

    def touch(self, path: str, scan_id: int) -> None:
        """``path`` was seen unchanged by scan ``scan_id``."""
        self._write().execute(
            "UPDATE images SET last_seen_scan = max(coalesce(last_seen_scan, 0), ?), "
            "status = CASE status WHEN 'missing' "
            "THEN CASE WHEN error_type IS NULL THEN 'scanned' ELSE 'error' END ELSE status END "
            "WHERE path = ?", (scan_id, key(path)))
        self._count(scan_id, "unchanged")

    def record(self, result: ScanResult, scan_id: int) -> None:
        """Store one result (an ``unchanged`` one is a :meth:`touch`).

        The image's row, its rule results and chunk digests are replaced
        together: a savepoint makes the whole record land or none of it.
        """
        if result.status == "unchanged":
            self.touch(result.path, scan_id)
            return
        fp = result.fingerprint
        chunks = (_nonzero_chunks(fp.virtual_size, fp.chunk_size, fp.chunks)
                  if fp is not None and fp.chunks else None)
        db = self._write()
        db.execute("SAVEPOINT record")
        try:
            db.execute(_UPSERT, self._row(result, scan_id, chunks))
            image_id = db.execute("SELECT id FROM images WHERE path = ?",
                                  (key(result.path),)).fetchone()[0]
            db.execute("DELETE FROM rules WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM chunks WHERE image_id = ?", (image_id,))
            if result.check is not None:
                db.executemany(
                    "INSERT OR REPLACE INTO rules (image_id, rule_id, status, message) "
                    "VALUES (?, ?, ?, ?)",
                    _rule_rows(image_id, result.check))
            if chunks:
                db.executemany("INSERT INTO chunks (image_id, digest) VALUES (?, ?)",
                               [(image_id, d) for d in chunks])
        except BaseException:
            db.execute("ROLLBACK TO record")
            db.execute("RELEASE record")
            raise
        db.execute("RELEASE record")
        self._count(scan_id, "errors" if result.status == "error" else "scanned")

    @staticmethod
    def _row(result: ScanResult, scan_id: int, chunks: set[bytes] | None) -> tuple[Any, ...]:
        """The ``images`` values of a result, in :data:`_RECORD_COLUMNS` order."""
        ident = result.identity
        info = result.info or {}
        check = result.check
        error = result.error or {}
        fp = result.fingerprint
        stored_check = None
        if check is not None:
            stored_check = json.dumps({k: v for k, v in check.items() if k != "info"})
        return (
            key(result.path),
            *((ident.size, ident.mtime_ns, ident.inode, ident.device, ident.header_digest)
              if ident is not None else (None,) * 5),
            "error" if result.status == "error" else "scanned",
            info.get("format"), info.get("subformat"), info.get("virtual_size"),
            info.get("boot_mode"),
            _profile(check) if check else None, check.get("verdict") if check else None,
            error.get("type"), error.get("structure"), error.get("offset"),
            error.get("message"),
            json.dumps(result.info) if result.info is not None else None, stored_check,
            fp.algorithm if fp else None, fp.digest if fp else None,
            None if chunks is None else len(chunks),
            __version__, now(), result.elapsed, scan_id, scan_id, scan_id,
        )

    def _count(self, scan_id: int, kind: str) -> None:
        counts = self._counts.get(scan_id)
        if counts is not None:
            counts[kind] += 1

    def finish_scan(self, scan_id: int, interrupted: bool,
                    unreadable: Collection[str] = ()) -> int:
        """Close scan ``scan_id``; unless it was interrupted, mark what it did not see.

        A row under the scan's roots is marked missing when neither this scan
        nor any scan begun after it saw it (a concurrent later scan that
        recorded a new file knows better). Rows under an ``unreadable`` path (a
        directory the walk could not list this time) were not looked for, so
        they are left as they are. Returns how many rows were marked.
        """
        db = self._write()
        missing = 0
        # Past a few hundred unreadable paths (SQLite's bound on parameters is near)
        # nothing is marked: a walk that failed that much says little of what is gone.
        if not interrupted and len(unreadable) <= MAX_UNREADABLE:
            roots = json.loads(db.execute("SELECT roots FROM scans WHERE id = ?",
                                          (scan_id,)).fetchone()[0])
            not_looked = "".join(" AND NOT (path >= ? AND path < ?)" for _ in unreadable)
            skipped = [bound for path in unreadable for bound in under(key(path))[1:]]
            for root in roots:
                missing += db.execute(
                    "UPDATE images SET status = 'missing' WHERE status != 'missing' "
                    "AND last_seen_scan < ? AND (path = ? OR (path >= ? AND path < ?))"
                    + not_looked, (scan_id, *under(root), *skipped)).rowcount
        counts = self._counts.pop(scan_id, {})
        db.execute(
            "UPDATE scans SET finished_at = ?, interrupted = ?, scanned = ?, "
            "unchanged = ?, errors = ?, missing = ? WHERE id = ?",
            (now(), int(interrupted), counts.get("scanned"), counts.get("unchanged"),
             counts.get("errors"), missing, scan_id))
        self.commit()
        return missing


def _profile(check: dict[str, Any]) -> str:
    """The ``profile`` column: the profile's name, or several joined by commas (what
    the scan's ``--profile`` loaded, so that a rescan by the same ones finds them)."""
    return ",".join(str(c["profile"]) for c in each_check(check))


def _rule_rows(image_id: int, check: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The ``rules`` rows of one image: each rule id once, with its worst status and
    that status's message over the profiles that judged the image (a rule two profiles
    share is failed when either fails it; the check objects in ``check_json`` keep
    every profile's own result)."""
    worst: dict[str, tuple[int, str, Any]] = {}
    for one in each_check(check):
        for r in one.get("rules", ()):
            rank = status_rank(r["status"])
            if r["id"] not in worst or rank < worst[r["id"]][0]:
                worst[r["id"]] = (rank, r["status"], r.get("message"))
    return [(image_id, rule_id, status, message)
            for rule_id, (_, status, message) in worst.items()]
