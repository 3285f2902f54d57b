# The probes are C functions (dos.pxd), called from filesystems.probe_volume.
FAT_MAGICS: tuple[tuple[int, bytes], ...]
NTFS_MAX_CLUSTER: int
