"""Where an image may name another file, and when imgscan agrees to open it.

Backing files, external data files and (later) VMDK extents are names written
by whoever made the image. They are opened only when the caller passes a
directory, and only when the name resolves, symlinks included, to a file
inside it: absolute paths, ``..``, qemu's ``json:`` pseudo-paths and protocol
prefixes (``nbd:``, ``http:``, ...) are refused outright.
"""

from __future__ import annotations

import os

from imgscan.errors import ImageError, UnsafePath

#: What may follow a scheme's first letter (RFC 3986's ``ALPHA *( ALPHA / DIGIT / "+" /
#: "-" / "." )``), as qemu's protocol prefixes (``nbd:``, ``http:``) and drive letters
#: (``C:``) are spelled; checked without re, which the info path does not import.
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SCHEME_CHARS = _ASCII_LETTERS | frozenset("0123456789+.-")


def _has_protocol(name: str) -> bool:
    """Whether ``name`` starts with ``SCHEME:``."""
    scheme, colon, _ = name.partition(":")
    return bool(colon) and scheme[:1] in _ASCII_LETTERS and all(
        c in _SCHEME_CHARS for c in scheme[1:])


def unsafe_reason(name: str) -> str | None:
    """Why ``name`` may never be opened, or ``None`` when it is a plain relative name."""
    if not name:
        return "the name is empty"
    if "\x00" in name:
        return "the name holds a NUL byte"
    if name.startswith("json:"):
        return "qemu json: pseudo-paths are never followed"
    if _has_protocol(name):
        return "protocol or drive prefixes are never followed"
    if name.startswith(("/", "\\")):
        return "absolute paths are never followed"
    if ".." in name.replace("\\", "/").split("/"):
        return "'..' components are never followed"
    return None


def resolve_external(image_path: str, what: str, name: str, directory: str) -> str:
    """The path of ``name`` inside ``directory``, or :class:`UnsafePath`."""
    reason = unsafe_reason(name)
    if reason is not None:
        raise UnsafePath(image_path, what, None, f"refusing to open {name!r}: {reason}")
    base = os.path.realpath(directory)
    # Windows writers (Hyper-V's relative parent locators: ".\\parent.vhd")
    # separate with backslashes; both are separators here.
    candidate = os.path.realpath(os.path.join(base, name.replace("\\", "/")))
    if os.path.commonpath([base, candidate]) != base:
        raise UnsafePath(image_path, what, None,
                         f"refusing to open {name!r}: it resolves outside {directory}")
    if not os.path.isfile(candidate):
        raise ImageError(image_path, what, None, f"{name!r} is not a file in {directory}")
    return candidate
