"""Small value records: equality, hash, repr and ``replace`` over ``__slots__``.

Shared by the fingerprints and the bulk scan results, which the scan catalog
stores and compares; it lives below both so neither imports the other for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class Record:
    """Value semantics (equality, repr) over ``__slots__``.

    Plain classes rather than dataclasses: ``dataclasses`` and ``typing`` cost
    about 8 ms to import, a noticeable share of a whole ``imgscan scan``.
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (as ``dataclasses.replace``)."""
        return type(self)(**{**{n: getattr(self, n) for n in self.__slots__}, **changes})

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"
