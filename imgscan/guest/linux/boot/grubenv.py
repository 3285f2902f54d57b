"""GRUB's environment block, ``/boot/grub/grubenv``: the variables ``load_env`` reads
(``saved_entry``, ``next_entry``, and on Red Hat systems ``kernelopts``).

Source: GRUB's grub-core/lib/envblk.c and util/grub-editenv.c. The file is 1024
bytes: the signature line ``# GRUB Environment Block``, ``name=value`` lines, and
``#`` padding. In a value, a backslash escapes the next byte (``grub-editenv``
writes ``\\`` for a backslash and a backslash before a newline). A ``#`` line is a
comment; a name runs up to the next ``=`` (a block with none is broken from there
on). GRUB reads any size, but its tools write and rewrite exactly 1024 bytes in
place (so that GRUB can save the entry without allocating blocks); another size
means the file was not written by them, and is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgscan.errors import CorruptImage

SIGNATURE = b"# GRUB Environment Block\n"
#: The size grub-editenv creates and GRUB's save_env rewrites in place.
BLOCK_SIZE = 1024


@dataclass
class GrubEnv:
    """The variables of one block, and what was wrong with it (nothing is read from a
    block without the signature, as GRUB refuses it)."""

    variables: dict[str, str] = field(default_factory=dict)
    problems: list[CorruptImage] = field(default_factory=list)


def parse(data: bytes, path: str) -> GrubEnv:
    """The variables of the environment block ``data`` read from ``path``."""
    env = GrubEnv()
    if not data.startswith(SIGNATURE):
        env.problems.append(CorruptImage(path, "GRUB environment block", 0,
                                         "no '# GRUB Environment Block' signature"))
        return env
    if len(data) != BLOCK_SIZE:
        env.problems.append(CorruptImage(
            path, "GRUB environment block", None,
            f"{len(data)} bytes, not the {BLOCK_SIZE} GRUB's tools write"))
    p, end = len(SIGNATURE), len(data)
    while p < end:
        if data[p] == ord("#"):
            p = _next_line(data, p)
            continue
        eq = data.find(b"=", p)
        if eq < 0:
            env.problems.append(CorruptImage(path, "GRUB environment block", p,
                                             "a line without '='"))
            break
        name = data[p:eq]
        stop = _next_line(data, eq + 1)
        value = _unescape(data[eq + 1:stop - 1 if data[stop - 1:stop] == b"\n" else stop])
        env.variables[_text(name)] = _text(value)
        p = stop
    return env


def _next_line(data: bytes, p: int) -> int:
    """The offset after the newline ending the line at ``p`` (a backslash escapes
    the byte after it, an escaped newline included)."""
    end = len(data)
    while p < end:
        if data[p] == ord("\\"):
            p += 2
            continue
        if data[p] == ord("\n"):
            return p + 1
        p += 1
    return end


def _unescape(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == ord("\\"):
            i += 1
            if i == len(raw):
                break
        out.append(raw[i])
        i += 1
    return bytes(out)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
