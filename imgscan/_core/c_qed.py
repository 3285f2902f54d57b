"""QED on-disk structures and constants, as qemu's docs/interop/qed_spec.txt names them.

All integers are little-endian; see :mod:`imgscan._core.qed` for the rules.
"""

from __future__ import annotations

from .cstruct import CStruct

QED_MAGIC = b"QED\x00"

#: The header at the start of cluster 0 (64 bytes).
QED_HEADER = CStruct("QEDHeader", "<", [
    ("magic", "4s"),
    ("cluster_size", "I"),              # bytes, a power of two
    ("table_size", "I"),                # clusters per L1 / L2 table
    ("header_size", "I"),               # clusters of header
    ("features", "Q"),
    ("compat_features", "Q"),
    ("autoclear_features", "Q"),
    ("l1_table_offset", "Q"),
    ("image_size", "Q"),                # guest bytes
    ("backing_filename_offset", "I"),
    ("backing_filename_size", "I"),
])

QED_F_BACKING_FILE = 0x01
QED_F_NEED_CHECK = 0x02
QED_F_BACKING_FORMAT_NO_PROBE = 0x04
QED_FEATURE_MASK = QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE
QED_COMPAT_FEATURE_MASK = 0
QED_AUTOCLEAR_FEATURE_MASK = 0

#: Image sizes are whole 512-byte sectors.
SECTOR_SIZE = 512
#: Size of one L1 / L2 entry (a little-endian u64).
QED_ENTRY_SIZE = 8
#: L2 entries that name no cluster.
QED_CLUSTER_UNALLOCATED = 0
QED_CLUSTER_ZERO = 1
