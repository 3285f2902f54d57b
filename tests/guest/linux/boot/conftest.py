"""grub.cfg files written by the real grub-mkconfig, made once per session."""

from __future__ import annotations

import pytest
from helpers import grub_mkconfig as mk
from helpers.grub_mkconfig import KERNELS, SETTINGS, UUID


@pytest.fixture(scope="session")
def debian_saved_cfg(tmp_path_factory: pytest.TempPathFactory) -> str:
    """GRUB_DEFAULT=saved, root named /dev/vda1."""
    return mk.grub_mkconfig(tmp_path_factory.mktemp("mkconfig-saved"), KERNELS,
                            SETTINGS + "GRUB_DEFAULT=saved\n")


@pytest.fixture(scope="session")
def debian_uuid_cfg(tmp_path_factory: pytest.TempPathFactory) -> str:
    """GRUB_DEFAULT=0, root named by its filesystem UUID."""
    return mk.grub_mkconfig(tmp_path_factory.mktemp("mkconfig-uuid"), KERNELS,
                            SETTINGS + "GRUB_DEFAULT=0\n", uuid=UUID)
