"""The program headers and the dynamic segment of an ELF file, read as ``ld.so`` reads
them: ``PT_INTERP``, ``PT_DYNAMIC`` and the ``PT_LOAD`` segments that map the virtual
addresses the dynamic array names (``DT_STRTAB``, ``DT_SYMTAB``, the hash tables) to file
offsets. Every count is checked against the bytes that hold it and a named cap of
:mod:`scanner.limits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner import limits
from scanner.inventory.elf import ElfParseError
from scanner.inventory.elfheader import ElfHeader, Layout, Phdr, Stream, bound, read_at
from scanner.inventory.elfsections import Sections

PN_XNUM = 0xFFFF
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 1, 4, 5, 6, 10, 11
DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1, DT_GNU_HASH = 14, 15, 29, 0x6FFFFFFB, 0x6FFFFEF5
STRING_TAGS = (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH)


def program_headers(hdr: ElfHeader, stream: Stream, size: int, secs: Sections, lay: Layout) -> list[Phdr]:
    """The PT_LOAD, PT_DYNAMIC and PT_INTERP program headers, checked to lie inside the file."""
    count = hdr.e_phnum
    if count == PN_XNUM:
        # the real count is in section 0's sh_info (ELF gABI, for > 65534 segments)
        count = secs.phnum
        if not count:
            raise ElfParseError("e_phnum is PN_XNUM (0xffff) but section 0 holds no program header count")
    if count == 0:
        return []
    bound("MAX_ELF_PROGRAM_HEADERS", count, "program headers")
    ent, need = hdr.e_phentsize, lay.phdr_size
    if ent < need:
        raise ElfParseError(f"e_phentsize {ent} is smaller than a program header ({need})")
    if hdr.e_phoff + count * ent > size:
        raise ElfParseError(
            f"program header table ({count} entries at offset {hdr.e_phoff}) "
            f"runs past the end of the file ({size} bytes)"
        )
    if ent == need:
        table = read_at(stream, hdr.e_phoff, count * ent)
        rows = [lay.phdr.unpack_from(table, i * ent) for i in range(count)]
    else:  # padded entries: only the header itself is read of each
        rows = [lay.phdr.unpack(read_at(stream, hdr.e_phoff + i * ent, need)[: lay.phdr.size]) for i in range(count)]
    return [lay.segment(r) for r in rows if r[0] in (PT_LOAD, PT_DYNAMIC, PT_INTERP)]


def locate(loads: list[Phdr], vaddr: int, size: int) -> tuple[int, int] | None:
    """The file offset of a virtual address, and how many bytes of its PT_LOAD segment
    (and of the file) follow it: what a table found at that address may occupy."""
    for ph in loads:
        if ph.p_vaddr <= vaddr < ph.p_vaddr + ph.p_filesz:
            offset = ph.p_offset + (vaddr - ph.p_vaddr)
            end = min(ph.p_offset + ph.p_filesz, size)
            return (offset, end - offset) if offset < end else None
    return None


@dataclass
class Dynamic:
    """The dynamic array up to DT_NULL, and the string table DT_STRTAB points to."""

    entries: list[tuple[int, int]] = field(default_factory=list)
    strings: bytes = b""

    def value(self, tag: int) -> int | None:
        """The value of the last entry with this tag (``ld.so`` keeps the last one too)."""
        return next((v for t, v in reversed(self.entries) if t == tag), None)


def read_dynamic(stream: Stream, lay: Layout, dyn: Phdr, loads: list[Phdr],
                 size: int, notes: list[str]) -> Dynamic:
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
    out = Dynamic()
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
        bound("MAX_ELF_DYNAMIC_ENTRIES", len(out.entries), "PT_DYNAMIC entries before DT_NULL")
    strtab, strsz = out.value(DT_STRTAB), out.value(DT_STRSZ)
    where = locate(loads, strtab, size) if strtab is not None else None
    if where is not None:
        offset, room = where
        if strsz is not None and strsz > room:
            raise ElfParseError(f"DT_STRSZ claims {strsz:,} bytes but the segment holding DT_STRTAB has {room:,}")
        want = strsz if strsz is not None else min(room, limits.MAX_ELF_STRTAB_BYTES)
        bound("MAX_ELF_STRTAB_BYTES", want, "DT_STRSZ")
        out.strings = read_at(stream, offset, want)
    for tag, val in out.entries:
        if tag in STRING_TAGS and (not out.strings or val >= len(out.strings)):
            raise ElfParseError(f"dynamic tag {tag:#x} points outside the string table")
    return out
