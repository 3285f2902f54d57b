"""GUIDs and UUIDs as text, without importing :mod:`uuid` (it costs milliseconds of start-up).

Two byte orders exist on disk: RFC 4122 order (VHD unique ids, ext4 and LUKS
UUIDs) and Microsoft's mixed-endian GUID order (GPT, VHDX, VDI, LDM), whose
first three fields are little-endian.
"""

from __future__ import annotations


def _dashed(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def uuid_text(raw: bytes) -> str:
    """16 bytes in RFC 4122 (big-endian) order as ``xxxxxxxx-xxxx-...``, lower case."""
    if len(raw) != 16:
        raise ValueError(f"a UUID is 16 bytes, not {len(raw)}")
    return _dashed(raw.hex())


def guid_text(raw: bytes) -> str:
    """16 bytes in Microsoft GUID (mixed-endian) order as text, lower case."""
    if len(raw) != 16:
        raise ValueError(f"a GUID is 16 bytes, not {len(raw)}")
    return _dashed(raw[3::-1].hex() + raw[5:3:-1].hex() + raw[7:5:-1].hex() + raw[8:].hex())
