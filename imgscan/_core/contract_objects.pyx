"""The JSON contract's objects (../shared/docs/json-contract.md), assembled natively: the
``imgscan info`` object of one disk and the per-volume objects of its layout.

Why native (issue 18): built in Python, every field of these objects cost a round of
bytecodes (a load, an attribute lookup, a store; a display of more than 16 keys even
compiles to chunks merged by ``DICT_UPDATE``), some 10 k instructions of a small image's
``info``, more than the probes of its disk. Here each field is one C attribute read and
one store into a dict allocated once at its final size.

Only the assembly lives here: the stages run in :mod:`imgscan.contract` (container,
layout, guest) and :mod:`imgscan.layout` (partition table, probes, boot mode), which hand
their results in. The keys and their order are the contract's, which is public: extend,
never reorder.
"""

from imgscan.vocabulary import SCHEMA_VERSION


cdef inline void _put_volume_facts(dict out, volume):
    """Store the facts every volume object of the contract carries, in the contract's
    order, from a probe's :class:`~imgscan._core.filesystems.Volume` or None (nothing
    identified)."""
    if volume is None:
        out["filesystem"] = None
        out["label"] = None
        out["uuid"] = None
        out["encrypted"] = False
    else:
        out["filesystem"] = volume.filesystem
        out["label"] = volume.label
        out["uuid"] = volume.uuid
        out["encrypted"] = bool(volume.encrypted)


def volume_facts(volume):
    """The facts of a volume object (a logical volume's, with its own keys before)."""
    cdef dict out = {}
    _put_volume_facts(out, volume)
    return out


def whole_disk_object(volume):
    """The contract's ``volume`` object: the whole disk when it has no partition table
    and ``volume`` (a probe's answer, not None) was identified on it."""
    cdef dict out = {}
    _put_volume_facts(out, volume)
    out["size"] = volume.size
    out["details"] = volume.details
    return out


def partition_object(p, volume):
    """The contract object of partition ``p`` (a
    :class:`~imgscan._core.partitions.Partition`) holding ``volume`` (or None)."""
    cdef dict out = {
        "number": p.number, "start": p.start, "size": p.size, "type": p.type,
        "type_name": p.type_name, "bootable": p.bootable,
    }
    _put_volume_facts(out, volume)
    attributes = p.attributes
    if attributes is not None:
        out["name"] = p.name
        out["guid"] = p.guid
        out["attributes"] = attributes
    else:
        out["logical"] = p.logical
    if volume is not None and volume.details:
        out["filesystem_details"] = volume.details
    return out


def disk_info(str path, facts, file_size, allocated, cluster_size, layout, dict guests,
              source, list findings):
    """The ``imgscan info`` object (schema 1) of one disk: ``facts`` the container's
    (:attr:`imgscan.disk_image.DiskImage.facts`), ``layout`` an
    :class:`imgscan.layout.Layout`, ``guests`` the guest stage's per-OS objects and
    ``findings`` every stage's, in stage order (their stages go into the extension key
    ``finding_stages``)."""
    cdef dict info = {
        "schema_version": SCHEMA_VERSION,
        "path": path,
        "format": facts.format,
        "subformat": facts.subformat,
        "virtual_size": facts.virtual_size,
        "file_size": file_size,
        "allocated_size": allocated,
        "cluster_size": cluster_size,
        "encrypted": facts.encrypted,
        "encryption": facts.encryption,
        "backing_file": facts.backing_file,
        "backing_format": facts.backing_format,
        "data_file": facts.data_file,
        "snapshots": facts.snapshots,
        "dirty": facts.dirty,
        "partition_table": layout.partition_table,
        "partitions": layout.partitions,
        "filesystem": layout.filesystem,
        "boot_mode": layout.boot_mode,
        "windows": guests["windows"],
        "linux": guests["linux"],
        "source": source,
        "findings": [f.as_dict() for f in findings],
        "format_specific": facts.details,
        "boot_evidence": layout.boot_evidence,
        "partition_table_details": layout.details,
        "volume": layout.volume,
        "volume_count": layout.volume_count,
        "finding_stages": [f.stage for f in findings],
    }
    return info
