"""Reading one ELF file into an :class:`~scanner.inventory.elf.ElfRecord`.

What is read is what the dynamic loader and the later stages use: the ELF header (class,
byte order, machine, OSABI, type), the program headers (``PT_INTERP``, ``PT_DYNAMIC``), the
dynamic segment (``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH``, ``DT_SONAME``, ``DT_FLAGS_1``)
and the undefined function symbols of the dynamic symbol table (what the file imports).
The dynamic segment is read through the program headers, as ``ld.so`` reads it, so files
whose section headers were stripped still parse: their symbol table is found through
``DT_SYMTAB`` and counted through ``DT_GNU_HASH`` or ``DT_HASH``.

Every table, the ELF header first, is unpacked with :mod:`struct`, in one pass each: the
census' hot path, and the place where a hostile file's numbers must be checked before they
are believed. pyelftools gives the names of ``e_machine`` and ``EI_OSABI`` (its public enum
tables, the record's vocabulary); nothing else of it is used. The readers are split by the
part of the file they read: :mod:`~scanner.inventory.elfheader` (the header, the layout of
the file's flavour, string tables), :mod:`~scanner.inventory.elfsections` (section
headers), :mod:`~scanner.inventory.elfdynamic` (program headers and the dynamic segment),
:mod:`~scanner.inventory.elfsymbols` (the dynamic symbol table); this module opens and
hashes the file and puts the record together.

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
from typing import BinaryIO, cast

from scanner.inventory.elf import ElfParseError, ElfRecord, machine_name
from scanner.inventory.elfdynamic import (
    DT_FLAGS_1, DT_NEEDED, DT_RPATH, DT_RUNPATH, PT_DYNAMIC, PT_INTERP, PT_LOAD, STRING_TAGS, Dynamic, program_headers,
    read_dynamic,
)
from scanner.inventory.elfheader import (
    ET_CORE, ET_DYN, ET_EXEC, ET_REL, ElfHeader, Layout, Names, Phdr, Stream, bound, layout, read_at, read_header,
    string_at,
)
from scanner.inventory.elfsections import Sections, scan_sections
from scanner.inventory.elfsymbols import symbols_by_dynamic, symbols_by_sections, undefined_functions
from scanner.limits import READ_CHUNK

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
_KINDS = {ET_EXEC: "executable", ET_REL: "relocatable", ET_CORE: "core"}


def _flags_1_names(value: int) -> tuple[str, ...]:
    return tuple(name for bit, name in sorted(_FLAGS_1_NAMES.items()) if value & bit)


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
    bound("MAX_ELF_FILE_BYTES", size, "the file's size in bytes")
    stream, buffered = _open_stream(fh, size)
    try:
        return _parse(path, stream, st_mode, size, uid, gid, light)
    except (struct.error, zlib.error, ValueError, IndexError, KeyError, TypeError, AttributeError,
            OverflowError) as exc:
        raise ElfParseError(f"malformed ELF: {exc or type(exc).__name__}") from exc
    finally:
        if isinstance(stream, mmap.mmap):
            stream.close()
        elif buffered is not None:
            buffered.detach()  # the caller closes its own file


@dataclass
class _Linkage:
    """What the program headers and the dynamic segment tell the loader."""

    interp: str | None = None
    dyn: Dynamic | None = None
    needed: list[str] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    soname: str | None = None
    flags_1: int = 0


def _linkage(stream: Stream, lay: Layout, phdrs: list[Phdr], size: int, notes: list[str]) -> _Linkage:
    """PT_INTERP and PT_DYNAMIC (the first of each, in the order of the program headers,
    as the loader takes them) and the dynamic array's names and DT_FLAGS_1."""
    out = _Linkage()
    loads = [ph for ph in phdrs if ph.p_type == PT_LOAD]
    for ph in phdrs:
        if ph.p_type == PT_INTERP and out.interp is None:
            if ph.p_offset + ph.p_filesz > size:
                raise ElfParseError("PT_INTERP runs past the end of the file")
            out.interp = string_at(read_at(stream, ph.p_offset, min(ph.p_filesz, 4096)), 0).decode(
                "utf-8", "surrogateescape")
        elif ph.p_type == PT_DYNAMIC and out.dyn is None:
            if ph.p_offset >= size:
                raise ElfParseError("PT_DYNAMIC starts past the end of the file")
            out.dyn = read_dynamic(stream, lay, ph, loads, size, notes)
            _dynamic_names(out, Names(out.dyn.strings, "DT_STRTAB"))
    return out


def _dynamic_names(out: _Linkage, names: Names) -> None:
    """DT_NEEDED, DT_RPATH, DT_RUNPATH and DT_SONAME (the last one) by name, and DT_FLAGS_1."""
    assert out.dyn is not None
    for tag, val in out.dyn.entries:
        if tag in STRING_TAGS:
            text = names(val)
            if tag == DT_NEEDED:
                out.needed.append(text)
            elif tag == DT_RPATH:
                out.rpath.extend(text.split(":"))
            elif tag == DT_RUNPATH:
                out.runpath.extend(text.split(":"))
            else:
                out.soname = text
        elif tag == DT_FLAGS_1:
            out.flags_1 = val


def _kind(hdr: ElfHeader, secs: Sections, link: _Linkage) -> str:
    """The record's type: a PIE is an ET_DYN flagged DF_1_PIE, or one with an interpreter
    and no soname (older linkers do not set the flag)."""
    if secs.debuginfo:
        return "debuginfo"
    if hdr.e_type == ET_DYN:
        if link.flags_1 & DF_1_PIE or (link.soname is None and link.interp is not None):
            return "pie"
        return "shared-library"
    return _KINDS.get(hdr.e_type, "other")


def _imports(stream: Stream, lay: Layout, secs: Sections, link: _Linkage, phdrs: list[Phdr], size: int,
             notes: list[str]) -> tuple[str, ...]:
    """The undefined functions of the dynamic symbol table: through ``.dynsym``, else (no
    section headers at all) through the table the loader finds."""
    if link.dyn is None:
        return ()
    if secs.dynsym is not None:
        table, strings = symbols_by_sections(stream, lay, secs, size)
        return undefined_functions(lay, table, strings, notes)
    if not secs.usable:  # section headers stripped: the table the loader finds
        loads = [ph for ph in phdrs if ph.p_type == PT_LOAD]
        return undefined_functions(lay, symbols_by_dynamic(stream, lay, link.dyn, loads, size), link.dyn.strings, notes)
    return ()


def _parse(path: str, stream: Stream, st_mode: int, size: int, uid: int, gid: int,
           light: bool = False) -> tuple[ElfRecord, tuple[str, ...]]:
    if size < 16:
        raise ElfParseError(f"truncated ELF: {size} bytes")
    hdr = read_header(stream, size)
    lay = layout(hdr)
    machine = machine_name(hdr.e_machine, hdr.elfclass, hdr.little_endian)
    notes: list[str] = []
    secs = scan_sections(hdr, stream, size, lay)
    # a separate debug-info file keeps the program headers of its binary, but not the
    # contents they describe: nothing to read past the headers
    phdrs = [] if secs.debuginfo else program_headers(hdr, stream, size, secs, lay)
    link = _linkage(stream, lay, phdrs, size, notes)
    kind = _kind(hdr, secs, link)
    static = not secs.debuginfo and (
        link.dyn is None or (link.interp is None and not link.needed and kind != "shared-library")
    )
    imports = () if light else _imports(stream, lay, secs, link, phdrs, size, notes)
    sha256, sha1 = ("", "") if light else _hashes(stream, size)
    osabi = hdr.osabi
    return ElfRecord(
        path=path,
        type=kind,
        elf_class=hdr.elfclass,
        byte_order="little" if hdr.little_endian else "big",
        machine=machine,
        osabi=osabi.removeprefix("ELFOSABI_") if isinstance(osabi, str) else str(osabi),
        interpreter=link.interp,
        needed=tuple(link.needed),
        rpath=tuple(link.rpath),
        runpath=tuple(link.runpath),
        soname=link.soname,
        flags_1=_flags_1_names(link.flags_1),
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
