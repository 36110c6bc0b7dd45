"""Berkeley DB hash and B-tree files (rpm's ``Packages``) read without Berkeley DB: every
record counted and read, in pure Python, with what could not be read said and counted.

Why by hand: no maintained Python library reads Berkeley DB files without linking the
library itself (whose versions cannot read each other's files without an upgrade step,
and which opens the file for writing). The on-disk format is Berkeley DB's own
(``dbinc/db_page.h``); rpm's read-only reader (``lib/backend/bdb_ro.c``) reads the same
two access methods and was the factual reference for the item layouts:

* page 0 is the meta page: magic at byte 12 (``0x061561`` hash, ``0x053162`` B-tree; the
  byte order of the whole file is the one the magic reads in), version at 16, page size
  at 20;
* every page starts with a 26-byte header: page number (8), previous and next page (12,
  16), entry count (20), free-area offset (22), tree level (24), page type (25), followed
  by the entry offsets (2 bytes each);
* hash pages (``P_HASH`` 13, ``P_HASH_UNSORTED`` 2 in hash versions up to 8, Berkeley DB
  before 4.6) hold key/data items back to back from the end of the page: a one-byte item
  type (``H_KEYDATA`` 1 with the bytes, ``H_OFFPAGE`` 3 with the first overflow page and
  the length, ``H_DUPLICATE`` 2 with ``len, bytes, len`` triples, ``H_OFFDUP`` 4 with the
  root of an off-page duplicate tree);
* B-tree leaves (``P_LBTREE`` 5) hold key/data pairs of ``BKEYDATA`` (length, type,
  bytes) or ``BOVERFLOW`` (type, first overflow page, length) items; ``B_DUPLICATE`` 2
  names an off-page duplicate tree; a type with bit 0x80 set is a deleted item;
* overflow pages (``P_OVERFLOW`` 7) chain a long item, ``hf_offset`` bytes each;
* off-page duplicates are trees of ``P_LDUP`` 12 leaves under ``P_IBTREE`` 3 internal
  pages (sorted duplicates) or of ``P_LRECNO`` 6 leaves under ``P_IRECNO`` 4 (unsorted),
  or (files written before Berkeley DB 3.1, never upgraded) chains of ``P_DUPLICATE`` 1
  pages: all read as they are, no upgrade step; so are hash version 8 files (Berkeley DB
  before 4.6), whose pages are ``P_HASH_UNSORTED``.

How: the key/data pages (hash pages, B-tree leaves) are taken in file order, each once,
so a damaged bucket or leaf chain can neither loop nor hide a page; the chains a record
leads to (overflow pages, duplicate trees) are followed with every page checked for its
number and type, each page taken by one record only (a loop or a page shared by two
records is that record's problem), within :mod:`scanner.limits`' caps. A page that cannot
be read is skipped and said (:attr:`BdbFile.problems`); a record whose data cannot be
read is still counted, with its problem.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from scanner import limits

HASH_MAGIC, BTREE_MAGIC = 0x061561, 0x053162
P_INVALID, P_DUPLICATE, P_HASH_UNSORTED, P_IBTREE, P_IRECNO, P_LBTREE, P_LRECNO, P_OVERFLOW = 0, 1, 2, 3, 4, 5, 6, 7
P_HASHMETA, P_BTREEMETA, P_LDUP, P_HASH = 8, 9, 12, 13
H_KEYDATA, H_DUPLICATE, H_OFFPAGE, H_OFFDUP = 1, 2, 3, 4
B_KEYDATA, B_DUPLICATE, B_OVERFLOW, B_DELETE = 1, 2, 3, 0x80
PAGE_HEADER = 26
#: pages skipped that are each said in a line of their own (the rest: counted in one line)
SHOWN = 20
#: pages reached only through a record (or free): never taken as key/data pages themselves
_REACHED = frozenset({P_INVALID, P_DUPLICATE, P_IBTREE, P_IRECNO, P_LRECNO, P_OVERFLOW, P_LDUP})
#: the leaves of an off-page duplicate tree: sorted (``P_LDUP``), unsorted (``P_LRECNO``), pre-3.1
_DUP_LEAVES = frozenset({P_LDUP, P_LRECNO, P_DUPLICATE})
PAGE_NAMES = {0: "invalid", 1: "duplicate", 2: "hash (unsorted)", 3: "B-tree internal", 4: "recno internal",
              5: "B-tree leaf", 6: "recno leaf", 7: "overflow", 8: "hash meta", 9: "B-tree meta", 10: "queue meta",
              11: "queue data", 12: "duplicate leaf", 13: "hash"}


class BdbError(Exception):
    """The file is no Berkeley DB hash or B-tree file this reader can read at all."""


@dataclass(frozen=True)
class Record:
    """One key/data pair (each duplicate of a key is its own pair): ``data`` None when it
    could not be read, and ``problem`` says why."""

    page: int
    key: bytes | None
    data: bytes | None
    problem: str | None = None


class _Bad(Exception):
    """One record (or one page) cannot be read: its message says why."""


def _page_name(ptype: int) -> str:
    return PAGE_NAMES.get(ptype, f"type {ptype}")


class BdbFile:
    """A Berkeley DB hash or B-tree file held in ``data`` (bytes or an mmap). Raises
    :class:`BdbError` when the meta page is not one; :meth:`records` then gives every
    record, and :attr:`problems` says what was skipped."""

    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data
        if len(data) < 512:
            raise BdbError(f"Berkeley DB file of {len(data)} bytes is too short")
        for order in ("<", ">"):
            magic, version, pagesize = struct.unpack_from(order + "III", data, 12)
            if magic in (HASH_MAGIC, BTREE_MAGIC):
                break
        else:
            raise BdbError("not a Berkeley DB hash or B-tree file (bad magic)")
        self.kind = "hash" if magic == HASH_MAGIC else "btree"
        if version >= (6 if self.kind == "hash" else 7) and data[24]:  # DBMETA's encrypt_alg
            raise BdbError(f"Berkeley DB file encrypted (algorithm {data[24]}): its pages cannot be read")
        self.order, self.version, self.pagesize = order, version, pagesize
        self.swapped = order == ">"  # big-endian file (the reader's own host is little-endian)
        if pagesize < 512 or pagesize > 65536 or pagesize & (pagesize - 1):
            raise BdbError(f"Berkeley DB page size {pagesize} is invalid")
        self.npages = len(data) // pagesize
        self._u16, self._u32 = struct.Struct(order + "H"), struct.Struct(order + "I")
        #: pages already taken by a record's chain (one bit each)
        self._taken = bytearray((self.npages + 7) // 8)
        #: what could not be read, one line each (pages skipped, chains cut)
        self.problems: list[str] = []
        #: key/data pages skipped whole, and a truncated end (their records could not be counted)
        self.pages_skipped = 0
        last = self._u32.unpack_from(data, 32)[0]  # DBMETA's last_pgno (Berkeley DB 3.0 and later)
        if self.version >= (6 if self.kind == "hash" else 7) and last >= self.npages:
            self.pages_skipped += 1
            self.problems.append(f"the meta page says the file has {last + 1:,} pages, it holds {self.npages:,} "
                                 f"(truncated): the pages after it were not read")
        elif len(data) % pagesize:
            self.pages_skipped += 1
            self.problems.append(f"the file ends {len(data) % pagesize:,} bytes into page {self.npages} "
                                 f"(truncated): that page was not read")

    # ---- pages -----------------------------------------------------------------------------
    def _header(self, pgno: int) -> tuple[int, int, int, int, int]:
        """``(stored page number, next page, entries, hf_offset, type)`` of page ``pgno``."""
        base = pgno * self.pagesize
        stored = self._u32.unpack_from(self.data, base + 8)[0]
        nxt = self._u32.unpack_from(self.data, base + 16)[0]
        entries = self._u16.unpack_from(self.data, base + 20)[0]
        hf = self._u16.unpack_from(self.data, base + 22)[0]
        return stored, nxt, entries, hf, self.data[base + 25]

    def _take(self, pgno: int, want: frozenset[int], what: str) -> tuple[int, int, int, int]:
        """A page a record leads to, checked and marked taken: ``(next, entries, hf, type)``."""
        if not 0 < pgno < self.npages:
            raise _Bad(f"{what}: page {pgno} is outside the file's {self.npages:,} pages")
        if self._taken[pgno >> 3] & (1 << (pgno & 7)):
            raise _Bad(f"{what}: page {pgno} met twice (a loop, or a page two records share)")
        self._taken[pgno >> 3] |= 1 << (pgno & 7)
        stored, nxt, entries, hf, ptype = self._header(pgno)
        if stored != pgno:
            raise _Bad(f"{what}: page {pgno} says it is page {stored}")
        if ptype not in want:
            raise _Bad(f"{what}: page {pgno} is a {_page_name(ptype)} page")
        return nxt, entries, hf, ptype

    def _offsets(self, pgno: int, entries: int) -> tuple[int, ...]:
        """The entry offsets of page ``pgno``, each checked to lie in the page after them."""
        first = PAGE_HEADER + 2 * entries
        if first > self.pagesize:
            raise _Bad(f"page {pgno} claims {entries:,} entries, more than a page holds")
        base = pgno * self.pagesize
        offs = struct.unpack_from(f"{self.order}{entries}H", self.data, base + PAGE_HEADER)
        for i, off in enumerate(offs):
            if not first <= off < self.pagesize:
                raise _Bad(f"page {pgno}: entry {i} at offset {off} outside the page's item area")
        return offs

    def overflow(self, pgno: int, total: int, what: str) -> bytes:
        """The ``total`` bytes of a long item from its first overflow page."""
        if total > limits.MAX_BDB_RECORD_BYTES:
            raise _Bad(str(limits.LimitExceeded("MAX_BDB_RECORD_BYTES", limits.MAX_BDB_RECORD_BYTES,
                                                f"{what}: an item of {total:,} bytes")))
        if total == 0:
            raise _Bad(f"{what}: an overflow item of 0 bytes")
        out = bytearray()
        while len(out) < total:
            if pgno == 0:
                raise _Bad(f"{what}: its overflow chain ends after {len(out):,} of {total:,} bytes")
            nxt, _entries, length, _t = self._take(pgno, frozenset({P_OVERFLOW}), f"{what}, overflow chain")
            if length > self.pagesize - PAGE_HEADER or len(out) + length > total:
                raise _Bad(f"{what}: overflow page {pgno} claims {length:,} bytes")
            base = pgno * self.pagesize + PAGE_HEADER
            out += self.data[base : base + length]
            pgno = nxt
        return bytes(out)

    # ---- the walk ---------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        """Every key/data pair of the file's key/data pages, in file order."""
        wanted = (P_HASH, P_HASH_UNSORTED) if self.kind == "hash" else (P_LBTREE,)
        last = min(self.npages, limits.MAX_BDB_PAGES)
        if self.npages > last:
            self.pages_skipped += self.npages - last
            self.problems.append(str(limits.LimitExceeded(
                "MAX_BDB_PAGES", limits.MAX_BDB_PAGES, f"the {self.npages - last:,} pages after it were not read")))
        for pgno in range(1, last):
            stored, _nxt, entries, _hf, ptype = self._header(pgno)
            if ptype in _REACHED:
                continue
            if ptype not in wanted:
                self._skip(pgno, f"a {_page_name(ptype)} page in a {self.kind} file")
                continue
            if stored != pgno:
                self._skip(pgno, f"it says it is page {stored}")
                continue
            try:
                offs = self._offsets(pgno, entries)
                if entries % 2:
                    raise _Bad(f"page {pgno} holds {entries} entries, not key/data pairs")
            except _Bad as exc:
                self._skip(pgno, str(exc))
                continue
            items = self._hash_page(pgno, offs) if self.kind == "hash" else self._btree_page(pgno, offs)
            for rec in items:
                if rec.key != b"\0\0\0\0":  # rpm keeps its next header number under key 0
                    yield rec
        if self.pages_skipped > SHOWN:
            self.problems.append(f"{self.pages_skipped - SHOWN:,} more pages skipped (their records are not counted)")

    def _skip(self, pgno: int, why: str) -> None:
        """One key/data page not read: said (the first :data:`SHOWN` of them), counted."""
        self.pages_skipped += 1
        if self.pages_skipped <= SHOWN:
            self.problems.append(f"page {pgno} skipped (its records are not counted): {why}")

    def _hash_page(self, pgno: int, offs: tuple[int, ...]) -> Iterator[Record]:
        base = pgno * self.pagesize
        for i in range(0, len(offs), 2):
            kend = self.pagesize if i == 0 else offs[i - 1]
            koff, doff = offs[i], offs[i + 1]
            what = f"page {pgno} pair {i // 2}"
            if not koff < kend or not doff < koff:
                yield Record(pgno, None, None, f"{what}: items out of order")
                continue
            try:
                key: bytes | None = self._hash_item(base + koff, base + kend, what, key=True)
            except _Bad as exc:
                key = None
                yield Record(pgno, None, None, str(exc))
                continue
            kind = self.data[base + doff]
            if kind == H_DUPLICATE:
                yield from self._onpage_dups(pgno, key, base + doff + 1, base + koff, what)
            elif kind == H_OFFDUP:
                if koff - doff < 8:
                    yield Record(pgno, key, None, f"{what}: off-page duplicate item too short")
                    continue
                yield from self._offpage_dups(pgno, key, self._u32.unpack_from(self.data, base + doff + 4)[0], what)
            else:
                try:
                    yield Record(pgno, key, self._hash_item(base + doff, base + koff, what, key=False))
                except _Bad as exc:
                    yield Record(pgno, key, None, str(exc))

    def _hash_item(self, start: int, end: int, what: str, *, key: bool) -> bytes:
        kind = self.data[start]
        if kind == H_KEYDATA:
            return bytes(self.data[start + 1 : end])
        if kind == H_OFFPAGE and end - start >= 12:
            first, total = struct.unpack_from(self.order + "II", self.data, start + 4)
            return self.overflow(first, total, what)
        raise _Bad(f"{what}: {'key' if key else 'data'} item of type {kind}")

    def _onpage_dups(self, pgno: int, key: bytes | None, at: int, end: int, what: str) -> Iterator[Record]:
        """The duplicates of one key kept on its hash page: ``len, bytes, len`` each."""
        n = 0
        while at < end:
            if at + 2 > end:
                yield Record(pgno, key, None, f"{what}: duplicate {n} cut short")
                return
            length = self._u16.unpack_from(self.data, at)[0]
            stop = at + 2 + length
            if stop + 2 > end or self._u16.unpack_from(self.data, stop)[0] != length:
                yield Record(pgno, key, None, f"{what}: duplicate {n} of {length:,} bytes runs past its item")
                return
            yield Record(pgno, key, bytes(self.data[at + 2 : stop]))
            at, n = stop + 2, n + 1

    def _offpage_dups(self, pgno: int, key: bytes | None, root: int, what: str) -> Iterator[Record]:
        """The duplicates of one key kept off the page: a tree of duplicate leaves (or a
        chain of pre-3.1 duplicate pages), its leftmost leaf found, then the leaf chain."""
        what = f"{what}, duplicates"
        try:
            leaf = self._leftmost(root, what)
        except _Bad as exc:
            yield Record(pgno, key, None, str(exc))
            return
        leaves = 0
        while leaf:
            try:
                nxt, entries, _hf, _t = (self._take(leaf, _DUP_LEAVES, what) if leaves
                                         else self._header(leaf)[1:3] + (0, 0))
                offs = self._offsets(leaf, entries)
            except _Bad as exc:
                yield Record(pgno, key, None, str(exc))
                return
            for i, off in enumerate(offs):
                rec = self._bitem(leaf, off, f"{what} page {leaf} entry {i}", allow_dup=False)
                if rec is not None:
                    yield Record(pgno, key, rec[0], rec[1])
            leaf, leaves = nxt, leaves + 1

    def _leftmost(self, root: int, what: str) -> int:
        """The leftmost leaf under ``root`` (marked taken, with the pages above it)."""
        pgno = root
        for _ in range(limits.MAX_BDB_TREE_DEPTH):
            _nxt, entries, _hf, ptype = self._take(pgno, _DUP_LEAVES | {P_IBTREE, P_IRECNO}, what)
            if ptype in _DUP_LEAVES:
                return pgno
            offs = self._offsets(pgno, entries)
            if not offs:
                raise _Bad(f"{what}: internal page {pgno} has no entries")
            at = pgno * self.pagesize + offs[0] + (4 if ptype == P_IBTREE else 0)
            if at + 4 > (pgno + 1) * self.pagesize:
                raise _Bad(f"{what}: internal page {pgno}: its first entry runs past the page")
            pgno = self._u32.unpack_from(self.data, at)[0]
        raise _Bad(str(limits.LimitExceeded("MAX_BDB_TREE_DEPTH", limits.MAX_BDB_TREE_DEPTH, what)))

    def _bitem(self, pgno: int, off: int, what: str, *, allow_dup: bool) -> tuple[bytes | None, str | None] | None:
        """A B-tree item's bytes (or its problem); None for a deleted item. A
        ``B_DUPLICATE`` item (``allow_dup``) gives ``(None, "dup:<root>")``."""
        base = pgno * self.pagesize
        if off + 3 > self.pagesize:
            return None, f"{what}: item header runs past the page"
        kind = self.data[base + off + 2]
        if kind & B_DELETE:
            return None
        if kind == B_KEYDATA:
            length = self._u16.unpack_from(self.data, base + off)[0]
            if off + 3 + length > self.pagesize:
                return None, f"{what}: item of {length:,} bytes runs past the page"
            return bytes(self.data[base + off + 3 : base + off + 3 + length]), None
        if kind in (B_OVERFLOW, B_DUPLICATE) and off + 12 <= self.pagesize:
            first, total = struct.unpack_from(self.order + "II", self.data, base + off + 4)
            if kind == B_DUPLICATE:
                return (None, f"dup:{first}") if allow_dup else (None, f"{what}: a duplicate inside duplicates")
            try:
                return self.overflow(first, total, what), None
            except _Bad as exc:
                return None, str(exc)
        return None, f"{what}: item of type {kind}"

    def _btree_page(self, pgno: int, offs: tuple[int, ...]) -> Iterator[Record]:
        """The pairs of a B-tree leaf; on-page duplicates of a key share its item (read once)."""
        last: tuple[int, tuple[bytes | None, str | None] | None] = (-1, None)
        for i in range(0, len(offs), 2):
            what = f"page {pgno} pair {i // 2}"
            if offs[i] != last[0]:
                last = (offs[i], self._bitem(pgno, offs[i], what, allow_dup=False))
            k = last[1]
            d = self._bitem(pgno, offs[i + 1], what, allow_dup=True)
            if k is None or d is None:
                continue  # deleted (as Berkeley DB's own cursor, and bdb_ro, skip it)
            key = k[0]
            if k[1] is not None:
                yield Record(pgno, None, None, k[1])
            elif d[1] is not None and d[1].startswith("dup:"):
                yield from self._offpage_dups(pgno, key, int(d[1][4:]), what)
            else:
                yield Record(pgno, key, d[0], d[1])
