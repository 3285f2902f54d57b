"""Every rule, registered by id in :data:`RULES` (which the profiles look up).

The rules are grouped by subject: the container file (:mod:`.container`), the
system disk's layout (:mod:`.disk`), the Windows installation (:mod:`.windows`),
the Linux installation (:mod:`.linux`) and where the file is stored
(:mod:`.storage`). Importing this package imports each of them, which registers
their rules in that order. The framework they share (:class:`Facts`,
:class:`Outcome`, :func:`rule`) is :mod:`imgscan.policy.framework`.
"""

from __future__ import annotations

from ..framework import RULES, Facts, Outcome, Rule
from . import container, disk, linux, storage, windows

__all__ = ["RULES", "Facts", "Outcome", "Rule", "container", "disk", "linux", "storage", "windows"]
