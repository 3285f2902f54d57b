# The probes are C functions (linux.pxd); Python sees the constants probe_volume uses.
BTRFS_SB: int
BTRFS_SB_BYTES: int
SWAP_MAGIC_LENGTH: int
SWAP_MAGIC_V0: bytes
SWAP_MAGIC_V1: bytes
SWAP_PAGE_SIZES: tuple[int, ...]
MD_RESERVED: int
MD0_SB_BYTES: int
MD1_SB_BYTES: int

def md0_offset(size: int) -> int: ...
def md10_offset(size: int) -> int: ...
