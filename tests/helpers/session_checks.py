"""Checks of the whole test session, run by pytest's hooks (tests/conftest.py imports them).

Two promises of the README are about the session, not about one test, so no single test can
keep them:

- every skip in CI has a reason on ``tests/skips_allowed.toml``: with ``CI=true`` in the
  environment, each skipped test is listed in the log with its reason, and a skip whose reason
  matches no entry of the allow list fails the run (so a tool missing from ``.ci/run`` cannot
  silently drop an oracle comparison again);
- every cap of imgscan/limits.py has a boundary test that *ran and passed*: when the session
  collected every test file (the full suite) and selected test_limits.py's
  ``test_every_cap_has_a_boundary_test``, a boundary test named by its ``BOUNDARY_TESTS`` /
  ``SCAN_BUDGET_TESTS`` that was skipped, deselected (``-m``, ``--deselect``), failed or
  absent fails the run.

Outcomes are recorded per test function (parameters dropped): a function passed when each of
its cases passed, was skipped when any case was skipped and none failed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Where the allow list of CI skips lives, relative to the rootdir.
ALLOW_LIST = Path("tests") / "skips_allowed.toml"
#: The test that names each cap's boundary test (its module holds the two tables).
CAP_COVERAGE_TEST = "test_every_cap_has_a_boundary_test"


@dataclass(frozen=True)
class Allowed:
    """One entry of the allow list: a skip reason (a regular expression searched in the
    reason pytest reports) and why CI may skip for it."""
    reason: str
    why: str


@dataclass
class Session:
    """What the hooks saw: outcomes per test function, skip reasons per test case."""
    outcomes: dict[str, str] = field(default_factory=dict)
    skips: dict[str, str] = field(default_factory=dict)
    deselected: set[str] = field(default_factory=set)
    collected_files: set[Path] = field(default_factory=set)
    cap_tables: dict[str, str] | None = None
    problems: list[str] = field(default_factory=list)


SESSION = pytest.StashKey[Session]()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def load_allow_list(path: Path) -> list[Allowed]:
    """The allow list; every entry must say why (an entry without a reason is an error)."""
    with path.open("rb") as f:
        entries = tomllib.load(f).get("skip", [])
    allowed = []
    for i, entry in enumerate(entries):
        if not entry.get("reason") or not entry.get("why", "").strip():
            raise pytest.UsageError(f"{path}: skip entry {i} needs both 'reason' and 'why'")
        re.compile(entry["reason"])
        allowed.append(Allowed(entry["reason"], " ".join(entry["why"].split())))
    return allowed


def function_id(nodeid: str) -> str:
    """``file::test[param]`` -> ``file::test``: outcomes are kept per test function."""
    return nodeid.split("[", 1)[0]


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION] = Session()


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Deselected tests were collected: their files count towards the full suite."""
    if items:
        state = items[0].config.stash[SESSION]
        state.deselected.update(function_id(item.nodeid) for item in items)
        state.collected_files.update(Path(str(item.path)).resolve() for item in items)


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[SESSION]
    for item in session.items:
        state.collected_files.add(Path(str(item.path)).resolve())
        if isinstance(item, pytest.Function) and item.originalname == CAP_COVERAGE_TEST:
            module = item.module
            state.cap_tables = {**module.BOUNDARY_TESTS, **module.SCAN_BUDGET_TESTS}


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[
        None, pytest.CollectReport, pytest.CollectReport]:
    """A module skipped as it is collected (``pytest.importorskip``, ``allow_module_level``)
    is a skip like any other, and its file was collected."""
    report = yield
    if report.skipped:
        state = collector.config.stash[SESSION]
        state.skips[report.nodeid] = skip_reason(report)
        state.collected_files.add(Path(str(collector.path)).resolve())
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                        pytest.TestReport]:
    report = yield
    state = item.config.stash[SESSION]
    name = function_id(report.nodeid)
    if report.failed:
        state.outcomes[name] = "failed"
    elif report.skipped:
        state.skips[report.nodeid] = skip_reason(report)
        if state.outcomes.get(name) != "failed":
            state.outcomes[name] = "skipped"
    else:
        state.outcomes.setdefault(name, "passed")
    return report


def full_suite(session: pytest.Session, state: Session) -> bool:
    """Every test file under tests/ was collected (whatever was then deselected): a run of a
    few files does not answer for the caps tested elsewhere."""
    tests = Path(str(session.config.rootpath)) / "tests"
    every = {p.resolve() for p in tests.rglob("test_*.py")}
    return bool(every) and every <= state.collected_files


def check_skips(state: Session, allowed: list[Allowed]) -> list[str]:
    problems = []
    for nodeid, reason in sorted(state.skips.items()):
        if not any(re.search(entry.reason, reason) for entry in allowed):
            problems.append(f"{nodeid}: skipped ({reason}), a reason not on the allow list")
    return problems


def check_caps(state: Session) -> list[str]:
    """Each boundary test (``file::test`` relative to tests/, or a test of test_limits.py)
    passed in this session."""
    problems = []
    for cap, test in sorted((state.cap_tables or {}).items()):
        nodeid = "tests/" + (test if "::" in test else f"test_limits.py::{test}")
        outcome = state.outcomes.get(nodeid)
        if outcome == "passed":
            continue
        if nodeid in state.deselected:
            outcome = "deselected"
        problems.append(f"{cap}: its boundary test {test}: {outcome or 'not run'}")
    return problems


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash[SESSION]
    root = Path(str(session.config.rootpath))
    if in_ci():
        state.problems += check_skips(state, load_allow_list(root / ALLOW_LIST))
    if state.cap_tables is not None and full_suite(session, state):
        state.problems += check_caps(state)
    if state.problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = terminalreporter.config.stash[SESSION]
    if in_ci():
        root = Path(str(terminalreporter.config.rootpath))
        allowed = load_allow_list(root / ALLOW_LIST)
        terminalreporter.section(f"skips of this run ({len(state.skips)}), against {ALLOW_LIST}")
        for nodeid, reason in sorted(state.skips.items()):
            why = next((a.why for a in allowed if re.search(a.reason, reason)), None)
            verdict = f"allowed: {why}" if why else "NOT ALLOWED"
            terminalreporter.write_line(f"{nodeid}: {reason} -- {verdict}")
    if state.problems:
        terminalreporter.section("session checks failed", red=True)
        for problem in state.problems:
            terminalreporter.write_line(problem, red=True)
