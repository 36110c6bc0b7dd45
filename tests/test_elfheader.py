"""The census' ELF header reader (scanner.inventory.elfheader) against pyelftools' public
``ELFFile`` as the oracle, and what the census relies on of pyelftools pinned: only its
public enum tables, with the names and numbers the records carry."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE, ENUM_EI_OSABI

from scanner.inventory.elf import _MACHINES, ElfParseError, machine_name
from scanner.inventory.elfheader import read_header
from scanner.inventory.elfparse import parse_elf

from conftest import REPO

#: e_machine numbers of the ELF spec for the names machine_name() maps
SPEC_MACHINES = {
    "EM_X86_64": 62, "EM_386": 3, "EM_AARCH64": 183, "EM_ARM": 40, "EM_PPC": 20, "EM_PPC64": 21,
    "EM_S390": 22, "EM_RISCV": 243, "EM_MIPS": 8, "EM_SPARC": 2, "EM_SPARCV9": 43, "EM_IA_64": 50,
    "EM_ALPHA": 41, "EM_68K": 4, "EM_SH": 42, "EM_PARISC": 15,
}


def host_elves() -> list[Path]:
    """Real ELF files of this host, of every type and (when a cross toolchain is
    installed) more than one machine."""
    found: list[Path] = []
    for top, pattern, count in (("/usr/bin", "*", 60), ("/usr/lib/x86_64-linux-gnu", "*.so*", 30),
                                ("/usr/lib/x86_64-linux-gnu", "*.o", 5), ("/usr/aarch64-linux-gnu/lib", "*", 20),
                                ("/usr/lib/debug", "**/*.debug", 5)):
        n = 0
        for p in sorted(Path(top).glob(pattern)) if Path(top).is_dir() else []:
            if n == count:
                break
            if p.is_file() and not p.is_symlink():
                with p.open("rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        found.append(p)
                        n += 1
    return found


def test_header_matches_pyelftools() -> None:
    """Every field read of the header equals what pyelftools' public ELFFile decodes."""
    files = host_elves()
    assert len(files) >= 50
    for p in files:
        data = p.read_bytes()[:4096]
        ours = read_header(io.BytesIO(data), p.stat().st_size)
        theirs = ELFFile(io.BytesIO(data))
        h = theirs.header
        assert (ours.elfclass, ours.little_endian) == (theirs.elfclass, theirs.little_endian), p
        assert ours.osabi == h["e_ident"]["EI_OSABI"], p
        assert ours.e_machine == h["e_machine"], p
        assert {1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}.get(ours.e_type, ours.e_type) == h["e_type"], p
        for name in ("e_phoff", "e_shoff", "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx"):
            assert getattr(ours, name) == h[name], (p, name)


def test_enum_tables_pinned() -> None:
    """What the census takes from pyelftools: ENUM_E_MACHINE and ENUM_EI_OSABI, decoded
    as its Enum construct decodes them. A pyelftools that renames or renumbers these
    changes the records, and fails here."""
    for name, number in SPEC_MACHINES.items():
        assert ENUM_E_MACHINE[name] == number, name
        assert name in _MACHINES
    for name, number in {"ELFOSABI_SYSV": 0, "ELFOSABI_HPUX": 1, "ELFOSABI_NETBSD": 2, "ELFOSABI_LINUX": 3,
                         "ELFOSABI_SOLARIS": 6, "ELFOSABI_FREEBSD": 9, "ELFOSABI_OPENBSD": 12,
                         "ELFOSABI_ARM": 97, "ELFOSABI_STANDALONE": 255}.items():
        assert ENUM_EI_OSABI[name] == number, name
    header = bytearray(Path("/usr/bin/ls").read_bytes()[:64])
    for name, number in SPEC_MACHINES.items():
        header[18:20] = number.to_bytes(2, "little")
        assert read_header(io.BytesIO(bytes(header)), 64).e_machine == name
    header[18:20] = (258).to_bytes(2, "little")  # EM_LOONGARCH: unnamed before pyelftools 0.30
    assert machine_name(read_header(io.BytesIO(bytes(header)), 64).e_machine, 64, True) == "loongarch64"
    header[18:20] = (0xFEDC).to_bytes(2, "little")  # no name: the number
    assert read_header(io.BytesIO(bytes(header)), 64).e_machine == 0xFEDC
    header[7] = 3
    assert read_header(io.BytesIO(bytes(header)), 64).osabi == "ELFOSABI_LINUX"
    header[7] = 200
    assert read_header(io.BytesIO(bytes(header)), 64).osabi == 200


@pytest.mark.parametrize("offset,value,message", [
    (0, 0, "malformed ELF: Magic number does not match"),
    (4, 3, "malformed ELF: Invalid EI_CLASS b'\\x03'"),
    (5, 0, "malformed ELF: Invalid EI_DATA b'\\x00'"),
])
def test_bad_ident(offset: int, value: int, message: str) -> None:
    """e_ident is checked as pyelftools and readelf check it, in the same order."""
    data = bytearray(Path("/usr/bin/ls").read_bytes())
    data[offset] = value
    with pytest.raises(ElfParseError) as err:
        parse_elf("/x", io.BytesIO(bytes(data)), 0o100755, len(data))
    assert str(err.value) == message


@pytest.mark.parametrize("size", [16, 17, 40, 51, 63])
def test_truncated_header(size: int) -> None:
    """A file shorter than its class' header is malformed, and says so."""
    data = Path("/usr/bin/ls").read_bytes()[:size]
    with pytest.raises(ElfParseError, match=f"truncated ELF: {size} bytes, header needs 64"):
        parse_elf("/x", io.BytesIO(data), 0o100755, size)


def test_census_imports_no_pyelftools_internals() -> None:
    """A census imports pyelftools' enum tables and nothing that parses: no ELFFile, no
    construct structs (their private API is what broke with Debian's 0.29)."""
    code = ("import sys, os\n"
            "from scanner.inventory.elf import parse_elf\n"
            "p = '/usr/bin/ls'\n"
            "with open(p, 'rb') as fh:\n"
            "    rec, _ = parse_elf(p, fh, os.stat(p).st_mode, os.stat(p).st_size)\n"
            "assert rec.machine and rec.needed\n"
            "print(sorted(m for m in sys.modules if m.startswith('elftools')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    loaded = ast.literal_eval(out)
    assert "elftools.elf.enums" in loaded
    assert not [m for m in loaded if m in ("elftools.elf.elffile", "elftools.elf.structs", "elftools.elf.sections")]
