# The Linux volume probes probe_volume calls, in linux.pyx.
from libc.stdint cimport uint64_t

from .volume cimport Probe


cdef object probe_raid(Probe p)
cdef object probe_lvm2(Probe p)
cdef object probe_luks(Probe p)
cdef object swap_at(Probe p, bytes magic, uint64_t page)
cdef object probe_swap(Probe p, tuple pages)
cdef object probe_xfs(Probe p)
cdef object probe_ext(Probe p)
cdef object probe_btrfs(Probe p, bytes sb)
