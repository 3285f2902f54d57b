"""The guest's architecture, from the ELF header of its init program or shell.

Source: the System V ABI's ELF header (``e_ident``'s EI_CLASS and EI_DATA, then
``e_machine``), with the EM_* numbers of the ELF registry as Linux's
include/uapi/linux/elf-em.h lists them. Names are those ``uname -m`` (and the
contract: ``x86_64``, ``x86``, ``aarch64``, ...) uses.
"""

from __future__ import annotations

from imgscan._core.cstruct import CStruct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .tree import GuestTree

ELF_MAGIC = b"\x7fELF"
EI_CLASS = 4
EI_DATA = 5
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2

#: The start of the ELF header, in each byte order EI_DATA may name.
ELF_HEADER = {
    order: CStruct("ELF header", order, [("e_ident", "16s"), ("e_type", "H"), ("e_machine", "H")])
    for order in ("<", ">")
}
ELF_HEADER_BYTES = ELF_HEADER["<"].size

EM_386, EM_68K, EM_MIPS, EM_PARISC, EM_PPC, EM_PPC64, EM_S390 = 3, 4, 8, 15, 20, 21, 22
EM_ARM, EM_SPARCV9, EM_IA_64, EM_X86_64, EM_AARCH64, EM_RISCV = 40, 43, 50, 62, 183, 243
EM_SPARC, EM_LOONGARCH, EM_ALPHA = 2, 258, 0x9026

#: (e_machine, ELF class, little-endian) -> name; None for "either".
_NAMES: dict[tuple[int, int | None, bool | None], str] = {
    (EM_X86_64, ELFCLASS64, None): "x86_64",
    (EM_X86_64, ELFCLASS32, None): "x32",
    (EM_386, None, None): "x86",
    (EM_AARCH64, None, True): "aarch64",
    (EM_AARCH64, None, False): "aarch64_be",
    (EM_ARM, None, True): "arm",
    (EM_ARM, None, False): "armeb",
    (EM_PPC64, None, True): "ppc64le",
    (EM_PPC64, None, False): "ppc64",
    (EM_PPC, None, None): "ppc",
    (EM_S390, ELFCLASS64, None): "s390x",
    (EM_S390, ELFCLASS32, None): "s390",
    (EM_RISCV, ELFCLASS64, None): "riscv64",
    (EM_RISCV, ELFCLASS32, None): "riscv32",
    (EM_LOONGARCH, ELFCLASS64, None): "loongarch64",
    (EM_LOONGARCH, ELFCLASS32, None): "loongarch32",
    (EM_MIPS, ELFCLASS64, True): "mips64el",
    (EM_MIPS, ELFCLASS64, False): "mips64",
    (EM_MIPS, ELFCLASS32, True): "mipsel",
    (EM_MIPS, ELFCLASS32, False): "mips",
    (EM_SPARC, None, None): "sparc",
    (EM_SPARCV9, None, None): "sparc64",
    (EM_IA_64, None, None): "ia64",
    (EM_PARISC, ELFCLASS64, None): "parisc64",
    (EM_PARISC, ELFCLASS32, None): "parisc",
    (EM_68K, None, None): "m68k",
    (EM_ALPHA, None, None): "alpha",
}

#: Programs whose header tells the architecture: the init program, then the shell.
PROGRAMS = ("/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd", "/bin/sh")


def arch_of(header: bytes) -> str | None:
    """The architecture an ELF file is built for, from its first 20 bytes; None when
    they are not an ELF header or name a machine this table does not know."""
    if len(header) < ELF_HEADER_BYTES or not header.startswith(ELF_MAGIC):
        return None
    elf_class, data = header[EI_CLASS], header[EI_DATA]
    if elf_class not in (ELFCLASS32, ELFCLASS64) or data not in (ELFDATA2LSB, ELFDATA2MSB):
        return None
    little = data == ELFDATA2LSB
    machine = ELF_HEADER["<" if little else ">"].field(header, "e_machine")
    for key in ((machine, elf_class, little), (machine, elf_class, None),
                (machine, None, little), (machine, None, None)):
        name = _NAMES.get(key)
        if name is not None:
            return name
    return None


def arch(tree: GuestTree) -> tuple[str | None, str | None]:
    """The guest's architecture and the program it was read from (evidence), from the
    first of :data:`PROGRAMS` that is an ELF file (an init that is a script is passed
    over); ``(None, None)`` when none is."""
    for path in PROGRAMS:
        opened = tree.reader(path)
        name = arch_of(opened[0](0, ELF_HEADER_BYTES)) if opened is not None else None
        if name is not None:
            return name, tree.where(path)
    return None, None
