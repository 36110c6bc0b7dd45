"""How the census cache writes a file's census: records as plain JSON values, read back
field by field (no pickle: a tampered cache file cannot run code; an entry that does not
decode is a miss), and a folder's listing (each regular file's name and identity).
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from itertools import product, repeat
from typing import Any

import orjson

from scanner.errors import ErrorRecord
from scanner.inventory.elf import ElfRecord
from scanner.inventory.memo import Key, file_key

#: the census of a file on which its parser process died: the death may have been the
#: machine's (memory pressure), and the next scan tries again
DIED = "the parser process died"
TRANSIENT = ("cannot open", "cannot read", DIED)

_FIELDS = tuple(f.name for f in fields(ElfRecord))
# each field's JSON types (annotations are strings here); a record is accepted when the
# types of its values are one of these combinations (str | None fields: either)
_JSON_TYPES = {"str": (str,), "int": (int,), "bool": (bool,), "str | None": (str, type(None)), "tuple[str, ...]": (list,)}
_ACCEPTED = frozenset(product(*(_JSON_TYPES[str(f.type)] for f in fields(ElfRecord))))
_LISTS = tuple(i for i, f in enumerate(fields(ElfRecord)) if str(f.type) == "tuple[str, ...]")

Row = tuple[bytes, str]
"""A folder's stored ``(listing, records)``."""

Flat = tuple[Any, ...]
"""A record as a plain tuple, cheap to send between processes: ``(True, *ElfRecord
fields)`` or ``(False, path, stage, message)``."""


def flat(r: ElfRecord | ErrorRecord) -> Flat:
    if isinstance(r, ElfRecord):
        return (True, *(getattr(r, f) for f in _FIELDS))
    return (False, r.path, r.stage, r.message)


def unflat(t: Flat) -> ElfRecord | ErrorRecord:
    return ElfRecord(*t[1:]) if t[0] else ErrorRecord(*t[1:])


def encode(records: list[ElfRecord | ErrorRecord]) -> list[Any]:
    """A file's records as JSON-able items (most files: none, not an ELF file): an ELF
    record is ``["elf", field, field...]`` in the dataclass's order, a note is
    ``["error", stage, message]``."""
    out: list[Any] = []
    for r in records:
        if isinstance(r, ElfRecord):
            out.append(["elf", *(getattr(r, name) for name in _FIELDS)])
        else:
            out.append(["error", r.stage, r.message])
    return out


def _elf(path: str, values: list[Any]) -> Flat:
    """``values`` (a freshly decoded list, changed in place) as a flat ELF record, when
    every field has its type (checked at once: the tuple of their types is one the
    record allows) and the lists hold only strings."""
    if tuple(map(type, values)) not in _ACCEPTED or values[0] != path:
        raise ValueError("not an ELF record of this file")
    for i in _LISTS:
        if not all(map(isinstance, values[i], repeat(str))):
            raise ValueError("not a list of strings")
        values[i] = tuple(values[i])
    return (True, *values)


def decode_flat(path: str, data: Any) -> list[Flat] | None:
    """A file's stored records as flat tuples, checked field by field; None when they do
    not fit (then it is a miss, censused again)."""
    if type(data) is not list:
        return None
    out: list[Flat] = []
    try:
        for item in data:
            if type(item) is not list or not item:
                return None
            if item[0] == "elf":
                out.append(_elf(path, item[1:]))
            elif item[0] == "error" and len(item) == 3 and type(item[1]) is str and type(item[2]) is str:
                out.append((False, path, item[1], item[2]))
            else:
                return None
    except ValueError:
        return None
    return out


def decode(path: str, data: Any) -> list[ElfRecord | ErrorRecord] | None:
    """A file's stored records, or None when they do not decode (then it is a miss)."""
    got = decode_flat(path, data)
    return None if got is None else [unflat(t) for t in got]


def transient(records: list[ElfRecord | ErrorRecord]) -> bool:
    """Whether the census result depends on the moment (not kept)."""
    return any(isinstance(r, ErrorRecord) and r.message.startswith(TRANSIENT) for r in records)


def file_entry(st: os.stat_result | None, records: list[ElfRecord | ErrorRecord]) -> tuple[Key, list[Any]]:
    """What the cache keeps of one file: its identity and its records as JSON items. A
    file without a stat, or whose census depends on the moment (it could not be opened
    or read), gets the empty identity, which never matches: it is censused again."""
    return ("" if st is None or transient(records) else file_key(st)), encode(records)


def listing(names: list[str], keys: list[Key]) -> bytes:
    """A folder's listing: ``name NUL key NUL name NUL key...`` (file names hold no NUL)."""
    return "\0".join([f"{n}\0{k}" for n, k in zip(names, keys)]).encode("utf-8", "surrogateescape")


def parse_listing(blob: bytes) -> dict[str, Key]:
    """A stored listing back as ``name -> key`` (empty when it does not parse: all misses)."""
    if not blob:
        return {}
    try:
        parts = bytes(blob).decode("utf-8", "surrogateescape").split("\0")
    except (TypeError, ValueError):
        return {}
    if len(parts) % 2:
        return {}
    return dict(zip(parts[0::2], parts[1::2]))


def parse_records(text: str) -> dict[str, Any]:
    """A stored folder's records, ``name -> JSON items`` (empty when it does not parse)."""
    if text == "{}":
        return {}
    try:
        data = loads(text)
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def loads(text: str) -> Any:
    """JSON text back to values: orjson (several times faster: a rescan decodes every ELF
    record), or the standard parser for what orjson refuses (a lone surrogate escape,
    which stands for a byte of a file name that is not UTF-8)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dump_records(items: dict[str, list[Any]]) -> str:
    return json.dumps(items, ensure_ascii=True, separators=(",", ":")) if items else "{}"


def split_path(path: str) -> tuple[str, str]:
    """A guest file path as (folder, name)."""
    folder, _, name = path.rpartition("/")
    return folder or "/", name


def path_bytes(path: str) -> bytes:
    """A guest path as the cache's keys spell it (an undecodable byte as itself)."""
    return path.encode("utf-8", "surrogateescape")
