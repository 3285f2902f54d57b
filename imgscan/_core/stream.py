"""The guest disk as a seekable, read-only binary file object."""

from __future__ import annotations

import io
import os

from .vdisk import VirtualDisk


class DiskStream(io.RawIOBase):
    """``io.RawIOBase`` over a :class:`VirtualDisk`; wrap in ``io.BufferedReader`` at will."""

    def __init__(self, disk: VirtualDisk) -> None:
        super().__init__()
        self._disk = disk
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._disk.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = self._disk.readinto(self._pos, view)
        self._pos += n
        return n
