# The Linux volume probes probe_volume calls, in linux.pyx.
from libc.stdint cimport uint8_t, uint64_t

from .volume cimport Probe

cdef enum:
    # The swap signature's length, and the bytes read of an MD 0.90 superblock (its
    # magic, version and UUID) and of a 1.x one; MD_RESERVED: the end region holding
    # 0.90's. C constants: every volume is probed for them (probe_volume, probe_regions).
    SWAP_MAGIC_LENGTH = 10
    MD0_SB_BYTES = 64
    MD1_SB_BYTES = 256
    MD_RESERVED = 64 * 1024


cdef object probe_raid(Probe p)
cdef object probe_lvm2(Probe p)
cdef object probe_luks(Probe p)
cdef object swap_at(Probe p, bytes magic, uint64_t page)
cdef object swap_magic(const uint8_t* raw, Py_ssize_t size)
cdef object probe_swap(Probe p, int first, int stop)
cdef object probe_xfs(Probe p)
cdef object probe_ext(Probe p)
cdef object probe_btrfs(Probe p, const uint8_t* raw, Py_ssize_t size)
