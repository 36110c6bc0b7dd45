"""Reading one ELF file into an :class:`~scanner.inventory.elf.ElfRecord`, with pyelftools.

What is read is what the dynamic loader and the later stages use: the ELF header (class,
byte order, machine, OSABI, type), the program headers (``PT_INTERP``, ``PT_DYNAMIC``), the
dynamic segment (``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH``, ``DT_SONAME``, ``DT_FLAGS_1``)
and the undefined function symbols of the dynamic symbol table (what the file imports).
The dynamic segment is read through the program headers, as ``ld.so`` reads it, so files
whose section headers were stripped still parse.

Written by hand: only the walk over ``.dynsym`` entries, which unpacks the table with
:mod:`struct` in one pass instead of building a pyelftools ``Symbol`` per entry (large
libraries have tens of thousands of symbols; this is the census' hot path). Everything
else is pyelftools.

Hostile input (truncated files, header counts or sizes that point past the end of the
file) raises :class:`ElfParseError` with a one-line reason; nothing is read beyond the file.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import stat as statmod
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO

from elftools.common.exceptions import ELFError, ELFParseError
from elftools.elf.dynamic import Dynamic, DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.structs import ELFStructs

try:  # construct is vendored inside pyelftools
    from elftools.construct.core import ConstructError as _ConstructError
except ImportError:  # pragma: no cover
    _ConstructError = ELFError  # type: ignore[assignment,misc]

from scanner.inventory.elf import ElfParseError, ElfRecord, machine_name

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
    """pyelftools' ELFFile, with its struct definitions built once per ELF flavour.

    ``ELFFile.__init__`` rebuilds every construct struct (with enum tables) for each file,
    about a millisecond a file and most of the census' parsing time. The structs depend
    only on (class, byte order, e_type, e_machine, OSABI), so they are memoised here; the
    steps are ``ELFFile.__init__``'s own (pyelftools 0.31-0.33), and the census tests
    against readelf pin the behaviour.
    """

    _basic: dict[tuple[bool, int], ELFStructs] = {}
    _advanced: dict[tuple[object, ...], ELFStructs] = {}

    def __init__(self, stream: BinaryIO | mmap.mmap) -> None:  # noqa: D107
        self.stream = stream
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

    @cached_property
    def _section_header_stringtable(self) -> object:
        """Read on first use, whichever pyelftools is imported: 0.32 and later make it a
        cached property of their own; earlier ones (Debian 12 ships 0.29, which a process
        may import from the system's dist-packages) set it in the ``__init__`` skipped above."""
        older = getattr(ELFFile, "_get_section_header_stringtable", None)
        if older is not None:
            return older(self)
        return ELFFile.__dict__["_section_header_stringtable"].func(self)


class _SectionsPastEnd(Exception):
    """Section headers unusable; the file is still read through its program headers."""


def _flags_1_names(value: int) -> tuple[str, ...]:
    return tuple(name for bit, name in sorted(_FLAGS_1_NAMES.items()) if value & bit)


PN_XNUM = 0xFFFF


PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1 = 0, 1, 5, 10, 14, 15, 29, 0x6FFFFFFB


@dataclass(frozen=True)
class _Phdr:
    index: int
    p_type: int
    p_offset: int
    p_vaddr: int
    p_filesz: int


def _program_headers(elf: ELFFile, stream: BinaryIO | mmap.mmap, size: int, has_sections: bool) -> list[_Phdr]:
    """The program headers, checked to lie inside the file, unpacked with :mod:`struct`
    (pyelftools' Segment objects cost a construct parse each, and a DynamicSegment walks
    every section)."""
    hdr = elf.header
    count = hdr.e_phnum
    if count == PN_XNUM:
        # the real count is in section 0's sh_info (ELF gABI, for > 65534 segments)
        count = elf.get_section(0).header.sh_info if has_sections else 0
        if not count:
            raise ElfParseError("e_phnum is PN_XNUM (0xffff) but section 0 holds no program header count")
    if count == 0:
        return []
    ent = hdr.e_phentsize
    need = 56 if elf.elfclass == 64 else 32
    if ent < need:
        raise ElfParseError(f"e_phentsize {ent} is smaller than a program header ({need})")
    if hdr.e_phoff + count * ent > size:
        raise ElfParseError(
            f"program header table ({count} entries at offset {hdr.e_phoff}) "
            f"runs past the end of the file ({size} bytes)"
        )
    stream.seek(hdr.e_phoff)
    table = stream.read(count * ent)
    order = "<" if elf.little_endian else ">"
    out = []
    for i in range(count):
        if elf.elfclass == 64:
            p_type, _flags, off, vaddr, _paddr, filesz = struct.unpack_from(order + "IIQQQQ", table, i * ent)
        else:
            p_type, off, vaddr, _paddr, filesz = struct.unpack_from(order + "IIIII", table, i * ent)
        out.append(_Phdr(i, p_type, off, vaddr, filesz))
    return out


def _read_dynamic(stream: BinaryIO | mmap.mmap, elf: ELFFile, dyn: _Phdr, loads: list[_Phdr],
                  size: int, notes: list[str]) -> list[tuple[int, int | str]]:
    """The dynamic array as ``ld.so`` reads it: entries up to DT_NULL (never more than the
    file holds), string values looked up in the table DT_STRTAB points to, its virtual
    address mapped to a file offset through the PT_LOAD segments."""
    entsize = 16 if elf.elfclass == 64 else 8
    limit = max(0, (size - dyn.p_offset) // entsize)
    count = dyn.p_filesz // entsize
    if count > limit:
        notes.append(f"PT_DYNAMIC claims {count} entries but the file holds at most {limit}; read up to DT_NULL")
        count = limit
    stream.seek(dyn.p_offset)
    raw = stream.read(count * entsize)
    fmt = ("<" if elf.little_endian else ">") + ("qQ" if elf.elfclass == 64 else "iI")
    entries: list[tuple[int, int]] = []
    for tag, val in struct.iter_unpack(fmt, raw[: len(raw) - len(raw) % entsize]):
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    values = dict(entries)
    strtab = values.get(DT_STRTAB)
    strsz = values.get(DT_STRSZ, 0)
    str_off = None
    if strtab is not None:
        for ph in loads:
            if ph.p_vaddr <= strtab < ph.p_vaddr + ph.p_filesz:
                str_off = ph.p_offset + (strtab - ph.p_vaddr)
                break
    strings = b""
    if str_off is not None and str_off < size:
        stream.seek(str_off)
        strings = stream.read(min(strsz or size - str_off, size - str_off))
    out: list[tuple[int, int | str]] = []
    for tag, val in entries:
        if tag in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH):
            if not strings or val >= len(strings):
                raise ElfParseError(f"dynamic tag {tag:#x} points outside the string table")
            end = strings.find(b"\0", val)
            out.append((tag, strings[val : end if end >= 0 else None].decode("utf-8", "surrogateescape")))
        elif tag == DT_FLAGS_1:
            out.append((tag, val))
    return out


@dataclass
class _Sections:
    """What one pass over the section headers tells."""

    dynsym: object | None = None  # the SHT_DYNSYM section
    usable: bool = False  # the file has section headers inside it
    debuginfo: bool = False  # .dynamic/.dynsym are SHT_NOBITS: a separate debug-info file


SHT_NOBITS, SHT_DYNSYM = 8, 11


def _scan_sections(elf: ELFFile, stream: BinaryIO | mmap.mmap, size: int) -> _Sections:
    hdr = elf.header
    out = _Sections()
    if not hdr.e_shnum:
        return out
    if hdr.e_shoff + hdr.e_shnum * hdr.e_shentsize > size:
        raise _SectionsPastEnd(
            f"section header table ({hdr.e_shnum} entries at offset {hdr.e_shoff}) runs past "
            f"the end of the file ({size} bytes); read through the program headers only"
        )
    out.usable = True
    # only sh_type is needed to pick sections, and pyelftools builds every section object
    # eagerly (GNU hash buckets and all): the types are unpacked straight from the table,
    # and only the sections wanted become pyelftools objects
    count = elf.num_sections()
    ent = hdr.e_shentsize
    if ent < 8:
        raise ElfParseError(f"e_shentsize {ent} is too small for a section header")
    stream.seek(hdr.e_shoff)
    table = stream.read(count * ent)
    word = struct.Struct(("<" if elf.little_endian else ">") + "I")
    for i in range(min(count, len(table) // ent)):
        stype = word.unpack_from(table, i * ent + 4)[0]
        if stype == SHT_DYNSYM and out.dynsym is None:
            out.dynsym = elf.get_section(i)
        elif stype == SHT_NOBITS and elf._get_section_name(elf._get_section_header(i)) in (".dynamic", ".dynsym"):  # noqa: SLF001
            out.debuginfo = True
    return out


def _undefined_functions(elf: ELFFile, symtab: object | None, has_sections: bool,
                         dyn: Dynamic | None, size: int) -> tuple[str, ...]:
    """Names of undefined ``STT_FUNC`` symbols in the dynamic symbol table."""
    names: set[str] = set()
    if symtab is not None:
        strtab = elf.get_section(symtab.header.sh_link)
        h = symtab.header
        if h.sh_offset + h.sh_size > size or strtab.header.sh_offset + strtab.header.sh_size > size:
            raise ElfParseError(".dynsym or its string table runs past the end of the file")
        data = symtab.data()
        strings = strtab.data()
        if elf.elfclass == 64:
            fmt, name_i, info_i, shndx_i, ent = "IBBHQQ", 0, 1, 3, 24
        else:
            fmt, name_i, info_i, shndx_i, ent = "IIIBBH", 0, 3, 5, 16
        fmt = ("<" if elf.little_endian else ">") + fmt
        usable = len(data) - len(data) % ent
        for sym in struct.iter_unpack(fmt, data[:usable]):
            if sym[shndx_i] == 0 and sym[info_i] & 0xF == 2 and sym[name_i]:
                off = sym[name_i]
                end = strings.find(b"\0", off)
                if off < len(strings):
                    names.add(strings[off : end if end >= 0 else None].decode("utf-8", "replace"))
    elif not has_sections and isinstance(dyn, DynamicSegment):
        # section headers stripped: pyelftools finds the table through DT_SYMTAB/DT_*HASH
        for sym in dyn.iter_symbols():
            e = sym.entry
            if e.st_shndx == "SHN_UNDEF" and e.st_info.type == "STT_FUNC" and sym.name:
                names.add(sym.name)
    return tuple(sorted(names))


IN_MEMORY = 256 << 20  # files without a file descriptor (inside disk images) up to this size


def _open_stream(fh: BinaryIO, size: int) -> BinaryIO | mmap.mmap:
    """The file as parsers read it best: mapped when it is a real file; read in one go
    when it comes through a disk-image reader (many small reads through its layers cost
    far more than one large one); streamed otherwise."""
    mapped = getattr(fh, "mapped", None)  # a file inside a disk image, when it lies in one piece
    if mapped is not None and size:
        got = mapped()
        if got is not None:
            return got
    try:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else fh
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        if size <= IN_MEMORY:
            fh.seek(0)
            return io.BytesIO(fh.read())
        return fh


def _hashes(stream: BinaryIO | mmap.mmap) -> tuple[str, str]:
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    if isinstance(stream, (mmap.mmap, io.BytesIO)):
        # a BytesIO made from bytes shares them: getvalue() hands back that same object,
        # where getbuffer() would first copy the whole file
        whole = stream.getvalue() if isinstance(stream, io.BytesIO) else stream
        sha256.update(whole)
        sha1.update(whole)
    else:
        stream.seek(0)
        while chunk := stream.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def parse_elf(path: str, fh: BinaryIO, st_mode: int, size: int, uid: int = 0, gid: int = 0,
              *, light: bool = False) -> tuple[ElfRecord, tuple[str, ...]]:
    """Census one opened ELF file. ``path`` is the guest path the record carries. Returns
    the record and the problems met on the way that did not stop the parse (a section
    table past the end of the file, a dynamic segment larger than the file...).

    ``light`` reads only what the loader needs (no symbol table, no hashes): for
    libraries found outside the census, which are linked but not inventoried."""
    stream = _open_stream(fh, size)
    try:
        try:
            rec = _parse(path, stream, st_mode, size, uid, gid, light)
        except ElfParseError:
            raise
        except (ELFError, ELFParseError, _ConstructError, struct.error, ValueError,
                IndexError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise ElfParseError(f"malformed ELF: {exc or type(exc).__name__}") from exc
        return rec
    finally:
        if isinstance(stream, mmap.mmap):
            stream.close()


def _parse(path: str, stream: BinaryIO | mmap.mmap, st_mode: int, size: int, uid: int, gid: int,
           light: bool = False) -> tuple[ElfRecord, tuple[str, ...]]:
    if size < 16:
        raise ElfParseError(f"truncated ELF: {size} bytes")
    elf = _CensusELFFile(stream)
    hdr = elf.header
    ehsize = 64 if elf.elfclass == 64 else 52
    if size < ehsize:
        raise ElfParseError(f"truncated ELF: {size} bytes, header needs {ehsize}")
    machine = machine_name(hdr.e_machine, elf.elfclass, elf.little_endian)
    notes: list[str] = []
    try:
        secs = _scan_sections(elf, stream, size)
    except _SectionsPastEnd as exc:
        notes.append(str(exc))
        secs = _Sections()
    interp: str | None = None
    dyn: Dynamic | None = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname = None
    flags_1 = 0
    # a separate debug-info file keeps the program headers of its binary, but not the
    # contents they describe: nothing to read past the headers
    phdrs = [] if secs.debuginfo else _program_headers(elf, stream, size, secs.usable)
    loads = [ph for ph in phdrs if ph.p_type == PT_LOAD]
    dyn_ph: _Phdr | None = None
    for ph in phdrs:
        if ph.p_type == PT_INTERP and interp is None:
            if ph.p_offset + ph.p_filesz > size:
                raise ElfParseError("PT_INTERP runs past the end of the file")
            stream.seek(ph.p_offset)
            interp = stream.read(ph.p_filesz).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif ph.p_type == PT_DYNAMIC and dyn_ph is None:
            if ph.p_offset >= size:
                raise ElfParseError("PT_DYNAMIC starts past the end of the file")
            dyn_ph = ph
            for tag, val in _read_dynamic(stream, elf, ph, loads, size, notes):
                if tag == DT_NEEDED:
                    needed.append(str(val))
                elif tag == DT_RPATH:
                    rpath.extend(str(val).split(":"))
                elif tag == DT_RUNPATH:
                    runpath.extend(str(val).split(":"))
                elif tag == DT_SONAME:
                    soname = str(val)
                elif tag == DT_FLAGS_1:
                    flags_1 = int(val)
    if dyn_ph is not None and not secs.usable and not light:
        # pyelftools' view of the same array, for the symbol table when sections are gone
        dyn = elf.get_segment(dyn_ph.index)
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
        dyn_ph is None or (interp is None and not needed and kind != "shared-library")
    )
    imports = _undefined_functions(elf, secs.dynsym, secs.usable, dyn, size) if dyn_ph and not light else ()
    sha256, sha1 = ("", "") if light else _hashes(stream)
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
