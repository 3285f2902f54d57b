"""The architecture of a PE image, from its COFF file header.

Spec: Microsoft "PE Format" (Windows PE/COFF specification), sections
"MS-DOS Stub (Image Only)" (``e_lfanew`` at 0x3C), "Signature (Image Only)"
(``PE\\0\\0``) and "Machine Types". libguestfs takes a Windows guest's
architecture from ``System32\\cmd.exe`` this way (daemon/inspect_fs_windows.ml).
"""

from __future__ import annotations

from .structures import DOS_MAGIC, IMAGE_DOS_HEADER, IMAGE_NT_HEADERS, PE_SIGNATURE

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
    if len(header) < IMAGE_DOS_HEADER.size:
        raise ValueError("shorter than the MS-DOS header")
    lfanew: int = IMAGE_DOS_HEADER.field(header, "e_lfanew")
    if lfanew + IMAGE_NT_HEADERS.size > len(header):
        raise ValueError(f"e_lfanew 0x{lfanew:x} points past the first {len(header)} bytes")
    if IMAGE_NT_HEADERS.field(header, "Signature", lfanew) != PE_SIGNATURE:
        raise ValueError(f"no PE signature at e_lfanew 0x{lfanew:x}")
    machine: int = IMAGE_NT_HEADERS.field(header, "Machine", lfanew)
    return machine

def arch(header: bytes) -> str | None:
    """``x86``, ``x86_64``, ``arm64`` ... for a PE header, None for an unknown Machine."""
    return MACHINES.get(machine(header))
