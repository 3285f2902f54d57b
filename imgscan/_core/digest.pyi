from array import array

from .extents import ExtentMap

def chunks_to_read(emap: ExtentMap, chunk: int, backed_to: int = 0) -> array[int]: ...
