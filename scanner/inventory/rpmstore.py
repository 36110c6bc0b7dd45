"""Every record an rpm database stores, counted by walking its storage: what any reader
of the database must account for (librpm skips a header it refuses without a word).

One record per stored package header, whatever the backend: a row of sqlite's
``Packages`` table, an occupied ndb slot, a key/data pair of a Berkeley DB ``Packages``
(hash or B-tree, either byte order: :mod:`scanner.inventory.bdb`; rpm's key 0, its next
header number, is no header). A record whose bytes cannot be had is still counted, with
its problem; what could not even be counted (a damaged page, a damaged sqlite page) is a
storage problem, said in :attr:`Store.problems`.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from scanner.inventory import bdb, rpmheader


@dataclass(frozen=True)
class Stored:
    """One stored record: its header blob, or why it cannot be had."""

    blob: bytes | None
    problem: str | None = None


@dataclass
class Store:
    """The records of one database file (a private copy). :meth:`records` walks them;
    afterwards :attr:`problems` says what could not be counted, :attr:`layout` what the
    storage is (Berkeley DB: access method, byte order, version)."""

    path: str
    backend: str
    problems: list[str] = field(default_factory=list)
    layout: str = ""
    #: parts of the storage whose records could not be counted (pages, slots, a cut end)
    unread: int = 0

    def records(self) -> Iterator[Stored]:
        """Every stored record; :class:`~scanner.inventory.rpmheader.RpmDbError` when the
        file is no database of its backend at all."""
        if self.backend == "sqlite":
            yield from self._sqlite()
            return
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            data: bytes | mmap.mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        try:
            yield from (self._bdb(data) if self.backend == "bdb" else self._ndb(data))
        finally:
            if isinstance(data, mmap.mmap):
                data.close()

    def _sqlite(self) -> Iterator[Stored]:
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)
        except sqlite3.DatabaseError as exc:
            raise rpmheader.RpmDbError(f"sqlite: {exc}") from exc
        try:
            cursor = con.execute("SELECT hnum, blob FROM Packages ORDER BY hnum")
            while rows := cursor.fetchmany(64):
                for hnum, blob in rows:
                    yield (Stored(bytes(blob)) if isinstance(blob, bytes)
                           else Stored(None, f"row {hnum}: its blob is a {type(blob).__name__}, not bytes"))
        except sqlite3.DatabaseError as exc:
            if not self.problems and "no such table" in str(exc):
                raise rpmheader.RpmDbError(f"sqlite: {exc}") from exc
            self.problems.append(f"sqlite: {exc} (the rows after it were not counted)")
            self.unread += 1
        finally:
            con.close()

    def _bdb(self, data: bytes | mmap.mmap) -> Iterator[Stored]:
        try:
            f = bdb.BdbFile(data)
        except bdb.BdbError as exc:
            raise rpmheader.RpmDbError(str(exc)) from exc
        self.layout = (f"Berkeley DB {'hash' if f.kind == 'hash' else 'B-tree'} version {f.version}, "
                       f"{'big' if f.swapped else 'little'}-endian, {f.pagesize}-byte pages")
        try:
            for rec in f.records():
                yield Stored(rec.data, rec.problem) if rec.problem or rec.data is None else Stored(rec.data)
        finally:
            self.problems.extend(f.problems)
            self.unread += f.pages_skipped

    def _ndb(self, data: bytes | mmap.mmap) -> Iterator[Stored]:
        """ndb ``Packages.db``: its slots, each occupied one a record (format in
        :mod:`scanner.inventory.rpmheader`)."""
        if len(data) < 32:
            raise rpmheader.RpmDbError(f"ndb file of {len(data)} bytes is too short")
        magic, version, _generation, slot_pages = struct.unpack_from("<IIII", data, 0)
        if magic != _NDB_MAGIC:
            raise rpmheader.RpmDbError("not an ndb Packages.db (bad magic)")
        if version != 0:
            raise rpmheader.RpmDbError(f"ndb version {version} is not supported")
        if slot_pages == 0 or slot_pages * _NDB_PAGE > len(data):
            raise rpmheader.RpmDbError(f"ndb claims {slot_pages} slot pages, the file has "
                                       f"{len(data) // _NDB_PAGE} pages")
        for i in range(slot_pages * _NDB_PAGE // 16 - 2):  # the 32-byte file header takes two slots
            smagic, pkgidx, blkoff, _blkcnt = struct.unpack_from("<IIII", data, 32 + 16 * i)
            if smagic != _NDB_SLOT_MAGIC:
                self.unread += 1
                if self.unread <= bdb.SHOWN:
                    self.problems.append(f"ndb slot {i} has a bad magic (skipped, not counted)")
                continue
            if pkgidx:
                yield _ndb_blob(data, pkgidx, blkoff * 16)


_NDB_MAGIC, _NDB_SLOT_MAGIC, _NDB_BLOB_MAGIC, _NDB_PAGE = 0x506D7052, 0x746F6C53, 0x53626C42, 4096


def _ndb_blob(data: bytes | mmap.mmap, pkgidx: int, at: int) -> Stored:
    if at + 16 > len(data):
        return Stored(None, f"ndb package {pkgidx}: blob offset {at} past the end of the file")
    bmagic, bidx, _cksum, blen = struct.unpack_from("<IIII", data, at)
    if bmagic != _NDB_BLOB_MAGIC or bidx != pkgidx:
        return Stored(None, f"ndb package {pkgidx}: bad blob header at offset {at}")
    if at + 16 + blen > len(data):
        return Stored(None, f"ndb package {pkgidx}: blob of {blen} bytes runs past the end")
    return Stored(bytes(data[at + 16 : at + 16 + blen]))


def count(path: str, backend: str) -> tuple[int, Store]:
    """How many records the database stores (and the store, with its problems)."""
    store = Store(path, backend)
    return sum(1 for _ in store.records()), store
