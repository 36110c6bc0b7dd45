"""The census cache: what a file's census gave, kept in SQLite for the next scan (``--cache``).

A scheduled rescan of a system that barely changed need not parse again: every regular
file's census result (its ELF record and notes, or "not an ELF file") is stored under the
target and the file's path, with the file's identity at that time: size, mtime, ctime,
inode, mode, uid and gid (a ``chmod u+s`` changes ctime and mode but not mtime: it must
re-parse, the record carries setuid). A file is reused only when all of these match and the
entry was written by the same parser (the scanner version and a digest of the parser's own
source); anything else is parsed again and replaces the entry.

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
from dataclasses import fields
from pathlib import Path
from typing import Any

from scanner import __version__
from scanner.errors import ErrorRecord
from scanner.inventory import elf as elfmod
from scanner.inventory.elf import ElfRecord

FORMAT = 3
MARKER = "flightcheck-census-cache"
_TUPLES = {f.name for f in fields(ElfRecord) if "tuple" in str(f.type)}
_NAMES = {f.name for f in fields(ElfRecord)}
TRANSIENT = ("cannot open", "cannot read")


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flightcheck" / "census.sqlite"


def parser_version() -> str:
    """The scanner version and a digest of the readers' source (ELF, Debian copyright, the
    dpkg database and package records): a development build that changes one does not
    reuse what the previous one made."""
    from scanner.inventory import dpkg, packages
    from scanner.licensing import debian

    h = hashlib.sha256()
    for module in (elfmod, debian, dpkg, packages):  # the code whose answers are kept
        try:
            h.update(Path(module.__file__ or "").read_bytes())
        except OSError:
            h.update(b"unknown")
    digest = h.hexdigest()[:16]
    return f"{__version__}+{FORMAT}+{digest}"


Key = str


def file_key(st: os.stat_result) -> Key:
    """A file's identity as one string: size, mtime, ctime, inode, mode, uid, gid."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_mode}:{st.st_uid}:{st.st_gid}"


_FIELDS = tuple(f.name for f in fields(ElfRecord))


def _encode(records: list[ElfRecord | ErrorRecord]) -> str:
    if not records:
        return "[]"  # most files: not an ELF file
    out = []
    for r in records:
        if isinstance(r, ElfRecord):
            out.append({"elf": {name: getattr(r, name) for name in _FIELDS}})
        else:
            out.append({"error": [r.stage, r.message]})
    return json.dumps(out, ensure_ascii=True, separators=(",", ":"))


def _decode(path: str, payload: str) -> list[ElfRecord | ErrorRecord]:
    """Records back from JSON, checked field by field (ValueError when they do not fit)."""
    if payload == "[]":
        return []
    data = json.loads(payload)
    if not isinstance(data, list):
        raise ValueError("not a list")
    out: list[ElfRecord | ErrorRecord] = []
    for item in data:
        if "elf" in item:
            d = item["elf"]
            if not isinstance(d, dict) or set(d) != _NAMES or d.get("path") != path:
                raise ValueError("not an ELF record of this file")
            for name in _TUPLES:
                if not isinstance(d[name], list) or not all(isinstance(x, str) for x in d[name]):
                    raise ValueError(f"{name} is not a list of strings")
                d[name] = tuple(d[name])
            out.append(ElfRecord(**d))
        elif "error" in item:
            stage, message = item["error"]
            out.append(ErrorRecord(path, str(stage), str(message)))
        else:
            raise ValueError("unknown entry")
    return out


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
        self._new: list[tuple[bytes, Key, str]] = []
        self._seen: set[bytes] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._new_memos: list[tuple[str, bytes, Key, str]] = []
        self._memo_seen: set[tuple[str, bytes]] = set()
        self.db = self._open()
        self._entries: dict[bytes, tuple[Key, str]] | None = None  # all of them, read when first needed
        self._reader: tuple[int, sqlite3.Connection] | None = None  # a worker's own connection
        self.known = self.db.execute("SELECT 1 FROM census WHERE target = ? AND version = ? LIMIT 1",
                                     (self.target, self.version)).fetchone() is not None
        self.memos = self._load_memos()

    # ---- opening, and rebuilding what is not ours ------------------------------------------
    def _open(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, timeout=30)
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

    def memo_get(self, kind: str, path: str, st: os.stat_result, extra: str = "") -> Any:
        """The JSON value stored for ``path`` under ``kind`` when the file is unchanged (and
        ``extra``, a fingerprint of whatever else the value depends on, is the same), else
        None. Safe to call from the packages thread (a dictionary read)."""
        return self.memo_get_key(kind, path, file_key(st) + extra)

    def memo_put(self, kind: str, path: str, st: os.stat_result, value: Any, extra: str = "") -> None:
        self.memo_put_key(kind, path, file_key(st) + extra, value)

    def memo_get_key(self, kind: str, name: str, key: str) -> Any:
        """The JSON value stored for ``name`` under ``kind`` when it was stored with the
        same ``key`` (a fingerprint of everything the value depends on), else None."""
        entry = (kind, name.encode("utf-8", "surrogateescape"))
        self._memo_seen.add(entry)
        hit = self.memos.get(entry)
        if hit is None or hit[0] != key:
            return None
        try:
            value = json.loads(hit[1])
        except ValueError:
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

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        db.execute("""CREATE TABLE IF NOT EXISTS census (
            target TEXT NOT NULL, path BLOB NOT NULL, key TEXT NOT NULL, version TEXT NOT NULL,
            records TEXT NOT NULL, PRIMARY KEY (target, path))""")
        db.execute("""CREATE TABLE IF NOT EXISTS memo (
            target TEXT NOT NULL, kind TEXT NOT NULL, path BLOB NOT NULL, key TEXT NOT NULL,
            version TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (target, kind, path))""")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (f"{MARKER}/{FORMAT}",))
        db.commit()

    @property
    def entries(self) -> dict[bytes, tuple[Key, str]]:
        """Every entry of this target, ``path -> (key, records)`` (read once)."""
        if self._entries is None:
            rows = self.db.execute("SELECT path, key, records FROM census WHERE target = ? AND version = ?",
                                   (self.target, self.version))
            self._entries = {path: (key, records) for path, key, records in rows}
        return self._entries

    @staticmethod
    def _range(folder: str) -> tuple[bytes, bytes]:
        b = folder.rstrip("/").encode("utf-8", "surrogateescape")
        return b + b"/", b + b"0"  # every path below the folder sorts in between ("0" follows "/")

    def subtree(self, folder: str) -> dict[bytes, tuple[Key, str]]:
        """The entries below ``folder``, read through a connection of the calling process
        (a forked worker must not share the parent's)."""
        if self._entries is not None:
            lo, hi = self._range(folder)
            return {k: v for k, v in self._entries.items() if lo <= k < hi}
        if self._reader is None or self._reader[0] != os.getpid():  # one read-only connection per process
            self._reader = (os.getpid(), sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30))
        rows = self._reader[1].execute("SELECT path, key, records FROM census WHERE target = ? AND version = ? "
                                       "AND path >= ? AND path < ?", (self.target, self.version, *self._range(folder)))
        return {path: (key, records) for path, key, records in rows}

    def count_below(self, folder: str) -> int:
        return self.db.execute("SELECT count(*) FROM census WHERE target = ? AND path >= ? AND path < ?",
                               (self.target, *self._range(folder))).fetchone()[0]

    def _entry(self, key: bytes) -> tuple[Key, str] | None:
        if self._entries is not None:
            return self._entries.get(key)
        row = self.db.execute("SELECT key, records FROM census WHERE target = ? AND path = ? AND version = ?",
                              (self.target, key, self.version)).fetchone()
        return (row[0], row[1]) if row else None

    # ---- use -------------------------------------------------------------------------------
    @staticmethod
    def decode(path: str, payload: str) -> list[ElfRecord | ErrorRecord] | None:
        """An entry's records, or None when it does not decode (then it is a miss)."""
        try:
            return _decode(path, payload)
        except (ValueError, TypeError, KeyError):
            return None

    def lookup(self, path: str, st: os.stat_result) -> list[ElfRecord | ErrorRecord] | None:
        key = path.encode("utf-8", "surrogateescape")
        self._seen.add(key)
        hit = self.entries.get(key) if self._entries is not None or not self.known else self._entry(key)
        if hit is not None and hit[0] == file_key(st):
            try:
                records = _decode(path, hit[1])
            except (ValueError, TypeError, KeyError):
                records = None  # an entry that does not decode is a miss, and is replaced
            if records is not None:
                self.hits += 1
                return records
        self.counted(0, [path])
        return None

    def counted(self, hits: int, missed: list[str]) -> None:
        """Account lookups made elsewhere (by census workers) in this cache's statistics."""
        self.hits += hits
        self.misses += len(missed)
        self.reparsed.extend(missed[: max(0, 1000 - len(self.reparsed))])

    def store(self, path: str, st: os.stat_result, records: list[ElfRecord | ErrorRecord]) -> None:
        if any(isinstance(r, ErrorRecord) and r.message.startswith(TRANSIENT) for r in records):
            return
        self._new.append((path.encode("utf-8", "surrogateescape"), file_key(st), _encode(records)))

    def commit(self, *, prune: bool = True) -> None:
        """Write the new entries; with ``prune``, forget this target's files that the scan
        no longer saw (only after a whole-target scan, not a ``--path`` subset)."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO census VALUES (?, ?, ?, ?, ?)",
                [(self.target, p, k, self.version, rec) for p, k, rec in self._new])
            if prune and self._entries is not None:
                gone = [p for p in self._entries if p not in self._seen]
                self.db.executemany("DELETE FROM census WHERE target = ? AND path = ?",
                                    [(self.target, p) for p in gone])
            elif prune:  # the entries were read per folder, by workers: compare the paths alone
                stored = self.db.execute("SELECT path FROM census WHERE target = ?", (self.target,))
                gone = [(self.target, p) for (p,) in stored if p not in self._seen]
                self.db.executemany("DELETE FROM census WHERE target = ? AND path = ?", gone)
            self.db.execute("DELETE FROM census WHERE target = ? AND version != ?", (self.target, self.version))
            self.db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?, ?)",
                                [(self.target, kind, p, k, self.version, v) for kind, p, k, v in self._new_memos])
            if prune:
                self.db.executemany("DELETE FROM memo WHERE target = ? AND kind = ? AND path = ?",
                                    [(self.target, *m) for m in self.memos if m not in self._memo_seen])
            self.db.execute("DELETE FROM memo WHERE target = ? AND version != ?", (self.target, self.version))
        self._new.clear()
        self._new_memos.clear()

    def close(self) -> None:
        self.db.close()

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "hits": self.hits, "misses": self.misses,
                "memo_hits": dict(sorted(self.memo_hits.items())),
                "reparsed": self.reparsed[:100], "warnings": list(self.warnings)}
