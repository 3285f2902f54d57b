# The probe is a C function (iso9660.pxd), called from filesystems.probe_volume.
# The structures it reads are imgscan._core.c_iso9660's.
