"""The core's JSON encoder (imgscan/_core/json_encoder.pyx) against its oracle, the
standard library's ``json.dumps`` with its defaults: the same bytes for every object of
the types it writes, and :class:`Unsupported` (the caller then uses the standard
library's) for any other, so that ``--json`` output never changes (issue 18)."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from helpers import GOLDEN
from hypothesis import given, settings
from hypothesis import strategies as st

import imgscan
from imgscan._core.json_encoder import MAX_DEPTH, Unsupported, dumps
from imgscan.report import json as report_json

#: Text of every kind the escaping tells apart: printable ASCII, the quote and the
#: backslash, controls, DEL, Latin-1, the rest of the BMP, lone surrogates (a path
#: decoded with surrogateescape) and astral characters (a surrogate pair).
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
SCALARS = (st.none() | st.booleans() | TEXT
           | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True))
VALUES = st.recursive(
    SCALARS,
    lambda inner: (st.lists(inner, max_size=6)
                   | st.lists(inner, max_size=6).map(tuple)
                   | st.dictionaries(TEXT, inner, max_size=6)),
    max_leaves=60)


@settings(max_examples=600, deadline=None)
@given(VALUES)
def test_the_standard_encoders_bytes(obj: Any) -> None:
    assert dumps(obj) == json.dumps(obj)


@pytest.mark.parametrize("value", [
    0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**40, True, False, None,
    0.0, -0.0, 0.1, 1e-7, 1e16, 1e300, 5e-324, -1.5, math.nan, math.inf, -math.inf,
    "", "\"\\/\b\f\n\r\t\x00\x1f\x7f\x80\xff", "\u2028\ud800\udcff\uffff",
    "\U0001f600\U0010ffff", "a" * 10000 + "\u00e9", [], (), {}, [[[]]], {"": {}},
])
def test_edge_values(value: Any) -> None:
    """Integers at and past 64 bits, floats at their extremes and the ones JSON lacks
    (``NaN``, ``Infinity``), every escape form, empty containers."""
    assert dumps(value) == json.dumps(value)
    assert dumps({"k": value, "l": [value, value]}) == json.dumps({"k": value, "l": [value, value]})


def test_a_dict_with_deleted_keys() -> None:
    """Separators follow the items written, not their slots (a dict with holes)."""
    obj = {str(i): i for i in range(20)}
    for i in range(0, 20, 3):
        del obj[str(i)]
    assert dumps(obj) == json.dumps(obj)


@pytest.mark.parametrize("obj", [
    {1: "an int key"}, {None: 1}, {"a": {("t",): 1}},
    OrderedDict(a=1), [OrderedDict()], {"s": type("S", (str,), {})("x")},
    {"i": type("I", (int,), {})(3)}, {"f": type("F", (float,), {})(1.5)},
    {"set": {1}}, {"bytes": b"x"}, [object()],
])
def test_what_it_does_not_write(obj: Any) -> None:
    """Any type beyond the contract objects', a subclass included: Unsupported."""
    with pytest.raises(Unsupported):
        dumps(obj)


def test_deep_nesting_is_left_to_the_standard_encoder() -> None:
    """Containers MAX_DEPTH deep are written here, one more is Unsupported (and the
    writer's fallback writes it)."""
    deep: list[Any] = []
    for _ in range(MAX_DEPTH - 2):      # MAX_DEPTH - 1 lists, in a dict
        deep = [deep]
    assert dumps({"d": deep}) == json.dumps({"d": deep})
    with pytest.raises(Unsupported):
        dumps([{"d": deep}])
    assert report_json.dumps([{"d": deep}]) == json.dumps([{"d": deep}])


@pytest.mark.parametrize("obj", [
    {1: "x", 2.5: [True], None: None, False: 0}, OrderedDict(b=1, a=[2]),
    {"s": type("S", (str,), {})("x\u00e9")},
])
def test_the_writer_falls_back_to_the_standard_encoder(obj: Any) -> None:
    """imgscan's ``dumps``: whatever the core's encoder does not write, the standard
    library's does, its bytes and its errors (a type JSON has no form for)."""
    assert report_json.dumps(obj) == json.dumps(obj)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        report_json.dumps({"x": {1}})


@pytest.mark.parametrize("name", ["check-bios.json", "check-all-bios.json",
                                  "linux-check-lvm.json"])
def test_golden_objects(name: str) -> None:
    obj = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    assert dumps(obj) == json.dumps(obj)


def test_info_objects_of_real_disks(windows_disks: dict[str, Path]) -> None:
    """The objects it is for: the info objects of the Windows fixture disks (NTFS,
    registry facts, findings, floats in the evidence)."""
    for path in windows_disks.values():
        with imgscan.open(path) as img:
            info = img.info()
        assert dumps(info) == json.dumps(info)
