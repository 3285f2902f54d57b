# The DOS boot sector probes probe_volume calls, in dos.pyx.
from .volume cimport Probe


cdef object probe_bitlocker(Probe p)
cdef object probe_vfat(Probe p)
cdef object probe_ntfs(Probe p)
cdef object probe_refs(Probe p)
cdef object probe_exfat(Probe p)
