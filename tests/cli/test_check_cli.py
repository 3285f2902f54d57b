"""``imgscan check``, ``profiles`` and ``demo``: reports, golden files, exit codes.

Golden files live in tests/golden/ with image paths replaced by their file
name; regenerate them with ``IMGSCAN_UPDATE_GOLDEN=1 pytest tests/cli/test_check_cli.py``
and review the diff. The Windows disks are the committed fixtures of
tests/fixtures/windows (see tests/policy/test_policy.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from helpers import golden, run_cli

from imgscan.cli import main
from imgscan.policy import builtin_profiles, load_profile, load_profiles

HERE = Path(__file__).resolve().parent
SAMPLE = Path(str(resources.files("imgscan") / "samples" / "demo.qcow2"))


@pytest.fixture(scope="session")
def disks(windows_disks: dict[str, Path]) -> dict[str, Path]:
    return {name: windows_disks[name] for name in ("bios", "nosysres")}


def normalise(text: str, *paths: Path) -> str:
    for path in paths:
        text = text.replace(str(path), path.name)
    return text


def test_demo_report_is_golden() -> None:
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stderr  # the demo shows a failing rule, it does not gate
    golden("demo.txt", normalise(proc.stdout, SAMPLE))
    assert "bios-boot              fail" in proc.stdout
    assert "imgscan check IMAGE" in proc.stdout


def test_check_json_is_golden(disks: dict[str, Path]) -> None:
    proc = run_cli("check", "--json", str(disks["bios"]))
    assert proc.returncode == 1, proc.stderr
    obj: dict[str, Any] = json.loads(proc.stdout)
    assert set(obj) >= {"schema_version", "path", "profile", "verdict", "rules", "info"}
    assert obj["path"] == obj["info"]["path"] == str(disks["bios"])
    # A raw file's allocated size follows the host filesystem's holes: not golden.
    assert obj["info"].pop("allocated_size") <= disks["bios"].stat().st_size
    golden("check-bios.json",
           normalise(json.dumps(obj, indent=1, sort_keys=True), disks["bios"]) + "\n")


def test_junit_is_golden_and_well_formed(disks: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.qcow2"
    broken.write_bytes(b"QFI\xfb" + b"\0" * 60)  # a qcow2 magic and a truncated header
    out = tmp_path / "report.xml"
    proc = run_cli("check", "--junit", str(out), str(disks["bios"]), str(disks["nosysres"]),
                   str(broken))
    assert proc.returncode == 2, proc.stderr  # an unreadable image wins over failed rules
    xml = out.read_text()
    golden("check.junit.xml", normalise(xml, disks["bios"], disks["nosysres"], broken))
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(disks["bios"]), str(disks["nosysres"]),
                                               str(broken)]
    checks = [json.loads(run_cli("check", "--json", str(disks[n])).stdout)
              for n in ("bios", "nosysres")]
    for suite, check in zip(suites, checks, strict=False):
        cases = suite.findall("testcase")
        statuses = [r["status"] for r in check["rules"]]
        assert [c.get("name") for c in cases] == [r["id"] for r in check["rules"]]
        assert int(suite.get("tests", "")) == len(cases) == len(statuses)
        assert int(suite.get("failures", "")) == statuses.count("fail") == \
            sum(c.find("failure") is not None for c in cases)
        assert int(suite.get("skipped", "")) == statuses.count("unknown") + \
            statuses.count("manual") == sum(c.find("skipped") is not None for c in cases)
        assert sum(c.find("system-out") is not None for c in cases) == statuses.count("warn")
    assert suites[2].get("errors") == "1"
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key, "")) == sum(int(s.get(key, "")) for s in suites)


def test_exit_codes(disks: dict[str, Path], tmp_path: Path) -> None:
    assert run_cli("check", str(disks["bios"])).returncode == 1
    assert run_cli("check", "--profile", "safe", str(disks["bios"])).returncode == 0
    assert run_cli("check", str(tmp_path / "missing.img")).returncode == 2
    bad = run_cli("check", "--profile", "nope", str(disks["bios"]))
    assert bad.returncode == 2
    assert "no built-in profile 'nope'" in bad.stderr
    assert run_cli("check").returncode == 2  # no image: bad usage
    mine = tmp_path / "relaxed.toml"
    mine.write_text('extends = "huawei-ims-windows"\n[rules.bios-boot]\nenabled = false\n')
    proc = run_cli("check", "--profile", str(mine), str(disks["bios"]))
    assert proc.returncode == 0, proc.stdout
    assert "verdict: warn" in proc.stdout
    typo = tmp_path / "typo.toml"
    typo.write_text('extends = "huawei-ims-windows"\n[rules.bios-bot]\n')
    proc = run_cli("check", "--profile", str(typo), str(disks["bios"]))
    assert proc.returncode == 2
    assert "unknown rule 'bios-bot'" in proc.stderr


def test_text_report_lines(disks: dict[str, Path]) -> None:
    proc = run_cli("check", "--storage-class", "STANDARD", str(disks["nosysres"]))
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{disks['nosysres']}: raw, 34 MiB")
    # The default profile judges the OS it finds: on a Windows disk, the Windows rules.
    profile = load_profile("huawei-ims-windows")
    rule_lines = [ln for ln in lines if ln.startswith("  ") and not ln.startswith("   ")]
    assert [ln.split()[0] for ln in rule_lines] == list(profile.rules)
    column = {ln.index(ln.split()[1]) for ln in rule_lines}
    assert len(column) == 1  # the status column is aligned
    assert "storage-class          pass" in proc.stdout
    i = next(n for n, ln in enumerate(lines) if ln.split()[0] == "rdp-enabled")
    assert lines[i + 1].strip().startswith("remedy: reg add")
    assert lines[-1].startswith("verdict: fail (")


def test_profiles_lists_every_rule() -> None:
    proc = run_cli("profiles")
    assert proc.returncode == 0
    for name in builtin_profiles():
        assert name in proc.stdout
        profile = load_profile(name)
        assert profile.source and f"  source: {profile.source}\n" in proc.stdout, name
        for rule_id in profile.rules:
            assert f"  {rule_id} " in proc.stdout


def test_info_does_not_import_the_policy() -> None:
    code = (
        "import sys\n"
        "from imgscan.cli import main\n"
        f"main(['info', {str(SAMPLE)!r}])\n"
        "assert 'imgscan.policy' not in sys.modules, 'policy imported on the info path'\n"
        "assert 'tomllib' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=HERE)
    assert proc.returncode == 0, proc.stderr


def test_main_check_returns_exit_code(disks: dict[str, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "--profile", "safe", str(disks["bios"])]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "pass"


def test_profile_all_report_is_golden(disks: dict[str, Path]) -> None:
    """One report per image: the rule-by-cloud matrix, then per cloud what to change and
    the registration parameters; the image is read once for every profile."""
    proc = run_cli("check", "--profile", "all", str(disks["bios"]))
    assert proc.returncode == 1, proc.stderr
    golden("check-all-bios.txt", normalise(proc.stdout, disks["bios"]))
    assert proc.stdout.count(str(disks["bios"])) == 1


def test_profile_all_json_is_golden(disks: dict[str, Path]) -> None:
    """The ``--json`` object of ``--profile all``: a check object per profile, the
    verdicts, and ``info`` once (volatile fields as in ``check-bios.json``)."""
    proc = run_cli("check", "--json", "--profile", "all", str(disks["bios"]))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("\n") == 1  # one line per image
    obj: dict[str, Any] = json.loads(proc.stdout)
    # A raw file's allocated size follows the host filesystem's holes: not golden.
    assert obj["info"].pop("allocated_size") <= disks["bios"].stat().st_size
    golden("check-all-bios.json",
           normalise(json.dumps(obj, indent=1, sort_keys=True), disks["bios"]) + "\n")


def test_profile_all_json_has_one_check_per_profile(disks: dict[str, Path]) -> None:
    proc = run_cli("check", "--json", "--profile", "all", str(disks["bios"]))
    obj: dict[str, Any] = json.loads(proc.stdout)
    names = [p.name for p in load_profiles("all")]
    assert obj["profiles"] == names == [c["profile"] for c in obj["checks"]]
    assert obj["verdicts"] == {c["profile"]: c["verdict"] for c in obj["checks"]}
    assert obj["verdict"] == "fail" and obj["info"]["path"] == str(disks["bios"])
    single = json.loads(run_cli("check", "--json", "--profile", "azure",
                                str(disks["bios"])).stdout)
    azure = obj["checks"][names.index("azure")]
    # each check object is the one-profile object without the info given once beside it
    assert azure == {k: v for k, v in single.items() if k != "info"}
    assert set(single) >= {"schema_version", "path", "profile", "verdict", "rules", "info",
                           "registration"}


def test_junit_with_several_profiles_names_each_suite(disks: dict[str, Path],
                                                      tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    proc = run_cli("check", "--profile", "azure,gcp", "--junit", str(out), str(disks["bios"]))
    assert proc.returncode == 1, proc.stderr
    suites = ET.fromstring(out.read_text()).findall("testsuite")
    assert [s.get("name") for s in suites] == [f"{disks['bios']} [azure]",
                                               f"{disks['bios']} [gcp]"]
    info = json.loads(run_cli("check", "--json", str(disks["bios"])).stdout)["info"]
    for suite, name in zip(suites, ("azure", "gcp"), strict=True):
        cases = suite.findall("testcase")
        assert {c.get("classname") for c in cases} == {f"imgscan.{name}"}
        assert [c.get("name") for c in cases] == \
            [r.id for r in load_profile(name).applicable(info)]
