"""The words every layer shares: schema version, severities, pipeline stages, rule statuses.

Defined once so that the decoders, the policy engine, the reports and the CLI
cannot drift apart (../shared/docs/json-contract.md fixes the values). This
module imports nothing: the Cython core and the CLI both read it on start-up.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Final, Literal

    Severity = Literal["error", "warning", "info"]
    Stage = Literal["container", "disk", "partitions", "filesystem", "windows", "linux"]
    Status = Literal["pass", "fail", "warn", "unknown", "manual"]

#: ``schema_version`` of every JSON object imgscan prints (info, check, error).
SCHEMA_VERSION = 1

# -- finding severities (the contract's ``findings[].severity``) -------------------
ERROR: Final = "error"
WARNING: Final = "warning"
INFO: Final = "info"
SEVERITIES = (ERROR, WARNING, INFO)

# -- pipeline stages, in the order an image is read ----------------------------------
#: The container file: headers, tables, the facts of ``imgscan info``.
CONTAINER: Final = "container"
#: The virtual disk: the container's map from guest ranges to file ranges.
DISK: Final = "disk"
#: The partition table read from the guest bytes.
PARTITIONS: Final = "partitions"
#: The filesystem or volume probes of each partition (or the whole disk).
FILESYSTEM: Final = "filesystem"
#: The guest operating systems found on the volumes: one stage per inspector, so that
#: a rule on one OS tells that OS's failed inspection from the other's.
WINDOWS: Final = "windows"
LINUX: Final = "linux"
STAGES = (CONTAINER, DISK, PARTITIONS, FILESYSTEM, WINDOWS, LINUX)

# -- rule statuses and verdicts (``imgscan check``) ----------------------------------
PASS: Final = "pass"
FAIL: Final = "fail"
WARN: Final = "warn"
#: The image should show the fact but could not be read far enough.
UNKNOWN: Final = "unknown"
#: No image file can show the fact: a person checks it.
MANUAL: Final = "manual"
#: Every rule status, worst first (the order reports count them in).
STATUSES = (FAIL, WARN, UNKNOWN, MANUAL, PASS)
#: What a profile may report a violation as.
VIOLATIONS = (FAIL, WARN)
#: A check's verdict: the worst status that gates.
VERDICTS = (PASS, WARN, FAIL)


def status_rank(status: str) -> int:
    """Where ``status`` sorts among :data:`STATUSES`, worst first (0: ``fail``); a word
    that is no status sorts after them all."""
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


def worst_verdict(statuses: Iterable[str]) -> str:
    """``fail`` if any of ``statuses`` (rule statuses or verdicts) is ``fail``, else
    ``warn`` if any is ``warn``, else ``pass``: the verdict of a check (the contract),
    and of an image several profiles judged."""
    seen = set(statuses)
    return FAIL if FAIL in seen else (WARN if WARN in seen else PASS)
