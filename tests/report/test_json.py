"""The JSON Lines writer of ``--json`` (imgscan/report/json.py): its bytes are the
contract's, so a faster encoder may replace the standard library's only if it writes
the very same bytes (orjson does not: issue 18, benchmarks/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import GOLDEN

import imgscan
from imgscan.policy import checks, load_profiles
from imgscan.report.json import checks_json, checks_object, json_line


@pytest.mark.parametrize("name", ["check-bios.json", "linux-check-lvm.json"])
def test_a_line_is_the_standard_encoders_bytes(name: str) -> None:
    """The golden objects, written as one line: what ``json.dumps`` with its defaults
    writes, byte for byte, and read back the same."""
    obj = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    line = json_line(obj)
    assert line == json.dumps(obj, ensure_ascii=True, separators=(", ", ": "))
    assert "\n" not in line and json.loads(line) == obj


def test_separators_escapes_and_numbers() -> None:
    """ASCII only (``\\u`` escapes), ``", "`` and ``": "``, keys in insertion order,
    integers as integers and floats as Python's shortest repr."""
    obj = {"z": "caf\u00e9 \u2603 \U0001f600", "a": [1, 2.5, 1e-7, 2**64, None, True]}
    assert json_line(obj) == ('{"z": "caf\\u00e9 \\u2603 \\ud83d\\ude00", '
                              '"a": [1, 2.5, 1e-07, 18446744073709551616, null, true]}')


def test_several_profiles_line_is_the_standard_encoders_bytes(
        windows_disks: dict[str, Path]) -> None:
    """``check --json --profile all`` encodes each shared result once and joins the
    pieces itself: the line is still ``json.dumps`` of the whole object, byte for byte;
    also with strings to escape, floats (NaN too) and a result shared by two profiles."""
    with imgscan.open(windows_disks["bios"]) as img:
        info = img.info()
    judged = checks(info, load_profiles("all"))
    assert checks_json(judged) == json.dumps(checks_object(judged))
    shared = {"id": "x", "status": "fail", "message": 'caf\u00e9 "q" \\ \n\u2603',
              "evidence": {"f": {"value": 1.5, "from": None}}, "remedy": None,
              "auto_fixed": False}
    two: list[dict[str, Any]] = [
        {"schema_version": 1, "path": "/p\u00e9", "profile": name, "verdict": "fail",
         "rules": [shared, shared], "registration": {"k": [1e-7, 2**64]},
         "info": {"nan": float("nan"), "s": "\x00"}} for name in ("a", "b")]
    assert checks_json(two) == json.dumps(checks_object(two))
