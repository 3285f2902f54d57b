"""What ``imgscan fingerprint`` prints per image: ``DIGEST  PATH`` (as xxhsum does), or
a JSON object with the algorithm, the virtual size and the chunk size."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan.fingerprints import Fingerprint


def fingerprint_line(path: str, fp: Fingerprint) -> str:
    return f"{fp.digest}  {path}"


def fingerprint_object(path: str, fp: Fingerprint) -> dict[str, Any]:
    """The ``--json`` object; ``chunk_size`` is 0 for the stream algorithm."""
    return {"path": path, "algorithm": fp.algorithm, "digest": fp.digest,
            "virtual_size": fp.virtual_size, "chunk_size": fp.chunk_size}
