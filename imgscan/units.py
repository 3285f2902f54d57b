"""Sizes as people read them, shared by the reports and the policy rules' messages.

Neither layer owns the other: a rule's message and a rendered report must
show one size the same way, so the formatter lives below both.
"""

from __future__ import annotations

import functools

_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@functools.lru_cache(maxsize=256, typed=True)
def human_size(n: int | None) -> str:
    """``10737418240`` -> ``10 GiB (10737418240 bytes)``; exact values stay exact.

    Remembered for the last sizes asked (``typed``: ``1`` and ``1.0`` print apart): the
    rules of ``--profile all`` show an image's virtual and file sizes in a dozen messages,
    its report again."""
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
