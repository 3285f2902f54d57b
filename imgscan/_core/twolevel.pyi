from typing import NoReturn

from .extents import ExtentMap

def refuse_map_full(emap: ExtentMap, path: str, structure: str,
                    offset: int | None = None) -> NoReturn: ...
