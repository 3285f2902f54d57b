"""The guest architecture from ELF headers: real binaries of several architectures (this
machine's /bin/sh, Debian's cross libc packages), each checked against ``readelf -h``."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from helpers.linux_tree import Link, guest_tree

from imgscan.guest.linux.elf import ELF_HEADER_BYTES, arch, arch_of

#: Real ELF files: this machine's shell, and the libc of Debian's cross packages
#: (libc6-arm64-cross, ...-armhf-, -ppc64el-, -s390x-, -riscv64-cross, libc6-i386).
BINARIES = ("/bin/sh", "/usr/aarch64-linux-gnu/lib/libc.so.6",
            "/usr/arm-linux-gnueabihf/lib/libc.so.6", "/usr/lib32/libc.so.6",
            "/usr/powerpc64le-linux-gnu/lib/libc.so.6", "/usr/riscv64-linux-gnu/lib/libc.so.6",
            "/usr/s390x-linux-gnu/lib/libc.so.6")

#: readelf's (Class, byte order, Machine) -> the name ``uname -m`` gives on that machine.
READELF_NAMES = {
    ("ELF64", "little", "Advanced Micro Devices X86-64"): "x86_64",
    ("ELF32", "little", "Intel 80386"): "x86",
    ("ELF64", "little", "AArch64"): "aarch64",
    ("ELF32", "little", "ARM"): "arm",
    ("ELF64", "little", "PowerPC64"): "ppc64le",
    ("ELF64", "big", "PowerPC64"): "ppc64",
    ("ELF64", "big", "IBM S/390"): "s390x",
    ("ELF64", "little", "RISC-V"): "riscv64",
}


def _readelf(path: str) -> tuple[str, str, str]:
    out = subprocess.run(["readelf", "-h", path], check=True, capture_output=True,
                         text=True).stdout
    fields = dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)
    order = "little" if "little endian" in fields["Data"] else "big"
    return fields["Class"].strip(), order, fields["Machine"].strip()


@pytest.mark.parametrize("path", BINARIES)
def test_real_binaries_match_readelf(path: str) -> None:
    if not os.path.exists(path) or shutil.which("readelf") is None:
        pytest.skip(f"{path} or readelf is absent")
    real = os.path.realpath(path)
    with open(real, "rb") as f:
        header = f.read(ELF_HEADER_BYTES)
    assert arch_of(header) == READELF_NAMES[_readelf(real)]


def _sh_header() -> bytes:
    with open(os.path.realpath("/bin/sh"), "rb") as f:
        return f.read(64)


def _patched(elf_class: int, data: int, machine: int) -> bytes:
    """/bin/sh's header with EI_CLASS, EI_DATA and e_machine rewritten (other machines
    than the packages give, and malformed headers)."""
    header = bytearray(_sh_header())
    header[4], header[5] = elf_class, data
    header[18:20] = struct.pack("<H" if data == 1 else ">H", machine)
    return bytes(header)


@pytest.mark.parametrize(("elf_class", "data", "machine", "name"), [
    (2, 2, 21, "ppc64"), (2, 1, 8, "mips64el"), (1, 2, 8, "mips"), (2, 1, 258, "loongarch64"),
    (2, 2, 183, "aarch64_be"), (1, 1, 62, "x32"), (2, 2, 43, "sparc64"),
])
def test_other_machines(elf_class: int, data: int, machine: int, name: str) -> None:
    assert arch_of(_patched(elf_class, data, machine)) == name


def test_not_an_elf_header() -> None:
    assert arch_of(b"#!/bin/sh\nexec init\n") is None
    assert arch_of(_sh_header()[:19]) is None                   # truncated
    assert arch_of(_patched(3, 1, 62)) is None                  # ELFCLASSNUM and beyond
    assert arch_of(_patched(2, 0, 62)) is None                  # ELFDATANONE
    assert arch_of(_patched(2, 1, 0xBEEF)) is None              # a machine not in the table


def test_arch_reads_init_through_its_symlinks(tmp_path: Path) -> None:
    """/sbin/init -> /lib/systemd/systemd with /lib -> usr/lib, on a separate /usr."""
    elf = _sh_header()
    tree = guest_tree(tmp_path, {"sbin/init": Link("/lib/systemd/systemd"), "lib": Link("usr/lib"),
                                 "usr/": ""},
                      {"/usr": {"lib/systemd/systemd": elf}})
    assert arch(tree) == (arch_of(elf), "/sbin/init (root volume)")   # the host's own


def test_arch_passes_over_a_script_init(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"sbin/init": "#!/bin/sh\n", "bin/sh": _patched(2, 1, 183)})
    assert arch(tree) == ("aarch64", "/bin/sh (root volume)")
    assert arch(guest_tree(tmp_path / "empty", {"etc/os-release": "ID=x\n"})) == (None, None)
