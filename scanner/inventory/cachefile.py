"""The scan cache's file (``--cache``): one SQLite database holding two stores for one
target, the census cache (:class:`~scanner.inventory.cache.CensusCache`, table ``folder``)
and the memo store (:class:`~scanner.inventory.memostore.MemoStore`, table ``memo``).

This module opens it, and refuses what is not ours: a file that is not a flightcheck cache
(random bytes, another database, another schema version) is set aside and rebuilt, with a
warning. Every row carries the code version that wrote it (:func:`code_version`); rows of
another version are never read, and are dropped at the next commit.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from scanner import __version__
from scanner.inventory.memo import READER_CODE, code_fingerprint

FORMAT = 4
MARKER = "flightcheck-census-cache"
MMAP = 1 << 30  # pages are read through a memory map: one system call per page read costs a rescan dearly


def default_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flightcheck" / "census.sqlite"


def code_version() -> str:
    """The scanner version, the cache format and a digest of the readers' source
    (:data:`~scanner.inventory.memo.READER_CODE`): what each stored row is valid for."""
    return f"{__version__}+{FORMAT}+{code_fingerprint(*READER_CODE)}"


class CacheFile:
    """One cache file, opened for one target. ``warnings`` says what was rebuilt and why."""

    def __init__(self, path: str | os.PathLike[str], target: str) -> None:
        self.path = Path(path)
        self.target = target
        self.version = code_version()
        self.warnings: list[str] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = self._open()
        self._reader: tuple[int, sqlite3.Connection] | None = None  # a worker's own connection

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

    def connection(self) -> sqlite3.Connection:
        """This process's read-only connection (a forked worker must not use the parent's)."""
        if self._reader is None or self._reader[0] != os.getpid():
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            db.execute(f"PRAGMA mmap_size = {MMAP}")
            self._reader = (os.getpid(), db)
        return self._reader[1]

    def close(self) -> None:
        self.db.close()
