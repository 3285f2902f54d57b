# The parsed VMDK descriptor, declared for the container (vmdk.pyx), which reads it on every
# open of a sparse VMDK: its readings called as C methods, not Python look-ups (issue 18).

cdef class Descriptor:
    cdef readonly str text
    cdef readonly list entries
    cdef readonly list extents
    cdef readonly list ambiguities
    cdef dict _first
    cdef set _repeated

    cdef int _add_entry(self, str key, str value, Py_ssize_t number) except -1
    cdef list _other_spellings(self, str key)
    cdef dict disk_database(self, Py_ssize_t cap, list encryption)
    cpdef first(self, str key)
    cpdef qemu_value(self, str key)
    cpdef qemu_hex(self, str key)
    cpdef check_key(self, str key)


cpdef Descriptor parse_descriptor(bytes raw, str path, offset, str structure,
                                  Py_ssize_t begin=*, Py_ssize_t length=*)
