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
from .structures import (
    ACB_AUTOLOCK,
    ACB_DISABLED,
    ACB_PWNOTREQ,
    NT_AES_HEADER,
    NT_STORED,
    SAM_ALIAS_C,
    SAM_NT_HASH,
    SAM_USER_F,
    SAM_V_ENTRY,
    SAM_V_HEADER,
    SID,
    SID_SUB_AUTHORITY,
    V_NT_HASH,
    V_USERNAME,
    field,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan._core.regf import Hive

ADMIN_KEY = "SAM\\Domains\\Account\\Users\\000001F4"
ADMINISTRATORS_ALIAS = "SAM\\Domains\\Builtin\\Aliases\\00000220"

def acb_flags(f: bytes) -> int:
    """ACB flags of a user's F value."""
    flags: int = field(SAM_USER_F, f, "acb_flags")
    return flags


def v_entry(v: bytes, entry: int) -> bytes:
    """The data of entry number ``entry`` of the table heading a user's V value."""
    base = entry * SAM_V_ENTRY.size
    off: int = field(SAM_V_ENTRY, v, "offset", base)
    length: int = field(SAM_V_ENTRY, v, "length", base)
    start = SAM_V_HEADER + off
    if start + length > len(v):
        raise ValueError(f"entry at 0x{base:x} ({length} bytes at 0x{start:x}) "
                         f"runs past the {len(v)}-byte value")
    return v[start:start + length]


def password_stored(v: bytes) -> bool:
    """Whether the V value holds an NT hash (entry length 20 / 56, or > 24 for AES)."""
    nt = v_entry(v, V_NT_HASH)
    if len(nt) in NT_STORED:
        return True
    revision = field(SAM_NT_HASH, nt, "revision") if len(nt) >= SAM_NT_HASH.size else 0
    return revision == 2 and len(nt) > NT_AES_HEADER


def sid_text(raw: bytes) -> str:
    """A binary SID as ``S-1-5-21-...``."""
    sid = SID.unpack(raw) if len(raw) >= SID.size else None
    if sid is None or sid["revision"] != 1 \
            or len(raw) != SID.size + SID_SUB_AUTHORITY.size * sid["count"]:
        raise ValueError(f"not a SID: {raw.hex()}")
    authority = int.from_bytes(sid["authority"], "big")
    subs = [SID_SUB_AUTHORITY.field(raw, "value", SID.size + SID_SUB_AUTHORITY.size * i)
            for i in range(sid["count"])]
    return "-".join(["S", "1", str(authority), *map(str, subs)])


def alias_members(c: bytes) -> list[str]:
    """Member SIDs of a SAM alias, from its C value."""
    off = SAM_ALIAS_C.size + field(SAM_ALIAS_C, c, "members_offset")
    length: int = field(SAM_ALIAS_C, c, "members_length")
    count: int = field(SAM_ALIAS_C, c, "member_count")
    if off + length > len(c):
        raise ValueError(f"members ({length} bytes at 0x{off:x}) run past the "
                         f"{len(c)}-byte value")
    out: list[str] = []
    pos, end = off, off + length
    for _ in range(count):
        if pos + SID.size > end:
            raise ValueError(f"member {len(out) + 1} of {count} is past the member list")
        size = SID.size + SID_SUB_AUTHORITY.size * SID.field(c, "count", pos)
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
    acb_at = SAM_USER_F.offset("acb_flags")
    nt_length_at = V_NT_HASH * SAM_V_ENTRY.size + SAM_V_ENTRY.offset("length")
    facts.put("administrator", admin, f"{where}\\F (ACB flags at 0x{acb_at:X}), "
              f"{where}\\V (NT hash length at 0x{nt_length_at:X})")
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
