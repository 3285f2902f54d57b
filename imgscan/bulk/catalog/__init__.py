"""The scan catalog: one SQLite file remembering every image a scan has seen.

The catalog lets a rescan skip unchanged files, answers ``imgscan catalog``
(stats, list, export, duplicates) without reading any image again, and stays
usable when a scan is killed: each result is written whole or not at all, and
everything committed before the kill is kept.

Concurrency. The database runs in WAL mode (readers never block the writer),
with a busy timeout of :data:`.schema.BUSY_TIMEOUT` seconds. Every write happens in a
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

The parts: :mod:`.schema` (the tables, their version, opening the file),
:mod:`.writer` (what a scan writes), :mod:`.queries` (what ``imgscan catalog``
asks). Nothing here is imported on the single-image ``info`` / ``check`` path.
"""

from __future__ import annotations

from .queries import FLAT_COLUMNS, CatalogQueries, Filters
from .schema import SCHEMA_VERSION, CatalogError
from .writer import CatalogWriter

__all__ = ["FLAT_COLUMNS", "SCHEMA_VERSION", "Catalog", "CatalogError", "Filters"]


class Catalog(CatalogWriter, CatalogQueries):
    """An open catalog (a context manager: leaving it commits and closes).

    ``Catalog(path)`` creates the file when it is absent (a scan writing into
    it); ``Catalog(path, create=False)`` refuses an absent file (a query must
    never leave an empty catalog behind).
    """
