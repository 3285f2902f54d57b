# Windows registry hive (regf) record layouts, declared once (libregf sections
# "File header", "Hive bin", "Named key", "Value key", "Sub key list", "Data
# block key", "Security key"). Offsets of records are from the start of the
# record, i.e. after the 4-byte cell size. C enums, so the reader's nogil loops
# use them; the Python-level constants are in c_regf.py.

cdef enum:
    # base block ("File header")
    BASE_BLOCK_SIZE = 4096
    BB_PRIMARY_SEQUENCE = 4
    BB_SECONDARY_SEQUENCE = 8
    BB_LAST_WRITTEN = 12
    BB_MAJOR_VERSION = 20
    BB_MINOR_VERSION = 24
    BB_FILE_TYPE = 28
    BB_FILE_FORMAT = 32
    BB_ROOT_CELL = 36            # cell offset of the root nk
    BB_HIVE_BINS_SIZE = 40
    BB_CLUSTERING_FACTOR = 44
    BB_FILE_NAME = 48            # UTF-16LE tail of the hive's path, 64 bytes
    BB_FILE_NAME_SIZE = 64
    BB_CHECKSUM = 508            # XOR-32 of the 508 bytes before it

cdef enum:
    # hive bin header
    HBIN_OFFSET = 4              # its own offset, relative to the first hive bin
    HBIN_SIZE = 8
    HBIN_HEADER_SIZE = 32
    HBIN_ALIGNMENT = 4096

cdef enum:
    # nk: named key (CM_KEY_NODE)
    NK_FLAGS = 2
    NK_LAST_WRITTEN = 4
    NK_PARENT = 16
    NK_SUBKEY_COUNT = 20
    NK_VOLATILE_SUBKEY_COUNT = 24
    NK_SUBKEY_LIST = 28
    NK_VALUE_COUNT = 36
    NK_VALUE_LIST = 40
    NK_SECURITY = 44
    NK_CLASS_NAME = 48
    NK_NAME_SIZE = 72
    NK_CLASS_NAME_SIZE = 74
    NK_NAME = 76
    # nk flags
    KEY_IS_VOLATILE = 0x0001
    KEY_HIVE_EXIT = 0x0002
    KEY_HIVE_ENTRY = 0x0004      # the root key
    KEY_NO_DELETE = 0x0008
    KEY_SYM_LINK = 0x0010
    KEY_COMP_NAME = 0x0020       # name stored one byte per character (Latin-1), else UTF-16LE

cdef enum:
    # vk: value key (CM_KEY_VALUE)
    VK_NAME_SIZE = 2
    VK_DATA_SIZE = 4             # bit 31: resident (the data is the offset field)
    VK_DATA_OFFSET = 8
    VK_DATA_TYPE = 12
    VK_FLAGS = 16
    VK_NAME = 20
    VALUE_COMP_NAME = 0x0001

cdef enum:
    # lf / lh (elements of 8 bytes: nk offset, name hint or hash), li / ri (4 bytes)
    LIST_COUNT = 2
    LIST_ELEMENTS = 4
    LH_HASH_MULTIPLIER = 37      # hash = hash * 37 + upcase(character), modulo 2**32
    # db: big data (values longer than DB_SEGMENT_DATA, regf 1.4 and later)
    DB_SEGMENT_COUNT = 2
    DB_SEGMENT_LIST = 4
    DB_RECORD_SIZE = 8
    DB_SEGMENT_DATA = 16344      # bytes of value data in each segment but the last
    # sk: security key
    SK_DESCRIPTOR_SIZE = 16
    SK_DESCRIPTOR = 20
