"""The ``imgscan check --json`` object (../shared/docs/json-contract.md), one line per image.

With several profiles (``--profile A,B`` or ``all``) the line of an image is one object
holding a check object per profile (``checks``, each without ``info``, which is given
once beside them) and the worst verdict: a contract extension; one profile keeps the
contract's single check object."""

from __future__ import annotations

from .._core.json_encoder import Unsupported
from .._core.json_encoder import dumps as native_dumps
from ..vocabulary import worst_verdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any


def _not_serialisable(obj: object) -> object:
    """What :meth:`json.JSONEncoder.default` does, in its words."""
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _made_encoder() -> tuple[Callable[[Any], str], Callable[[str], str]]:
    """:func:`json.dumps` with its defaults, made once, and the string encoder it uses:
    the standard library's C encoder (``_json``) with the very arguments ``json.dumps``
    gives it (ASCII only, ``", "`` / ``": "``, keys in insertion order, ``NaN``
    allowed), but set up once per process rather than at every call (about 4 us;
    ``check --json --profile all`` encodes some 70 rule results apart:
    :func:`checks_json`). Without the circular-reference check: the objects written are
    trees (a result shared by several profiles is a repeated branch, not a cycle).

    Taken from ``_json`` itself, not through the json package, whose decoder and
    encoder modules import re (and with it enum and functools) for their pure-Python
    parts: a fifth of the instructions of ``imgscan info --json`` of one image
    (issue 18). The json package's own functions when the C module is missing."""
    try:
        from _json import encode_basestring_ascii, make_encoder
    except ImportError:
        import json
        from json.encoder import encode_basestring_ascii as ascii_string
        return json.dumps, ascii_string
    # (not typed: the accelerator module has no stubs)
    encode: Callable[[Any, int], list[str]] = make_encoder(
        None, _not_serialisable, encode_basestring_ascii, None, ": ", ", ", False, False,
        True)
    return (lambda obj: "".join(encode(obj, 0))), encode_basestring_ascii


#: ``json.dumps(obj)`` by the standard library's C encoder, and the JSON string of a
#: ``str`` (:func:`_made_encoder`).
std_dumps, encode_basestring_ascii = _made_encoder()


def dumps(obj: Any) -> str:
    """``json.dumps(obj)`` byte for byte: the core's encoder, six times as fast on a
    contract object (1 to 2 against 6 to 12 us for a small image's info object:
    :mod:`imgscan._core.json_encoder`), or the standard library's for an object holding
    a type the core's does not write (its output and errors then stand)."""
    try:
        return native_dumps(obj)
    except Unsupported:
        return std_dumps(obj)


def json_line(obj: Mapping[str, Any]) -> str:
    """One object as a line of JSON Lines (``--json``): :func:`json.dumps` with its
    defaults byte for byte (:func:`dumps`), ASCII only and ``", "`` / ``": "`` between
    items, as every imgscan line has been written. orjson writes an info object 5 times
    faster than the standard library (3 against 15 us) but has neither those separators
    nor ``\\u`` escapes (it writes UTF-8), so its lines would differ byte for byte
    (benchmarks/README.md, issue 18); the core's encoder keeps them."""
    return dumps(obj)


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
    them. The pieces go into one list joined once at the end: the 60 KB line of ``all``
    was copied a dozen times by nested concatenations (a third of its encoding's
    instructions)."""
    if len(checks) == 1:
        return json_line(checks[0])
    encoded: dict[int, str] = {}
    out: list[str] = []

    def result(r: Mapping[str, Any]) -> str:
        found = encoded.get(id(r))
        if found is None:
            found = encoded[id(r)] = dumps(r)
        return found

    def rules(results: Sequence[Mapping[str, Any]]) -> None:
        out.append(", ".join(map(result, results)))

    def each_check(objects: Sequence[Mapping[str, Any]]) -> None:
        for n, c in enumerate(objects):
            if n:
                out.append(", ")
            _put_object(out, c, "rules", rules)

    _put_object(out, checks_object(checks), "checks", each_check)
    return "".join(out)


def _put_object(out: list[str], obj: Mapping[str, Any], key: str,
                put_list: Callable[[Any], None]) -> None:
    """``obj`` as :func:`json.dumps` writes it, appended to ``out`` in pieces; the list
    under ``key`` by ``put_list`` (which appends its items)."""
    sep = "{"
    for k, v in obj.items():
        if k == key:
            out.append(f"{sep}{encode_basestring_ascii(k)}: [")
            put_list(v)
            out.append("]")
        else:
            # a string by the encoder's own C function (no encoder call)
            out.append(f"{sep}{encode_basestring_ascii(k)}: "
                       f"{encode_basestring_ascii(v) if type(v) is str else dumps(v)}")
        sep = ", "
    out.append("}")
