# The ISO 9660 probe probe_volume calls, in iso9660.pyx.
from libc.stdint cimport uint8_t

from .volume cimport Probe


cdef object probe_iso9660(Probe p, const uint8_t* first, Py_ssize_t size)
