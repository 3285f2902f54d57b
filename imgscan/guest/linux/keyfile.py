"""``[Section]`` / ``Key=Value`` files: NetworkManager keyfiles and systemd units.

Sources: GLib's key-file format (nm-settings-keyfile(5): comments start with ``#``
or ``;`` at the line start, blanks around ``=`` ignored, ``\\s \\t \\n \\\\`` escapes
in values) and systemd.syntax(7) (comments ``#`` or ``;``, a trailing backslash
continues the line, a section may repeat, e.g. several ``[Address]``).

Entries come back in file order with their section, so a caller decides between
"last one wins" (GLib) and "every one counts" (``Address=`` in systemd).
"""

from __future__ import annotations

#: GLib's value escapes.
_ESCAPES = {"s": " ", "t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def entries(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` of every ``key=value`` line, in order; lines before
    the first section have section ``""``; other lines are ignored."""
    found: list[tuple[str, str, str]] = []
    section = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pieces = []                 # joined once: a long run of continuations is linear
            while line.endswith("\\") and i < len(lines):
                pieces.append(line[:-1])
                line = lines[i].strip()
                i += 1
            line = " ".join([*pieces, line])
        if line.startswith("["):
            end = line.find("]")
            section = line[1:end] if end > 0 else section
            continue
        key, eq, value = line.partition("=")
        if eq:
            found.append((section, key.strip(), unescape(value.strip())))
    return found


def unescape(value: str) -> str:
    """``value`` with GLib's backslash escapes decoded (an unknown one is kept)."""
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPES:
            out.append(_ESCAPES[value[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def last(found: list[tuple[str, str, str]], section: str, key: str) -> str | None:
    """The last value of ``key`` in ``section``, or None."""
    value = None
    for s, k, v in found:
        if s == section and k == key:
            value = v
    return value
