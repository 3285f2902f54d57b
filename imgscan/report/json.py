"""The ``imgscan check --json`` object (../shared/docs/json-contract.md), one line per image.

With several profiles (``--profile A,B`` or ``all``) the line of an image is one object
holding a check object per profile (``checks``, each without ``info``, which is given
once beside them) and the worst verdict: a contract extension; one profile keeps the
contract's single check object."""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

from ..vocabulary import worst_verdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any


def json_line(obj: Mapping[str, Any]) -> str:
    """One object as a line of JSON Lines (``--json``): the standard library's C
    encoder with its defaults, ASCII only and ``", "`` / ``": "`` between items, as
    every imgscan line has been written. orjson writes an info object 5 times faster
    (3 against 15 us) but has neither those separators nor ``\\u`` escapes (it writes
    UTF-8), so its lines would differ byte for byte (benchmarks/README.md, issue 18)."""
    return json.dumps(obj)


def checks_object(checks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The object of one image judged by several profiles (the contract's extension)."""
    first = checks[0]
    return {
        "schema_version": first["schema_version"],
        "path": first["path"],
        "profiles": [c["profile"] for c in checks],
        "verdict": worst_verdict(c["verdict"] for c in checks),
        "verdicts": {c["profile"]: c["verdict"] for c in checks},
        "checks": list(map(_without_info, checks)),
        "info": first["info"],
    }


def _without_info(check: Mapping[str, Any]) -> dict[str, Any]:
    """A check object without its ``info``, its keys in their order (a copy in C)."""
    out = dict(check)
    out.pop("info", None)
    return out


def each_check(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The check objects in one image's object: ``checks`` of a several-profile object
    (without ``info``), else the object itself (the contract's check object)."""
    checks = obj.get("checks")
    return list(checks) if isinstance(checks, list) else [obj]


def judged_object(checks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The object ``check --json`` prints for one image: the check object for one
    profile, :func:`checks_object` for several."""
    return checks[0] if len(checks) == 1 else checks_object(checks)


def checks_json(checks: Sequence[Mapping[str, Any]]) -> str:
    """One image's checks as a single JSON line: the contract's check object for one
    profile, :func:`checks_object` for several.

    For several, the line is :func:`json.dumps` of :func:`checks_object` byte for byte,
    but each rule result is encoded once: the profiles share the results of the rules
    they configure alike (:class:`imgscan.policy.Judge`), and ``--profile all`` repeats
    43 of its 110 results on a Windows disk, the encoding of which cost more than judging
    them."""
    if len(checks) == 1:
        return json_line(checks[0])
    encoded: dict[int, str] = {}

    def result(r: Mapping[str, Any]) -> str:
        found = encoded.get(id(r))
        if found is None:
            found = encoded[id(r)] = json.dumps(r)
        return found

    def check(c: Mapping[str, Any]) -> str:
        return _object((k, "[" + ", ".join(map(result, v)) + "]" if k == "rules" else
                        _value(v)) for k, v in c.items())

    return _object((k, "[" + ", ".join(map(check, v)) + "]" if k == "checks" else
                    _value(v)) for k, v in checks_object(checks).items())


def _value(v: Any) -> str:
    """``v`` as :func:`json.dumps` writes it; a string by the encoder's own C function
    (a call of ``json.dumps`` sets up an encoder each time)."""
    return encode_basestring_ascii(v) if type(v) is str else json.dumps(v)


def _object(items: Iterable[tuple[str, str]]) -> str:
    """A JSON object of already encoded values, as :func:`json.dumps` writes one."""
    return "{" + ", ".join(f"{encode_basestring_ascii(k)}: {v}" for k, v in items) + "}"
