"""imgscan's version, in a module of its own.

Modules that record it (the scan catalog stores it per row) import it from
here rather than from the package root, whose ``scan()`` imports them in turn.
"""

from __future__ import annotations

__version__ = "0.1.0"
