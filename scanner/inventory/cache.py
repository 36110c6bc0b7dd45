"""The census cache: what a file's census gave, kept in SQLite for the next scan (``--cache``).

The cache file (:mod:`scanner.inventory.cachefile`) holds it beside the memo store
(:mod:`scanner.inventory.memostore`: package databases, copyright files, license outcomes);
:class:`ScanCache` is the two as a scan uses them. How records are written is
:mod:`scanner.inventory.cachecodec`.

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
is a miss. A file that is not a flightcheck cache is set aside and rebuilt, with a warning.
Results that depend on the moment (a file that could not be opened) are not stored.
"""

from __future__ import annotations

import os
from typing import Any

from scanner.errors import ErrorRecord
from scanner.inventory.cachecodec import (_FIELDS, Row, decode, dump_records, file_entry, listing, parse_listing,
                                          parse_records, path_bytes, split_path)
from scanner.inventory.cachefile import CacheFile, default_path
from scanner.inventory.elf import ElfRecord
from scanner.inventory.memo import Key, file_key
from scanner.inventory.memostore import MemoStore

__all__ = ["CacheFile", "CensusCache", "MemoStore", "ScanCache", "default_path", "file_key", "_FIELDS"]


class CensusCache:
    """The census cache of one target, in a cache file (:class:`CacheFile`, or a path to
    open one at)."""

    def __init__(self, file: CacheFile | str | os.PathLike[str], target: str | None = None) -> None:
        self.file = file if isinstance(file, CacheFile) else CacheFile(file, target or "")
        self.path, self.target, self.version = self.file.path, self.file.target, self.file.version
        self.db = self.file.db
        self.warnings = self.file.warnings
        self.hits = self.misses = 0
        self.reparsed: list[str] = []
        # file by file (lookup/store): folder -> name -> (key, items), as this scan saw them
        self._state: dict[str, dict[str, tuple[Key, list[Any]]]] = {}
        self._views: dict[str, tuple[dict[str, Key], dict[str, Any]] | None] = {}
        self._rows: dict[bytes, Row] | None = None  # every stored folder, when preloaded
        # folder by folder (census workers): rows to write, and folders found gone
        self._written: list[tuple[bytes, bytes, str]] = []
        self._gone: list[bytes] = []
        self.by_folder = False  # the census went folder by folder (and found what is gone itself)
        self.known = self.db.execute("SELECT 1 FROM folder WHERE target = ? AND version = ? LIMIT 1",
                                     (self.target, self.version)).fetchone() is not None

    @staticmethod
    def _range(folder: str) -> tuple[bytes, bytes]:
        b = path_bytes(folder.rstrip("/"))
        return b + b"/", b + b"0"  # every path below the folder sorts in between ("0" follows "/")

    def folders(self, folder: str, *, below: bool = True) -> dict[bytes, Row]:
        """The stored rows of ``folder`` and, with ``below``, of every folder under it, read
        through a connection of the calling process."""
        q = "SELECT path, listing, records FROM folder WHERE target = ? AND version = ? AND (path = ?"
        args: tuple[Any, ...] = (self.target, self.version, path_bytes(folder))
        if below:
            q += " OR path >= ? AND path < ?"
            args += self._range(folder)
        rows = self.file.connection().execute(q + ")", args)
        return {path: (listing, records) for path, listing, records in rows}

    def sizes(self) -> dict[bytes, int]:
        """Each stored folder's listing size (about 60 bytes a file): how to share a walk."""
        return dict(self.db.execute("SELECT path, length(listing) FROM folder WHERE target = ? AND version = ?",
                                    (self.target, self.version)))

    def count(self) -> int:
        """How many folders this target has stored (of this parser version)."""
        return int(self.db.execute("SELECT count(*) FROM folder WHERE target = ? AND version = ?",
                                   (self.target, self.version)).fetchone()[0])

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
            return self._rows.get(path_bytes(folder))
        if not self.known:
            return None
        row = self.db.execute("SELECT listing, records FROM folder WHERE target = ? AND path = ? AND version = ?",
                              (self.target, path_bytes(folder), self.version)).fetchone()
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
                out.append((path_bytes(folder), *row))
        return out

    def write(self, prune: bool) -> None:
        """Write the new entries, in the caller's transaction; with ``prune``, forget this
        target's folders that the scan no longer saw (only after a whole-target scan, not a
        ``--path`` subset)."""
        rows = self._written + self._state_rows(prune)
        db, target = self.db, self.target
        db.executemany("INSERT OR REPLACE INTO folder VALUES (?, ?, ?, ?, ?)",
                       [(target, p, self.version, lst, rec) for p, lst, rec in rows])
        gone = self._gone
        if prune and not self.by_folder:  # walked file by file: what it did not meet is gone
            met = {path_bytes(f) for f in self._state}
            gone = [p for p in self.stored_folders() if p not in met]
        db.executemany("DELETE FROM folder WHERE target = ? AND path = ?", [(target, p) for p in gone])
        db.execute("DELETE FROM folder WHERE target = ? AND version != ?", (target, self.version))
        self._written.clear()
        self._gone.clear()
        self._state.clear()

    def commit(self, *, prune: bool = True) -> None:
        with self.db:
            self.write(prune)

    def close(self) -> None:
        self.db.close()

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "hits": self.hits, "misses": self.misses,
                "reparsed": self.reparsed[:100], "warnings": list(self.warnings)}


class ScanCache:
    """The scan cache as a scan uses it: one file, its census cache and its memo store,
    written together in one transaction."""

    def __init__(self, path: str | os.PathLike[str], target: str) -> None:
        self.file = CacheFile(path, target)
        self.census = CensusCache(self.file)
        self.memo = MemoStore(self.file)

    def commit(self, *, prune: bool = True) -> None:
        with self.file.db:
            self.census.write(prune)
            self.memo.write(prune)

    def close(self) -> None:
        self.file.close()

    def stats(self) -> dict[str, Any]:
        """What the cache answered: files (census hits and misses, the first paths parsed
        again), values (memo hits by kind), and what was rebuilt."""
        c = self.census
        return {"path": str(c.path), "hits": c.hits, "misses": c.misses, "memo_hits": dict(sorted(self.memo.hits.items())),
                "reparsed": c.reparsed[:100], "warnings": list(c.warnings)}
