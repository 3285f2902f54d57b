"""The binary structures Windows inspection reads, declared once (as dissect's ``c_<format>``).

Each is a :class:`~imgscan._core.cstruct.CStruct` named as its source names
it; the inspection modules (:mod:`.pe`, :mod:`.sam`, :mod:`.bcd`,
:mod:`.hives`) import them and keep no offsets of their own. They are small
records inside registry values and file headers: :func:`field` reads one
field bounded by the value that holds it, and says which field did not fit.

Sources: Microsoft "PE Format" (MS-DOS stub, signature, COFF file header);
the SAM ``F``/``V``/``C`` values and SIDs as libguestfs, samdump2 and
Microsoft's MS-DTYP (2.4.2 SID) read them; BCD partition device elements from
../shared/docs/windows-inspection.md section 5; MountedDevices from libguestfs
``daemon/inspect_fs_windows.ml``; DigitalProductId4 from windows-inspection.md;
WinHttpSettings as ``netsh winhttp set proxy`` / ``reset proxy`` write it (wininet's
PROXY_TYPE_* flags).
"""

from __future__ import annotations

from imgscan._core.cstruct import CStruct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# -- PE/COFF ---------------------------------------------------------------------------

#: The MS-DOS header's fields imgscan needs: the magic and where the PE headers start.
IMAGE_DOS_HEADER = CStruct("IMAGE_DOS_HEADER", "<", [
    ("e_magic", "2s"), (None, "58x"), ("e_lfanew", "I"),
])
DOS_MAGIC = b"MZ"
#: The PE signature and the COFF file header's first field, at ``e_lfanew``.
IMAGE_NT_HEADERS = CStruct("IMAGE_NT_HEADERS", "<", [
    ("Signature", "4s"), ("Machine", "H"),
])
PE_SIGNATURE = b"PE\0\0"

# -- SAM -------------------------------------------------------------------------------

#: A user's fixed-size ``F`` value (80 bytes): its RID and its ACB flags.
SAM_USER_F = CStruct("SAM user F", "<", [
    (None, "48x"), ("rid", "I"), (None, "4x"), ("acb_flags", "H"),
])
ACB_DISABLED = 0x0001
ACB_PWNOTREQ = 0x0004
ACB_NORMAL = 0x0010
ACB_PWNOEXP = 0x0200
ACB_AUTOLOCK = 0x0400

#: One entry of the table heading a user's ``V`` value; its data lies at
#: ``SAM_V_HEADER + offset``.
SAM_V_ENTRY = CStruct("SAM V entry", "<", [
    ("offset", "I"), ("length", "I"), ("unknown", "I"),
])
#: The ``V`` table: 17 entries; data offsets are relative to its end.
SAM_V_HEADER = 17 * SAM_V_ENTRY.size
#: Entry numbers of the ``V`` table.
V_USERNAME = 1
V_LM_HASH = 13
V_NT_HASH = 14

#: The head of the NT hash entry: revision 2 is an AES entry.
SAM_NT_HASH = CStruct("SAM NT hash", "<", [
    (None, "2x"), ("revision", "H"),
])
#: NT hash entry lengths that mean a hash is stored: RC4 (4 + 16) and AES (24 + 32).
NT_STORED = (20, 56)
#: AES entries (revision 2) longer than their 24-byte header also carry a hash.
NT_AES_HEADER = 24

#: An alias's ``C`` value header; member offsets are relative to its end.
SAM_ALIAS_C = CStruct("SAM alias C", "<", [
    (None, "40x"), ("members_offset", "I"), ("members_length", "I"), ("member_count", "I"),
])

#: A binary SID (MS-DTYP 2.4.2): the 48-bit authority is big-endian, then
#: ``count`` little-endian 32-bit sub-authorities.
SID = CStruct("SID", "<", [
    ("revision", "B"), ("count", "B"), ("authority", "6s"),
])
SID_SUB_AUTHORITY = CStruct("SID sub-authority", "<", [("value", "I")])

# -- BCD -------------------------------------------------------------------------------

#: A partition device element (0x58 bytes; the fields below are the first 0x48).
#: ``partition``: GPT, the partition GUID; MBR, its byte offset (u64). ``disk``:
#: GPT, the disk GUID; MBR, the disk signature (u32).
BCD_PARTITION_DEVICE = CStruct("BCD partition device", "<", [
    (None, "16x"), ("type", "I"), (None, "12x"), ("partition", "16s"),
    (None, "4x"), ("style", "I"), ("disk", "16s"),
])
DEVICE_PARTITION = 6
STYLE_GPT = 0
STYLE_MBR = 1
#: The MBR forms of ``partition`` and ``disk``, read from those 16-byte fields.
MBR_PARTITION = CStruct("BCD MBR partition", "<", [("offset", "Q")])
MBR_DISK = CStruct("BCD MBR disk", "<", [("signature", "I")])

# -- SYSTEM and SOFTWARE values ---------------------------------------------------------

#: A MountedDevices value of an MBR volume (12 bytes).
MOUNTED_DEVICE_MBR = CStruct("MountedDevices MBR", "<", [
    ("disk_signature", "I"), ("offset", "Q"),
])
#: A MountedDevices value of a GPT volume: the magic, then the partition GUID.
MOUNTED_DEVICE_GPT = CStruct("MountedDevices GPT", "<", [
    ("magic", "8s"), ("partition_guid", "16s"),
])
MOUNTED_DEVICE_GPT_MAGIC = b"DMIO:ID:"

#: DigitalProductId4 (PidGenX output; windows-inspection.md section 4): the licence
#: channel (KeyType), UTF-16LE text.
DIGITAL_PRODUCT_ID4 = CStruct("DigitalProductId4", "<", [
    (None, "1016x"), ("KeyType", "128s"),
])

#: WinHttpSettings (SOFTWARE ``...\\Internet Settings\\Connections``), what ``netsh winhttp
#: set proxy`` writes: a version, a change counter, the proxy type flags, then the proxy
#: server's length and ASCII text (and the bypass list's length and text after it).
#: ``netsh winhttp reset proxy`` writes ``18 00 00 00 | 0 | 01 00 00 00 | 0 | 0``:
#: PROXY_TYPE_DIRECT alone.
WINHTTP_SETTINGS_HEADER = CStruct("WinHttpSettings", "<", [
    ("version", "I"), ("counter", "I"), ("flags", "I"), ("proxy_length", "I"),
])
#: The flag of a named proxy server (wininet's PROXY_TYPE_PROXY; 0x1 is DIRECT).
WINHTTP_PROXY_TYPE_PROXY = 0x2


def field(struct: CStruct, data: bytes, name: str, base: int = 0) -> Any:
    """``name`` of ``struct`` at ``data[base:]``; ValueError naming the field when the
    value is too short to hold it (a hostile value, not a bug)."""
    if base < 0 or base + struct.end(name) > len(data):
        raise ValueError(f"field at 0x{base + struct.offset(name):x} ({struct.name} {name}) "
                         f"is past the {len(data)}-byte value")
    return struct.field(data, name, base)
