"""The census cache: what a file's census gave, kept in SQLite for the next scan (``--cache``).

A scheduled rescan of a system that barely changed need not parse again: every regular
file's census result (its ELF record and notes, or "not an ELF file") is stored under the
target and the file's path, with the file's identity at that time: size, mtime, ctime,
inode, mode, uid and gid (a ``chmod u+s`` changes ctime and mode but not mtime: it must
re-parse, the record carries setuid). A file is reused only when all of these match and the
entry was written by the same parser (the scanner version and a digest of the parser's own
source); anything else is parsed again and replaces the entry.

Entries are kept one row per folder: the folder's *listing* (each regular file's name and
identity, in the order the walk met them) and the records of the files that had any. A
rescan stats every file as before, but compares a whole folder's listing at once; only a
folder whose listing differs is looked at file by file (and only its changed files are
parsed again). A rescan of ``/usr`` is then mostly the walk itself.

The cache is never trusted blindly: entries are plain JSON, decoded into records field by
field (no pickle: a tampered cache file cannot run code), and an entry that does not decode
is a miss. A file that is not a flightcheck cache (random bytes, another database, another
schema version) is set aside and rebuilt, with a warning. Results that depend on the moment
(a file that could not be opened) are not stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import fields
from itertools import product, repeat
from pathlib import Path
from typing import Any

import orjson

from scanner import __version__
from scanner.errors import ErrorRecord
from scanner.inventory.elf import ElfRecord

FORMAT = 4
MARKER = "flightcheck-census-cache"
#: the census of a file on which its parser process died: the death may have been the
#: machine's (memory pressure), and the next scan tries again
DIED = "the parser process died"
TRANSIENT = ("cannot open", "cannot read", DIED)
MMAP = 1 << 30  # pages are read through a memory map: one system call per page read costs a rescan dearly


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flightcheck" / "census.sqlite"


_READERS = ("inventory/elf.py", "inventory/elfparse.py", "licensing/debian.py", "inventory/dpkg.py",
            "inventory/rpmdb.py", "inventory/rpmheader.py", "inventory/packages.py")


def parser_version() -> str:
    """The scanner version and a digest of the readers' source (ELF, Debian copyright, the
    dpkg and rpm databases, package records): a development build that changes one does
    not reuse what the previous one made."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent  # read as files: importing them is not needed here
    for module in _READERS:  # the code whose answers are kept
        try:
            h.update((package / module).read_bytes())
        except OSError:
            h.update(b"unknown")
    digest = h.hexdigest()[:16]
    return f"{__version__}+{FORMAT}+{digest}"


Key = str


def file_key(st: os.stat_result) -> Key:
    """A file's identity as one string: size, mtime, ctime, inode, mode, uid, gid."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_mode}:{st.st_uid}:{st.st_gid}"


_FIELDS = tuple(f.name for f in fields(ElfRecord))
# each field's type, as the checks below know them (annotations are strings here)
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
        data = _loads(text)
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _loads(text: str) -> Any:
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


def _b(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


class CensusCache:
    """One cache file, opened for one target. ``warnings`` says what was rebuilt and why."""

    def __init__(self, path: str | os.PathLike[str], target: str) -> None:
        self.path = Path(path)
        self.target = target
        self.version = parser_version()
        self.warnings: list[str] = []
        self.hits = self.misses = 0
        self.memo_hits: dict[str, int] = {}
        self.reparsed: list[str] = []
        # file by file (lookup/store): folder -> name -> (key, items), as this scan saw them
        self._state: dict[str, dict[str, tuple[Key, list[Any]]]] = {}
        self._views: dict[str, tuple[dict[str, Key], dict[str, Any]] | None] = {}
        self._rows: dict[bytes, Row] | None = None  # every stored folder, when preloaded
        # folder by folder (census workers): rows to write, and folders found gone
        self._written: list[tuple[bytes, bytes, str]] = []
        self._gone: list[bytes] = []
        self.by_folder = False  # the census went folder by folder (and found what is gone itself)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._new_memos: list[tuple[str, bytes, Key, str]] = []
        self._memo_seen: set[tuple[str, bytes]] = set()
        self.db = self._open()
        self._reader: tuple[int, sqlite3.Connection] | None = None  # a worker's own connection
        self.known = self.db.execute("SELECT 1 FROM folder WHERE target = ? AND version = ? LIMIT 1",
                                     (self.target, self.version)).fetchone() is not None
        self.memos = self._load_memos()

    # ---- opening, and rebuilding what is not ours ------------------------------------------
    def _open(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute(f"PRAGMA mmap_size = {MMAP}")  # before the check below reads every page
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables - {"meta"}:
                    raise sqlite3.DatabaseError("a database of something else")
                self._create(db)
            elif row[0] != f"{MARKER}/{FORMAT}":
                raise sqlite3.DatabaseError(f"format {row[0]!r}")
            db.execute("PRAGMA quick_check").fetchone()
            self._tune(db)
            return db
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            self.warnings.append(f"cache {self.path} is not a flightcheck census cache ({exc}); "
                                 f"set aside as {aside.name} and rebuilt")
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._create(db)
            self._tune(db)
            return db

    # ---- memos: other per-file results (a Debian copyright file's license...) ------------------
    def _load_memos(self) -> dict[tuple[str, bytes], tuple[Key, str]]:
        rows = self.db.execute("SELECT kind, path, key, value FROM memo WHERE target = ? AND version = ?",
                               (self.target, self.version))
        return {(kind, path): (key, value) for kind, path, key, value in rows}

    def memo_get(self, kind: str, path: str, st: os.stat_result, extra: str = "",
                 use: Callable[[Any], Any] | None = None) -> Any:
        """The JSON value stored for ``path`` under ``kind`` when the file is unchanged (and
        ``extra``, a fingerprint of whatever else the value depends on, is the same), else
        None. Safe to call from the packages thread (a dictionary read). See
        :meth:`memo_get_key` for ``use``."""
        return self.memo_get_key(kind, path, file_key(st) + extra, use)

    def memo_put(self, kind: str, path: str, st: os.stat_result, value: Any, extra: str = "") -> None:
        self.memo_put_key(kind, path, file_key(st) + extra, value)

    def memo_get_key(self, kind: str, name: str, key: str, use: Callable[[Any], Any] | None = None) -> Any:
        """The JSON value stored for ``name`` under ``kind`` when it was stored with the
        same ``key`` (a fingerprint of everything the value depends on), else None. With
        ``use``, what ``use`` makes of the value, or None when it raises ValueError or
        TypeError (a value that is not what flightcheck wrote); only a value used counts
        as a hit."""
        entry = (kind, name.encode("utf-8", "surrogateescape"))
        self._memo_seen.add(entry)
        hit = self.memos.get(entry)
        if hit is None or hit[0] != key:
            return None
        try:
            value = _loads(hit[1])
            if use is not None:
                value = use(value)
        except (ValueError, TypeError):
            return None
        self.memo_hits[kind] = self.memo_hits.get(kind, 0) + 1
        return value

    def memo_put_key(self, kind: str, name: str, key: str, value: Any) -> None:
        self._new_memos.append((kind, name.encode("utf-8", "surrogateescape"), key,
                                json.dumps(value, ensure_ascii=True, separators=(",", ":"))))

    @staticmethod
    def _tune(db: sqlite3.Connection) -> None:
        """Write-ahead logging, synced at checkpoints: a cache can lose its last commit in a
        power cut (it is rebuilt), it must not make every scan wait on fsync."""
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(f"PRAGMA mmap_size = {MMAP}")

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        db.execute("""CREATE TABLE IF NOT EXISTS folder (
            target TEXT NOT NULL, path BLOB NOT NULL, version TEXT NOT NULL,
            listing BLOB NOT NULL, records TEXT NOT NULL, PRIMARY KEY (target, path))""")
        db.execute("""CREATE TABLE IF NOT EXISTS memo (
            target TEXT NOT NULL, kind TEXT NOT NULL, path BLOB NOT NULL, key TEXT NOT NULL,
            version TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (target, kind, path))""")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (f"{MARKER}/{FORMAT}",))
        db.commit()

    # ---- reading folders -------------------------------------------------------------------
    @staticmethod
    def _range(folder: str) -> tuple[bytes, bytes]:
        b = _b(folder.rstrip("/"))
        return b + b"/", b + b"0"  # every path below the folder sorts in between ("0" follows "/")

    def _connection(self) -> sqlite3.Connection:
        """This process's read-only connection (a forked worker must not use the parent's)."""
        if self._reader is None or self._reader[0] != os.getpid():
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            db.execute(f"PRAGMA mmap_size = {MMAP}")
            self._reader = (os.getpid(), db)
        return self._reader[1]

    def folders(self, folder: str, *, below: bool = True) -> dict[bytes, Row]:
        """The stored rows of ``folder`` and, with ``below``, of every folder under it, read
        through a connection of the calling process."""
        q = "SELECT path, listing, records FROM folder WHERE target = ? AND version = ? AND (path = ?"
        args: tuple[Any, ...] = (self.target, self.version, _b(folder))
        if below:
            q += " OR path >= ? AND path < ?"
            args += self._range(folder)
        rows = self._connection().execute(q + ")", args)
        return {path: (listing, records) for path, listing, records in rows}

    def sizes(self) -> dict[bytes, int]:
        """Each stored folder's listing size (about 60 bytes a file): how to share a walk."""
        return dict(self.db.execute("SELECT path, length(listing) FROM folder WHERE target = ? AND version = ?",
                                    (self.target, self.version)))

    def count(self) -> int:
        """How many folders this target has stored (of this parser version)."""
        return self.db.execute("SELECT count(*) FROM folder WHERE target = ? AND version = ?",
                               (self.target, self.version)).fetchone()[0]

    def stored_folders(self) -> list[bytes]:
        return [p for (p,) in self.db.execute("SELECT path FROM folder WHERE target = ? AND version = ?",
                                              (self.target, self.version))]

    def preload(self) -> None:
        """Read every stored folder at once (a whole walk file by file is about to look them up)."""
        if self._rows is None and self.known:
            rows = self.db.execute("SELECT path, listing, records FROM folder WHERE target = ? AND version = ?",
                                   (self.target, self.version))
            self._rows = {path: (listing, records) for path, listing, records in rows}

    def _row(self, folder: str) -> Row | None:
        if self._rows is not None:
            return self._rows.get(_b(folder))
        if not self.known:
            return None
        row = self.db.execute("SELECT listing, records FROM folder WHERE target = ? AND path = ? AND version = ?",
                              (self.target, _b(folder), self.version)).fetchone()
        return (row[0], row[1]) if row else None

    def _view(self, folder: str) -> tuple[dict[str, Key], dict[str, Any]] | None:
        if folder not in self._views:
            row = self._row(folder)
            self._views[folder] = (parse_listing(row[0]), parse_records(row[1])) if row else None
        return self._views[folder]

    # ---- file by file ------------------------------------------------------------------------
    def lookup(self, path: str, st: os.stat_result) -> list[ElfRecord | ErrorRecord] | None:
        """The records kept for ``path`` when the file is unchanged, else None (a miss: the
        caller censuses it and calls :meth:`store`)."""
        folder, name = split_path(path)
        view = self._view(folder)
        key = file_key(st)
        if view is not None and view[0].get(name) == key:
            items = view[1].get(name, [])
            records = decode(path, items)
            if records is not None:
                self.hits += 1
                self._state.setdefault(folder, {})[name] = (key, items)
                return records
        self.counted(0, [path])
        return None

    def store(self, path: str, st: os.stat_result, records: list[ElfRecord | ErrorRecord]) -> None:
        folder, name = split_path(path)
        self._state.setdefault(folder, {})[name] = file_entry(st, records)

    def keep(self, kept: dict[str, dict[str, tuple[Key, list[Any]]]]) -> None:
        """What census workers read on a first scan: folder -> name -> (key, items)."""
        state = self._state
        for folder, entries in kept.items():
            if folder in state:
                state[folder].update(entries)
            else:
                state[folder] = entries
        self.misses += sum(len(e) for e in kept.values())

    def counted(self, hits: int, missed: list[str]) -> None:
        """Account lookups made elsewhere (by census workers) in this cache's statistics."""
        self.hits += hits
        self.misses += len(missed)
        self.reparsed.extend(missed[: max(0, 1000 - len(self.reparsed))])

    # ---- folder by folder (census workers) -------------------------------------------------
    def put_folders(self, rows: list[tuple[bytes, bytes, str]], gone: list[bytes]) -> None:
        """Rows a worker built for the folders it found changed, and stored folders it
        found gone or empty (in a part of the tree it walked whole: they are forgotten even
        after a ``--path`` scan)."""
        self.by_folder = True
        self._written.extend(rows)
        self._gone.extend(gone)

    # ---- writing -------------------------------------------------------------------------------
    def _state_rows(self, prune: bool) -> list[tuple[bytes, bytes, str]]:
        """The folders met file by file, as rows; without ``prune`` (only part of the
        target was walked) what the cache knew of files not met in a folder is kept."""
        out = []
        for folder, seen in self._state.items():
            merged = dict(seen)
            view = None if prune else self._view(folder)
            if view is not None:
                for name, key in view[0].items():
                    if name not in merged:
                        merged[name] = (key, view[1].get(name, []))
            names = list(merged)
            row = (listing(names, [merged[n][0] for n in names]),
                   dump_records({n: merged[n][1] for n in names if merged[n][1]}))
            if self._row(folder) != row:  # an unchanged folder is not written again
                out.append((_b(folder), *row))
        return out

    def commit(self, *, prune: bool = True) -> None:
        """Write the new entries; with ``prune``, forget this target's folders that the scan
        no longer saw (only after a whole-target scan, not a ``--path`` subset)."""
        rows = self._written + self._state_rows(prune)
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO folder VALUES (?, ?, ?, ?, ?)",
                                [(self.target, p, self.version, lst, rec) for p, lst, rec in rows])
            gone = self._gone
            if prune and not self.by_folder:  # walked file by file: what it did not meet is gone
                met = {_b(f) for f in self._state}
                gone = [p for p in self.stored_folders() if p not in met]
            self.db.executemany("DELETE FROM folder WHERE target = ? AND path = ?", [(self.target, p) for p in gone])
            self.db.execute("DELETE FROM folder WHERE target = ? AND version != ?", (self.target, self.version))
            self.db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?, ?)",
                                [(self.target, kind, p, k, self.version, v) for kind, p, k, v in self._new_memos])
            if prune:
                self.db.executemany("DELETE FROM memo WHERE target = ? AND kind = ? AND path = ?",
                                    [(self.target, *m) for m in self.memos if m not in self._memo_seen])
            self.db.execute("DELETE FROM memo WHERE target = ? AND version != ?", (self.target, self.version))
        self._written.clear()
        self._gone.clear()
        self._state.clear()
        self._new_memos.clear()

    def close(self) -> None:
        self.db.close()

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "hits": self.hits, "misses": self.misses,
                "memo_hits": dict(sorted(self.memo_hits.items())),
                "reparsed": self.reparsed[:100], "warnings": list(self.warnings)}
