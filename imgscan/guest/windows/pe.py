"""The architecture of a PE image, from its COFF file header.

Spec: Microsoft "PE Format" (Windows PE/COFF specification), sections
"MS-DOS Stub (Image Only)" (``e_lfanew`` at 0x3C), "Signature (Image Only)"
(``PE\\0\\0``) and "Machine Types". libguestfs takes a Windows guest's
architecture from ``System32\\cmd.exe`` this way (daemon/inspect_fs_windows.ml).
"""

from __future__ import annotations

DOS_MAGIC = b"MZ"
E_LFANEW = 0x3C
PE_SIGNATURE = b"PE\0\0"
#: COFF header Machine field (u16) follows the 4-byte signature.
MACHINE_OFFSET = 4
#: How much of the file holds the headers in practice (e_lfanew is small).
HEADER_BYTES = 4096

#: Machine -> the contract's arch names (libguestfs' names, x86 for i386).
MACHINES = {
    0x014C: "x86",
    0x8664: "x86_64",
    0xAA64: "arm64",
    0x01C4: "arm",
    0x0200: "ia64",
}


def machine(header: bytes) -> int:
    """The COFF Machine of a PE image whose first bytes are ``header``.

    Raises ValueError naming what is wrong (not MZ, e_lfanew outside the
    header, no PE signature).
    """
    if header[:2] != DOS_MAGIC:
        raise ValueError(f"no MZ signature (starts {header[:2].hex()})")
    if len(header) < E_LFANEW + 4:
        raise ValueError("shorter than the MS-DOS header")
    lfanew = int.from_bytes(header[E_LFANEW:E_LFANEW + 4], "little")
    if lfanew + MACHINE_OFFSET + 2 > len(header):
        raise ValueError(f"e_lfanew 0x{lfanew:x} points past the first {len(header)} bytes")
    if header[lfanew:lfanew + 4] != PE_SIGNATURE:
        raise ValueError(f"no PE signature at e_lfanew 0x{lfanew:x}")
    return int.from_bytes(header[lfanew + MACHINE_OFFSET:lfanew + MACHINE_OFFSET + 2], "little")


def arch(header: bytes) -> str | None:
    """``x86``, ``x86_64``, ``arm64`` ... for a PE header, None for an unknown Machine."""
    return MACHINES.get(machine(header))
