"""The dynamic symbol table of an ELF file: the names of the functions it imports (its
undefined ``STT_FUNC`` symbols). Found through the section headers (``.dynsym``) when the
file has them, else as the loader finds it (``DT_SYMTAB``, counted through ``DT_GNU_HASH``
or ``DT_HASH``), every count checked against the segment holding the table and
MAX_ELF_SYMBOLS.
"""

from __future__ import annotations

import struct

from scanner.inventory.elf import ElfParseError
from scanner.inventory.elfdynamic import DT_GNU_HASH, DT_HASH, DT_SYMENT, DT_SYMTAB, Dynamic, locate
from scanner.inventory.elfheader import Layout, Names, Phdr, Stream, bound, read_at
from scanner.inventory.elfsections import Sections, section_bytes


def undefined_functions(lay: Layout, table: bytes, strings: bytes, notes: list[str]) -> tuple[str, ...]:
    """Names of the undefined ``STT_FUNC`` symbols of a dynamic symbol table (names that
    are not UTF-8 kept and noted)."""
    names = Names(strings, "the dynamic string table")
    name_i, info_i, shndx_i, ent = lay.sym_name, lay.sym_info, lay.sym_shndx, lay.sym_size
    with memoryview(table) as view:
        for sym in lay.sym.iter_unpack(view[: len(table) - len(table) % ent]):
            if sym[shndx_i] == 0 and sym[info_i] & 0xF == 2 and sym[name_i] and sym[name_i] < len(strings):
                names(sym[name_i])
    if names.odd:
        notes.append(f"{names.odd} imported symbol name(s) are not valid UTF-8; kept with the undecodable bytes escaped")
    return tuple(sorted(set(names.seen.values())))


def symbols_by_sections(stream: Stream, lay: Layout, secs: Sections, size: int) -> tuple[bytes, bytes]:
    """.dynsym and its string table, through the section headers."""
    assert secs.dynsym is not None and secs.dynstr is not None
    table = section_bytes(stream, lay, secs.dynsym, size, ".dynsym", lay.sym_size, "MAX_ELF_SYMBOLS")
    strings = section_bytes(stream, lay, secs.dynstr, size, ".dynstr", 1, "MAX_ELF_STRTAB_BYTES")
    return table, strings


def symbols_by_dynamic(stream: Stream, lay: Layout, dyn: Dynamic, loads: list[Phdr], size: int) -> bytes:
    """The dynamic symbol table of a file without section headers, as the loader finds it:
    at DT_SYMTAB, as many entries as DT_GNU_HASH or DT_HASH count (else up to the nearest
    address the dynamic array names above it, as readelf and pyelftools do)."""
    symtab = dyn.value(DT_SYMTAB)
    if symtab is None:
        return b""
    syment = dyn.value(DT_SYMENT)
    if syment is not None and syment != lay.sym_size:
        raise ElfParseError(f"DT_SYMENT is {syment}, not the size of a symbol ({lay.sym_size})")
    where = locate(loads, symtab, size)
    if where is None:
        raise ElfParseError("DT_SYMTAB points outside the file's loaded segments")
    offset, room = where
    gnu, sysv = dyn.value(DT_GNU_HASH), dyn.value(DT_HASH)
    if gnu is not None:
        count, by = gnu_hash_count(stream, lay, loads, gnu, size), "DT_GNU_HASH"
    elif sysv is not None:
        count, by = sysv_hash_count(stream, lay, loads, sysv, size), "DT_HASH"
    else:
        above = [v for _t, v in dyn.entries if v > symtab]
        if not above:
            raise ElfParseError("no DT_GNU_HASH or DT_HASH to count the dynamic symbols by")
        count, by = (min(above) - symtab) // lay.sym_size, "the dynamic array"
    bound("MAX_ELF_SYMBOLS", count, f"dynamic symbols counted by {by}")
    if count * lay.sym_size > room:
        raise ElfParseError(f"{by} counts {count:,} dynamic symbols but the segment holding DT_SYMTAB "
                            f"has room for {room // lay.sym_size:,}")
    return read_at(stream, offset, count * lay.sym_size)


def table_at(loads: list[Phdr], vaddr: int, size: int, what: str, header: int) -> tuple[int, int]:
    """Where the table at ``vaddr`` lies in the file, and its room: at least ``header`` bytes."""
    where = locate(loads, vaddr, size)
    if where is None or where[1] < header:
        raise ElfParseError(f"{what} points outside the file's loaded segments")
    return where


def sysv_hash_count(stream: Stream, lay: Layout, loads: list[Phdr], vaddr: int, size: int) -> int:
    """DT_HASH's nchain (the symbol count), after checking the table fits its segment."""
    offset, room = table_at(loads, vaddr, size, "DT_HASH", 8)
    nbucket, nchain = struct.unpack(lay.order + "II", read_at(stream, offset, 8))
    bound("MAX_ELF_SYMBOLS", nchain, "DT_HASH nchain")
    bound("MAX_ELF_SYMBOLS", nbucket, "DT_HASH nbucket")
    if 8 + 4 * (nbucket + nchain) > room:
        raise ElfParseError(f"DT_HASH claims {nbucket:,} buckets and {nchain:,} chains but its segment "
                            f"has {room:,} bytes")
    return int(nchain)


def gnu_hash_count(stream: Stream, lay: Layout, loads: list[Phdr], vaddr: int, size: int) -> int:
    """The symbol count DT_GNU_HASH implies: one past the end of the chain of the highest
    symbol any bucket names. Buckets, bloom words and the chain walked must lie inside the
    table's segment, and the count within MAX_ELF_SYMBOLS."""
    offset, room = table_at(loads, vaddr, size, "DT_GNU_HASH", 16)
    nbuckets, symoffset, bloom_size, _shift = struct.unpack(lay.order + "IIII", read_at(stream, offset, 16))
    bound("MAX_ELF_SYMBOLS", nbuckets, "DT_GNU_HASH buckets")
    buckets_at = 16 + bloom_size * (8 if lay.wide else 4)
    chains_at = buckets_at + 4 * nbuckets
    if chains_at > room:
        raise ElfParseError(f"DT_GNU_HASH claims {nbuckets:,} buckets and {bloom_size:,} bloom words but its "
                            f"segment has {room:,} bytes")
    top = max(struct.unpack(f"{lay.order}{nbuckets}I", read_at(stream, offset + buckets_at, 4 * nbuckets)),
              default=0)
    if top < symoffset:
        return int(symoffset)
    index = top - symoffset  # walk this symbol's chain to its last entry (low bit set)
    if chains_at + 4 * index + 4 > room:
        raise ElfParseError(f"a DT_GNU_HASH bucket names symbol {top:,}, past the end of its segment")
    while True:
        at = chains_at + 4 * index
        if at + 4 > room:
            raise ElfParseError("a DT_GNU_HASH chain runs past the end of its segment")
        bound("MAX_ELF_SYMBOLS", symoffset + index + 1, "dynamic symbols counted by DT_GNU_HASH")
        chunk = read_at(stream, offset + at, min(room - at, 4096) & ~3)
        if not chunk:
            raise ElfParseError("the file ended inside a DT_GNU_HASH chain")
        for (value,) in lay.word.iter_unpack(chunk):
            if value & 1:
                return int(symoffset + index + 1)
            index += 1
