"""The extent map's Python face: the ``Extent`` named tuple, made on first use.

The runs themselves are checked against qemu-img's map in each container's tests; here,
that the lazily made ``Extent`` (issue 18: ``info`` reads no extent) is one class,
whichever way it is reached, and behaves as the named tuple it always was.
"""

from __future__ import annotations

import pickle

from imgscan._core import extents
from imgscan._core.extents import Extent, ExtentMap


def test_extent_is_one_named_tuple_whichever_way_reached() -> None:
    m = ExtentMap(4096)
    m._append(0, 1024, "data", host=65536, stored_length=1024)
    m._append(1024, 3072, "unallocated")
    first, second = list(m)
    assert type(first) is Extent is extents.Extent
    assert first == (0, 1024, "data", 65536, 0, 1024)
    assert (second.kind, second.host) == ("unallocated", None)
    assert pickle.loads(pickle.dumps(first)) == first
    assert Extent._fields == ("start", "length", "kind", "host", "file", "stored_length")
