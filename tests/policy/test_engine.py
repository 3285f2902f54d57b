"""Several profiles judged on one image (``check --profile all``): each distinct rule and
parameters runs once per image (imgscan.policy.engine.Judge), and every profile's check
object is the one it gets judged alone.

The images are the committed Windows fixture disks (tests/fixtures/windows, built by
make_windows.sh) and the Debian 12 ext4 disk built by helpers/linux_images.py; the
golden reports of tests/cli hold the text of ``--profile all`` byte for byte.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import imgscan
from imgscan import cli
from imgscan.policy import check, checks, load_profile, load_profiles
from imgscan.policy.framework import Facts, Outcome
from imgscan.policy.rules import RULES
from imgscan.report.json import checks_json

#: Every list of profiles a user can give that judges one rule in several of them.
SPECS = ("all", "huawei-ims,huawei-ims-windows,huawei-ims-linux,safe")


def info_of(path: Path) -> dict[str, Any]:
    with imgscan.open(path) as img:
        return img.info()


@pytest.fixture(scope="module")
def paths(windows_disks: dict[str, Path], linux_disks: dict[str, Path]) -> list[Path]:
    return [windows_disks["bios"], windows_disks["uefi"], windows_disks["bitlocker"],
            linux_disks["ext4-bios"]]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """Every rule function wrapped to count its calls by rule id and parameters."""
    counted: Counter[tuple[str, str]] = Counter()
    for rule_id, rule in RULES.items():
        def counting(f: Facts, _id: str = rule_id, _func: Any = rule.func,
                     **params: Any) -> Outcome:
            counted[_id, repr(sorted(params.items()))] += 1
            result: Outcome = _func(f, **params)
            return result
        monkeypatch.setattr(rule, "func", counting)
    return counted


def shared_rules(spec: str) -> set[tuple[str, str]]:
    """The (rule, parameters) that more than one profile of ``spec`` configures."""
    named = Counter((c.id, repr(sorted(c.params.items())))
                    for p in load_profiles(spec) for c in p.rules.values())
    return {key for key, n in named.items() if n > 1}


def test_profile_all_judges_a_shared_rule_once_per_image(
        paths: list[Path], calls: Counter[tuple[str, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """``imgscan check --profile all``: every rule that several clouds configure alike
    (self-contained and system-disk-present are in all seven) runs once for an image,
    not once for each profile; given four images, once for each of them."""
    shared = shared_rules("all")
    assert ("self-contained", "[]") in shared and len(shared) > 30
    for path in paths:
        calls.clear()
        cli.main(["check", "--profile", "all", str(path)])
        assert capsys.readouterr().out.count(", 7 profiles\n") == 1
        assert len(shared & set(calls)) > 15, path.name
        assert set(calls.values()) == {1}, path.name
    calls.clear()
    cli.main(["check", "--profile", "all", *map(str, paths)])
    assert capsys.readouterr().out.count(", 7 profiles\n") == len(paths)
    assert calls["self-contained", "[]"] == len(paths)
    assert max(calls.values()) == len(paths)


@pytest.mark.parametrize("spec", SPECS)
def test_each_check_object_is_the_profile_judged_alone(paths: list[Path], spec: str) -> None:
    """The shared judging changes no byte of the JSON: every profile's object is the
    one :func:`check` makes for it alone, with and without ``--storage-class``."""
    profiles = load_profiles(spec)
    for path in paths:
        info = info_of(path)
        for storage_class in (None, "STANDARD"):
            alone = [check(info, p, storage_class) for p in profiles]
            assert checks_json(checks(info, profiles, storage_class)) == checks_json(alone)


def test_a_severity_is_each_profile_own(tmp_path: Path, windows_disks: dict[str, Path],
                                        calls: Counter[tuple[str, str]]) -> None:
    """Two profiles naming one rule alike but for its severity: one judgement, each
    reported with its profile's severity."""
    lenient = tmp_path / "lenient.toml"
    lenient.write_text('extends = "huawei-ims-windows"\n[rules.bios-boot]\nseverity = "warn"\n')
    strict, soft = load_profile("huawei-ims-windows"), load_profile(str(lenient))
    results = [{r["id"]: r for r in c["rules"]}["bios-boot"]
               for c in checks(info_of(windows_disks["bios"]), [strict, soft])]
    assert [r["status"] for r in results] == ["fail", "warn"]
    assert results[0]["message"] == results[1]["message"]
    assert calls["bios-boot", "[]"] == 1


def test_a_rule_that_crashes_fails_in_every_profile(
        tmp_path: Path, windows_disks: dict[str, Path],
        calls: Counter[tuple[str, str]]) -> None:
    """A broken rule is judged once and is a ``fail`` wherever it is named, whatever the
    profile's severity: never ``safe``, never a warning."""
    info = info_of(windows_disks["bios"])
    info["windows"] = {**info["windows"], "drivers": 5}  # derived: a malformed drivers fact
    lenient = tmp_path / "lenient.toml"
    lenient.write_text('extends = "huawei-ims"\n[rules.guest-os-driver]\nseverity = "warn"\n')
    profiles = [*load_profiles("huawei-ims,otc-ims"), load_profile(str(lenient))]
    results = [{r["id"]: r for r in c["rules"]}["guest-os-driver"]
               for c in checks(info, profiles)]
    assert [r["status"] for r in results] == ["fail"] * 3
    assert all("could not be evaluated" in r["message"] for r in results)
    assert sum(n for (rule_id, _), n in calls.items() if rule_id == "guest-os-driver") == 2
