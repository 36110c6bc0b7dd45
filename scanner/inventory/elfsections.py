"""The section header table of an ELF file: where ``.dynsym`` and its string table are,
whether the file is a separate debug-info file, and the program header count of a file
with more than 65534 segments. Sections are only a second way to the dynamic symbols (the
loader reads segments); a file whose section headers were stripped parses without them.

A section's contents are read checked against the file's size and a named cap, and an
``SHF_COMPRESSED`` section is inflated only within the caps and the size its header claims.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from scanner import limits
from scanner.inventory.elf import ElfParseError
from scanner.inventory.elfheader import ElfHeader, Layout, Names, Shdr, Stream, bound, read_at
from scanner.limits import LimitExceeded

SHN_XINDEX = 0xFFFF
SHT_NOBITS, SHT_DYNSYM = 8, 11
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB = 1


def inflate(raw: bytes, lay: Layout, what: str) -> bytes:
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
    bound("MAX_ELF_INFLATED_BYTES", ch_size, f"{what} claims to inflate to this many bytes")
    if ch_size > len(body) * limits.MAX_ELF_INFLATE_RATIO:
        raise LimitExceeded("MAX_ELF_INFLATE_RATIO", limits.MAX_ELF_INFLATE_RATIO,
                            f"{what} claims {ch_size:,} bytes from {len(body):,} compressed")
    inflater = zlib.decompressobj()
    out = inflater.decompress(body, ch_size + 1)
    if len(out) != ch_size or not inflater.eof:
        raise ElfParseError(f"{what} does not inflate to the {ch_size:,} bytes its compression header claims")
    return out


def section_bytes(stream: Stream, lay: Layout, sh: Shdr, size: int, what: str, unit: int, cap: str) -> bytes:
    """A section's contents (inflated when compressed), in ``unit``-byte entries counted
    against the cap named ``cap``."""
    if sh.offset + sh.size > size:
        raise ElfParseError(f"{what} runs past the end of the file")
    bound(cap, sh.size // unit, f"{what} holds this many entries")
    data = read_at(stream, sh.offset, sh.size)
    if sh.flags & SHF_COMPRESSED:
        data = inflate(data, lay, what)
        bound(cap, len(data) // unit, f"{what} holds this many entries once inflated")
    return data


@dataclass
class Sections:
    """What one pass over the section headers tells."""

    dynsym: Shdr | None = None  # the SHT_DYNSYM section
    dynstr: Shdr | None = None  # the string table it links to
    usable: bool = False  # the file has section headers
    debuginfo: bool = False  # .dynamic/.dynsym are SHT_NOBITS: a separate debug-info file
    phnum: int = 0  # section 0's sh_info: the program header count when e_phnum is PN_XNUM


def scan_sections(hdr: ElfHeader, stream: Stream, size: int, lay: Layout) -> Sections:
    """Read the section header table once (checked to lie inside the file) into :class:`Sections`."""
    out = Sections()
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
        table = read_at(stream, hdr.e_shoff, count * ent)
        headers = [lay.section(table, i * ent) for i in range(count)]
    else:  # padded entries: only the header itself is read of each (e_shentsize may be 65535)
        headers = [lay.section(read_at(stream, hdr.e_shoff + i * ent, lay.shdr_size)) for i in range(count)]
    out.phnum = headers[0].info
    names: Names | None = None
    for sh in headers:
        if sh.type == SHT_DYNSYM and out.dynsym is None:
            out.dynsym = sh
            if sh.link >= count:
                raise ElfParseError(f".dynsym links to section {sh.link}, of {count}")
            out.dynstr = headers[sh.link]
        elif sh.type == SHT_NOBITS:
            if names is None:
                names = Names(section_names(stream, lay, headers, hdr.e_shstrndx, size), ".shstrtab")
            if names(sh.name) in (".dynamic", ".dynsym"):
                out.debuginfo = True
    return out


def section_names(stream: Stream, lay: Layout, headers: list[Shdr], index: int, size: int) -> bytes:
    """The section name string table (empty when the header names none)."""
    if index == SHN_XINDEX:
        index = headers[0].link
    if not 0 < index < len(headers):
        return b""
    return section_bytes(stream, lay, headers[index], size, ".shstrtab", 1, "MAX_ELF_STRTAB_BYTES")
