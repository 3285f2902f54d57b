"""The README's table of what the ``safe`` profile does with each finding, as data.

The table ("What the `safe` profile does with each finding") is the one statement
of the gate's decisions; the tests read it from README.md rather than repeat it, so
that the README, the profile and the tests cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from helpers import TESTS
from imgscan.vocabulary import FAIL, LINUX, PASS, WARN, WINDOWS

README = TESTS.parent / "README.md"
TITLE = "### What the `safe` profile does with each finding"
#: The table's decision columns, in order.
COLUMNS = ("error", "warning", "guest", "info")
#: A cell's decision: a verdict it forces, ``ignore``, or ``-`` (never emitted).
IGNORE, NEVER = "ignore", "-"
DECISIONS = (FAIL, WARN, IGNORE, NEVER)
GUEST_STAGES = (WINDOWS, LINUX)

Table = dict[str, dict[str, str]]


def table() -> Table:
    """finding id -> column -> decision, as the README states them."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(TITLE):]
    rows: Table = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        m = re.match(r"^\| `([a-z-]+)` \|(.*)\|$", line)
        if not m:
            continue
        cells = [c.strip() for c in m.group(2).split("|")]
        decisions = dict(zip(COLUMNS, cells[:len(COLUMNS)], strict=True))
        assert set(decisions.values()) <= set(DECISIONS), line
        rows[m.group(1)] = decisions
    return rows


def column(severity: str, stage: str | None) -> str:
    """The table column of a finding of ``severity`` made by ``stage``."""
    if severity == "warning" and stage in GUEST_STAGES:
        return "guest"
    return severity


def cells(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(finding id, column) of every finding of an ``info`` object."""
    stages = info.get("finding_stages") or []
    return [(f["id"], column(f["severity"], stage))
            for f, stage in zip(info["findings"], stages, strict=True)]


def expected_verdict(info: Mapping[str, Any], rows: Table | None = None) -> str:
    """The verdict the table gives ``info``: its worst decision (no finding: pass)."""
    rows = rows or table()
    decisions = set()
    for fid, col in cells(info):
        decision = rows[fid][col]
        assert decision != NEVER, f"the table says {fid} is never a {col} finding"
        decisions.add(decision)
    return FAIL if FAIL in decisions else (WARN if WARN in decisions else PASS)
