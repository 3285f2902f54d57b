from collections.abc import Callable

from .probes.volume import HEAD_BYTES as HEAD_BYTES
from .probes.volume import Volume as Volume

__all__ = ["HEAD_BYTES", "Volume", "probe_regions", "probe_volume"]

def probe_volume(
    read: Callable[[int, int], bytes], offset: int, size: int, head: bytes | None = None,
) -> Volume | None: ...
def probe_regions(
    offset: int, size: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
