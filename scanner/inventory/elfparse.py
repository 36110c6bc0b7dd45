"""Reading one ELF file into an :class:`~scanner.inventory.elf.ElfRecord`.

What is read is what the dynamic loader and the later stages use: the ELF header (class,
byte order, machine, OSABI, type), the program headers (``PT_INTERP``, ``PT_DYNAMIC``), the
dynamic segment (``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH``, ``DT_SONAME``, ``DT_FLAGS_1``)
and the undefined function symbols of the dynamic symbol table (what the file imports).
The dynamic segment is read through the program headers, as ``ld.so`` reads it, so files
whose section headers were stripped still parse: their symbol table is found through
``DT_SYMTAB`` and counted through ``DT_GNU_HASH`` or ``DT_HASH``.

pyelftools parses the ELF header (its enum names are the record's vocabulary); every table
after it is unpacked here with :mod:`struct`, in one pass each: the census' hot path, and
the place where a hostile file's numbers must be checked before they are believed.

The file is untrusted. Every count is checked against the bytes that hold it (a symbol
table, hash chain or string table claiming more entries than its section or segment holds
is malformed: :class:`ElfParseError`) and against a named cap of :mod:`scanner.limits`
(:class:`~scanner.limits.LimitExceeded`): the file's apparent size, symbols, string table
bytes, program headers, dynamic entries, and what an ``SHF_COMPRESSED`` section may
inflate to (absolute, and as a ratio of its compressed size). Nothing is read beyond the
file, and no file is held in memory whole: a file in a folder is parsed through a
read-only map of it, any other through a buffered stream, and hashed in chunks of
:data:`~scanner.limits.READ_CHUNK`.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import stat as statmod
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple, cast

from elftools.common.exceptions import ELFError, ELFParseError
from elftools.elf.elffile import ELFFile
from elftools.elf.structs import ELFStructs

try:  # construct is vendored inside pyelftools
    from elftools.construct.core import ConstructError as _ConstructError
except ImportError:  # pragma: no cover
    _ConstructError = ELFError  # type: ignore[assignment,misc]

from scanner import limits
from scanner.inventory.elf import ElfParseError, ElfRecord, machine_name
from scanner.limits import READ_CHUNK, LimitExceeded

Stream = BinaryIO | mmap.mmap

DF_1_NODEFLIB = 0x800
DF_1_PIE = 0x08000000
_FLAGS_1_NAMES = {
    0x1: "NOW", 0x2: "GLOBAL", 0x4: "GROUP", 0x8: "NODELETE", 0x10: "LOADFLTR",
    0x20: "INITFIRST", 0x40: "NOOPEN", 0x80: "ORIGIN", 0x100: "DIRECT", 0x400: "INTERPOSE",
    DF_1_NODEFLIB: "NODEFLIB", 0x1000: "NODUMP", 0x2000: "CONFALT", 0x4000: "ENDFILTEE",
    0x8000: "DISPRELDNE", 0x10000: "DISPRELPND", 0x20000: "NODIRECT", 0x40000: "IGNMULDEF",
    0x80000: "NOKSYMS", 0x100000: "NOHDR", 0x200000: "EDITED", 0x400000: "NORELOC",
    0x800000: "SYMINTPOSE", 0x1000000: "GLOBAUDIT", 0x2000000: "SINGLETON", 0x4000000: "STUB",
    DF_1_PIE: "PIE",
}


class _CensusELFFile(ELFFile):
    """pyelftools' ELFFile reduced to its header, with its struct definitions built once
    per ELF flavour.

    ``ELFFile.__init__`` rebuilds every construct struct (with enum tables) for each file,
    about a millisecond a file and most of the census' parsing time. The structs depend
    only on (class, byte order, e_type, e_machine, OSABI), so they are memoised here; the
    steps are ``ELFFile.__init__``'s own (pyelftools 0.29-0.33), and the census tests
    against readelf pin the behaviour. Nothing past the header is read through it.
    """

    _basic: dict[tuple[bool, int], ELFStructs] = {}
    _advanced: dict[tuple[object, ...], ELFStructs] = {}

    def __init__(self, stream: Stream) -> None:  # noqa: D107
        self.stream = stream  # type: ignore[assignment]  # an mmap reads as a file does
        self.stream.seek(0, 2)
        self.stream_len = self.stream.tell()
        self._identify_file()
        key = (self.little_endian, self.elfclass)
        basic = self._basic.get(key)
        if basic is None:
            basic = ELFStructs(little_endian=self.little_endian, elfclass=self.elfclass)
            basic.create_basic_structs()
            self._basic[key] = basic
        self.structs = basic
        self.header = self._parse_elf_header()
        akey = (*key, self["e_type"], self["e_machine"], self["e_ident"]["EI_OSABI"])
        advanced = self._advanced.get(akey)
        if advanced is None:
            advanced = ELFStructs(little_endian=self.little_endian, elfclass=self.elfclass)
            advanced.create_basic_structs()
            advanced.create_advanced_structs(self["e_type"], self["e_machine"], self["e_ident"]["EI_OSABI"])
            self._advanced[akey] = advanced
        self.structs = advanced
        self.stream.seek(0)
        self.e_ident_raw = self.stream.read(16)
        self.stream_loader = None


def _flags_1_names(value: int) -> tuple[str, ...]:
    return tuple(name for bit, name in sorted(_FLAGS_1_NAMES.items()) if value & bit)


def _bound(cap: str, count: int, what: str) -> None:
    """Raise :class:`LimitExceeded` when ``count`` is over the cap named ``cap``."""
    value = getattr(limits, cap)
    if count > value:
        raise LimitExceeded(cap, value, f"{what}: {count:,}")


PN_XNUM = 0xFFFF
SHN_XINDEX = 0xFFFF
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
SHT_NOBITS, SHT_DYNSYM = 8, 11
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB = 1
DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 1, 4, 5, 6, 10, 11
DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1, DT_GNU_HASH = 14, 15, 29, 0x6FFFFFFB, 0x6FFFFEF5
_STRING_TAGS = (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH)


class _Phdr(NamedTuple):
    p_type: int
    p_offset: int
    p_vaddr: int
    p_filesz: int


class _Shdr(NamedTuple):
    name: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int


class _Layout:
    """What the file's class and byte order make of each table entry (one per flavour:
    see :func:`_layout`)."""

    def __init__(self, elf: ELFFile) -> None:
        self.order = "<" if elf.little_endian else ">"
        self.wide = elf.elfclass == 64
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

    def section(self, raw: bytes, at: int = 0) -> _Shdr:
        return _Shdr._make(self.shdr.unpack_from(raw, at))  # the same fields in both classes

    def segment(self, row: tuple[int, ...]) -> _Phdr:
        if self.wide:
            p_type, _flags, offset, vaddr, _paddr, filesz = row
        else:
            p_type, offset, vaddr, _paddr, filesz = row
        return _Phdr(p_type, offset, vaddr, filesz)


_LAYOUTS: dict[tuple[bool, int], _Layout] = {}


def _layout(elf: ELFFile) -> _Layout:
    """The layout of the file's flavour, built once (its structs are compiled formats)."""
    key = (elf.little_endian, elf.elfclass)
    lay = _LAYOUTS.get(key)
    if lay is None:
        lay = _LAYOUTS[key] = _Layout(elf)
    return lay


def _read_at(stream: Stream, offset: int, n: int) -> bytes:
    stream.seek(offset)
    return stream.read(n)


def _inflate(raw: bytes, lay: _Layout, what: str) -> bytes:
    """An ``SHF_COMPRESSED`` section's contents: checked against both inflation caps
    before any byte is inflated, and never inflated past what its header claims (a
    header that lies about the size makes the section malformed, not larger)."""
    if len(raw) < lay.chdr.size:
        raise ElfParseError(f"{what} is compressed but too short for its compression header")
    if lay.wide:
        ch_type, _reserved, ch_size, _align = lay.chdr.unpack_from(raw)
    else:
        ch_type, ch_size, _align = lay.chdr.unpack_from(raw)
    if ch_type != ELFCOMPRESS_ZLIB:
        raise ElfParseError(f"{what} is compressed with ch_type {ch_type}; only zlib (1) is read")
    body = memoryview(raw)[lay.chdr.size:]
    _bound("MAX_ELF_INFLATED_BYTES", ch_size, f"{what} claims to inflate to this many bytes")
    if ch_size > len(body) * limits.MAX_ELF_INFLATE_RATIO:
        raise LimitExceeded("MAX_ELF_INFLATE_RATIO", limits.MAX_ELF_INFLATE_RATIO,
                            f"{what} claims {ch_size:,} bytes from {len(body):,} compressed")
    inflater = zlib.decompressobj()
    out = inflater.decompress(body, ch_size + 1)
    if len(out) != ch_size or not inflater.eof:
        raise ElfParseError(f"{what} does not inflate to the {ch_size:,} bytes its compression header claims")
    return out


def _section_bytes(stream: Stream, lay: _Layout, sh: _Shdr, size: int, what: str, unit: int, cap: str) -> bytes:
    """A section's contents (inflated when compressed), in ``unit``-byte entries counted
    against the cap named ``cap``."""
    if sh.offset + sh.size > size:
        raise ElfParseError(f"{what} runs past the end of the file")
    _bound(cap, sh.size // unit, f"{what} holds this many entries")
    data = _read_at(stream, sh.offset, sh.size)
    if sh.flags & SHF_COMPRESSED:
        data = _inflate(data, lay, what)
        _bound(cap, len(data) // unit, f"{what} holds this many entries once inflated")
    return data


@dataclass
class _Sections:
    """What one pass over the section headers tells."""

    dynsym: _Shdr | None = None  # the SHT_DYNSYM section
    dynstr: _Shdr | None = None  # the string table it links to
    usable: bool = False  # the file has section headers
    debuginfo: bool = False  # .dynamic/.dynsym are SHT_NOBITS: a separate debug-info file
    phnum: int = 0  # section 0's sh_info: the program header count when e_phnum is PN_XNUM


def _scan_sections(elf: ELFFile, stream: Stream, size: int, lay: _Layout) -> _Sections:
    hdr = elf.header
    out = _Sections()
    count, ent = hdr.e_shnum, hdr.e_shentsize
    if not count or not hdr.e_shoff:
        return out
    if ent < lay.shdr_size:
        raise ElfParseError(f"e_shentsize {ent} is smaller than a section header ({lay.shdr_size})")
    if hdr.e_shoff + count * ent > size:
        raise ElfParseError(f"section header table ({count} entries at offset {hdr.e_shoff}) "
                            f"runs past the end of the file ({size} bytes)")
    out.usable = True
    if ent == lay.shdr_size:
        table = _read_at(stream, hdr.e_shoff, count * ent)
        headers = [lay.section(table, i * ent) for i in range(count)]
    else:  # padded entries: only the header itself is read of each (e_shentsize may be 65535)
        headers = [lay.section(_read_at(stream, hdr.e_shoff + i * ent, lay.shdr_size)) for i in range(count)]
    out.phnum = headers[0].info
    names: _Names | None = None
    for sh in headers:
        if sh.type == SHT_DYNSYM and out.dynsym is None:
            out.dynsym = sh
            if sh.link >= count:
                raise ElfParseError(f".dynsym links to section {sh.link}, of {count}")
            out.dynstr = headers[sh.link]
        elif sh.type == SHT_NOBITS:
            if names is None:
                names = _Names(_section_names(stream, lay, headers, hdr.e_shstrndx, size), ".shstrtab")
            if names(sh.name) in (".dynamic", ".dynsym"):
                out.debuginfo = True
    return out


def _section_names(stream: Stream, lay: _Layout, headers: list[_Shdr], index: int, size: int) -> bytes:
    """The section name string table (empty when the header names none)."""
    if index == SHN_XINDEX:
        index = headers[0].link
    if not 0 < index < len(headers):
        return b""
    return _section_bytes(stream, lay, headers[index], size, ".shstrtab", 1, "MAX_ELF_STRTAB_BYTES")


def _program_headers(elf: ELFFile, stream: Stream, size: int, secs: _Sections, lay: _Layout) -> list[_Phdr]:
    """The PT_LOAD, PT_DYNAMIC and PT_INTERP program headers, checked to lie inside the file."""
    hdr = elf.header
    count = hdr.e_phnum
    if count == PN_XNUM:
        # the real count is in section 0's sh_info (ELF gABI, for > 65534 segments)
        count = secs.phnum
        if not count:
            raise ElfParseError("e_phnum is PN_XNUM (0xffff) but section 0 holds no program header count")
    if count == 0:
        return []
    _bound("MAX_ELF_PROGRAM_HEADERS", count, "program headers")
    ent, need = hdr.e_phentsize, lay.phdr_size
    if ent < need:
        raise ElfParseError(f"e_phentsize {ent} is smaller than a program header ({need})")
    if hdr.e_phoff + count * ent > size:
        raise ElfParseError(
            f"program header table ({count} entries at offset {hdr.e_phoff}) "
            f"runs past the end of the file ({size} bytes)"
        )
    if ent == need:
        table = _read_at(stream, hdr.e_phoff, count * ent)
        rows = [lay.phdr.unpack_from(table, i * ent) for i in range(count)]
    else:  # padded entries: only the header itself is read of each
        rows = [lay.phdr.unpack(_read_at(stream, hdr.e_phoff + i * ent, need)[: lay.phdr.size]) for i in range(count)]
    return [lay.segment(r) for r in rows if r[0] in (PT_LOAD, PT_DYNAMIC, PT_INTERP)]


def _locate(loads: list[_Phdr], vaddr: int, size: int) -> tuple[int, int] | None:
    """The file offset of a virtual address, and how many bytes of its PT_LOAD segment
    (and of the file) follow it: what a table found at that address may occupy."""
    for ph in loads:
        if ph.p_vaddr <= vaddr < ph.p_vaddr + ph.p_filesz:
            offset = ph.p_offset + (vaddr - ph.p_vaddr)
            end = min(ph.p_offset + ph.p_filesz, size)
            return (offset, end - offset) if offset < end else None
    return None


@dataclass
class _Dynamic:
    """The dynamic array up to DT_NULL, and the string table DT_STRTAB points to."""

    entries: list[tuple[int, int]] = field(default_factory=list)
    strings: bytes = b""

    def value(self, tag: int) -> int | None:
        """The value of the last entry with this tag (``ld.so`` keeps the last one too)."""
        return next((v for t, v in reversed(self.entries) if t == tag), None)


def _read_dynamic(stream: Stream, lay: _Layout, dyn: _Phdr, loads: list[_Phdr],
                  size: int, notes: list[str]) -> _Dynamic:
    """The dynamic array as ``ld.so`` reads it: entries up to DT_NULL (never more than the
    file holds, nor more than MAX_ELF_DYNAMIC_ENTRIES), read a block at a time; string
    values looked up in the table DT_STRTAB points to, its virtual address mapped to a
    file offset through the PT_LOAD segments."""
    entsize = lay.dyn_size
    limit = max(0, (size - dyn.p_offset) // entsize)
    count = dyn.p_filesz // entsize
    if count > limit:
        notes.append(f"PT_DYNAMIC claims {count} entries but the file holds at most {limit}; read up to DT_NULL")
        count = limit
    out = _Dynamic()
    stream.seek(dyn.p_offset)
    block = 256  # one read for any real file
    while count > 0:
        raw = stream.read(min(count, block) * entsize)
        count -= block
        for tag, val in lay.dyn.iter_unpack(raw[: len(raw) - len(raw) % entsize]):
            if tag == DT_NULL:
                count = 0
                break
            out.entries.append((tag, val))
        _bound("MAX_ELF_DYNAMIC_ENTRIES", len(out.entries), "PT_DYNAMIC entries before DT_NULL")
    strtab, strsz = out.value(DT_STRTAB), out.value(DT_STRSZ)
    where = _locate(loads, strtab, size) if strtab is not None else None
    if where is not None:
        offset, room = where
        if strsz is not None and strsz > room:
            raise ElfParseError(f"DT_STRSZ claims {strsz:,} bytes but the segment holding DT_STRTAB has {room:,}")
        want = strsz if strsz is not None else min(room, limits.MAX_ELF_STRTAB_BYTES)
        _bound("MAX_ELF_STRTAB_BYTES", want, "DT_STRSZ")
        out.strings = _read_at(stream, offset, want)
    for tag, val in out.entries:
        if tag in _STRING_TAGS and (not out.strings or val >= len(out.strings)):
            raise ElfParseError(f"dynamic tag {tag:#x} points outside the string table")
    return out


def _string_at(strings: bytes, offset: int) -> bytes:
    end = strings.find(b"\0", offset)
    return strings[offset: end if end >= 0 else None]


class _Names:
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


def _undefined_functions(lay: _Layout, table: bytes, strings: bytes, notes: list[str]) -> tuple[str, ...]:
    """Names of the undefined ``STT_FUNC`` symbols of a dynamic symbol table (names that
    are not UTF-8 kept and noted)."""
    names = _Names(strings, "the dynamic string table")
    name_i, info_i, shndx_i, ent = lay.sym_name, lay.sym_info, lay.sym_shndx, lay.sym_size
    with memoryview(table) as view:
        for sym in lay.sym.iter_unpack(view[: len(table) - len(table) % ent]):
            if sym[shndx_i] == 0 and sym[info_i] & 0xF == 2 and sym[name_i] and sym[name_i] < len(strings):
                names(sym[name_i])
    if names.odd:
        notes.append(f"{names.odd} imported symbol name(s) are not valid UTF-8; kept with the undecodable bytes escaped")
    return tuple(sorted(set(names.seen.values())))


def _symbols_by_sections(stream: Stream, lay: _Layout, secs: _Sections, size: int) -> tuple[bytes, bytes]:
    """.dynsym and its string table, through the section headers."""
    assert secs.dynsym is not None and secs.dynstr is not None
    table = _section_bytes(stream, lay, secs.dynsym, size, ".dynsym", lay.sym_size, "MAX_ELF_SYMBOLS")
    strings = _section_bytes(stream, lay, secs.dynstr, size, ".dynstr", 1, "MAX_ELF_STRTAB_BYTES")
    return table, strings


def _symbols_by_dynamic(stream: Stream, lay: _Layout, dyn: _Dynamic, loads: list[_Phdr], size: int) -> bytes:
    """The dynamic symbol table of a file without section headers, as the loader finds it:
    at DT_SYMTAB, as many entries as DT_GNU_HASH or DT_HASH count (else up to the nearest
    address the dynamic array names above it, as readelf and pyelftools do)."""
    symtab = dyn.value(DT_SYMTAB)
    if symtab is None:
        return b""
    syment = dyn.value(DT_SYMENT)
    if syment is not None and syment != lay.sym_size:
        raise ElfParseError(f"DT_SYMENT is {syment}, not the size of a symbol ({lay.sym_size})")
    where = _locate(loads, symtab, size)
    if where is None:
        raise ElfParseError("DT_SYMTAB points outside the file's loaded segments")
    offset, room = where
    gnu, sysv = dyn.value(DT_GNU_HASH), dyn.value(DT_HASH)
    if gnu is not None:
        count, by = _gnu_hash_count(stream, lay, loads, gnu, size), "DT_GNU_HASH"
    elif sysv is not None:
        count, by = _sysv_hash_count(stream, lay, loads, sysv, size), "DT_HASH"
    else:
        above = [v for _t, v in dyn.entries if v > symtab]
        if not above:
            raise ElfParseError("no DT_GNU_HASH or DT_HASH to count the dynamic symbols by")
        count, by = (min(above) - symtab) // lay.sym_size, "the dynamic array"
    _bound("MAX_ELF_SYMBOLS", count, f"dynamic symbols counted by {by}")
    if count * lay.sym_size > room:
        raise ElfParseError(f"{by} counts {count:,} dynamic symbols but the segment holding DT_SYMTAB "
                            f"has room for {room // lay.sym_size:,}")
    return _read_at(stream, offset, count * lay.sym_size)


def _table_at(loads: list[_Phdr], vaddr: int, size: int, what: str, header: int) -> tuple[int, int]:
    where = _locate(loads, vaddr, size)
    if where is None or where[1] < header:
        raise ElfParseError(f"{what} points outside the file's loaded segments")
    return where


def _sysv_hash_count(stream: Stream, lay: _Layout, loads: list[_Phdr], vaddr: int, size: int) -> int:
    """DT_HASH's nchain (the symbol count), after checking the table fits its segment."""
    offset, room = _table_at(loads, vaddr, size, "DT_HASH", 8)
    nbucket, nchain = struct.unpack(lay.order + "II", _read_at(stream, offset, 8))
    _bound("MAX_ELF_SYMBOLS", nchain, "DT_HASH nchain")
    _bound("MAX_ELF_SYMBOLS", nbucket, "DT_HASH nbucket")
    if 8 + 4 * (nbucket + nchain) > room:
        raise ElfParseError(f"DT_HASH claims {nbucket:,} buckets and {nchain:,} chains but its segment "
                            f"has {room:,} bytes")
    return nchain


def _gnu_hash_count(stream: Stream, lay: _Layout, loads: list[_Phdr], vaddr: int, size: int) -> int:
    """The symbol count DT_GNU_HASH implies: one past the end of the chain of the highest
    symbol any bucket names. Buckets, bloom words and the chain walked must lie inside the
    table's segment, and the count within MAX_ELF_SYMBOLS."""
    offset, room = _table_at(loads, vaddr, size, "DT_GNU_HASH", 16)
    nbuckets, symoffset, bloom_size, _shift = struct.unpack(lay.order + "IIII", _read_at(stream, offset, 16))
    _bound("MAX_ELF_SYMBOLS", nbuckets, "DT_GNU_HASH buckets")
    buckets_at = 16 + bloom_size * (8 if lay.wide else 4)
    chains_at = buckets_at + 4 * nbuckets
    if chains_at > room:
        raise ElfParseError(f"DT_GNU_HASH claims {nbuckets:,} buckets and {bloom_size:,} bloom words but its "
                            f"segment has {room:,} bytes")
    top = max(struct.unpack(f"{lay.order}{nbuckets}I", _read_at(stream, offset + buckets_at, 4 * nbuckets)),
              default=0)
    if top < symoffset:
        return symoffset
    index = top - symoffset  # walk this symbol's chain to its last entry (low bit set)
    if chains_at + 4 * index + 4 > room:
        raise ElfParseError(f"a DT_GNU_HASH bucket names symbol {top:,}, past the end of its segment")
    while True:
        at = chains_at + 4 * index
        if at + 4 > room:
            raise ElfParseError("a DT_GNU_HASH chain runs past the end of its segment")
        _bound("MAX_ELF_SYMBOLS", symoffset + index + 1, "dynamic symbols counted by DT_GNU_HASH")
        chunk = _read_at(stream, offset + at, min(room - at, 4096) & ~3)
        if not chunk:
            raise ElfParseError("the file ended inside a DT_GNU_HASH chain")
        for (value,) in lay.word.iter_unpack(chunk):
            if value & 1:
                return symoffset + index + 1
            index += 1


def _open_stream(fh: BinaryIO, size: int) -> tuple[Stream, io.BufferedReader | None]:
    """The file as parsers read it best, and the buffered view made here, if any: mapped
    when it is a real file (or a file lying in one piece inside a disk image); else read
    through a buffer of READ_CHUNK (many small reads through an image's layers cost far
    more than a few large ones), never whole. A map is only ever as long as the size the
    file had when opened: a file that shrank since is read the buffered way."""
    mapped = getattr(fh, "mapped", None)  # a file inside a disk image, when it lies in one piece
    if mapped is not None:
        got = mapped()
        if got is not None:
            return got, None
    try:
        return mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ), None
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation, OverflowError):
        fh.seek(0)
        if isinstance(fh, io.RawIOBase):
            buffered: io.BufferedReader = io.BufferedReader(cast(io.RawIOBase, fh), READ_CHUNK)
            return cast(BinaryIO, buffered), buffered
        return fh, None


def _hashes(stream: Stream, size: int) -> tuple[str, str]:
    """SHA-256 and SHA-1 of the file's ``size`` bytes, READ_CHUNK at a time. From a map,
    each chunk is hashed in place and its pages dropped from this process once hashed (a
    map's pages count as the process's memory, for the OOM killer too); from a stream,
    through one reused buffer. A stream ending before ``size`` is an error: the bytes
    hashed would not be the file's."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    if isinstance(stream, mmap.mmap):
        if len(stream) < size:
            raise OSError(5, f"the file ended after {len(stream):,} of its {size:,} bytes")
        with memoryview(stream) as view:
            for at in range(0, size, READ_CHUNK):
                n = min(READ_CHUNK, size - at)
                with view[at: at + n] as chunk:
                    sha256.update(chunk)
                    sha1.update(chunk)
                if size > READ_CHUNK:
                    stream.madvise(mmap.MADV_DONTNEED, at, n)
        return sha256.hexdigest(), sha1.hexdigest()
    buf = bytearray(min(size, READ_CHUNK))
    done = 0
    stream.seek(0)
    with memoryview(buf) as view:
        while done < size:
            n = cast(io.BufferedIOBase, stream).readinto(view[: min(len(buf), size - done)])
            if not n:
                raise OSError(5, f"the file ended after {done:,} of its {size:,} bytes")
            sha256.update(view[:n])
            sha1.update(view[:n])
            done += n
    return sha256.hexdigest(), sha1.hexdigest()


def parse_elf(path: str, fh: BinaryIO, st_mode: int, size: int, uid: int = 0, gid: int = 0,
              *, light: bool = False) -> tuple[ElfRecord, tuple[str, ...]]:
    """Census one opened ELF file. ``path`` is the guest path the record carries. Returns
    the record and the problems met on the way that did not stop the parse (a dynamic
    segment larger than the file, a symbol name that is not UTF-8...).

    ``light`` reads only what the loader needs (no symbol table, no hashes): for
    libraries found outside the census, which are linked but not inventoried.

    Raises :class:`ElfParseError` for a malformed file and
    :class:`~scanner.limits.LimitExceeded` for one over a cap (its apparent size first:
    nothing is read of a file over MAX_ELF_FILE_BYTES)."""
    _bound("MAX_ELF_FILE_BYTES", size, "the file's size in bytes")
    stream, buffered = _open_stream(fh, size)
    try:
        return _parse(path, stream, st_mode, size, uid, gid, light)
    except (ELFError, ELFParseError, _ConstructError, struct.error, zlib.error, ValueError,
            IndexError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise ElfParseError(f"malformed ELF: {exc or type(exc).__name__}") from exc
    finally:
        if isinstance(stream, mmap.mmap):
            stream.close()
        elif buffered is not None:
            buffered.detach()  # the caller closes its own file


def _parse(path: str, stream: Stream, st_mode: int, size: int, uid: int, gid: int,
           light: bool = False) -> tuple[ElfRecord, tuple[str, ...]]:
    if size < 16:
        raise ElfParseError(f"truncated ELF: {size} bytes")
    elf = _CensusELFFile(stream)
    hdr = elf.header
    lay = _layout(elf)
    ehsize = 64 if elf.elfclass == 64 else 52
    if size < ehsize:
        raise ElfParseError(f"truncated ELF: {size} bytes, header needs {ehsize}")
    machine = machine_name(hdr.e_machine, elf.elfclass, elf.little_endian)
    notes: list[str] = []
    secs = _scan_sections(elf, stream, size, lay)
    interp: str | None = None
    dyn: _Dynamic | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname = None
    flags_1 = 0
    # a separate debug-info file keeps the program headers of its binary, but not the
    # contents they describe: nothing to read past the headers
    phdrs = [] if secs.debuginfo else _program_headers(elf, stream, size, secs, lay)
    loads = [ph for ph in phdrs if ph.p_type == PT_LOAD]
    for ph in phdrs:
        if ph.p_type == PT_INTERP and interp is None:
            if ph.p_offset + ph.p_filesz > size:
                raise ElfParseError("PT_INTERP runs past the end of the file")
            interp = _string_at(_read_at(stream, ph.p_offset, min(ph.p_filesz, 4096)), 0).decode(
                "utf-8", "surrogateescape")
        elif ph.p_type == PT_DYNAMIC and dyn is None:
            if ph.p_offset >= size:
                raise ElfParseError("PT_DYNAMIC starts past the end of the file")
            dyn = _read_dynamic(stream, lay, ph, loads, size, notes)
            dyn_names = _Names(dyn.strings, "DT_STRTAB")
            for tag, val in dyn.entries:
                if tag in _STRING_TAGS:
                    text = dyn_names(val)
                    if tag == DT_NEEDED:
                        needed.append(text)
                    elif tag == DT_RPATH:
                        rpath.extend(text.split(":"))
                    elif tag == DT_RUNPATH:
                        runpath.extend(text.split(":"))
                    else:
                        soname = text
                elif tag == DT_FLAGS_1:
                    flags_1 = val
    debuginfo = secs.debuginfo
    etype = hdr.e_type
    if debuginfo:
        kind = "debuginfo"
    elif etype == "ET_EXEC":
        kind = "executable"
    elif etype == "ET_DYN":
        if flags_1 & DF_1_PIE:
            kind = "pie"
        elif soname is None and interp is not None:
            kind = "pie"
        else:
            kind = "shared-library"
    elif etype == "ET_REL":
        kind = "relocatable"
    elif etype == "ET_CORE":
        kind = "core"
    else:
        kind = "other"
    static = not debuginfo and (
        dyn is None or (interp is None and not needed and kind != "shared-library")
    )
    imports: tuple[str, ...] = ()
    if dyn is not None and not light:
        if secs.dynsym is not None:
            table, strings = _symbols_by_sections(stream, lay, secs, size)
            imports = _undefined_functions(lay, table, strings, notes)
        elif not secs.usable:  # section headers stripped: the table the loader finds
            imports = _undefined_functions(lay, _symbols_by_dynamic(stream, lay, dyn, loads, size),
                                           dyn.strings, notes)
    sha256, sha1 = ("", "") if light else _hashes(stream, size)
    osabi = hdr.e_ident.EI_OSABI
    return ElfRecord(
        path=path,
        type=kind,
        elf_class=elf.elfclass,
        byte_order="little" if elf.little_endian else "big",
        machine=machine,
        osabi=osabi.removeprefix("ELFOSABI_") if isinstance(osabi, str) else str(osabi),
        interpreter=interp,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        soname=soname,
        flags_1=_flags_1_names(flags_1),
        imports=imports,
        static=static,
        setuid=bool(st_mode & statmod.S_ISUID),
        setgid=bool(st_mode & statmod.S_ISGID),
        mode=statmod.S_IMODE(st_mode),
        size=size,
        sha256=sha256,
        sha1=sha1,
        uid=uid,
        gid=gid,
    ), tuple(notes)
