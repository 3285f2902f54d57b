"""What ``imgscan catalog`` asks: stats, lists, exports and duplicates.

Queries only read; several queries answering one command run in one read
transaction (a snapshot), so that a scan writing meanwhile cannot make their
counts disagree.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from .schema import SCHEMA_VERSION, CatalogFile

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
#: The columns of :meth:`CatalogQueries.report_rows`.
REPORT_COLUMNS = (
    "path", "status", "format", "subformat", "virtual_size", "size", "boot_mode", "verdict",
    "error_type", "error_structure", "error_offset", "error_message", "fingerprint", "detail",
)


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


class CatalogQueries(CatalogFile):
    """The query side of a catalog (see the module docstring)."""

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
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
        with self.snapshot():
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

    def report_rows(self, filters: Filters | None = None) -> Iterator[dict[str, Any]]:
        """The selected images for the HTML report, by path: :data:`REPORT_COLUMNS`.

        ``detail`` is the JSON text ``[info, check]`` (check null without a
        profile; detail null without info) without the path, which is all that
        differs between copies of one image: the report parses each distinct
        text once, however many images share it, and takes the failed rules from
        its check (the ``rules`` rows are written from it). An image judged by
        several profiles gives one row per profile, each with that profile's
        verdict and check.
        """
        where, params = (filters or Filters()).where()
        columns = ", ".join(f"images.{c}" for c in REPORT_COLUMNS[:-1])
        cur = self._db.execute(
            f"SELECT {columns}, images.info_json, images.check_json "
            f"FROM images WHERE {where} ORDER BY path", params)
        n = len(REPORT_COLUMNS) - 1
        for row in cur:
            info_json, check_json = row[n:]
            flat = dict(zip(REPORT_COLUMNS, row[:n], strict=False))
            if info_json is None:
                yield {**flat, "detail": None}
                continue
            info = _without_path(info_json)
            for verdict, check in _each_stored_check(check_json):
                yield {**flat, "verdict": verdict or flat["verdict"],
                       "detail": f"[{info}, {check}]"}

    def history(self) -> list[dict[str, Any]]:
        """Every scan, newest first, with ``new``: the images it saw first."""
        cur = self._db.execute(
            "SELECT scans.*, (SELECT count(*) FROM images WHERE first_seen_scan = scans.id) "
            "AS new FROM scans ORDER BY id DESC")
        names = [d[0] for d in cur.description]
        scans = [dict(zip(names, row, strict=True)) for row in cur]
        for scan in scans:
            scan["roots"] = json.loads(scan["roots"])
        return scans

    def duplicates(self, min_shared: float = 0.5) -> dict[str, Any]:
        """Images with the same content, and pairs sharing most of their chunks.

        ``groups``: images (present) with one fingerprint (same algorithm and
        digest), largest groups first. ``pairs``: two images with different
        fingerprints whose distinct non-zero chunk digests overlap by at least
        ``min_shared`` of the smaller set (``shared / min(a, b)``): one base
        image copied under several names and then changed a little.
        """
        with self.snapshot():
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


_DECODER = json.JSONDecoder()


def _each_stored_check(text: str | None) -> Iterator[tuple[str | None, str]]:
    """``(verdict, check text without its path)`` of each profile a stored check holds:
    the check itself (its verdict in the row already: None), or for several profiles
    (the ``checks`` object ``check --json`` prints for them) each of its checks."""
    if text is None:
        yield None, "null"
        return
    if '"profiles": [' in text:     # parsed only when it may be several profiles' object
        checks = json.loads(text).get("checks")
        if isinstance(checks, list):
            for check in checks:
                yield check["verdict"], json.dumps({k: v for k, v in check.items()
                                                    if k != "path"})
            return
    yield None, _without_path(text)


def _without_path(text: str) -> str:
    """A stored info or check object (``json.dumps`` of one whose keys start with
    ``schema_version`` and ``path``) as the same text without its ``path`` member.

    The member is cut out of the text where it is (the second, after the version)
    rather than the text parsed and written again: a report reads every image's two
    objects, some KiB each, and parsing them all took longer than the rest of the
    report. Text of another shape is parsed, and written as the writer does.
    """
    first = text.find(", ") + 2
    if text.startswith('{"schema_version": ') and text.startswith('"path": "', first):
        try:
            end = _DECODER.raw_decode(text, first + 8)[1]
        except json.JSONDecodeError:
            end = -1
        if text.startswith(", ", end):
            return text[:first] + text[end + 2:]
    obj = json.loads(text)
    obj.pop("path", None)
    return json.dumps(obj)
