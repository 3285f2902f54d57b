# The probes are C functions (linux.pxd); Python sees the constants probe_volume uses.
BTRFS_SB: int
BTRFS_SB_BYTES: int
SWAP_MAGIC_LENGTH: int
SWAP_MAGIC_V0: bytes
SWAP_MAGIC_V1: bytes
SWAP_PAGE_SIZES: tuple[int, ...]
