"""``imgscan ls`` output: names, ``ls -l``-like lines, or one JSON object per entry."""

from __future__ import annotations

import json
import stat as statmod
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from imgscan._core.fsapi import Stat

#: The file-type letter ``ls -l`` shows for an inode of kind ``other`` whose mode has no type.
KIND_LETTER = {"file": "-", "dir": "d", "symlink": "l", "other": "?"}


def mode_text(st: Stat) -> str:
    """``drwxr-xr-x``: the type letter from the kind, the permissions from the mode."""
    return KIND_LETTER[st.kind] + statmod.filemode(st.mode)[1:]


def mtime_text(mtime: int | None) -> str:
    """``YYYY-MM-DD HH:MM`` in UTC, or ``-`` where the filesystem keeps no time."""
    if mtime is None:
        return "-" * 16
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
    except (OverflowError, OSError, ValueError):
        return "?" * 16


def ls_long(rows: Sequence[tuple[str, Stat, str | None]]) -> str:
    """``mode size mtime name [-> target]`` lines, the size column right-aligned."""
    width = max((len(str(st.size)) for _, st, _ in rows), default=1)
    lines = []
    for name, st, target in rows:
        link = f" -> {printable(target)}" if target is not None else ""
        lines.append(f"{mode_text(st)} {st.size:>{width}} {mtime_text(st.mtime)} "
                     f"{printable(name)}{link}")
    return "\n".join(lines)


def ls_short(names: Sequence[str]) -> str:
    return "\n".join(printable(n) for n in names)


def ls_object(name: str, st: Stat, target: str | None) -> dict[str, Any]:
    """One entry as JSON: name, kind, inode, size, mode, owner, mtime and link target."""
    return {"name": name, "kind": st.kind, "ino": st.ino, "size": st.size, "mode": st.mode,
            "uid": st.uid, "gid": st.gid, "nlink": st.nlink, "mtime": st.mtime,
            "target": target}


def ls_json(name: str, st: Stat, target: str | None) -> str:
    # Surrogate escapes (non-UTF-8 names) survive as \udcXX escapes.
    return json.dumps(ls_object(name, st, target))


def printable(name: str) -> str:
    """``name`` for a terminal: surrogate escapes back to their bytes, shown as ``\\xNN``,
    control characters escaped, so a hostile name cannot drive the terminal."""
    try:
        text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:      # an unpaired UTF-16 surrogate (NTFS): escaped below
        text = name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
