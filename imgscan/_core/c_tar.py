"""The POSIX ustar header, as an OVA (an OVF package in one file) stores its members.

Source: POSIX.1-2001 (IEEE Std 1003.1), pax(1) "ustar Interchange Format" and
its "pax Extended Header"; DMTF DSP0243 (OVF 2.1) §5.3 requires an OVA to be
a ustar archive. A header is one 512-byte block of ASCII fields; numbers are
octal text ended by a space or NUL, or, for sizes past 8 GiB, GNU tar's
base-256 form (the field's first byte has its high bit set) or a pax
``size=`` record. Member data follows its header, padded to 512 bytes; the
archive ends with two zero blocks. Field names are the standard's. The walk
lives in :mod:`imgscan._core.tar`.
"""

from __future__ import annotations

from .cstruct import CStruct

TAR_HEADER = CStruct("ustar header", "<", [
    ("name", "100s"),
    ("mode", "8s"),
    ("uid", "8s"),
    ("gid", "8s"),
    ("size", "12s"),
    ("mtime", "12s"),
    ("chksum", "8s"),       # sum of the header's bytes, this field taken as 8 spaces
    ("typeflag", "1s"),
    ("linkname", "100s"),
    ("magic", "6s"),        # "ustar\0" (POSIX) or "ustar " (GNU, with version " \0")
    ("version", "2s"),
    ("uname", "32s"),
    ("gname", "32s"),
    ("devmajor", "8s"),
    ("devminor", "8s"),
    ("prefix", "155s"),     # prepended to name with a "/" when not empty
    (None, "12x"),
])
BLOCK = 512
assert TAR_HEADER.size == BLOCK

#: ``magic`` of a POSIX ustar header and of a GNU one (which adds the version's space).
MAGIC_USTAR = b"ustar\x00"
MAGIC_GNU = b"ustar "
#: Offset of ``magic``, for the content probe.
MAGIC_OFFSET = TAR_HEADER.offset("magic")

#: ``typeflag`` values: regular files (``0``, the old ``\0``, contiguous ``7``),
#: directories, pax extended headers for the next member (``x``) and for the archive (``g``).
REGULAR = (b"0", b"\x00", b"7")
DIRECTORY = b"5"
PAX_NEXT = b"x"
PAX_GLOBAL = b"g"
#: GNU tar's long name: the member's data is the name of the next member (``--format=gnu``).
GNU_LONGNAME = b"L"
