"""The shared words' orderings: the worst status and the verdict, defined once for the
engine, the reports and the catalog."""

from __future__ import annotations

import pytest

from imgscan.vocabulary import STATUSES, status_rank, worst_verdict


def test_status_rank_is_worst_first_and_unknown_words_last() -> None:
    assert sorted(["pass", "bogus", "manual", "fail", "unknown", "warn"], key=status_rank) \
        == ["fail", "warn", "unknown", "manual", "pass", "bogus"]
    assert [status_rank(s) for s in STATUSES] == list(range(len(STATUSES)))


@pytest.mark.parametrize(("statuses", "expected"), [
    ([], "pass"), (["pass", "manual", "unknown"], "pass"), (["pass", "warn"], "warn"),
    (["warn", "fail", "pass"], "fail"), (iter(["manual", "fail"]), "fail")])
def test_worst_verdict(statuses: list[str], expected: str) -> None:
    assert worst_verdict(statuses) == expected
