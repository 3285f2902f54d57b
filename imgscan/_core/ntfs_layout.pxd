# NTFS on-disk layout for the nogil walks: byte offsets within update-sequence
# protected records, MFT record and attribute headers, attribute list entries,
# $FILE_NAME, $VOLUME_INFORMATION, index roots, nodes and entries, and LZNT1
# (libfsntfs sections "MFT entry", "MFT attribute", "Index", "Compression").
# Declared once here and cimported by the reader (ntfs.pyx) and its nogil
# helpers (ntfs_codec.pyx); the boot sector, read once at Python level, is
# declared in c_ntfs.py.

cdef enum:
    # update sequence protected records (MFT "FILE" and index "INDX")
    FIXUP_STRIDE = 512
    REC_USA_OFFSET = 4
    REC_USA_COUNT = 6
    # MFT record header
    MFT_SEQUENCE = 16
    MFT_LINK_COUNT = 18
    MFT_FIRST_ATTRIBUTE = 20
    MFT_FLAGS = 22
    MFT_USED_SIZE = 24
    MFT_ALLOCATED_SIZE = 28
    MFT_BASE_RECORD = 32
    MFT_HEADER_MIN = 48
    MFT_RECORD_IN_USE = 0x0001
    MFT_RECORD_IS_DIRECTORY = 0x0002
    # attribute header
    ATTR_TYPE = 0
    ATTR_LENGTH = 4
    ATTR_NON_RESIDENT = 8
    ATTR_NAME_LENGTH = 9
    ATTR_NAME_OFFSET = 10
    ATTR_FLAGS = 12
    ATTR_ID = 14
    ATTR_RES_VALUE_LENGTH = 16
    ATTR_RES_VALUE_OFFSET = 20
    ATTR_RES_HEADER = 24
    ATTR_NR_START_VCN = 16
    ATTR_NR_END_VCN = 24
    ATTR_NR_RUNS_OFFSET = 32
    ATTR_NR_COMPRESSION_UNIT = 34
    ATTR_NR_ALLOCATED_SIZE = 40
    ATTR_NR_DATA_SIZE = 48
    ATTR_NR_INITIALIZED_SIZE = 56
    ATTR_NR_HEADER = 64
    ATTR_FLAG_COMPRESSED = 0x0001
    ATTR_FLAG_ENCRYPTED = 0x4000
    ATTR_FLAG_SPARSE = 0x8000
    # $ATTRIBUTE_LIST entry
    AL_TYPE = 0
    AL_LENGTH = 4
    AL_NAME_LENGTH = 6
    AL_NAME_OFFSET = 7
    AL_START_VCN = 8
    AL_REFERENCE = 16
    AL_ID = 24
    AL_MIN_LENGTH = 26
    # $FILE_NAME
    FN_PARENT = 0
    FN_DATA_SIZE = 48
    FN_FLAGS = 56
    FN_NAME_LENGTH = 64
    FN_NAMESPACE = 65
    FN_NAME = 66
    # $VOLUME_INFORMATION
    VI_MAJOR = 8
    VI_MINOR = 9
    VI_FLAGS = 10
    VOLUME_IS_DIRTY = 0x0001
    # $INDEX_ROOT, index node header, INDX record, index entry
    IR_INDEXED_TYPE = 0
    IR_COLLATION = 4
    IR_INDEX_RECORD_SIZE = 8
    IR_NODE_HEADER = 16
    NH_ENTRIES_OFFSET = 0
    NH_TOTAL_SIZE = 4
    NH_ALLOCATED_SIZE = 8
    NH_FLAGS = 12
    NH_SIZE = 16
    INDX_VCN = 16
    INDX_NODE_HEADER = 24
    IE_REFERENCE = 0
    IE_LENGTH = 8
    IE_KEY_LENGTH = 10
    IE_FLAGS = 12
    IE_KEY = 16
    IE_HEADER = 16
    IE_HAS_SUBNODE = 0x01
    IE_LAST = 0x02
    # LZNT1
    LZNT1_CHUNK = 4096
    LZNT1_COMPRESSED = 0x8000
