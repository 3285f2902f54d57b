# VHDX BAT entries ([MS-VHDX] 2.5), declared once, as C enums: the nogil BAT walk
# (vhdx_bat.pyx) masks and compares every entry with them, and constants the compiler
# sees take no register or load in its loop. The container (vhdx.pyx) cimports them
# too; the rest of the format's layout is declared in c_vhdx.py.

cdef enum:
    BAT_ENTRY_SIZE = 8
    # State: bits 0-2 of an entry
    BAT_STATE_MASK = 0x7
    # FileOffsetMB: bits 20-63, the block's file offset in MiB (so the entry with its
    # low 20 bits cleared is the offset in bytes)
    BAT_FILE_OFFSET_SHIFT = 20

cdef enum:
    # payload block states
    PAYLOAD_BLOCK_NOT_PRESENT = 0
    PAYLOAD_BLOCK_UNDEFINED = 1
    PAYLOAD_BLOCK_ZERO = 2
    PAYLOAD_BLOCK_UNMAPPED = 3
    PAYLOAD_BLOCK_RESERVED_4 = 4
    PAYLOAD_BLOCK_UNMAPPED_V095 = 5     # UNMAPPED in the 0.95 draft; qemu reads zeros
    PAYLOAD_BLOCK_FULLY_PRESENT = 6
    PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7

cdef enum:
    # sector bitmap block states
    SB_BLOCK_NOT_PRESENT = 0
    SB_BLOCK_PRESENT = 6
