"""QCOW version 1 on-disk structures and constants, as qemu's block/qcow.c names them.

The format has no document of its own; qemu's driver is the reference (see
the docstring of :mod:`imgscan._core.qcow`). All integers are big-endian.
"""

from __future__ import annotations

from .cstruct import CStruct

QCOW_MAGIC = b"QFI\xfb"
QCOW_VERSION = 1
#: The version as stored: a file cut short inside it is still taken for QCOW.
QCOW_VERSION_BYTES = QCOW_VERSION.to_bytes(4, "big")

#: ``QCowHeader`` at offset 0 (48 bytes).
QCOW_HEADER = CStruct("QCowHeader", ">", [
    ("magic", "4s"),
    ("version", "I"),
    ("backing_file_offset", "Q"),
    ("backing_file_size", "I"),
    ("mtime", "I"),
    ("size", "Q"),                  # guest bytes
    ("cluster_bits", "B"),
    ("l2_bits", "B"),
    (None, "2x"),                   # padding
    ("crypt_method", "I"),
    ("l1_table_offset", "Q"),
])

QCOW_CRYPT_NONE = 0
QCOW_CRYPT_AES = 1

#: Size of one L1 / L2 entry (a big-endian u64).
QCOW_ENTRY_SIZE = 8
#: Bit 63 of an L2 entry: the cluster is compressed; the ``63 - cluster_bits``
#: bits below hold its offset, the ``cluster_bits`` bits above those its size.
QCOW_OFLAG_COMPRESSED = 1 << 63
#: Guest sizes and data cluster offsets are in 512-byte sectors.
SECTOR_SIZE = 512
