"""The session's checks (tests/helpers/session_checks.py), run in a child pytest on a small
project of their own: CI's skips against the allow list, and the caps' boundary tests having
passed. The real allow list is read too, so an entry without a reason fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS
from helpers.session_checks import ALLOW_LIST, load_allow_list

CONFTEST = """\
from helpers.session_checks import pytest_collection_finish as pytest_collection_finish
from helpers.session_checks import pytest_configure as pytest_configure
from helpers.session_checks import pytest_deselected as pytest_deselected
from helpers.session_checks import pytest_make_collect_report as pytest_make_collect_report
from helpers.session_checks import pytest_runtest_makereport as pytest_runtest_makereport
from helpers.session_checks import pytest_sessionfinish as pytest_sessionfinish
from helpers.session_checks import pytest_terminal_summary as pytest_terminal_summary
"""

SKIPS = """\
import pytest

def test_runs():
    pass

def test_allowed():
    pytest.skip("the kernel has no md driver here")

@pytest.mark.parametrize("n", [1, 2])
def test_not_allowed(n):
    if n == 2:
        pytest.skip("frobnicate is not installed")
"""

#: A module skipped as it is collected.
SKIPPED_MODULE = """\
import pytest

pytest.importorskip("no_such_module_anywhere", reason="frobnicator bindings absent")

def test_never():
    pass
"""

ALLOWED = """\
[[skip]]
reason = "no md driver"
why = "no md in this kernel"
"""

LIMITS = """\
import pytest

BOUNDARY_TESTS = {"CAP_A": "test_a", "CAP_B": "more/test_b.py::test_b"}
SCAN_BUDGET_TESTS = {"CAP_C": "test_c"}

def test_a():
    pass

@pytest.mark.slow
def test_c():
    pass

def test_every_cap_has_a_boundary_test():
    pass
"""


def project(root: Path, files: dict[str, str]) -> Path:
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests\nmarkers = slow\n")
    for name, text in {"tests/conftest.py": CONFTEST, **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def child_pytest(root: Path, *args: str, ci: bool) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if ci:
        env["CI"] = "true"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-p", "no:benchmark", "-q", *args], cwd=root, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def skips(tmp_path: Path) -> Path:
    return project(tmp_path, {"tests/test_skips.py": SKIPS,
                              "tests/skips_allowed.toml": ALLOWED})


def test_ci_fails_on_a_module_skipped_at_collection(skips: Path) -> None:
    (skips / "tests" / "test_module.py").write_text(SKIPPED_MODULE)
    status, log = child_pytest(skips, "-k", "not test_not_allowed", ci=True)
    assert status == pytest.ExitCode.TESTS_FAILED, log
    assert "tests/test_module.py: frobnicator bindings absent -- NOT ALLOWED" in log, log


def test_ci_lists_every_skip_and_fails_on_one_not_allowed(skips: Path) -> None:
    status, log = child_pytest(skips, ci=True)
    assert status == pytest.ExitCode.TESTS_FAILED, log
    assert "tests/test_skips.py::test_allowed: the kernel has no md driver here -- " \
           "allowed: no md in this kernel" in log
    assert "tests/test_skips.py::test_not_allowed[2]: frobnicate is not installed -- " \
           "NOT ALLOWED" in log
    assert "session checks failed" in log


def test_ci_passes_when_every_skip_is_allowed(skips: Path) -> None:
    status, log = child_pytest(skips, "-k", "not test_not_allowed", ci=True)
    assert status == pytest.ExitCode.OK, log
    assert "skips of this run (1)" in log and "allowed: no md in this kernel" in log


def test_outside_ci_skips_are_reported_by_pytest_alone(skips: Path) -> None:
    status, log = child_pytest(skips, ci=False)
    assert status == pytest.ExitCode.OK, log
    assert "skips of this run" not in log


def test_an_allow_list_entry_needs_a_reason(skips: Path) -> None:
    (skips / "tests" / "skips_allowed.toml").write_text('[[skip]]\nreason = "x"\n')
    status, log = child_pytest(skips, ci=True)
    assert status != pytest.ExitCode.OK and "needs both 'reason' and 'why'" in log, log


def test_the_real_allow_list_gives_a_reason_for_each_entry() -> None:
    allowed = load_allow_list(TESTS.parent / ALLOW_LIST)
    assert allowed and all(len(entry.why) > 40 for entry in allowed)


@pytest.fixture
def caps(tmp_path: Path) -> Path:
    return project(tmp_path, {"tests/test_limits.py": LIMITS,
                              "tests/more/test_b.py": "def test_b():\n    pass\n"})


def test_caps_pass_when_each_boundary_test_passed(caps: Path) -> None:
    status, log = child_pytest(caps, ci=False)
    assert status == pytest.ExitCode.OK, log


@pytest.mark.parametrize(("args", "b_body", "problem"), [
    ((), "import pytest\n    pytest.skip('no tool')", "CAP_B: its boundary test "
                                                        "more/test_b.py::test_b: skipped"),
    (("-m", "not slow"), "pass", "CAP_C: its boundary test test_c: deselected"),
    (("--deselect", "tests/more/test_b.py::test_b"), "pass",
     "CAP_B: its boundary test more/test_b.py::test_b: deselected"),
])
def test_caps_fail_when_a_boundary_test_did_not_pass(caps: Path, args: tuple[str, ...],
                                                     b_body: str, problem: str) -> None:
    (caps / "tests" / "more" / "test_b.py").write_text(
        "def test_b():\n    " + b_body + "\n")
    status, log = child_pytest(caps, *args, ci=False)
    assert status == pytest.ExitCode.TESTS_FAILED, log
    assert problem in log, log


def test_a_module_skipped_at_collection_still_counts_as_collected(caps: Path) -> None:
    """Else a missing optional module would switch the caps' check off for the run."""
    (caps / "tests" / "test_module.py").write_text(SKIPPED_MODULE)
    (caps / "tests" / "more" / "test_b.py").write_text("import pytest\n\n"
                                                        "def test_b():\n    pytest.skip('x')\n")
    status, log = child_pytest(caps, ci=False)
    assert status == pytest.ExitCode.TESTS_FAILED, log
    assert "CAP_B: its boundary test more/test_b.py::test_b: skipped" in log, log


def test_caps_are_not_judged_by_a_partial_run(caps: Path) -> None:
    """A run of some files only cannot say whether the caps tested elsewhere passed."""
    (caps / "tests" / "more" / "test_b.py").write_text("import pytest\n\n"
                                                        "def test_b():\n    pytest.skip('x')\n")
    status, log = child_pytest(caps, "tests/test_limits.py", ci=False)
    assert status == pytest.ExitCode.OK, log
