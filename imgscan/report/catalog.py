"""``imgscan catalog`` output: aligned text tables, JSON, CSV and JSON Lines.

The queries live in :mod:`imgscan.bulk.catalog` and return plain rows and
dicts; this module only lays them out.
"""

from __future__ import annotations

import csv
import json

from ..bulk.catalog import FLAT_COLUMNS
from ..units import human_size
from ..vocabulary import STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TextIO


def table(header: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "",
          right: int = 0) -> str:
    """An aligned table; numeric columns (ints, floats; None shows as ``-``) and the
    first ``right`` columns are right-aligned."""
    cells = [[str(c) for c in header]]
    numeric = [i < right for i in range(len(header))]
    rows = list(rows)
    for i in range(right, len(header)):
        numeric[i] = all(r[i] is None or isinstance(r[i], int | float) for r in rows)
    for row in rows:
        cells.append(["-" if c is None else str(c) for c in row])
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        indent + "  ".join(c.rjust(w) if num else c.ljust(w)
                           for c, w, num in zip(r, widths, numeric, strict=True)).rstrip()
        for r in cells)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short_size(n: int | None) -> str:
    """``16 MiB`` without the exact count: table cells stay narrow."""
    return human_size(n).split(" (")[0]


def _counts(title: str, counts: Mapping[str, int]) -> list[str]:
    if not counts:
        return []
    return ["", table((title, "images"), counts.items(), indent="  ")]


def stats_text(stats: Mapping[str, Any]) -> str:
    """The ``imgscan catalog stats`` report."""
    lines = [f"{stats['catalog']}: {_plural(stats['images'], 'image')} present, "
             f"{_short_size(stats['file_size'])} in files, "
             f"{_short_size(stats['virtual_size'])} virtual, "
             f"{stats['fingerprinted']} fingerprinted; {_plural(stats['scans'], 'scan')}"]
    last = stats["last_scan"]
    if last is not None:
        if last["finished_at"] is None:
            state = "running or killed"
        elif last["interrupted"]:
            state = f"interrupted {last['finished_at']}"
        else:
            state = f"finished {last['finished_at']}"
        lines.append(
            f"last scan #{last['id']}: started {last['started_at']}, {state}; "
            f"{', '.join(last['roots'])}; profile {last['profile'] or 'none (info only)'}; "
            + ", ".join(f"{k} {last[k] if last[k] is not None else '?'}"
                        for k in ("scanned", "unchanged", "errors", "missing")))
    lines += _counts("status", stats["by_status"])
    lines += _counts("verdict", stats["by_verdict"])
    lines += _counts("format", stats["by_format"])
    lines += _counts("boot mode", stats["by_boot_mode"])
    lines += _counts("error", stats["errors_by_type"])
    if stats["rules"]:
        lines += ["", table(("rule", *STATUSES),
                            ((rule, *(n.get(s, 0) for s in STATUSES))
                             for rule, n in stats["rules"].items()), indent="  ")]
    return "\n".join(lines)


def _outcome(row: Mapping[str, Any]) -> str:
    """The last column of ``list``: the verdict and failed rules, or the error."""
    if row["error_type"] is not None:
        # ImageError messages start with the path, already the first column.
        message = (row["error_message"] or "").removeprefix(f"{row['path']}: ")
        outcome = f"error {row['error_type']}: {message}"
    elif row["verdict"] is not None:
        failed = f" ({row['failed_rules']})" if row["failed_rules"] else ""
        outcome = row["verdict"] + failed
    else:
        outcome = "read (no profile)"
    return f"missing; was {outcome}" if row["status"] == "missing" else outcome


def list_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The ``imgscan catalog list`` table, one image per line, and a count."""
    body = [
        (row["path"],
         (row["format"] or "-") + (f" {row['subformat']}" if row["subformat"] else ""),
         _short_size(row["virtual_size"]), row["boot_mode"] or "-", _outcome(row))
        for row in rows
    ]
    out = table(("path", "format", "virtual size", "boot", "verdict / error"), body)
    return f"{out}\n{_plural(len(body), 'image')}"


def json_lines(objects: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """Write one JSON object per line; return how many."""
    n = 0
    for obj in objects:
        out.write(json.dumps(obj) + "\n")
        n += 1
    return n


def write_csv(rows: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """Write the flat columns as CSV with a header line; return the row count.

    ``out`` must be opened with ``newline=""`` (the csv module's line ends).
    """
    writer = csv.DictWriter(out, fieldnames=FLAT_COLUMNS)
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    return n


def duplicates_text(dups: Mapping[str, Any]) -> str:
    """The ``imgscan catalog duplicates`` report: same-content groups, then pairs."""
    lines: list[str] = []
    groups = dups["groups"]
    lines.append(f"same content: {_plural(len(groups), 'group')}")
    for group in groups:
        lines.append(f"  {group['fingerprint']} ({group['algorithm']}), "
                     f"{_short_size(group['virtual_size'])}, {group['count']} images")
        lines.append(table(("path", "format"),
                           ((m["path"], m["format"]) for m in group["images"]),
                           indent="    "))
    pairs = dups["pairs"]
    lines.append("")
    lines.append(f"sharing at least {dups['min_shared']:.0%} of the smaller image's "
                 f"non-zero chunks: {_plural(len(pairs), 'pair')}")
    if pairs:
        lines.append(table(
            ("shared", "chunks", "image", "image"),
            ((f"{p['fraction']:.1%}", f"{p['shared']}/{min(p['a_chunks'], p['b_chunks'])}",
              p["a"], p["b"]) for p in pairs), indent="  ", right=2))
    return "\n".join(lines)
