# The probes are C functions (linux.pxd); Python sees the constants probe_volume uses.
BTRFS_SB: int
BTRFS_SB_BYTES: int
SWAP_PAGE_SIZES: tuple[int, ...]

def md0_offset(size: int) -> int: ...
def md10_offset(size: int) -> int: ...
