"""The YAML subset of netplan and cloud.cfg, compared with PyYAML's BaseLoader (every
scalar a string, as here) on real and hand-written documents."""

from __future__ import annotations

import pytest
from helpers import linux_configs as real

from imgscan.guest.linux.yamlsubset import load, truthy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.yamlsubset import Node

yaml = pytest.importorskip("yaml")

DOCS = [
    real.UBUNTU_NETPLAN_CLOUD, real.UBUNTU_NETPLAN_STATIC, real.UBUNTU_CLOUD_90_DPKG,
    # a sequence at its key's indentation, quoted keys and values, comments
    "---\na:\n- x\n- 'y # not a comment'\nb: \"q\\\"t\" # comment\n'c d': [1, \"2, 3\"]\n"
    "e: {f: g, h: 'i'}\n",
    # sequences of mappings, nested, and an empty value
    "routes:\n  - to: default\n    via: 10.0.0.1\n  -   to: 10.1.0.0/16\n      via: 10.0.0.2\n"
    "after: 1\n",
    # a flow sequence over several lines
    "datasource_list: [ NoCloud,\n   ConfigDrive,\n   None ]\nnext: x\n",
]


@pytest.mark.parametrize("text", DOCS)
def test_agrees_with_pyyaml(text: str) -> None:
    assert load(text) == yaml.load(text, Loader=yaml.BaseLoader)


def test_what_it_leaves_as_text() -> None:
    doc = load("a: |\n  line: 1\n  more\nb: {c: [1, 2]}\nd: &anchor x\ne: *anchor\nf:\n")
    assert doc == {"a": "", "b": {"c": "[1, 2]"}, "d": "x", "e": "*anchor", "f": None}


def test_hostile_shapes_stay_bounded() -> None:
    assert load("[" * 100_000) == {}
    deep = "".join(" " * i + f"k{i}:\n" for i in range(5000))
    node = load(deep)
    for i in range(4999):
        child = node[f"k{i}"]
        assert isinstance(child, dict)
        node = child
    assert load("\x00\xff: [\n: :\n- - -\n\t\tx: y\n") is not None


def test_truthy() -> None:
    values: list[Node] = ["true", "Yes", "on", "false", "no", None, ["true"]]
    assert [truthy(v) for v in values] == [True, True, True, False, False, False, False]
