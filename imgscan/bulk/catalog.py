"""The scan catalog: one SQLite file remembering every image a scan has seen.

The catalog lets a rescan skip unchanged files, answers ``imgscan catalog``
(stats, list, export, duplicates) without reading any image again, and stays
usable when a scan is killed: each result is written whole or not at all, and
everything committed before the kill is kept.

Concurrency. The database runs in WAL mode (readers never block the writer),
with a busy timeout of :data:`BUSY_TIMEOUT` seconds. Every write happens in a
``BEGIN IMMEDIATE`` transaction, which takes the write lock up front: two scans
writing one catalog (two processes) take turns for each batch instead of failing
with "database is locked" when a read transaction tries to upgrade. Results are
batched into one transaction until :meth:`Catalog.commit` (the runner commits at
least every 0.5 s), and each :meth:`Catalog.record` runs inside a savepoint, so a
result whose rows cannot all be written leaves no trace.

Rescans. :meth:`Catalog.lookup` hands the runner a row's file identity only
when the row can stand for the file in this scan (see there); the runner then
calls :meth:`Catalog.touch` instead of reading the file. When a scan completes
(not interrupted), :meth:`Catalog.finish_scan` marks the rows under its roots
that it did not see as ``missing``; they keep their last facts as history.

Schema (version :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version``; a
catalog written by a newer imgscan is refused with :class:`CatalogError`, never
altered; ``PRAGMA application_id`` is :data:`APPLICATION_ID`, "imgs"). Times
are ISO 8601 UTC text (``2026-11-26T09:03:47.123+00:00``).

``scans``: one row per scan.
    ``id`` (integer key), ``started_at``, ``finished_at`` (NULL while running or
    when the scan was killed), ``roots`` (JSON array of the absolute paths the
    scan walked), ``profile`` (the profile applied, NULL for info only),
    ``fingerprint_algorithm`` (NULL: no fingerprints), ``imgscan_version``,
    ``interrupted`` (1 when stopped early, e.g. Ctrl-C; NULL while running),
    ``scanned``, ``unchanged``, ``errors`` (results this scan recorded, by
    kind), ``missing`` (rows this scan marked missing). The counts are written
    by ``finish_scan``.

``images``: one row per path.
    ``id`` (integer key), ``path`` (absolute, ``os.path.abspath``, symlinks not
    resolved; unique), ``size``, ``mtime_ns``, ``inode``, ``device``,
    ``header_digest`` (xxh3-64 hex of the first 64 KiB: the file identity a
    rescan compares, from :class:`~imgscan.bulk.result.FileIdentity`; NULL when
    the file could not even be stat'ed), ``status`` (``scanned``: read without
    error; ``error``: could not be read; ``missing``: a completed scan whose
    roots cover it did not see it), ``format``, ``subformat``,
    ``virtual_size``, ``boot_mode`` (the info object's keys), ``profile``,
    ``verdict`` (the check object's; NULL without a check), ``error_type``
    (an ImageError class name, ``Timeout``, ``WorkerCrashed``, ``MemoryLimit``
    or ``OSError``), ``error_structure``, ``error_offset``, ``error_message``
    (NULL unless an error), ``info_json`` (the contract's info object),
    ``check_json`` (the contract's check object without its ``info`` key,
    which is ``info_json``), ``fingerprint_algorithm``, ``fingerprint`` (hex
    digest), ``nonzero_chunks`` (how many distinct non-zero chunk digests the
    fingerprint has: the rows in ``chunks``), ``imgscan_version`` (of the scan
    that read it), ``scanned_at`` (when it was read), ``elapsed`` (seconds the
    worker spent on it), ``first_seen_scan``, ``last_seen_scan`` (scan ids: the
    first scan that recorded it, the last that saw it, read or unchanged),
    ``scanned_in_scan`` (the scan that last read it: rows read by the latest
    scan are what changed). Indexed by path (unique) and fingerprint.

``rules``: one row per rule result of an image's check (replaced on rescan).
    ``image_id``, ``rule_id``, ``status`` (``pass``, ``fail``, ``warn``,
    ``unknown``, ``manual``), ``message``. Indexed by (rule_id, status).

``chunks``: the chunk digests of a chunked content fingerprint, one row per
    distinct digest per image, for finding images that share content.
    ``image_id``, ``digest`` (16-byte BLOB, the chunk's XXH3-128). Chunks that
    read as zeros are left out: every sparse disk shares them. Indexed by
    digest. About one row per MiB of non-zero guest data.

Nothing here is imported on the single-image ``info`` / ``check`` path.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..fingerprints import zero_digest as _fingerprint_zero_digest
from ..report.errors import error_member
from .result import FileIdentity, ScanResult

SCHEMA_VERSION = 1
#: ``PRAGMA application_id``: "imgs" in ASCII, so ``file(1)`` and we can tell an
#: imgscan catalog from any other SQLite database.
APPLICATION_ID = 0x696D6773
#: Seconds a writer waits for the other scan's batch before giving up.
BUSY_TIMEOUT = 60.0
#: Digest length of a chunked fingerprint's chunks (XXH3-128).
CHUNK_DIGEST_SIZE = 16
#: Errors of the run rather than of the file: a rescan tries such files again.
TRANSIENT_ERRORS = frozenset({"Timeout", "WorkerCrashed", "MemoryLimit", "OSError"})
DEFAULT_CATALOG = "imgscan.db"
#: Most unreadable paths a scan may report and still mark files missing.
MAX_UNREADABLE = 400

_SCHEMA = """
CREATE TABLE scans (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    roots TEXT NOT NULL,
    profile TEXT,
    fingerprint_algorithm TEXT,
    imgscan_version TEXT NOT NULL,
    interrupted INTEGER,
    scanned INTEGER,
    unchanged INTEGER,
    errors INTEGER,
    missing INTEGER
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER,
    mtime_ns INTEGER,
    inode INTEGER,
    device INTEGER,
    header_digest TEXT,
    status TEXT NOT NULL CHECK (status IN ('scanned', 'error', 'missing')),
    format TEXT,
    subformat TEXT,
    virtual_size INTEGER,
    boot_mode TEXT,
    profile TEXT,
    verdict TEXT,
    error_type TEXT,
    error_structure TEXT,
    error_offset INTEGER,
    error_message TEXT,
    info_json TEXT,
    check_json TEXT,
    fingerprint_algorithm TEXT,
    fingerprint TEXT,
    nonzero_chunks INTEGER,
    imgscan_version TEXT NOT NULL,
    scanned_at TEXT NOT NULL,
    elapsed REAL,
    first_seen_scan INTEGER NOT NULL REFERENCES scans(id),
    last_seen_scan INTEGER NOT NULL REFERENCES scans(id),
    scanned_in_scan INTEGER NOT NULL REFERENCES scans(id)
);
CREATE INDEX images_fingerprint ON images(fingerprint) WHERE fingerprint IS NOT NULL;
CREATE TABLE rules (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    PRIMARY KEY (image_id, rule_id)
) WITHOUT ROWID;
CREATE INDEX rules_by_rule ON rules(rule_id, status);
CREATE TABLE chunks (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest BLOB NOT NULL,
    PRIMARY KEY (image_id, digest)
) WITHOUT ROWID;
CREATE INDEX chunks_by_digest ON chunks(digest);
"""

#: The columns of ``images`` a row of ``list`` / CSV export shows, in order;
#: ``failed_rules`` (space-separated rule ids) is computed from ``rules``.
FLAT_COLUMNS = (
    "path", "status", "format", "subformat", "virtual_size", "boot_mode", "profile",
    "verdict", "failed_rules", "error_type", "error_structure", "error_offset",
    "error_message", "size", "mtime_ns", "inode", "device", "header_digest",
    "fingerprint_algorithm", "fingerprint", "nonzero_chunks", "imgscan_version",
    "scanned_at", "elapsed", "first_seen_scan", "last_seen_scan", "scanned_in_scan",
)
_FAILED_RULES = ("(SELECT group_concat(rule_id, ' ') FROM (SELECT rule_id FROM rules "
                 "WHERE image_id = images.id AND status = 'fail' ORDER BY rule_id))")
_FLAT_SELECT = ", ".join(_FAILED_RULES + " AS failed_rules" if c == "failed_rules"
                         else f"images.{c}" for c in FLAT_COLUMNS)

#: Columns ``record`` writes, in the order of :meth:`Catalog._row`.
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


class CatalogError(Exception):
    """The catalog cannot be used: absent, not a catalog, or of a newer schema."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Which images a query selects; unset fields select everything.

    Without ``status``, images marked missing are left out (they are history,
    not the library); ``status="missing"`` shows exactly them.
    """

    verdict: str | None = None
    #: A rule id; with ``rule_status`` the images whose result for it has that status.
    rule: str | None = None
    rule_status: str = "fail"
    format: str | None = None
    boot_mode: str | None = None
    status: str | None = None
    error_type: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition on ``images`` and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.status is None:
            clauses.append("images.status != 'missing'")
        for column in ("status", "verdict", "format", "boot_mode", "error_type"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"images.{column} = ?")
                params.append(value)
        if self.rule is not None:
            clauses.append("EXISTS (SELECT 1 FROM rules WHERE rules.image_id = images.id "
                           "AND rules.rule_id = ? AND rules.status = ?)")
            params += [self.rule, self.rule_status]
        return " AND ".join(clauses) or "1", params


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _key(path: str) -> str:
    """The stored form of a path: absolute, and valid UTF-8.

    A name that is not UTF-8 (a surrogate-escaped str from the file system)
    cannot be stored as SQLite text; its undecodable bytes are written as
    ``\\xNN`` escapes, the same way every time, so the row is still found.
    """
    path = os.path.abspath(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        path = os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


def _under(root: str) -> tuple[str, str, str]:
    """``(root, low, high)``: paths under ``root`` are ``root`` itself or in [low, high).

    Text compares byte-wise (UTF-8), so everything starting with ``root/`` lies
    between ``root/`` and ``root0`` (``0`` follows ``/``): a range the path
    index answers, with no LIKE wildcards to escape.
    """
    prefix = root if root.endswith("/") else root + "/"
    return root, prefix, prefix[:-1] + "0"


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


class Catalog:
    """An open catalog (a context manager: leaving it commits and closes).

    ``Catalog(path)`` creates the file when it is absent (a scan writing into
    it); ``Catalog(path, create=False)`` refuses an absent file (a query must
    never leave an empty catalog behind).
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = os.fspath(path)
        if not create and not os.path.exists(self.path):
            raise CatalogError(f"{self.path}: no such catalog (run `imgscan scan "
                               f"--catalog {self.path} PATH...` first)")
        try:
            # isolation_level=None: no implicit transactions; we BEGIN ourselves.
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT,
                                       isolation_level=None)
        except sqlite3.Error as exc:
            raise CatalogError(f"{self.path}: cannot open the catalog: {exc}") from exc
        try:
            self._setup(create)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CatalogError(f"{self.path}: cannot use the catalog: {exc}") from exc
        except CatalogError:
            self._db.close()
            raise
        #: What the current scan needs of a stored row to reuse it (see ``lookup``).
        self._profile: str | None = None
        self._fingerprint: str | None = None
        self._counts: dict[int, dict[str, int]] = {}

    def _setup(self, create: bool) -> None:
        db = self._db
        db.execute("PRAGMA foreign_keys = ON")
        # One read transaction: the version and the tables are seen together,
        # never half of another process's creation of the schema.
        db.execute("BEGIN")
        try:
            version = self._check_schema()
        finally:
            db.execute("ROLLBACK")
        if version == 0 and not create:
            raise CatalogError(f"{self.path}: not an imgscan catalog (no schema)")
        self._enable_wal()
        # NORMAL is durable across process crashes in WAL mode; only a power
        # loss can lose the last batches, never corrupt the file.
        db.execute("PRAGMA synchronous = NORMAL")
        if version == 0:
            db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have created it while we waited for the lock.
                if self._check_schema() == 0:
                    # One statement at a time: executescript() would commit first,
                    # outside the lock that makes creation a single step.
                    for statement in _SCHEMA.split(";"):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _enable_wal(self) -> None:
        """Switch the file to WAL mode (it stays so), waiting while it is busy.

        Two scans opening a new catalog at once can find the switch busy, and
        SQLite then fails at once instead of calling its busy handler: wait here.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY,
                                                        sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if mode != "wal":
            raise CatalogError(f"{self.path}: the file system does not support SQLite's "
                               f"WAL mode (journal mode stays {mode!r}); put the catalog "
                               f"on a local disk")

    def _check_schema(self) -> int:
        """The schema version (0: empty file), refusing a newer schema or a database
        that is not a catalog."""
        db = self._db
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path}: catalog schema version {version} is newer than this "
                f"imgscan {__version__} understands ({SCHEMA_VERSION}); use a newer "
                f"imgscan or another catalog file")
        if version == 0:
            if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise CatalogError(f"{self.path}: an SQLite database, but not an imgscan "
                                   f"catalog")
        elif (app := db.execute("PRAGMA application_id").fetchone()[0]) != APPLICATION_ID:
            raise CatalogError(f"{self.path}: an SQLite database, but not an imgscan "
                               f"catalog (application_id {app:#x})")
        return version

    # -- life cycle -------------------------------------------------------------
    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        # Commit even on an exception (Ctrl-C): every result is whole (savepoints),
        # so what was recorded is kept, as the scan promises.
        self.close()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()

    def commit(self) -> None:
        """End the current write batch, letting the other writer in."""
        if self._db.in_transaction:
            self._db.execute("COMMIT")

    def _write(self) -> sqlite3.Connection:
        """The connection inside a write transaction (opened if none is)."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        return self._db

    # -- what a scan writes -----------------------------------------------------
    def begin_scan(self, roots: list[str], profile: str | None,
                   fingerprint: str | None = None) -> int:
        """Record a new scan of ``roots`` and return its id.

        ``profile`` is the profile name the scan judges by (None: info only),
        ``fingerprint`` the fingerprint algorithm it computes (None: none);
        :meth:`lookup` reuses only rows that already have both.
        """
        self._profile, self._fingerprint = profile, fingerprint
        db = self._write()
        cur = db.execute(
            "INSERT INTO scans (started_at, roots, profile, fingerprint_algorithm, "
            "imgscan_version) VALUES (?, ?, ?, ?, ?)",
            (_now(), json.dumps([_key(r) for r in roots]), profile, fingerprint,
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
        :meth:`begin_scan`, a fingerprint by its algorithm). An image that could
        not be read for what it is (an ImageError) stays an error until it changes.
        """
        row = self._db.execute(
            "SELECT size, mtime_ns, inode, device, header_digest, status, error_type, "
            "imgscan_version, profile, fingerprint_algorithm FROM images WHERE path = ?",
            (_key(path),)).fetchone()
        if row is None or row[4] is None:
            return None
        status, error_type, version, profile, algorithm = row[5:]
        if status == "missing" or version != __version__ or error_type in TRANSIENT_ERRORS:
            return None
        if status == "scanned" and (
                (self._profile is not None and profile != self._profile)
                or (self._fingerprint is not None and algorithm != self._fingerprint)):
            return None
        return FileIdentity(*row[:5])

    def stored(self, path: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None,
                                         dict[str, Any] | None]:
        """The info, check and error objects last recorded for ``path``: what an
        unchanged file reports, so a rescan's output and exit status still show
        every failing verdict and unreadable image."""
        row = self._db.execute(
            "SELECT info_json, check_json, error_type, error_structure, error_offset, "
            "error_message, format FROM images WHERE path = ?", (_key(path),)).fetchone()
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
            "WHERE path = ?", (scan_id, _key(path)))
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
                                  (_key(result.path),)).fetchone()[0]
            db.execute("DELETE FROM rules WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM chunks WHERE image_id = ?", (image_id,))
            if result.check is not None:
                db.executemany(
                    "INSERT OR REPLACE INTO rules (image_id, rule_id, status, message) "
                    "VALUES (?, ?, ?, ?)",
                    [(image_id, r["id"], r["status"], r.get("message"))
                     for r in result.check.get("rules", ())])
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
            _key(result.path),
            *((ident.size, ident.mtime_ns, ident.inode, ident.device, ident.header_digest)
              if ident is not None else (None,) * 5),
            "error" if result.status == "error" else "scanned",
            info.get("format"), info.get("subformat"), info.get("virtual_size"),
            info.get("boot_mode"),
            check.get("profile") if check else None, check.get("verdict") if check else None,
            error.get("type"), error.get("structure"), error.get("offset"),
            error.get("message"),
            json.dumps(result.info) if result.info is not None else None, stored_check,
            fp.algorithm if fp else None, fp.digest if fp else None,
            None if chunks is None else len(chunks),
            __version__, _now(), result.elapsed, scan_id, scan_id, scan_id,
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
            skipped = [bound for path in unreadable for bound in _under(_key(path))[1:]]
            for root in roots:
                missing += db.execute(
                    "UPDATE images SET status = 'missing' WHERE status != 'missing' "
                    "AND last_seen_scan < ? AND (path = ? OR (path >= ? AND path < ?))"
                    + not_looked, (scan_id, *_under(root), *skipped)).rowcount
        counts = self._counts.pop(scan_id, {})
        db.execute(
            "UPDATE scans SET finished_at = ?, interrupted = ?, scanned = ?, "
            "unchanged = ?, errors = ?, missing = ? WHERE id = ?",
            (_now(), int(interrupted), counts.get("scanned"), counts.get("unchanged"),
             counts.get("errors"), missing, scan_id))
        self.commit()
        return missing

    # -- queries (``imgscan catalog``) ------------------------------------------
    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction around several queries: a scan writing meanwhile
        cannot make their counts disagree."""
        if self._db.in_transaction:     # our own write batch: already one snapshot
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("ROLLBACK")

    def rule_ids(self) -> set[str]:
        """The rule ids with a result stored (a filter on any other matches nothing)."""
        return {r for (r,) in self._db.execute("SELECT DISTINCT rule_id FROM rules")}

    def stats(self) -> dict[str, Any]:
        """Counts of the images present (not missing), and the last scan.

        ``by_status`` counts every row, missing ones included; ``by_verdict``
        counts the images read (``unchecked``: read without a profile);
        ``rules`` maps each rule id to its result counts by status.
        """
        with self._snapshot():
            return self._stats()

    def _stats(self) -> dict[str, Any]:
        db = self._db

        def counts(sql: str) -> dict[str, int]:
            return {str(k): n for k, n in db.execute(sql)}

        def by(column: str, status: str, absent: str = "unknown") -> dict[str, int]:
            return counts(f"SELECT coalesce({column}, '{absent}'), count(*) FROM images "
                          f"WHERE {status} GROUP BY 1 ORDER BY 2 DESC, 1")

        rules: dict[str, dict[str, int]] = {}
        for rule_id, status, n in db.execute(
                "SELECT rule_id, rules.status, count(*) FROM rules JOIN images "
                "ON images.id = rules.image_id WHERE images.status != 'missing' "
                "GROUP BY 1, 2 ORDER BY 1, 2"):
            rules.setdefault(rule_id, {})[status] = n
        total, file_size, virtual_size, fingerprinted = db.execute(
            "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(virtual_size), 0), "
            "count(fingerprint) FROM images WHERE status != 'missing'").fetchone()
        scans = db.execute("SELECT count(*) FROM scans").fetchone()[0]
        last = db.execute("SELECT * FROM scans ORDER BY id DESC LIMIT 1")
        names = [d[0] for d in last.description]
        row = last.fetchone()
        last_scan = None
        if row is not None:
            last_scan = dict(zip(names, row, strict=True))
            last_scan["roots"] = json.loads(last_scan["roots"])
            if last_scan["interrupted"] is not None:
                last_scan["interrupted"] = bool(last_scan["interrupted"])
        return {
            "catalog": self.path,
            "schema_version": SCHEMA_VERSION,
            "images": total,
            "by_status": by("status", "1"),
            "by_verdict": by("verdict", "status = 'scanned'", "unchecked"),
            "by_format": by("format", "status = 'scanned'"),
            "by_boot_mode": by("boot_mode", "status = 'scanned'"),
            "errors_by_type": by("error_type", "status = 'error'"),
            "rules": dict(sorted(rules.items(), key=lambda kv: (-kv[1].get("fail", 0),
                                                                 kv[0]))),
            "file_size": file_size,
            "virtual_size": virtual_size,
            "fingerprinted": fingerprinted,
            "scans": scans,
            "last_scan": last_scan,
        }

    def images(self, filters: Filters | None = None) -> Iterator[dict[str, Any]]:
        """The selected images as flat rows (:data:`FLAT_COLUMNS`), by path."""
        where, params = (filters or Filters()).where()
        cur = self._db.execute(
            f"SELECT {_FLAT_SELECT} FROM images WHERE {where} ORDER BY path", params)
        for row in cur:
            yield dict(zip(FLAT_COLUMNS, row, strict=True))

    def documents(self, filters: Filters | None = None) -> Iterator[dict[str, Any]]:
        """The selected images as whole objects: the flat columns plus ``info``,
        ``check`` (as stored: without ``info``), and ``rules`` (id, status, message)."""
        where, params = (filters or Filters()).where()
        cur = self._db.execute(
            f"SELECT {_FLAT_SELECT}, images.info_json, images.check_json, images.id "
            f"FROM images WHERE {where} ORDER BY path", params)
        n = len(FLAT_COLUMNS)
        for row in cur:
            doc = dict(zip(FLAT_COLUMNS, row[:n], strict=True))
            info_json, check_json, image_id = row[n:]
            doc["info"] = json.loads(info_json) if info_json is not None else None
            doc["check"] = json.loads(check_json) if check_json is not None else None
            doc["rules"] = [
                {"id": r, "status": s, "message": m} for r, s, m in self._db.execute(
                    "SELECT rule_id, status, message FROM rules WHERE image_id = ? "
                    "ORDER BY rule_id", (image_id,))]
            yield doc

    def duplicates(self, min_shared: float = 0.5) -> dict[str, Any]:
        """Images with the same content, and pairs sharing most of their chunks.

        ``groups``: images (present) with one fingerprint (same algorithm and
        digest), largest groups first. ``pairs``: two images with different
        fingerprints whose distinct non-zero chunk digests overlap by at least
        ``min_shared`` of the smaller set (``shared / min(a, b)``): one base
        image copied under several names and then changed a little.
        """
        with self._snapshot():
            return self._duplicates(min_shared)

    def _duplicates(self, min_shared: float) -> dict[str, Any]:
        by_content: dict[tuple[str, str], list[tuple[int, str, str | None, int, int]]] = {}
        for image_id, path, fmt, vsize, algorithm, digest, nonzero in self._db.execute(
                "SELECT id, path, format, virtual_size, fingerprint_algorithm, fingerprint, "
                "nonzero_chunks FROM images WHERE fingerprint IS NOT NULL "
                "AND status != 'missing' ORDER BY path"):
            by_content.setdefault((algorithm, digest), []).append(
                (image_id, path, fmt, vsize, nonzero or 0))
        groups = [
            {"algorithm": algorithm, "fingerprint": digest, "count": len(members),
             "virtual_size": members[0][3],
             "images": [{"path": m[1], "format": m[2]} for m in members]}
            for (algorithm, digest), members in sorted(
                by_content.items(), key=lambda kv: (-len(kv[1]), kv[0][1]))
            if len(members) > 1
        ]
        # Identical images have identical chunk sets: count shared chunks between
        # one representative of each content, then list every member pair.
        members_of = {m[0][0]: m for m in by_content.values() if m[0][4]}
        pairs: list[dict[str, Any]] = []
        for (a, b), shared in self._shared_chunks(members_of).items():
            na, nb = members_of[a][0][4], members_of[b][0][4]
            if shared < min_shared * min(na, nb):
                continue
            for x in members_of[a]:
                for y in members_of[b]:
                    (pa, ca), (pb, cb) = sorted(((x[1], na), (y[1], nb)))
                    pairs.append({"a": pa, "b": pb, "shared": shared, "a_chunks": ca,
                                  "b_chunks": cb, "fraction": shared / min(na, nb)})
        pairs.sort(key=lambda p: (-p["fraction"], -p["shared"], p["a"], p["b"]))
        return {"groups": groups, "pairs": pairs, "min_shared": min_shared}

    def _shared_chunks(self, images: Collection[int]) -> Counter[tuple[int, int]]:
        """How many distinct chunk digests each pair of ``images`` (ids) shares.

        Pairing the images of each digest one by one costs the square of the
        images holding it, for every chunk of a base image copied many times.
        Digests held by the same set of images are counted once instead, with
        the number of such digests as the weight: the chunks of one family of
        images fall into a few such sets (the common base, each copy's changes).
        """
        sets: Counter[tuple[int, ...]] = Counter()
        current: bytes | None = None
        holders: list[int] = []
        # The digest index lists (digest, image_id) in order: one pass, no sort.
        for digest, image_id in self._db.execute(
                "SELECT digest, image_id FROM chunks INDEXED BY chunks_by_digest "
                "ORDER BY digest, image_id"):
            if digest != current:
                if len(holders) > 1:
                    sets[tuple(holders)] += 1
                current, holders = digest, []
            if image_id in images:
                holders.append(image_id)
        if len(holders) > 1:
            sets[tuple(holders)] += 1
        shared: Counter[tuple[int, int]] = Counter()
        for holders_of, weight in sets.items():
            for pair in itertools.combinations(holders_of, 2):
                shared[pair] += weight
        return shared
