# VDI block map entries (VirtualBox VDICore.h), declared once, as a C enum: the nogil
# block map walks (vdi.pyx) index every entry with it, and a constant the compiler sees
# takes no load or multiply in their loops. The rest of the format's layout is declared
# in c_vdi.py.

cdef enum:
    # one little-endian uint32 per block: its index in the data area, or a marker
    BMAP_ENTRY_SIZE = 4
