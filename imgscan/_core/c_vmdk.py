"""VMDK on-disk structures and constants, declared once.

Names follow VMware's "Virtual Disk Format 1.1" (the hosted
``SparseExtentHeader``, stream-optimized markers and grain markers), ESX's
``COWDisk_Header`` (qemu's VMDK3Header) and ESXi's seSparse constant header
as qemu 7.2 declares it (``VMDKSESparseConstHeader``). Every integer is
little-endian; offsets and sizes in headers and tables count 512-byte
sectors. The sparse extent reader is :mod:`imgscan._core.vmdk_sparse`, the
descriptor-based container :mod:`imgscan._core.vmdk`.
"""

from __future__ import annotations

from .cstruct import CStruct

SECTOR_SIZE = 512

#: The hosted sparse extent header (magic ``KDMV``).
SPARSE_EXTENT_HEADER = CStruct("VMDK sparse header", "<", [
    ("magicNumber", "4s"),
    ("version", "I"),
    ("flags", "I"),
    ("capacity", "Q"),
    ("grainSize", "Q"),
    ("descriptorOffset", "Q"),
    ("descriptorSize", "Q"),
    ("numGTEsPerGT", "I"),
    ("rgdOffset", "Q"),
    ("gdOffset", "Q"),
    ("overHead", "Q"),
    ("uncleanShutdown", "B"),
    ("singleEndLineChar", "1s"),
    ("nonEndLineChar", "1s"),
    ("doubleEndLineChar1", "1s"),
    ("doubleEndLineChar2", "1s"),
    ("compressAlgorithm", "H"),
    (None, "433x"),
])
SPARSE_MAGIC = b"KDMV"
SPARSE_HEADER_SIZE = SPARSE_EXTENT_HEADER.size
#: qemu reads the 4-byte magic and a 75-byte header; a shorter file is truncated.
SPARSE_HEADER_MIN = SPARSE_EXTENT_HEADER.end("compressAlgorithm")
#: The newline-detection characters, as written in binary mode ("\n", " ", "\r\n").
NEWLINE_TEST = b"\n \r\n"
NEWLINE_TEST_FIELDS = ("singleEndLineChar", "nonEndLineChar", "doubleEndLineChar1",
                       "doubleEndLineChar2")

FLAG_VALID_NEWLINE_TEST = 1 << 0
FLAG_REDUNDANT_GRAIN_TABLE = 1 << 1
FLAG_ZEROED_GRAIN_GTE = 1 << 2
FLAG_COMPRESSED_GRAINS = 1 << 16
FLAG_MARKERS = 1 << 17
FLAG_NAMES = ((FLAG_VALID_NEWLINE_TEST, "valid_newline_test"),
              (FLAG_REDUNDANT_GRAIN_TABLE, "redundant_grain_table"),
              (FLAG_ZEROED_GRAIN_GTE, "zeroed_grain_gte"),
              (FLAG_COMPRESSED_GRAINS, "compressed_grains"),
              (FLAG_MARKERS, "markers"))
KNOWN_FLAGS = sum(bit for bit, _ in FLAG_NAMES)

COMPRESSION_NONE = 0
COMPRESSION_DEFLATE = 1
#: Highest header version qemu reads (3 adds changed-block tracking, read-only).
MAX_VERSION = 3
#: gdOffset meaning "the grain directory is at the end of the stream: see the footer".
GD_AT_END = 0xFFFFFFFFFFFFFFFF

#: Grain table entry of a grain that reads as zeros (with FLAG_ZEROED_GRAIN_GTE).
GTE_ZEROED = 1
GT_ENTRY_SIZE = 4
GD_ENTRY_SIZE = 4

#: Stream-optimized metadata marker: ``val`` (sectors of metadata, or 0), ``size``
#: 0 and ``type``; a sector of its own.
MARKER = CStruct("VMDK marker", "<", [
    ("val", "Q"),
    ("size", "I"),
    ("type", "I"),
    (None, "496x"),
])
MARKER_SIZE = MARKER.size
MARKER_EOS = 0
MARKER_GT = 1
MARKER_GD = 2
MARKER_FOOTER = 3
#: The footer marker, the footer (a header copy) and the end-of-stream marker end the file.
FOOTER_AREA = 3 * MARKER_SIZE

#: A compressed grain's marker: its LBA and stored size; the data follows it.
GRAIN_MARKER = CStruct("VMDK grain marker", "<", [
    ("lba", "Q"),
    ("size", "I"),
])

#: ESX's old sparse extent (qemu's "VMDK3"): magic, then 32-bit fields.
COWD_HEADER = CStruct("VMDK COWD header", "<", [
    ("magicNumber", "4s"),
    ("version", "I"),
    ("flags", "I"),
    ("numSectors", "I"),
    ("grainSize", "I"),
    ("gdOffset", "I"),
    ("numGDEntries", "I"),
    ("freeSector", "I"),
    ("cylinders", "I"),
    ("heads", "I"),
    ("sectors", "I"),
])
COWD_MAGIC = b"COWD"
#: COWD grain tables hold 4096 entries (qemu).
COWD_GTES_PER_GT = 4096

#: ESXi seSparse constant header (qemu's VMDKSESparseConstHeader): 64-bit fields.
SESPARSE_CONST_HEADER = CStruct("seSparse constant header", "<", [
    ("magic", "Q"),
    ("version", "Q"),
    ("capacity", "Q"),
    ("grain_size", "Q"),
    ("grain_table_size", "Q"),
    ("flags", "Q"),
    (None, "32x"),                      # reserved1..4
    ("volatile_header_offset", "Q"),
    ("volatile_header_size", "Q"),
    ("journal_header_offset", "Q"),
    ("journal_header_size", "Q"),
    ("journal_offset", "Q"),
    ("journal_size", "Q"),
    ("grain_dir_offset", "Q"),
    ("grain_dir_size", "Q"),
    ("grain_tables_offset", "Q"),
    ("grain_tables_size", "Q"),
    ("free_bitmap_offset", "Q"),
    ("free_bitmap_size", "Q"),
    ("backmap_offset", "Q"),
    ("backmap_size", "Q"),
    ("grains_offset", "Q"),
    ("grains_size", "Q"),
])
SESPARSE_MAGIC = 0xCAFEBABE
SESPARSE_VERSION = 0x200000001

#: The first bytes of a descriptor file (spec), and what qemu's probe accepts first.
DESCRIPTOR_SIGNATURE = b"# Disk DescriptorFile"
PROBE_BYTES = 2048
