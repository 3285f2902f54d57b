"""Reports: the facts rendered for people (text) and for programs (JSON)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


#: Lines :class:`KeptLines` keeps at most: a catalog rescan of a library where every
#: file is unchanged never waits for a worker, and must neither print nothing until
#: the end nor hold a string a file of millions.
KEPT_LINES = 256


class KeptLines:
    """Output lines kept until :meth:`write` writes them at once: ``imgscan info`` and
    ``imgscan scan`` write when they are about to wait for the next image (or before an
    error message, and at the end), so the lines that are ready together cost one write,
    never held behind a slow image, where ``print`` makes two system calls a line (its
    text, then the newline) when standard output is unbuffered. :meth:`keep` writes
    them once KEPT_LINES are kept."""

    __slots__ = ("lines", "out")

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lines: list[str] = []

    def keep(self, line: str) -> None:
        lines = self.lines
        lines.append(line)
        if len(lines) >= KEPT_LINES:
            self.write()

    def write(self) -> None:
        if self.lines:
            self.out.write("\n".join(self.lines) + "\n")
            self.lines.clear()
