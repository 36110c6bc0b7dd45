"""ELF census records: what flightcheck knows of one ELF file (:class:`ElfRecord`), and
:func:`parse_elf`, which reads it (in :mod:`scanner.inventory.elfparse`, imported with
pyelftools on the first file parsed: a rescan answered by the cache, or a command that
only reads results, never pays for importing pyelftools).

Hostile input (truncated files, header counts or sizes that point past the end of the
file or past the bytes that hold them) raises :class:`ElfParseError` with a one-line
reason, and work over a named cap :class:`scanner.limits.LimitExceeded`; nothing is read
beyond the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

ELF_MAGIC = b"\x7fELF"

#: e_machine -> the name ``uname -m`` and distributions use
_MACHINES = {
    "EM_X86_64": "x86_64", "EM_386": "i386", "EM_AARCH64": "aarch64", "EM_ARM": "arm",
    "EM_PPC": "ppc", "EM_PPC64": "ppc64", "EM_S390": "s390", "EM_RISCV": "riscv",
    "EM_MIPS": "mips", "EM_SPARC": "sparc", "EM_SPARCV9": "sparc64", "EM_IA_64": "ia64",
    "EM_LOONGARCH": "loongarch", "EM_ALPHA": "alpha", "EM_68K": "m68k", "EM_SH": "sh",
    "EM_PARISC": "parisc", "EM_X86_64_X32": "x32",
}
_NUMERIC_MACHINES = {258: "loongarch"}


class ElfParseError(Exception):
    """The file starts with the ELF magic but cannot be parsed safely."""


@dataclass(frozen=True)
class ElfRecord:
    """What flightcheck knows of one ELF file, by the names of the ELF specification."""

    path: str
    type: str  # executable | pie | shared-library | relocatable | core | debuginfo | other
    elf_class: int  # 32 or 64
    byte_order: str  # little | big
    machine: str
    osabi: str
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    soname: str | None
    flags_1: tuple[str, ...]
    imports: tuple[str, ...]
    static: bool
    setuid: bool
    setgid: bool
    mode: int
    size: int
    sha256: str
    sha1: str
    uid: int = 0
    gid: int = 0

    @property
    def abi(self) -> tuple[int, str, str]:
        """What the loader requires a dependency to share: class, byte order, machine."""
        return (self.elf_class, self.byte_order, self.machine)

    @property
    def nodeflib(self) -> bool:
        return "NODEFLIB" in self.flags_1

    @property
    def is_executable(self) -> bool:
        return self.type in ("executable", "pie")

    @property
    def is_library(self) -> bool:
        return self.type == "shared-library"


def machine_name(e_machine: int | str, elf_class: int, little: bool) -> str:
    """``uname -m``-style machine name for an ELF header's ``e_machine``."""
    if isinstance(e_machine, int):
        base = _NUMERIC_MACHINES.get(e_machine, f"em{e_machine}")
    else:
        base = _MACHINES.get(e_machine, e_machine.removeprefix("EM_").lower())
    if base == "x86_64" and elf_class == 32:
        return "x32"
    if base in ("ppc64",) and little:
        return "ppc64le"
    if base == "s390" and elf_class == 64:
        return "s390x"
    if base in ("riscv", "loongarch"):
        return f"{base}{elf_class}"
    if base == "mips":
        return ("mips64" if elf_class == 64 else "mips") + ("el" if little else "")
    if base == "arm" and not little:
        return "armeb"
    if base == "aarch64" and not little:
        return "aarch64_be"
    return base


def parse_elf(path: str, fh: BinaryIO, st_mode: int, size: int, uid: int = 0, gid: int = 0,
              *, light: bool = False) -> tuple[ElfRecord, tuple[str, ...]]:
    """Census one opened ELF file (see :func:`scanner.inventory.elfparse.parse_elf`)."""
    from scanner.inventory import elfparse  # noqa: PLC0415 (pyelftools: imported when first needed)

    return elfparse.parse_elf(path, fh, st_mode, size, uid, gid, light=light)
