"""The catalog file: its tables, their version, and opening it safely.

Schema (version :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version``; a
catalog written by a newer imgscan is refused with :class:`CatalogError`, never
altered; ``PRAGMA application_id`` is :data:`APPLICATION_ID`, "imgs"). Times
are ISO 8601 UTC text (``2026-11-26T09:03:47.123+00:00``).

``scans``: one row per scan.
    ``id`` (integer key), ``started_at``, ``finished_at`` (NULL while running or
    when the scan was killed), ``roots`` (JSON array of the absolute paths the
    scan walked), ``profile`` (the profile applied, NULL for info only; several
    profiles: their names joined by commas, in order),
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
    ``verdict`` (the check object's; NULL without a check; for an image judged by
    several profiles, their names joined by commas and the worst verdict),
    ``error_type`` (an ImageError class name, ``Timeout``, ``WorkerCrashed``, ``MemoryLimit``
    or ``OSError``), ``error_structure``, ``error_offset``, ``error_message``
    (NULL unless an error), ``info_json`` (the contract's info object),
    ``check_json`` (the contract's check object without its ``info`` key,
    which is ``info_json``; several profiles: the object ``check --json`` prints
    for them, each profile's check object in its ``checks``),
    ``fingerprint_algorithm``, ``fingerprint`` (hex digest), ``nonzero_chunks``
    (how many distinct non-zero chunk digests the fingerprint has: the rows in
    ``chunks``), ``imgscan_version`` (of the scan
    that read it), ``scanned_at`` (when it was read), ``elapsed`` (seconds the
    worker spent on it), ``first_seen_scan``, ``last_seen_scan`` (scan ids: the
    first scan that recorded it, the last that saw it, read or unchanged),
    ``scanned_in_scan`` (the scan that last read it: rows read by the latest
    scan are what changed). Indexed by path (unique) and fingerprint.

``rules``: one row per rule result of an image's check (replaced on rescan).
    ``image_id``, ``rule_id``, ``status`` (``pass``, ``fail``, ``warn``,
    ``unknown``, ``manual``), ``message``. Indexed by (rule_id, status). Several
    profiles: each rule id once, with its worst status over them and that result's
    message.

``chunks``: the chunk digests of a chunked content fingerprint, one row per
    distinct digest per image, for finding images that share content.
    ``image_id``, ``digest`` (16-byte BLOB, the chunk's XXH3-128). Chunks that
    read as zeros are left out: every sparse disk shares them. Indexed by
    digest. About one row per MiB of non-zero guest data.

A catalog of a newer schema, or an SQLite file that is not a catalog, is
refused before anything is written; an empty file gets the schema in one
locked step (two scans may create it at once).
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from typing import Self

from ...version import __version__

SCHEMA_VERSION = 1
#: ``PRAGMA application_id``: "imgs" in ASCII, so ``file(1)`` and we can tell an
#: imgscan catalog from any other SQLite database.
APPLICATION_ID = 0x696D6773
#: Seconds a writer waits for the other scan's batch before giving up.
BUSY_TIMEOUT = 60.0

#: The tables and indexes, one statement per ``;`` (created one at a time).
SCHEMA_SQL = """
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


class CatalogError(Exception):
    """The catalog cannot be used: absent, not a catalog, or of a newer schema."""



def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def key(path: str) -> str:
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


def under(root: str) -> tuple[str, str, str]:
    """``(root, low, high)``: paths under ``root`` are ``root`` itself or in [low, high).

    Text compares byte-wise (UTF-8), so everything starting with ``root/`` lies
    between ``root/`` and ``root0`` (``0`` follows ``/``): a range the path
    index answers, with no LIKE wildcards to escape.
    """
    prefix = root if root.endswith("/") else root + "/"
    return root, prefix, prefix[:-1] + "0"


class CatalogFile:
    """An open catalog file, its schema checked (created when ``create`` and absent),
    and its life cycle: a context manager whose exit commits and closes."""

    path: str
    _db: sqlite3.Connection

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
                    for statement in SCHEMA_SQL.split(";"):
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

    def __enter__(self) -> Self:
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
