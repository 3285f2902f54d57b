"""What ``imgscan profiles`` and ``imgscan demo`` print around the reports."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from imgscan.policy import Profile

DEMO_INTRO = ("imgscan check on the Windows sample image shipped with imgscan "
              "(a 64 MiB Windows Server 2019 test disk):\n")
DEMO_OUTRO = ("\nRun it on your own image:  imgscan check IMAGE [--profile safe|FILE.toml] "
              "[--json] [--junit report.xml]\nList the profiles and their rules:  "
              "imgscan profiles")


def profiles_text(profiles: Iterable[tuple[str, Profile]]) -> str:
    """Each built-in profile (the first is the default): where its rules come from, the
    cloud whose registration parameters it suggests, its rules, their severity, summary
    and parameters (lists of more than 4 values left out: they would wrap)."""
    from imgscan.policy.rules import RULES

    blocks = []
    for i, (name, profile) in enumerate(profiles):
        default = " (default)" if i == 0 else ""
        lines = [f"{name}{default}: {profile.description}"]
        if profile.source:
            lines.append(f"  source: {profile.source}")
        if profile.registration:
            lines.append(f"  registration parameters: {profile.registration}")
        width = max(len(r) for r in profile.rules) + 2
        lines.append(f"  {'rule':<{width}}{'if not':<8}checks")
        for rule_id, config in profile.rules.items():
            rule = RULES[rule_id]
            params = ", ".join(f"{k}={v}" for k, v in config.params.items()
                               if not isinstance(v, list) or len(v) <= 4)
            fixed = "  [auto-fixed by the cloud]" if rule.auto_fixed else ""
            lines.append(f"  {rule_id:<{width}}{config.severity:<8}{rule.summary}{fixed}")
            if params:
                lines.append(f"  {'':<{width}}{'':<8}{params}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
