"""What an ELF file says of its own origin, read from its sections:

- ``.note.package``: systemd's package-metadata note (owner ``FDO``, type ``0xcafe1a7e``, a
  JSON object with ``type``, ``name``, ``version``, ``architecture``, ``osCpe``...), stamped
  by the build of Fedora 36+, Azure Linux and others (ld's ``--package-metadata``);
- ``.go.buildinfo``: Go's build information (Go 1.18 and later write it inline: the magic
  ``\\xff Go buildinf:``, then the Go version and the module list as length-prefixed
  strings; the list has ``path``, ``mod`` (the main module), ``dep`` and ``=>``
  (replacement) lines). The pointer form of older Go is not read, and said so;
- ``.dep-v0``: cargo-auditable's dependency list (zlib-compressed JSON: ``packages`` with
  ``name``, ``version``, ``source``, ``kind`` and ``root`` for the binary's own crate).

Every read is bounded (the section size caps of :mod:`scanner.limits`), and a malformed
section is a note of the file's result, never an exception.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from scanner import limits
from scanner.inventory.elf import ElfParseError
from scanner.inventory.elfheader import Layout, Names, Shdr, Stream, layout, read_at, read_header
from scanner.inventory.elfsections import section_bytes, section_names
from scanner.limits import LimitExceeded

NOTE_PACKAGE_TYPE = 0xCAFE1A7E
GO_MAGIC = b"\xff Go buildinf:"
SECTIONS = (".note.package", ".go.buildinfo", ".dep-v0")


@dataclass(frozen=True)
class Module:
    """One component the file names: its ecosystem's name and version, and whether it is
    the file's own (the main module, the root crate, the stamped package)."""

    name: str
    version: str
    main: bool = False
    replaced_by: str | None = None
    facts: dict[str, str] = field(default_factory=dict)  # note fields: architecture, osCpe, type...


@dataclass(frozen=True)
class Embedded:
    """The origin an ELF file declares: ``kind`` is ``elf-note``, ``golang`` or ``cargo``."""

    kind: str
    modules: tuple[Module, ...]
    notes: tuple[str, ...] = ()


def read_embedded(stream: Stream, size: int) -> tuple[list[Embedded], list[str]]:
    """The origins declared in one ELF file's sections, and notes on what could not be read."""
    hdr = read_header(stream, size)
    lay = layout(hdr)
    found: list[Embedded] = []
    notes: list[str] = []
    for name, sh in _named_sections(stream, size, hdr.e_shoff, hdr.e_shnum, hdr.e_shentsize, hdr.e_shstrndx,
                                    lay).items():
        try:
            data = section_bytes(stream, lay, sh, size, name, 1, "MAX_ORIGIN_SECTION_BYTES")
            got = {".note.package": _package_note, ".go.buildinfo": _go_buildinfo, ".dep-v0": _cargo}[name](data, lay)
        except (ElfParseError, LimitExceeded, ValueError, zlib.error) as exc:
            notes.append(f"{name}: {exc}")
            continue
        if got is not None:
            found.append(got)
    return found, notes


def _named_sections(stream: Stream, size: int, shoff: int, shnum: int, shentsize: int, shstrndx: int,
                    lay: Layout) -> dict[str, Shdr]:
    """The sections of :data:`SECTIONS` the file has, by name."""
    if not shnum or not shoff:
        return {}
    if shentsize < lay.shdr_size or shoff + shnum * shentsize > size:
        raise ElfParseError("the section header table does not fit the file")
    if shnum > limits.MAX_ELF_PROGRAM_HEADERS:
        raise LimitExceeded("MAX_ELF_PROGRAM_HEADERS", limits.MAX_ELF_PROGRAM_HEADERS, f"{shnum:,} sections")
    table = read_at(stream, shoff, shnum * shentsize)
    headers = [lay.section(table, i * shentsize) for i in range(shnum)]
    names = Names(section_names(stream, lay, headers, shstrndx, size), ".shstrtab")
    out: dict[str, Shdr] = {}
    for sh in headers:
        name = names(sh.name)
        if name in SECTIONS and name not in out and sh.type != 8:  # SHT_NOBITS holds nothing
            out[name] = sh
    return out


def _package_note(data: bytes, lay: Layout) -> Embedded | None:
    """The FDO package-metadata note among the notes of ``.note.package``."""
    at = 0
    while at + 12 <= len(data):
        namesz, descsz, ntype = (lay.word.unpack_from(data, at + i)[0] for i in (0, 4, 8))
        name_end = at + 12 + namesz
        desc_at = at + 12 + ((namesz + 3) & ~3)
        if desc_at + descsz > len(data):
            raise ValueError("a note runs past the end of the section")
        if data[at + 12:name_end].rstrip(b"\0") == b"FDO" and ntype == NOTE_PACKAGE_TYPE:
            meta = json.loads(data[desc_at:desc_at + descsz].rstrip(b"\0").decode("utf-8"))
            if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
                raise ValueError("the package note is not a JSON object with a name")
            facts = {k: v for k, v in meta.items() if isinstance(k, str) and isinstance(v, str)}
            return Embedded("elf-note", (Module(facts["name"], facts.get("version", ""), True, None, facts),))
        at = desc_at + ((descsz + 3) & ~3)
    return None


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a length runs past the end of the build info")
        b = data[at]
        value |= (b & 0x7F) << shift
        at += 1
        if not b & 0x80:
            return value, at
        shift += 7


def _go_buildinfo(data: bytes, lay: Layout) -> Embedded | None:
    if not data.startswith(GO_MAGIC) or len(data) < 32:
        raise ValueError("not Go build info (no magic)")
    if not data[15] & 0x2:
        return Embedded("golang", (), ("Go build info in the pointer form of Go before 1.18 is not read",))
    at = 32
    strings: list[str] = []
    for _ in range(2):
        n, at = _varint(data, at)
        if at + n > len(data):
            raise ValueError("a string runs past the end of the build info")
        strings.append(data[at:at + n].decode("utf-8", "surrogateescape"))
        at += n
    go_version, modinfo = strings
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        modinfo = modinfo[16:-16]  # the sentinels around the module list
    return Embedded("golang", go_modules(modinfo), (f"built with {go_version}",) if go_version else ())


def go_modules(modinfo: str) -> tuple[Module, ...]:
    """The main module and dependencies of a module list (``runtime/debug.BuildInfo``'s
    text form), replacements applied to the module they follow."""
    out: list[Module] = []
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if parts[0] in ("mod", "dep") and len(parts) >= 3:
            out.append(Module(parts[1], parts[2], parts[0] == "mod"))
        elif parts[0] == "=>" and len(parts) >= 3 and out:
            last = out[-1]
            out[-1] = Module(last.name, last.version, last.main, f"{parts[1]} {parts[2]}".strip())
        if len(out) > limits.MAX_ORIGIN_MODULES:
            raise LimitExceeded("MAX_ORIGIN_MODULES", limits.MAX_ORIGIN_MODULES, "modules in Go build info")
    return tuple(out)


def _cargo(data: bytes, lay: Layout) -> Embedded:
    inflater = zlib.decompressobj()
    raw = inflater.decompress(data, limits.MAX_ORIGIN_SECTION_BYTES)
    if inflater.unconsumed_tail:
        raise LimitExceeded("MAX_ORIGIN_SECTION_BYTES", limits.MAX_ORIGIN_SECTION_BYTES, ".dep-v0 inflated")
    doc: Any = json.loads(raw.decode("utf-8"))
    pkgs = doc.get("packages") if isinstance(doc, dict) else None
    if not isinstance(pkgs, list):
        raise ValueError("cargo-auditable data without a package list")
    if len(pkgs) > limits.MAX_ORIGIN_MODULES:
        raise LimitExceeded("MAX_ORIGIN_MODULES", limits.MAX_ORIGIN_MODULES, "crates in .dep-v0")
    out = [Module(p["name"], p["version"], bool(p.get("root")), None,
                  {k: v for k, v in p.items() if k in ("source", "kind") and isinstance(v, str)})
           for p in pkgs if isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("version"), str)]
    return Embedded("cargo", tuple(out))
