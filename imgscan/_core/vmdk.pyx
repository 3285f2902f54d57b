"""VMDK containers (VMware virtual disks).

Spec: VMware "Virtual Disk Format 1.1" (hosted sparse extents, the
descriptor, stream-optimized compressed sparse extents); ESX's older COWD
sparse extents as qemu 7.2 reads them (``block/vmdk.c``). All on-disk integers
are little-endian; offsets and sizes in headers and tables count 512-byte
sectors.

ESXi's seSparse extents are recognised, not read: the facts come from the
constant header (version 2.1, the only one qemu 7.2 reads; others are refused),
the grain tables are not decoded (an ``unknown-feature`` finding says so), and
mapping or reading the guest bytes of one raises ``UnsupportedFormat``. Only the
header facts are tested, on the corpus's seSparse file (dissect.hypervisor's).

A VMDK disk is a *descriptor* (text: see :mod:`vmdk_descriptor`) listing
*extents*. The descriptor is either a file of its own (monolithicFlat,
twoGbMaxExtentSparse/Flat, vmfs, vmfsSparse, seSparse) whose extents are other
files, or embedded in a *hosted sparse extent* (monolithicSparse,
streamOptimized) that is the whole disk. A sparse extent starts with a
512-byte header (magic ``KDMV``) and maps grains (clusters) through a
two-level table: the *grain directory* (GD) of 32-bit sector numbers of
*grain tables* (GT), whose ``numGTEsPerGT`` entries are the grains' sector
numbers (0: unallocated; 1 with the zeroed-grain flag: reads as zeros).
streamOptimized extents compress every grain (zlib), each led by a *grain
marker* (LBA and stored size), and may put the GD at the end of the stream,
found through a *footer*: a copy of the header in the second-to-last sector.

Where the spec leaves room this decoder does what qemu 7.2 does, so that
``imgscan`` and ``qemu-img -f vmdk`` agree: createType and
parentFileNameHint are read qemu's way (first occurrence of the name in the
text), the primary grain directory is walked (the redundant one only
described), the footer replaces the header when the GD is at the end, and
``subformat`` is qemu's create type (monolithicSparse or streamOptimized for
a sparse file, whatever its embedded descriptor says).

It departs from qemu where qemu misreads or refuses a disk an inspector
should describe: RDONLY and NOACCESS extents and ZERO extents are part of the
disk as the spec says (qemu 7.2 skips the former and aborts on the latter);
grain tables that overlap the grain directory or each other are refused as
corrupt (qemu reads them); a grain marker whose LBA is not the grain's, and
descriptor readings that differ, are findings.

Other files are never opened here: :class:`imgscan.Image` opens
:meth:`VmdkImage.external_files` inside the caller's ``external_dir`` and
hands them over (:meth:`attach_external_sources`) before the map is built;
without them the descriptor still gives the facts and the map marks those
ranges as stored in the external files.

This module is the descriptor-based container (extents laid end to end:
flat, split, zero and sparse ones, descriptor files and embedded
descriptors); one sparse extent's header and grain walk are
:mod:`imgscan._core.vmdk_sparse`, the structures :mod:`imgscan._core.c_vmdk`.
"""

from libc.stdint cimport uint8_t

from imgscan import limits
from imgscan.errors import (
    CorruptImage, ImageError, TruncatedImage, UnsupportedFeature, UnsupportedFormat,
)
from imgscan.findings import DESCRIPTOR_AMBIGUOUS, EXTERNAL_EXTENT, SIZE_MISMATCH, UNKNOWN_FEATURE

from .binary cimport le64
from .c_vmdk import (
    COWD_MAGIC, DESCRIPTOR_SIGNATURE, PROBE_BYTES, SECTOR_SIZE, SESPARSE_CONST_HEADER,
    SESPARSE_MAGIC, SESPARSE_VERSION, SPARSE_EXTENT_HEADER, SPARSE_MAGIC,
)
from .container import Container, Format
from .extents cimport ExtentMap
from .inflate import StreamError, zlib_bounded
from .paths import unsafe_reason
from .raw import map_host_range
from .source cimport Source
from .vmdk_sparse cimport SparseHeader, read_sparse_header, walk_sparse
from . import vmdk_descriptor as vd
from .vmdk_descriptor cimport Descriptor, parse_descriptor


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

cdef class _Extent:
    """One extent of the disk: where its guest range lives.

    An extension type: one is made on every open (as a Python class, its ``__init__`` a
    Python frame, about 3 k instructions of a small VMDK's open, issue 18)."""

    cdef public object access, file, guest_start, header, length, name, offset, type

    def __init__(self, type, guest_start, length, file=0, name=None, offset=0, access="RW",
                 header=None):
        self.type = type
        self.guest_start = guest_start
        self.length = length
        self.file = file
        self.name = name
        self.offset = offset
        self.access = access
        self.header = header


class VmdkImage(Container):
    """A VMDK disk: a sparse extent (with its embedded descriptor) or a descriptor file."""

    format = "vmdk"
    map_reads_external = True

    def __init__(self, Source source):
        Container.__init__(self, source, 0)
        self._extents = []
        self._files = []
        self._header = None
        self.external_sources = None
        size = source.size
        head = source.read(0, min(size, 8), "VMDK header")
        if head[:4] in (SPARSE_MAGIC, COWD_MAGIC):
            self._open_sparse()
        elif (len(head) == SESPARSE_CONST_HEADER.end("magic")
              and SESPARSE_CONST_HEADER.field(head, "magic") == SESPARSE_MAGIC):
            self._open_sesparse()
        else:
            self._open_descriptor_file()

    # -- a sparse extent opened directly -------------------------------------
    def _open_sparse(self):
        """A sparse extent opened directly; its header typed (read_sparse_header a C call,
        its fields C members, its details built in C: issue 18)."""
        cdef Source src = self.source
        cdef SparseHeader h = read_sparse_header(self, src, "VMDK")
        cdef dict d = self.details
        cdef Descriptor desc = None
        self._header = h
        if h.kind == "COWD":
            self.subformat = "COWD"
            d["create_type"] = "COWD"
            d["header"] = h.as_dict()
            self.virtual_size = h.capacity
            self.cluster_size = h.grain
            self._extents.append(_Extent("sparse", 0, h.capacity, 0, header=h))
            return
        d["header"] = h.as_dict()
        if h.desc_offset and h.desc_size:
            desc = _read_embedded_descriptor(self, h)
        if h.capacity == 0 and desc is not None:
            # qemu reads a capacity-0 sparse file's descriptor as a descriptor file.
            self._use_descriptor_file(desc)
            return
        self.virtual_size = h.capacity
        self.cluster_size = h.grain
        # qemu's create type for a sparse file: decided by the header, not the descriptor
        self.subformat = "streamOptimized" if h.compressed else "monolithicSparse"
        d["create_type"] = self.subformat
        self._extents.append(_Extent("sparse", 0, h.capacity, 0, header=h))
        if desc is not None:
            _describe(self, desc)
            written = desc.first("createType")
            if written is not None and written != self.subformat:
                d["descriptor_create_type"] = written
            total = 0
            for e in desc.extents:      # a loop, not a generator object an open
                total += e.sectors
            total *= SECTOR_SIZE
            if len(desc.extents) > 1 or (desc.extents and total != h.capacity):
                names = [e.filename for e in desc.extents if e.filename]
                self.add_finding(
                    EXTERNAL_EXTENT, "warning",
                    f"the embedded descriptor lists {len(desc.extents)} extent(s) "
                    f"({', '.join(map(repr, names[:8]))}) of {total} bytes; this file alone "
                    f"holds {h.capacity} bytes and is read alone (as qemu does)")

    # -- seSparse --------------------------------------------------------------
    def _open_sesparse(self):
        src = self.source
        h = SESPARSE_CONST_HEADER.unpack(src.read_zero_padded(0, SESPARSE_CONST_HEADER.size))
        version = h["version"]
        capacity = h["capacity"]
        grain = h["grain_size"]
        self.subformat = "seSparse"
        d = self.details
        d["create_type"] = "seSparse"
        d["header"] = {key: h[key] for key in (
            "version", "capacity", "grain_size", "grain_table_size", "flags", "grain_dir_offset",
            "grain_dir_size", "grain_tables_offset", "grains_offset")}
        if version != SESPARSE_VERSION or capacity * SECTOR_SIZE > limits.MAX_VIRTUAL_SIZE:
            raise UnsupportedFormat(self.path, "vmdk", "seSparse constant header",
                                    SESPARSE_CONST_HEADER.offset("version"),
                                    f"seSparse version 0x{version:x} / capacity {capacity} "
                                    "sectors: not the 2.1 layout qemu reads")
        self.virtual_size = capacity * SECTOR_SIZE
        if 0 < grain <= limits.VMDK_MAX_GRAIN_SECTORS:
            self.cluster_size = grain * SECTOR_SIZE
        self.add_finding(
            UNKNOWN_FEATURE, "warning",
            "an ESXi seSparse extent (snapshot delta) opened without its descriptor: its facts "
            "come from the constant header; its grain tables are not decoded")
        self._extents.append(_Extent("sesparse", 0, self.virtual_size, 0, name=self.path))

    # -- descriptor files ------------------------------------------------------
    def _open_descriptor_file(self):
        src = self.source
        limits.enforce(src.size, "VMDK_MAX_DESCRIPTOR_BYTES", self.path, "VMDK descriptor file",
                       0, "descriptor file size")
        raw = src.read(0, src.size, "VMDK descriptor file")
        desc = parse_descriptor(raw, self.path, 0, "VMDK descriptor file")
        self._use_descriptor_file(desc)

    def _use_descriptor_file(self, desc):
        d = self.details
        create_type = desc.qemu_value("createType")
        if create_type is None or len(create_type) > vd.QEMU_CREATE_TYPE_MAX:
            raise CorruptImage(self.path, "VMDK descriptor createType", None,
                               "no createType=\"...\" value (qemu: invalid VMDK image descriptor)")
        self.subformat = create_type
        d["create_type"] = create_type
        _describe(self, desc)
        if create_type not in vd.QEMU_DESCRIPTOR_CREATE_TYPES:
            self.add_finding(
                UNKNOWN_FEATURE, "warning",
                f"createType {create_type!r} is not one qemu opens from a descriptor file "
                f"({', '.join(vd.QEMU_DESCRIPTOR_CREATE_TYPES)}); the extent lines are read "
                "as written")
        if create_type in ("seSparse",) or any(e.type == vd.EXTENT_SESPARSE
                                               for e in desc.extents):
            seen = "seSparse"
        else:
            seen = None
        pos = 0
        index = {}
        skipped = 0
        for e in desc.extents:
            length = e.sectors * SECTOR_SIZE
            if e.access != "RW":
                skipped += 1
            file = 0
            if e.filename is not None:
                if e.filename not in index:
                    self._files.append(e.filename)
                    index[e.filename] = len(self._files)
                file = index[e.filename]
                self._report_extent(e)
            if e.type == vd.EXTENT_ZERO:
                kind = "zero"
            elif e.type in vd.FLAT_TYPES:
                kind = "flat"
            elif e.type in (vd.EXTENT_SPARSE, vd.EXTENT_VMFSSPARSE):
                kind = "sparse"
            elif e.type == vd.EXTENT_SESPARSE:
                kind = "sesparse"
            else:
                raise UnsupportedFeature(self.path, f"VMDK descriptor line {e.line}", None,
                                         f"extent type {e.type!r} is not one of "
                                         f"{', '.join(vd.EXTENT_TYPES)}")
            self._extents.append(_Extent(kind, pos, length, file, e.filename,
                                         e.offset * SECTOR_SIZE, e.access))
            pos += length
            limits.enforce(pos, "MAX_VIRTUAL_SIZE", self.path, f"VMDK descriptor line {e.line}",
                           None, "the extents' total size")
        self.virtual_size = pos
        d["extents"] = [e.as_dict() for e in desc.extents]
        if skipped:
            self.add_finding(
                UNKNOWN_FEATURE, "info",
                f"{skipped} extent(s) are RDONLY or NOACCESS: they are part of the disk as the "
                "spec says, but qemu 7.2 leaves them out (its disk is smaller)")
        if seen:
            self.add_finding(
                UNKNOWN_FEATURE, "warning",
                "seSparse extents (ESXi snapshot deltas) are named here but their grain tables "
                "are not decoded")

    def _report_extent(self, e):
        name = e.filename
        reason = unsafe_reason(name)
        if reason is None and ("/" in name or "\\" in name):
            reason = "it names a file in another directory"
        self.add_finding(
            EXTERNAL_EXTENT, "warning" if reason is None else "error",
            f"extent {e.access} {e.sectors} {e.type} (descriptor line {e.line}) is stored in "
            f"file {name!r}" + ("" if reason is None else f": {reason}") + "; it is opened only "
            "inside the directory given as external_dir" + (
                "" if unsafe_reason(name) is None else " and this name never"))

    # -- the extent map ----------------------------------------------------------
    def external_files(self):
        return list(self._files)

    def _external(self, file):
        sources = self.external_sources
        if sources is None or file - 1 >= len(sources):
            return None
        return sources[file - 1]

    def build_extent_map(self):
        cdef _Extent e      # its fields read as C members (issue 18)
        emap = ExtentMap(self.virtual_size, self.cluster_size or 0)
        for e in self._extents:
            if e.type == "zero":
                emap._append(e.guest_start, e.length, "zero")
                continue
            src = self.source if e.file == 0 else self._external(e.file)
            if e.type == "sesparse":
                raise UnsupportedFormat(self.path, "vmdk", f"seSparse extent {e.name!r}", None,
                                        "seSparse grain tables are not decoded")
            if src is None:
                # Not opened (no external_dir, or a name never followed): the range is
                # stored in that file; reading it raises UnsafePath.
                emap._append(e.guest_start, e.length, "data", e.offset, e.file)
            elif e.type == "flat":
                map_host_range(emap, src, e.guest_start, e.offset, e.length, e.file)
            else:
                walk_sparse(self, emap, src, _sparse_header(self, e, src), e.guest_start,
                            e.length, e.file, _label(e))
        return emap

    def attach_external_sources(self, sources):
        """Receive the extent files, then take the cluster size from their headers.

        qemu's cluster size (block/vmdk.c, ``vmdk_get_info``) is the grain size of
        the first extent when every extent is of one kind: all sparse with the same
        grain size and compression. Flat or zero extents, or a mix of kinds, have
        none. An extent file that is not opened leaves it unknown (None).
        """
        cdef _Extent e
        Container.attach_external_sources(self, sources)
        kinds = set()
        for e in self._extents:
            if e.type in ("flat", "zero"):
                kinds.add("flat")
                continue
            src = self.source if e.file == 0 else self._external(e.file)
            if e.type != "sparse" or src is None:
                return
            try:
                h = _sparse_header(self, e, src)
            except ImageError:
                return  # the map reports it
            kinds.add((h.grain, h.compressed))
        if len(kinds) == 1:
            kind = kinds.pop()
            self.cluster_size = None if kind == "flat" else kind[0]

    # -- compressed grains -------------------------------------------------------
    def decompress(self, host, stored_length):
        """Inflate one stream-optimized grain (zlib) to at most the grain size."""
        import zlib

        h = self._header
        if h is None or not h.compressed:
            raise CorruptImage(self.path, "VMDK compressed grain", host,
                               "the extent has no compressed grains")
        grain = h.grain
        if stored_length == 0 or stored_length > 2 * grain:
            raise CorruptImage(self.path, "VMDK compressed grain", host,
                               f"stored size {stored_length} is 0 or more than two grains "
                               f"({2 * grain} bytes; qemu refuses it too)")
        data = self.source.read_zero_padded(host, stored_length)
        inflater = zlib.decompressobj()
        try:
            out, more = zlib_bounded(inflater, data, grain)
        except StreamError as exc:
            raise CorruptImage(self.path, "VMDK compressed grain", host, str(exc)) from None
        if more:
            raise self.compression_bomb("VMDK compressed grain", host, grain)
        if not inflater.eof:
            raise CorruptImage(self.path, "VMDK compressed grain", host,
                               "the zlib stream ends before its end marker")
        # A short grain fails the read only where a read needs the missing bytes (as in qemu).
        return out


cdef Descriptor _read_embedded_descriptor(image, SparseHeader h):
    """The descriptor a sparse extent embeds (header ``h``), parsed; a C function, as
    :func:`_describe` is (a Python method call an open each, issue 18)."""
    cdef Source src = image.source
    if h.desc_size > limits.VMDK_MAX_DESCRIPTOR_BYTES:     # enforce called only to refuse
        limits.enforce(h.desc_size, "VMDK_MAX_DESCRIPTOR_BYTES", image.path,
                       "VMDK embedded descriptor", h.desc_offset, "descriptorSize in bytes,")
    length = h.desc_size
    if not src.contains(h.desc_offset, length):
        raise TruncatedImage(image.path, "VMDK embedded descriptor", h.desc_offset,
                             f"{length} bytes end past the end of the file ({src.size})")
    if h.desc_offset != SECTOR_SIZE:
        image.add_finding(
            DESCRIPTOR_AMBIGUOUS, "warning",
            f"the embedded descriptor is at offset {h.desc_offset}, but qemu reads CID, "
            "parentCID and parentFileNameHint at sector 1 whatever descriptorOffset says")
    head = src._head
    if head is not None and h.desc_offset + length <= len(head):
        # in the file's head detection kept (every descriptor qemu-img writes): parsed
        # there, not copied out first
        return parse_descriptor(head, image.path, h.desc_offset,
                                "VMDK embedded descriptor", h.desc_offset, length)
    raw = src.read(h.desc_offset, length, "VMDK embedded descriptor")
    return parse_descriptor(raw, image.path, h.desc_offset, "VMDK embedded descriptor")


cdef _describe(image, Descriptor desc):
    """Descriptor facts shared by embedded descriptors and descriptor files.

    ``desc`` typed: its readings are C calls (eight Python method calls an open
    were about a tenth of a small VMDK's, issue 18)."""
    cdef dict ddb
    cdef list encryption = []
    cdef str key
    cdef dict d = image.details
    desc.check_key("createType")
    parent = desc.check_key("parentFileNameHint")      # qemu's reading
    for message in desc.ambiguities:
        image.add_finding(DESCRIPTOR_AMBIGUOUS, "error", message)
    cid = desc.qemu_hex("CID")
    parent_cid = desc.qemu_hex("parentCID")
    if cid is not None:
        d["cid"] = cid
    if parent_cid is not None:
        d["parent_cid"] = parent_cid
    for key, name in _HEADER_KEYS:
        value = desc.first(key)
        if value is not None:
            d[name] = value
    if parent:
        image.backing_file = parent
    ddb = desc.disk_database(limits.VMDK_MAX_DDB_ENTRIES, encryption)
    if ddb:
        d["ddb"] = ddb
    # one look-up a key (a test and a read were two, eight keys an open: issue 18);
    # the values are never None
    for key, name in (("ddb.adapterType", "adapter_type"),
                      ("ddb.virtualHWVersion", "hw_version"),
                      ("ddb.toolsVersion", "tools_version"),
                      ("ddb.uuid", "uuid"), ("ddb.longContentID", "long_content_id")):
        value = ddb.get(key)
        if value is not None:
            d[name] = value
    geometry = {}
    for key, name in _GEOMETRY_KEYS:
        value = ddb.get(key)
        if value is not None:
            geometry[name] = value
    if geometry:
        d["geometry"] = geometry
    if encryption:
        image.encrypted = True
        image.encryption = "vmware"
        d["encryption_keys"] = encryption


cdef str _label(_Extent e):
    """How messages name extent ``e``: the image itself, or its extent file."""
    return "VMDK" if e.file == 0 else f"VMDK extent {e.name!r}"


cdef SparseHeader _sparse_header(image, _Extent e, Source src):
    """The header of sparse extent ``e`` of ``image`` stored in ``src``, read once (C
    functions, not methods: the map and the external sources' hand-over call them on
    every open, issue 18)."""
    cdef SparseHeader h
    if e.header is None:
        label = _label(e)
        h = read_sparse_header(image, src, label)
        if h.compressed:
            raise UnsupportedFeature(
                image.path, f"{label} sparse header",
                SPARSE_EXTENT_HEADER.offset("compressAlgorithm"),
                "compressed grains in an extent file other than the image itself")
        if h.capacity != e.length:
            image.add_finding(
                SIZE_MISMATCH, "warning",
                f"{label} holds {h.capacity} bytes but its extent line says "
                f"{e.length}; the extent line decides the disk's layout")
        e.header = h
    return e.header


#: Where the seSparse magic and version lie (from the declaration in c_vmdk.py): the probe
#: runs on every file whose first byte may start a descriptor ("v", "#", " ": a VHDX too).
cdef Py_ssize_t SE_MAGIC = SESPARSE_CONST_HEADER.offset("magic")
cdef Py_ssize_t SE_VERSION = SESPARSE_CONST_HEADER.offset("version")
cdef Py_ssize_t SE_VERSION_END = SESPARSE_CONST_HEADER.end("version")


#: Descriptor header keys and the facts they are reported as; the disk database's
#: geometry keys and theirs (made once, not formatted per open).
_HEADER_KEYS = (("version", "descriptor_version"), ("encoding", "encoding"),
                ("isNativeSnapshot", "isNativeSnapshot"))
_GEOMETRY_KEYS = tuple((f"ddb.geometry.{k}", k) for k in ("cylinders", "heads", "sectors"))


def probe(Source source):
    """A sparse or COWD magic, an seSparse header, or descriptor text as qemu recognises it."""
    size = source.size
    if size < 4:
        return False
    cdef bytes head = source.read(0, min(size, PROBE_BYTES), "VMDK header")
    cdef const uint8_t* p = <const uint8_t*><char*>head
    if head[:4] in (SPARSE_MAGIC, COWD_MAGIC):
        return True
    if len(head) >= SE_VERSION_END and (le64(p + SE_MAGIC) == SESPARSE_MAGIC
                                        and le64(p + SE_VERSION) == SESPARSE_VERSION):
        return True
    if head.startswith(DESCRIPTOR_SIGNATURE):
        return True
    return _qemu_probe_text(head)


def _qemu_probe_text(bytes head):
    """qemu's vmdk_probe for text: comments and blank lines, then ``version=1|2|3``."""
    pos = 0
    n = len(head)
    while pos < n:
        c = head[pos]
        if c == 0x23:  # '#': skip the comment line
            nl = head.find(b"\n", pos)
            if nl < 0:
                return False
            pos = nl + 1
            continue
        if c == 0x20:
            while pos < n and head[pos] == 0x20:
                pos += 1
            if pos < n and head[pos] == 0x0A:
                pos += 1
                continue
        rest = head[pos:pos + 11]
        return rest[:10] in (b"version=1\n", b"version=2\n", b"version=3\n") or \
            rest in (b"version=1\r\n", b"version=2\r\n", b"version=3\r\n")
    return False


FORMAT = Format("vmdk", probe, VmdkImage)
