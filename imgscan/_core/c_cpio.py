"""cpio "newc" and "crc" headers, as the Linux initramfs buffer format declares them.

Source: the kernel's Documentation/driver-api/early-userspace/buffer-format.rst
(and cpio(5)). A header is 110 ASCII bytes: the 6-byte magic, then thirteen
8-digit hexadecimal numbers. The header and the NUL-terminated name are padded
together to a multiple of 4 bytes, and so is the file data; an archive ends at a
member named ``TRAILER!!!``. Field names are the spec's. The logic lives in
:mod:`imgscan._core.cpio`.
"""

from __future__ import annotations

import re

from .cstruct import CStruct

CPIO_NEWC_HEADER = CStruct("cpio newc header", ">", [
    ("c_magic", "6s"),      # "070701" (newc) or "070702" (crc)
    ("c_ino", "8s"),
    ("c_mode", "8s"),
    ("c_uid", "8s"),
    ("c_gid", "8s"),
    ("c_nlink", "8s"),
    ("c_mtime", "8s"),
    ("c_filesize", "8s"),   # bytes of data after the name (a symlink's target)
    ("c_maj", "8s"),
    ("c_min", "8s"),
    ("c_rmaj", "8s"),
    ("c_rmin", "8s"),
    ("c_namesize", "8s"),   # bytes of the name, its terminating NUL included
    ("c_chksum", "8s"),     # "crc" archives: the sum of the data bytes; else 0
])
HEADER_SIZE = CPIO_NEWC_HEADER.size                 # 110

MAGIC_NEWC = b"070701"
MAGIC_CRC = b"070702"
#: A whole header as the spec allows it: either magic, then 104 hexadecimal digits.
#: ``int(x, 16)`` alone would also take signs, blanks and underscores.
HEADER_PATTERN = re.compile(rb"07070[12][0-9A-Fa-f]{104}")

#: The name of the member that ends an archive.
TRAILER = b"TRAILER!!!"
#: Headers, names and data are each padded to this many bytes.
ALIGN = 4
