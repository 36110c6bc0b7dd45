"""The ELF header, and what the file's class and byte order make of every table after it.

The header is 52 bytes (ELFCLASS32) or 64 (ELFCLASS64) and is unpacked here with
:mod:`struct`; its ``e_ident`` is checked as pyelftools' ``ELFFile`` and readelf check it
(the magic, then ``EI_CLASS`` 1 or 2, then ``EI_DATA`` 1 or 2), with the same messages.
The names a record carries for ``e_machine`` and ``EI_OSABI`` are pyelftools' public enum
tables (:mod:`elftools.elf.enums`), decoded as its ``Enum`` construct decodes them: the
name when the table has the value (the last name listed, when two share one), else the
number. Nothing else of pyelftools is used: no private attribute, no construct struct
(building those cost about a millisecond a file).

Also here: the primitives every table reader of the census shares (:data:`Stream`,
:func:`read_at`, :func:`bound`, :class:`Names`).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Mapping
from typing import BinaryIO, NamedTuple

from elftools.elf.enums import ENUM_E_MACHINE, ENUM_EI_OSABI

from scanner import limits
from scanner.inventory.elf import ELF_MAGIC, ElfParseError
from scanner.limits import LimitExceeded

Stream = BinaryIO | mmap.mmap

ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4


def _decoding(table: Mapping[str, object]) -> dict[int, str]:
    """An enum table of pyelftools reversed as its ``Enum`` construct reverses it (a
    later name replaces an earlier one of the same value; ``_default_`` is not a name)."""
    return {value: name for name, value in table.items() if name != "_default_" and isinstance(value, int)}


_MACHINE_NAMES = _decoding(ENUM_E_MACHINE)
_OSABI_NAMES = _decoding(ENUM_EI_OSABI)


class ElfHeader(NamedTuple):
    """The fields of the ELF header the census reads, by their names in the ELF spec."""

    elfclass: int  # 32 or 64 (EI_CLASS)
    little_endian: bool  # EI_DATA
    osabi: str | int  # EI_OSABI: pyelftools' name (ELFOSABI_...), else the number
    e_type: int
    e_machine: str | int  # pyelftools' name (EM_...), else the number
    e_phoff: int
    e_shoff: int
    e_phentsize: int
    e_phnum: int
    e_shentsize: int
    e_shnum: int
    e_shstrndx: int


# after e_ident: e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
# e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
_EHDR = {(32, "<"): struct.Struct("<HHIIIIIHHHHHH"), (32, ">"): struct.Struct(">HHIIIIIHHHHHH"),
         (64, "<"): struct.Struct("<HHIQQQIHHHHHH"), (64, ">"): struct.Struct(">HHIQQQIHHHHHH")}


def read_header(stream: Stream, size: int) -> ElfHeader:
    """The ELF header of a file of ``size`` bytes (at least 16). Raises
    :class:`ElfParseError` for a wrong magic, class or byte order, or a file shorter than
    its class' header."""
    stream.seek(0)
    raw = stream.read(64)
    if raw[:4] != ELF_MAGIC:
        raise ElfParseError("malformed ELF: Magic number does not match")
    ei_class, ei_data, ei_osabi = raw[4:5], raw[5:6], raw[7]
    if ei_class not in (b"\x01", b"\x02"):
        raise ElfParseError(f"malformed ELF: Invalid EI_CLASS {ei_class!r}")
    if ei_data not in (b"\x01", b"\x02"):
        raise ElfParseError(f"malformed ELF: Invalid EI_DATA {ei_data!r}")
    elfclass, order = (32 if ei_class == b"\x01" else 64), ("<" if ei_data == b"\x01" else ">")
    ehsize = 64 if elfclass == 64 else 52
    if size < ehsize or len(raw) < ehsize:
        raise ElfParseError(f"truncated ELF: {min(size, len(raw))} bytes, header needs {ehsize}")
    (e_type, e_machine, _version, _entry, e_phoff, e_shoff, _flags, _ehsize,
     e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = _EHDR[elfclass, order].unpack_from(raw, 16)
    return ElfHeader(elfclass, order == "<", _OSABI_NAMES.get(ei_osabi, ei_osabi), e_type,
                     _MACHINE_NAMES.get(e_machine, e_machine), e_phoff, e_shoff,
                     e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx)


class Phdr(NamedTuple):
    """The fields of a program header the census reads."""

    p_type: int
    p_offset: int
    p_vaddr: int
    p_filesz: int


class Shdr(NamedTuple):
    """The fields of a section header the census reads (the first eight of both classes)."""

    name: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int


class Layout:
    """What the file's class and byte order make of each table entry (one per flavour:
    see :func:`layout`)."""

    def __init__(self, little_endian: bool, elfclass: int) -> None:
        self.order = "<" if little_endian else ">"
        self.wide = elfclass == 64
        if self.wide:
            self.shdr, self.phdr = struct.Struct(self.order + "IIQQQQII"), struct.Struct(self.order + "IIQQQQ")
            self.shdr_size, self.phdr_size, self.sym_size, self.dyn_size = 64, 56, 24, 16
            # st_name, st_info, st_other, st_shndx, st_value, st_size
            self.sym, self.sym_name, self.sym_info, self.sym_shndx = struct.Struct(self.order + "IBBHQQ"), 0, 1, 3
            self.dyn = struct.Struct(self.order + "qQ")
            self.chdr = struct.Struct(self.order + "IIQQ")  # ch_type, ch_reserved, ch_size, ch_addralign
        else:
            self.shdr, self.phdr = struct.Struct(self.order + "IIIIIIII"), struct.Struct(self.order + "IIIII")
            self.shdr_size, self.phdr_size, self.sym_size, self.dyn_size = 40, 32, 16, 8
            # st_name, st_value, st_size, st_info, st_other, st_shndx
            self.sym, self.sym_name, self.sym_info, self.sym_shndx = struct.Struct(self.order + "IIIBBH"), 0, 3, 5
            self.dyn = struct.Struct(self.order + "iI")
            self.chdr = struct.Struct(self.order + "III")  # ch_type, ch_size, ch_addralign
        self.word = struct.Struct(self.order + "I")

    def section(self, raw: bytes, at: int = 0) -> Shdr:
        """The section header at ``at`` of ``raw``."""
        return Shdr._make(self.shdr.unpack_from(raw, at))  # the same fields in both classes

    def segment(self, row: tuple[int, ...]) -> Phdr:
        """A program header from its unpacked fields (the classes order them differently)."""
        if self.wide:
            p_type, _flags, offset, vaddr, _paddr, filesz = row
        else:
            p_type, offset, vaddr, _paddr, filesz = row
        return Phdr(p_type, offset, vaddr, filesz)


_LAYOUTS: dict[tuple[bool, int], Layout] = {}


def layout(hdr: ElfHeader) -> Layout:
    """The layout of the file's flavour, built once (its structs are compiled formats)."""
    key = (hdr.little_endian, hdr.elfclass)
    lay = _LAYOUTS.get(key)
    if lay is None:
        lay = _LAYOUTS[key] = Layout(hdr.little_endian, hdr.elfclass)
    return lay


def bound(cap: str, count: int, what: str) -> None:
    """Raise :class:`LimitExceeded` when ``count`` is over the cap named ``cap``."""
    value = getattr(limits, cap)
    if count > value:
        raise LimitExceeded(cap, value, f"{what}: {count:,}")


def read_at(stream: Stream, offset: int, n: int) -> bytes:
    """``n`` bytes (fewer at the end of the file) from ``offset``."""
    stream.seek(offset)
    return stream.read(n)


def string_at(strings: bytes, offset: int) -> bytes:
    """The NUL-terminated string at ``offset`` (up to the end when it does not end)."""
    end = strings.find(b"\0", offset)
    return strings[offset: end if end >= 0 else None]


class Names:
    """Names read from one string table by offset: each offset decoded once, and the bytes
    of all the names taken bounded by MAX_ELF_STRTAB_BYTES. Names may overlap (linkers
    share tails) and need not end: without the bound, a million symbols naming offsets of
    one unterminated 64 MiB table would copy terabytes. A name that is not UTF-8 is kept,
    its undecodable bytes as surrogate escapes (as paths are), and counted in ``odd``."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.what = data, what
        self.left = limits.MAX_ELF_STRTAB_BYTES
        self.seen: dict[int, str] = {}
        self.odd = 0

    def __call__(self, offset: int) -> str:
        name = self.seen.get(offset)
        if name is None:
            end = self.data.find(b"\0", offset, offset + self.left + 1)
            raw = self.data[offset: end if end >= 0 else offset + self.left + 1]
            self.left -= len(raw)
            if self.left < 0:
                raise LimitExceeded("MAX_ELF_STRTAB_BYTES", limits.MAX_ELF_STRTAB_BYTES,
                                    f"bytes of the names read from {self.what}")
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                name = raw.decode("utf-8", "surrogateescape")
                self.odd += 1
            self.seen[offset] = name
        return name
