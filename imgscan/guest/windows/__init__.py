"""Windows inspection: the installation, its registry hives, accounts and boot store.

:func:`inspect` (:mod:`.installation`) finds the system root on the NTFS
volumes and reads the facts of the contract's ``windows`` object; the other
modules decode one source each (:mod:`.hives`, :mod:`.sam`, :mod:`.bcd`,
:mod:`.pe`, :mod:`.cloudbaseinit`).
"""

from __future__ import annotations

from .installation import find_systemroot, inspect

__all__ = ["find_systemroot", "inspect"]
