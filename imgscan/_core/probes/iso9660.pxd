# The ISO 9660 probe probe_volume calls, in iso9660.pyx.
from .volume cimport Probe


cdef object probe_iso9660(Probe p, bytes first)
