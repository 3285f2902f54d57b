"""Shell variable assignments as ``sh`` reads them, without running anything.

Source: os-release(5) ("environment-like shell-compatible variable assignments ...
variable expansion is explicitly not supported"), and POSIX sh quoting (XCU 2.2):
``'...'`` is literal, inside ``"..."`` a backslash escapes only ``$ ` " \\`` and
newline, outside quotes it escapes any character and a backslash-newline joins
lines. The same files are sourced by shells elsewhere: RHEL and SUSE ``ifcfg-*``,
``/etc/lsb-release``, ``/etc/selinux/config``.

Only ``NAME=value`` words that start a command are assignments; anything else
(a command, ``export``, a comment) is skipped to the end of its line. ``$`` and
backquotes are kept as written: a file that needs expansion is not a plain
configuration. An unterminated quote ends the file there, as it ends ``sh``'s
reading of it, and the assignments before it stand.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
#: The characters a backslash escapes inside double quotes.
_DQ_ESCAPES = frozenset('$`"\\\n')
_BLANK = " \t"


def assignments(text: str) -> dict[str, str]:
    """``NAME -> value`` for every assignment of ``text``; a later one wins."""
    found: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _BLANK + "\n;":
            i += 1
        pending: dict[str, str] = {}
        while (m := _NAME.match(text, i)) is not None:
            value, i = _word(text, m.end())
            if i < 0:
                return found
            pending[m.group()[:-1]] = value
            while i < n and text[i] in _BLANK:
                i += 1
        # Assignments before a command only set its environment (``A=b cmd``).
        if i >= n or text[i] in "\n;#":
            found.update(pending)
        if i < n and text[i] != ";":
            i = _line_end(text, i)
    return found


def _line_end(text: str, i: int) -> int:
    """The index after the newline ending the line at ``i``."""
    end = text.find("\n", i)
    return len(text) if end < 0 else end + 1


def _word(text: str, i: int) -> tuple[str, int]:
    """The value of the shell word at ``i`` and the index after it; -1 for an
    unterminated quote."""
    out: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in _BLANK or ch in "\n;":
            break
        if ch == "\\":
            if text[i + 1:i + 2] != "\n":
                out.append(text[i + 1:i + 2])
            i += 2
        elif ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return "", -1
            out.append(text[i + 1:end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and text[i + 1:i + 2] in _DQ_ESCAPES and i + 1 < n:
                    if text[i + 1] != "\n":
                        out.append(text[i + 1])
                    i += 2
                else:
                    out.append(text[i])
                    i += 1
            if i >= n:
                return "", -1
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), i
