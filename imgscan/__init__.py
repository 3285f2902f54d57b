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
from .vocabulary import SCHEMA_VERSION

# -- the rest on first use ------------------------------------------------------------
# ``import imgscan`` is light (errors, vocabulary): the readers, the bulk scan and the
# fingerprints are imported when first named (PEP 562). So the ``imgscan`` command can set
# its process up (imgscan.__main__) before the decoders' import, and a command that reads
# no image (``catalog``, ``report``, ``profiles``) never imports them. ``__version__`` too:
# `imgscan info` never prints it (a module less at start-up, issue 18).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .bulk.scan import scan
    from .findings import Finding
    from .fingerprints import fingerprint
    from .image import Image, open
    from .version import __version__


def __getattr__(name: str) -> object:
    value: object
    if name in ("Image", "open"):
        from . import image
        value = getattr(image, name)
    elif name == "Finding":
        from .findings import Finding as value
    elif name == "scan":
        from .bulk.scan import scan as value
    elif name == "fingerprint":
        from .fingerprints import fingerprint as value
    elif name == "__version__":
        from .version import __version__ as value
    else:
        raise AttributeError(f"module 'imgscan' has no attribute {name!r}")
    globals()[name] = value     # found once: the next lookup is a plain attribute
    return value


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
