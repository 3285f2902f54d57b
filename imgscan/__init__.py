"""imgscan: will this disk image import, and if not, exactly why?

Read a VM disk image offline (qcow2, qcow, VHD, raw, ...) and report what it
is and what it holds::

    import imgscan

    with imgscan.open("disk.qcow2") as img:
        print(img.format, img.virtual_size, img.backing_file)
        print(img.info())            # the JSON contract object
        for extent in img.extents():  # where each guest range is stored
            ...
        mbr = img.read(0, 512)        # guest-visible bytes

Every problem with an image raises an :class:`ImageError` subclass whose
message names the file, the structure and the byte offset.
"""

from __future__ import annotations

from .errors import (
    CorruptImage,
    EncryptedImage,
    ImageError,
    LimitExceeded,
    TruncatedImage,
    UnsafePath,
    UnsupportedFeature,
    UnsupportedFormat,
)
from .findings import Finding
from .image import SCHEMA_VERSION, Image, open

__version__ = "0.1.0"

# -- bulk scanning (imported on first call: `imgscan info` pays nothing for it) ------
# The package imgscan.scan is imported (its __init__ is a docstring) before the function
# of the same name is bound: a first import of a submodule afterwards (imgscan.scan.runner)
# then finds the package in sys.modules and leaves `imgscan.scan` the function.
from . import scan as _scan_package  # noqa: F401

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .scan.runner import scan
else:
    def scan(*args, **kwargs):
        """Scan every image under the given paths in parallel: see imgscan.scan.runner.scan."""
        from .scan.runner import scan as run
        return run(*args, **kwargs)

# -- content fingerprints ----------------------------------------------------------
# The module imports nothing heavy until called (its xxhash and threads load then), so
# importing it costs `imgscan info` nothing; binding the function after the import keeps
# `imgscan.fingerprint` the function rather than the module of the same name.
from .fingerprint import fingerprint  # noqa: E402

__all__ = [
    "SCHEMA_VERSION",
    "CorruptImage",
    "EncryptedImage",
    "Finding",
    "Image",
    "ImageError",
    "LimitExceeded",
    "TruncatedImage",
    "UnsafePath",
    "UnsupportedFeature",
    "UnsupportedFormat",
    "__version__",
    "fingerprint",
    "open",
    "scan",
]
