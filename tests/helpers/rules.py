"""The one check of a rule's passing and failing fixtures, shared by the Windows and the
Linux rule tables of tests/policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from imgscan.policy.rules import Outcome

Info = dict[str, Any]


def judge_pair(outcome: Callable[[Info, str], Outcome], infos: Mapping[str, Info],
               rule_id: str, good: str | None, bad: str | None) -> None:
    """Rule ``rule_id`` passes on fixture ``good`` and fails, with a remedy, on ``bad``
    (either may be None: no fixture has that side)."""
    if good:
        result = outcome(infos[good], rule_id)
        assert result.status == "pass", (good, result)
    if bad:
        result = outcome(infos[bad], rule_id)
        assert result.status == "fail", (bad, result)
        assert result.remedy, (bad, rule_id)
