"""Every cap imgscan applies to values an untrusted image claims.

Memory and time spent on an image are bounded by its file size and by these
numbers, never by a count or size the file merely states. Each cap is named
after the structure it protects and is tested at its boundary.
"""

from __future__ import annotations

# qcow2 / qcow / QED ------------------------------------------------------
#: Largest L1 table, in bytes (qemu's QCOW_MAX_L1_SIZE).
QCOW2_MAX_L1_BYTES = 32 * 1024 * 1024
#: Largest refcount table, in bytes (qemu's QCOW_MAX_REFTABLE_SIZE).
QCOW2_MAX_REFTABLE_BYTES = 8 * 1024 * 1024
#: Most internal snapshots (qemu's QCOW_MAX_SNAPSHOTS).
QCOW2_MAX_SNAPSHOTS = 65536
#: Most bytes of snapshot table read (qemu's QCOW_MAX_SNAPSHOTS_SIZE).
QCOW2_MAX_SNAPSHOT_TABLE_BYTES = 64 * 1024 * 1024
#: Most header extensions walked before giving up.
QCOW2_MAX_HEADER_EXTENSIONS = 1024
#: Longest backing file name (qemu's limit is 1023 bytes).
QCOW2_MAX_BACKING_NAME = 1023
#: Cluster bits accepted (512 B to 2 MiB, as qemu).
QCOW2_MIN_CLUSTER_BITS = 9
QCOW2_MAX_CLUSTER_BITS = 21
#: Most extra-data bytes in one snapshot table entry (qemu's QCOW_MAX_SNAPSHOT_EXTRA_DATA).
QCOW2_MAX_SNAPSHOT_EXTRA_DATA = 1024
#: Most persistent dirty bitmaps (qemu's QCOW2_MAX_BITMAPS).
QCOW2_MAX_BITMAPS = 65535
#: Largest bitmap directory, in bytes (qemu's QCOW2_MAX_BITMAP_DIRECTORY_SIZE).
QCOW2_MAX_BITMAP_DIRECTORY_BYTES = 1024 * QCOW2_MAX_BITMAPS
#: Largest virtual size accepted for any container (qemu's 2^63 - 2^30 rounded down to 32 EiB is
#: not practical to walk; 2^56 bytes covers every real image with a wide margin).
MAX_VIRTUAL_SIZE = 1 << 56

# QCOW version 1 ------------------------------------------------------------
#: Cluster bits qemu's qcow driver accepts (512 B to 64 KiB clusters).
QCOW_MIN_CLUSTER_BITS = 9
QCOW_MAX_CLUSTER_BITS = 16
#: L2 entries per table as a power of two (qemu: 512 B to 64 KiB tables of 8-byte entries).
QCOW_MIN_L2_BITS = 6
QCOW_MAX_L2_BITS = 13
#: Largest L1 table, in bytes: the qcow2 cap (4 Mi entries) reused, since qemu's qcow limit
#: (INT_MAX / 8 entries) is not practical. 4 Mi entries map 8 TiB at qemu-img's default
#: geometry (4 KiB clusters, 512-entry L2 tables) and 2 PiB at the largest.
QCOW_MAX_L1_BYTES = QCOW2_MAX_L1_BYTES
#: Longest backing file name (qemu's qcow limit, 1023 bytes, as for qcow2).
QCOW_MAX_BACKING_NAME = 1023

# VHD ---------------------------------------------------------------------
#: Most BAT entries (a 2 TiB VHD with 512 KiB blocks has 4 Mi entries).
VHD_MAX_BAT_ENTRIES = 1 << 24
#: Largest VHD block size accepted (the spec's blocks are 512 KiB or 2 MiB; Hyper-V allows 256 MiB).
VHD_MAX_BLOCK_SIZE = 256 * 1024 * 1024
#: Largest VHD virtual size (qemu's VHD_MAX_SECTORS, 0xff000000 sectors = 2040 GiB, the spec's
#: maximum); qemu refuses larger images.
VHD_MAX_VIRTUAL_SIZE = 0xFF000000 * 512
#: Most bytes of one parent locator read (a UTF-16 Windows path of 32767 characters fits).
VHD_MAX_LOCATOR_BYTES = 65536

# Extent maps and guest reads -----------------------------------------------
#: Most extents one map may hold (each costs 32 bytes): 64 Mi extents = 2 GiB.
MAX_EXTENTS = 64 * 1024 * 1024
#: Largest single guest read through the Python API.
MAX_READ = 1 << 31
#: Largest decompressed cluster (qcow2's biggest cluster is 2 MiB).
MAX_DECOMPRESSED_CLUSTER = 2 * 1024 * 1024
#: Most bytes a backing chain may be deep before it is refused.
MAX_BACKING_DEPTH = 16
