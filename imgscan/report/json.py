"""The ``imgscan check --json`` object (../shared/docs/json-contract.md), one line per image."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def check_json(check: Mapping[str, Any]) -> str:
    """One check object as a single JSON line (JSON Lines for several images)."""
    return json.dumps(check)
