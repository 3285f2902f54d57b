"""Which of two versions is newer, as RPM and GRUB's ``blscfg`` decide it.

Source: rpm's ``rpmio/rpmvercmp.c``. One ordering for the whole Linux inspection:
the BLS menu's default (:mod:`.boot.bls`) and the installed kernels, newest first
(:mod:`.kernels`), so the two can never disagree about which kernel is newer.
"""

from __future__ import annotations

import functools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def vercmp(a: str, b: str) -> int:
    """RPM's version comparison (``rpmvercmp``, as blscfg carries it): 1 when ``a`` is
    newer, -1 when older, 0 when equal. Runs of digits compare as numbers, runs of
    letters as strings, a digit run is newer than a letter run, ``~`` sorts first."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not (a[i].isascii() and a[i].isalnum()) and a[i] != "~":
            i += 1
        while j < len(b) and not (b[j].isascii() and b[j].isalnum()) and b[j] != "~":
            j += 1
        if (i < len(a) and a[i] == "~") or (j < len(b) and b[j] == "~"):
            if i >= len(a) or a[i] != "~":
                return 1
            if j >= len(b) or b[j] != "~":
                return -1
            i += 1
            j += 1
            continue
        if i >= len(a) or j >= len(b):
            break
        numeric = a[i].isdigit()
        ra, i = _run(a, i, numeric)
        rb, j = _run(b, j, numeric)
        if not rb:
            return 1 if numeric else -1
        if numeric:
            ra, rb = ra.lstrip("0"), rb.lstrip("0")
            if len(ra) != len(rb):
                return 1 if len(ra) > len(rb) else -1
        if ra != rb:
            return 1 if ra > rb else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def _run(s: str, i: int, numeric: bool) -> tuple[str, int]:
    """The run of ASCII digits (or letters) of ``s`` from ``i``, and where it ends."""
    j = i
    while j < len(s) and s[j].isascii() and (s[j].isdigit() if numeric else s[j].isalpha()):
        j += 1
    return s[i:j], j


def newest_first(versions: Iterable[str]) -> list[str]:
    """``versions`` from the newest to the oldest by :func:`vercmp`."""
    return sorted(versions, key=functools.cmp_to_key(vercmp), reverse=True)
