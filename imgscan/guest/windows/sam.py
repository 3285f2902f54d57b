"""The built-in Administrator (RID 500) and the Administrators alias, from the SAM hive.

Sources: ../shared/docs/windows-inspection.md section 3 (libyal winreg-kb
"Security Accounts Manager keys", chntpw ``sam.h``, impacket
``secretsdump.py``). The account is found by RID, never by name (it can be
renamed). Nothing is decrypted: "a password hash is stored" is read from the
length of the NT hash entry in ``V``, which is all the policy needs.
"""

from __future__ import annotations

from imgscan.errors import ImageError
from imgscan.findings import finding_id

from .hives import Facts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan._core.regf import Hive

ADMIN_KEY = "SAM\\Domains\\Account\\Users\\000001F4"
ADMINISTRATORS_ALIAS = "SAM\\Domains\\Builtin\\Aliases\\00000220"

# F value (fixed 80 bytes): ACB flags u16 at 0x38.
F_RID = 0x30
F_ACB = 0x38
ACB_DISABLED = 0x0001
ACB_PWNOTREQ = 0x0004
ACB_NORMAL = 0x0010
ACB_PWNOEXP = 0x0200
ACB_AUTOLOCK = 0x0400

# V value: 0xCC-byte table of (offset, length, unknown) u32 triples; data
# offsets are relative to V+0xCC.
V_HEADER = 0xCC
V_USERNAME = 0x0C
V_LM_HASH = 0x9C
V_NT_HASH = 0xA8
#: NT hash entry lengths that mean a hash is stored: RC4 (4 + 16) and AES (24 + 32).
NT_STORED = (20, 56)
#: AES entries (revision 2) longer than their 24-byte header also carry a hash.
NT_AES_HEADER = 24

# Alias C value: 0x34-byte header; offsets relative to C+0x34.
C_HEADER = 0x34
C_MEMBERS_OFFSET = 0x28
C_MEMBERS_LENGTH = 0x2C
C_MEMBER_COUNT = 0x30


def _u(data: bytes, off: int, size: int) -> int:
    if off + size > len(data):
        raise ValueError(f"field at 0x{off:x} is past the {len(data)}-byte value")
    return int.from_bytes(data[off:off + size], "little")


def acb_flags(f: bytes) -> int:
    """ACB flags of a user's F value."""
    return _u(f, F_ACB, 2)


def v_entry(v: bytes, triple: int) -> bytes:
    """The data of one (offset, length) entry of a user's V value."""
    off, length = _u(v, triple, 4), _u(v, triple + 4, 4)
    start = V_HEADER + off
    if start + length > len(v):
        raise ValueError(f"entry at 0x{triple:x} ({length} bytes at 0x{start:x}) "
                         f"runs past the {len(v)}-byte value")
    return v[start:start + length]


def password_stored(v: bytes) -> bool:
    """Whether the V value holds an NT hash (entry length 20 / 56, or > 24 for AES)."""
    nt = v_entry(v, V_NT_HASH)
    if len(nt) in NT_STORED:
        return True
    revision = _u(nt, 2, 2) if len(nt) >= 4 else 0
    return revision == 2 and len(nt) > NT_AES_HEADER


def sid_text(raw: bytes) -> str:
    """A binary SID as ``S-1-5-21-...``."""
    if len(raw) < 8 or raw[0] != 1 or len(raw) != 8 + 4 * raw[1]:
        raise ValueError(f"not a SID: {raw.hex()}")
    authority = int.from_bytes(raw[2:8], "big")
    subs = [int.from_bytes(raw[8 + 4 * i:12 + 4 * i], "little") for i in range(raw[1])]
    return "-".join(["S", "1", str(authority), *map(str, subs)])


def alias_members(c: bytes) -> list[str]:
    """Member SIDs of a SAM alias, from its C value."""
    off = C_HEADER + _u(c, C_MEMBERS_OFFSET, 4)
    length = _u(c, C_MEMBERS_LENGTH, 4)
    count = _u(c, C_MEMBER_COUNT, 4)
    if off + length > len(c):
        raise ValueError(f"members ({length} bytes at 0x{off:x}) run past the "
                         f"{len(c)}-byte value")
    out: list[str] = []
    pos, end = off, off + length
    for _ in range(count):
        if pos + 8 > end:
            raise ValueError(f"member {len(out) + 1} of {count} is past the member list")
        size = 8 + 4 * c[pos + 1]
        out.append(sid_text(c[pos:pos + size]))
        pos += size
    return out


def administrator(hive: Hive, facts: Facts) -> None:
    """``administrator`` = {exists, enabled, password_set} for RID 500, plus details."""
    admin: dict[str, Any] = {"exists": False, "enabled": False, "password_set": False}
    try:
        key = hive.open_key(ADMIN_KEY)
        if key is None:
            facts.put("administrator", admin, f"{hive.name}:{ADMIN_KEY} absent")
            return
        admin["exists"] = True
        f = key.value("F")
        v = key.value("V")
        f_data = f.data if f is not None else None
        v_data = v.data if v is not None else None
    except ImageError as exc:
        facts.fail("administrator", f"{hive.name}:{ADMIN_KEY}: {exc}", finding_id(exc))
        return
    where = f"{hive.name}:{ADMIN_KEY}"
    problems = []
    if isinstance(f_data, bytes):
        try:
            acb = acb_flags(f_data)
            admin["acb_flags"] = acb
            admin["enabled"] = not acb & (ACB_DISABLED | ACB_AUTOLOCK)
        except ValueError as exc:
            problems.append(f"F: {exc}")
    else:
        problems.append("F value missing or not binary")
    if isinstance(v_data, bytes):
        try:
            stored = password_stored(v_data)
            admin["password_set"] = stored and not admin.get("acb_flags", 0) & ACB_PWNOTREQ
            admin["nt_hash_length"] = len(v_entry(v_data, V_NT_HASH))
            admin["name"] = v_entry(v_data, V_USERNAME).decode("utf-16-le", "replace")
        except ValueError as exc:
            problems.append(f"V: {exc}")
    else:
        problems.append("V value missing or not binary")
    facts.put("administrator", admin,
              f"{where}\\F (ACB flags at 0x38), {where}\\V (NT hash length at 0xAC)")
    for p in problems:
        facts.fail("administrator", f"{where}\\{p}")


def administrators_members(hive: Hive, facts: Facts) -> None:
    """SIDs in the local Administrators alias (Builtin RID 0x220)."""
    where = f"{hive.name}:{ADMINISTRATORS_ALIAS}\\C"
    try:
        key = hive.open_key(ADMINISTRATORS_ALIAS)
        c = key.value("C") if key is not None else None
        data = c.data if c is not None else None
    except ImageError as exc:
        facts.fail("administrators", f"{where}: {exc}", finding_id(exc))
        return
    if not isinstance(data, bytes):
        facts.fail("administrators", f"{where} missing or not binary")
        return
    try:
        facts.put("administrators", alias_members(data), where)
    except ValueError as exc:
        facts.fail("administrators", f"{where}: {exc}")
