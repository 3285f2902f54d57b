"""Where an image may name another file, and when imgscan agrees to open it.

Backing files, external data files and (later) VMDK extents are names written
by whoever made the image. They are opened only when the caller passes a
directory, and only when the name resolves, symlinks included, to a file
inside it: absolute paths, ``..``, qemu's ``json:`` pseudo-paths and protocol
prefixes (``nbd:``, ``http:``, ...) are refused outright.

The directory may also be a URL prefix (``s3://bucket/dir/``, ``http://host/dir/``):
the name is then an object under it, by the same rules (a store has no
symlinks, and a relative name without ``..`` cannot leave the prefix), and
characters that mean something of their own in a URL (``?``, ``#``, ``%``,
control characters) are refused rather than sent.
"""

from __future__ import annotations

import os

from imgscan.errors import ImageError, UnsafePath
from imgscan.remote import is_url

#: What may follow a scheme's first letter (RFC 3986's ``ALPHA *( ALPHA / DIGIT / "+" /
#: "-" / "." )``), as qemu's protocol prefixes (``nbd:``, ``http:``) and drive letters
#: (``C:``) are spelled; checked without re, which the info path does not import.
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SCHEME_CHARS = _ASCII_LETTERS | frozenset("0123456789+.-")
#: What a name may not hold under a URL prefix: a query, a fragment, an escape (each
#: would make the URL name another object than the name says), control characters.
_URL_SPECIAL = frozenset("?#%\x7f") | frozenset(map(chr, range(0x20)))


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
    """The path of ``name`` inside ``directory`` (the URL of it under a URL prefix), or
    :class:`UnsafePath`."""
    reason = unsafe_reason(name)
    if reason is not None:
        raise UnsafePath(image_path, what, None, f"refusing to open {name!r}: {reason}")
    if is_url(directory):
        return _under_prefix(image_path, what, name, directory)
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


def _under_prefix(image_path: str, what: str, name: str, prefix: str) -> str:
    """The URL of ``name`` (a relative name :func:`unsafe_reason` let through) under the
    URL ``prefix``: ``\\`` and ``/`` both separators, ``.`` and empty components dropped
    as the filesystem drops them. Whether the object exists, the store says when it
    is opened (its error names the URL)."""
    special = next((c for c in name if c in _URL_SPECIAL), None)
    if special is not None:
        raise UnsafePath(image_path, what, None,
                         f"refusing to open {name!r} under {prefix}: {special!r} has a "
                         "meaning of its own in a URL")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePath(image_path, what, None,
                         f"refusing to open {name!r}: it names no file under {prefix}")
    return prefix.rstrip("/") + "/" + "/".join(parts)
