# The probe is a C function (iso9660.pxd), called from filesystems.probe_volume.
# The structures it reads are imgscan._core.c_iso9660's.

#: Where the primary volume descriptor starts (sector 16 of 2048 bytes), from c_iso9660.
ISO_PVD: int
