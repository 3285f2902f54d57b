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
from .version import __version__

# -- bulk scanning and content fingerprints -----------------------------------------
# Both are imported on first call: `imgscan info` pays nothing for them (start-up time).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .bulk.scan import scan
    from .fingerprints import fingerprint
else:
    def scan(*args, **kwargs):
        """Scan every image under the given paths in parallel: see imgscan.bulk.scan.scan."""
        from .bulk.scan import scan as run
        return run(*args, **kwargs)

    def fingerprint(*args, **kwargs):
        """The content fingerprint of an image's guest disk: see imgscan.fingerprints."""
        from .fingerprints import fingerprint as run
        return run(*args, **kwargs)

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
