"""The memo store: a :class:`~scanner.inventory.memo.Memo` kept in the scan cache's file
(table ``memo``), for one target.

Rows are ``(target, kind, name, key, code version, JSON value)``; a row is answered only
for the same key and code version (:func:`~scanner.inventory.cachefile.code_version`).
Values computed from content alone (a copyright file's reading, by the digest of its bytes)
are kept under the target :data:`SHARED` and answered to every target of the file; they
are never pruned by one target's scan, only dropped with their code version.
Everything stored is loaded once when the store opens (a few rows: one per package database,
one per Debian copyright file), so :meth:`MemoStore.get` is a dictionary read, safe from the
packages thread while the census runs. New values are written at :meth:`MemoStore.commit`;
after a whole-target scan, what the scan did not ask for is forgotten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from scanner.inventory.cachecodec import loads
from scanner.inventory.cachefile import CacheFile
from scanner.inventory.memo import Key

T = TypeVar("T")


#: the target of the rows every target shares (values keyed by a digest of their content)
SHARED = "\x00content"


class MemoStore:
    """Values kept between scans of one target (see :class:`~scanner.inventory.memo.Memo`).
    ``hits`` counts the values used, by kind."""

    def __init__(self, file: CacheFile | str | os.PathLike[str], target: str | None = None) -> None:
        self.file = file if isinstance(file, CacheFile) else CacheFile(file, target or "")
        self.hits: dict[str, int] = {}
        self._new: list[tuple[str, bytes, Key, str]] = []
        self._seen: set[tuple[str, bytes]] = set()
        rows = self.file.db.execute("SELECT kind, path, key, value FROM memo WHERE target = ? AND version = ?",
                                    (self.file.target, self.file.version))
        self._stored: dict[tuple[str, bytes], tuple[Key, str]] = {(kind, path): (key, value)
                                                                  for kind, path, key, value in rows}
        shared = self.file.db.execute("SELECT kind, path, value FROM memo WHERE target = ? AND version = ?",
                                      (SHARED, self.file.version))
        self._shared: dict[tuple[str, str], str] = {(kind, bytes(path).decode("ascii", "replace")): value
                                                    for kind, path, value in shared}
        self._new_shared: dict[tuple[str, str], str] = {}

    def get(self, kind: str, name: str, key: Key, use: Callable[[Any], T]) -> T | None:
        """What ``use`` makes of the value stored for ``name`` under ``kind`` with the same
        ``key``; None when there is none, or ``use`` raises ValueError or TypeError (a value
        that is not what flightcheck wrote). Only a value used counts as a hit."""
        entry = (kind, name.encode("utf-8", "surrogateescape"))
        self._seen.add(entry)
        hit = self._stored.get(entry)
        if hit is None or hit[0] != key:
            return None
        try:
            value = use(loads(hit[1]))
        except (ValueError, TypeError):
            return None
        self.hits[kind] = self.hits.get(kind, 0) + 1
        return value

    def put(self, kind: str, name: str, key: Key, value: Any) -> None:
        self._new.append((kind, name.encode("utf-8", "surrogateescape"), key,
                          json.dumps(value, ensure_ascii=True, separators=(",", ":"))))

    def get_content(self, kind: str, digest: str, use: Callable[[Any], T]) -> T | None:
        raw = self._shared.get((kind, digest)) or self._new_shared.get((kind, digest))
        if raw is None:
            return None
        try:
            value = use(loads(raw))
        except (ValueError, TypeError):
            return None
        self.hits[f"{kind}-content"] = self.hits.get(f"{kind}-content", 0) + 1
        return value

    def put_content(self, kind: str, digest: str, value: Any) -> None:
        if (kind, digest) not in self._shared:
            self._new_shared[(kind, digest)] = json.dumps(value, ensure_ascii=True, separators=(",", ":"))

    def write(self, prune: bool) -> None:
        """The new values, in the caller's transaction; with ``prune`` (a whole-target
        scan), this target's values that the scan did not ask for are forgotten. Values of
        another code version go in any case."""
        db, target = self.file.db, self.file.target
        db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?, ?)",
                       [(target, kind, p, k, self.file.version, v) for kind, p, k, v in self._new])
        if prune:
            db.executemany("DELETE FROM memo WHERE target = ? AND kind = ? AND path = ?",
                           [(target, *m) for m in self._stored if m not in self._seen])
        db.execute("DELETE FROM memo WHERE target = ? AND version != ?", (target, self.file.version))
        db.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?, ?)",
                       [(SHARED, kind, digest.encode("ascii"), "", self.file.version, v)
                        for (kind, digest), v in self._new_shared.items()])
        db.execute("DELETE FROM memo WHERE target = ? AND version != ?", (SHARED, self.file.version))
        self._shared.update(self._new_shared)
        self._new.clear()
        self._new_shared.clear()

    def commit(self, *, prune: bool = True) -> None:
        with self.file.db:
            self.write(prune)
