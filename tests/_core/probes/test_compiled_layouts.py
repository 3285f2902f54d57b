"""The volume probes' constants compiled in from the c_<format> declarations (issue 18).

What the probes find is checked against blkid in tests/_core/test_filesystems.py; here,
that the extension was built from the declarations as they are now (a declaration
changed without a rebuild fails here, by name, rather than as a wrong probe result).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from imgscan._core import c_btrfs
from imgscan._core.probes import compiled_layouts, linux


@pytest.mark.parametrize("path", compiled_layouts.LAYOUTS, ids=lambda path: path.name)
def test_the_built_constants_are_the_declarations_of_now(path: Path) -> None:
    expected = compiled_layouts.render(compiled_layouts.LAYOUTS[path]())
    assert path.read_text() == expected, \
        f"{path.name} is stale: rebuild (python3 setup.py build_ext --inplace)"


def test_the_compiled_module_holds_the_declared_values() -> None:
    """The names the module exports to probe_volume, as c_btrfs declares them."""
    assert (linux.BTRFS_SB, linux.BTRFS_SB_BYTES) == (c_btrfs.BTRFS_SUPER_INFO_OFFSET,
                                                      c_btrfs.BTRFS_SUPER_INFO_SIZE)


@pytest.mark.parametrize("constants", compiled_layouts.LAYOUTS.values(),
                         ids=lambda constants: constants.__name__)
def test_every_constant_is_named_once(constants: Callable[[], list[tuple[str, str, object]]],
                                      ) -> None:
    names = [name for _, name, _ in constants()]
    assert len(names) == len(set(names))
