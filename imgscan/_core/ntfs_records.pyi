# The MFT layer is C-level (ntfs_records.pxd); its public names are c_ntfs constants.
from .c_ntfs import *  # noqa: F403
