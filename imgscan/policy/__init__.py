"""The policy layer: rules that judge an image's facts (the ``info`` object), never its bytes.

:mod:`imgscan.policy.framework` says what a rule sees and concludes,
:mod:`imgscan.policy.rules` holds one small function per rule id (grouped by
subject, registered by id), :mod:`imgscan.policy.engine` loads a profile
(TOML data: which rules, their parameters and severities) and evaluates it on
an ``info`` dict. Nothing here
is imported on the ``imgscan info`` path.
"""

from __future__ import annotations

from .engine import (
    DEFAULT_PROFILE,
    Judge,
    Profile,
    ProfileError,
    builtin_profiles,
    check,
    checks,
    evaluate,
    load_profile,
    load_profiles,
    verdict,
)

__all__ = [
    "DEFAULT_PROFILE",
    "Judge",
    "Profile",
    "ProfileError",
    "builtin_profiles",
    "check",
    "checks",
    "evaluate",
    "load_profile",
    "load_profiles",
    "verdict",
]
