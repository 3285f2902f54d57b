"""Sizes as people read them, shared by the reports and the policy rules' messages.

Neither layer owns the other: a rule's message and a rendered report must
show one size the same way, so the formatter lives below both.
"""

from __future__ import annotations

_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
#: Sizes already shown, by (type, value): ``1`` and ``1.0`` print apart. A dict and not
#: ``functools.lru_cache``: ``info`` prints sizes, and its start-up imports no functools.
_SHOWN: dict[tuple[type, int | None], str] = {}
#: Sizes remembered before the memo starts again (one scan's images are many).
_SHOWN_MAX = 256


def human_size(n: int | None) -> str:
    """``10737418240`` -> ``10 GiB (10737418240 bytes)``; exact values stay exact.

    Remembered for the last sizes asked: the rules of ``--profile all`` show an image's
    virtual and file sizes in a dozen messages, its report again."""
    key = (type(n), n)
    shown = _SHOWN.get(key)
    if shown is None:
        if len(_SHOWN) >= _SHOWN_MAX:
            _SHOWN.clear()
        shown = _SHOWN[key] = _human_size(n)
    return shown


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{n} bytes"
    shown = f"{value:.0f}" if value == int(value) else f"{value:.2f}"
    return f"{shown} {_UNITS[unit]} ({n} bytes)"
