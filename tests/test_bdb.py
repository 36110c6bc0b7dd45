"""Berkeley DB rpm databases (issue 17): every record counted and read, in both access
methods (hash, B-tree), both byte orders, every page type, against files written by the
real Berkeley DB tools (``db5.3_load``, Debian's db5.3-util) and read back by them
(``db5.3_dump``, the oracle of what a file holds); rpm ``Packages`` filled with the
installed headers of the fixture root (rpm files built here with rpmbuild), some stored
with rpm 5's FILESTATES type (INT8), which Debian's librpm skips without a word; librpm
itself as the second oracle; and hostile files."""

from __future__ import annotations

import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scanner import limits
from scanner.inventory import bdb, rpmdb, rpmheader
from scanner.inventory.packages import PackageDatabase
from scanner.result import validate
from scanner.target import DirectoryRoot

from conftest import REPO, load_builder, scan_root

B = load_builder("build_bdb")
pytestmark = pytest.mark.skipif(not B.tools_available(), reason="db5.3_load/db5.3_dump missing: the Makefile's "
                                                                "APT_PKGS installs db5.3-util")
FILESTATES = 1029
SHARED = REPO / "fixtures" / "data" / "rpmdb"


def need_librpm() -> None:
    if not rpmdb.librpm_available():
        pytest.skip("the rpm bindings are not importable (make installs python3-rpm and the rpm shim)")


# ---- helpers -----------------------------------------------------------------------------------
def fixture_headers(rpmroot: Path) -> list[bytes]:
    """The installed headers of the fixture root (its rpm files, built here, installed by rpm)."""
    con = sqlite3.connect(f"file:{rpmroot}/var/lib/rpm/rpmdb.sqlite?mode=ro&immutable=1", uri=True)
    try:
        return [bytes(b) for (b,) in con.execute("SELECT blob FROM Packages ORDER BY hnum")]
    finally:
        con.close()


def retyped(blob: bytes, tag: int, typ: int) -> bytes:
    """``blob`` with entry ``tag`` declared of type ``typ`` (same bytes: rpm 5 wrote
    FILESTATES, one byte per file, as INT8 where rpm 4 declares CHAR)."""
    out = bytearray(blob)
    il = struct.unpack_from(">i", blob, 0)[0]
    i = next(i for i in range(il) if struct.unpack_from(">i", blob, 8 + 16 * i)[0] == tag)
    struct.pack_into(">i", out, 8 + 16 * i + 4, typ)
    return bytes(out)


def rpm5_headers(rpmroot: Path, n: int = 4) -> list[bytes]:
    """The fixture's headers, the first ``n`` with FILESTATES as rpm 5 wrote it."""
    return [retyped(b, FILESTATES, rpmheader.T_INT8) if i < n else b for i, b in enumerate(fixture_headers(rpmroot))]


def root_with(tmp: Path, blobs: list[bytes], **kw: Any) -> Path:
    """A root whose /var/lib/rpm/Packages holds ``blobs`` (db5.3_load, ``kw`` its options)."""
    (tmp / "var/lib/rpm").mkdir(parents=True)
    B.packages_db(tmp / "var/lib/rpm/Packages", blobs, **kw)
    return tmp


def read(root: Path, prefer: str) -> PackageDatabase:
    return rpmdb.read_database(DirectoryRoot(root), "/var/lib/rpm", "bdb", "Packages", {"ID": "test"}, prefer=prefer)


def messages(db: PackageDatabase) -> list[str]:
    return [e.message for e in db.errors]


def poke(path: Path, at: int, fmt: str, value: int) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, at, value)
    path.write_bytes(bytes(data))


def pages(path: Path, ptype: int) -> list[int]:
    return [i for i, t in enumerate(B.page_types(path)[2]) if t == ptype]


# ---- the reader against db5.3_dump -----------------------------------------------------------
def random_records(n: int, seed: int, keys: int | None) -> list[tuple[bytes, bytes]]:
    """``n`` records of sizes from 1 byte to 9 KB (on the page, and on overflow chains), every
    key distinct, or spread over ``keys`` keys (duplicates)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        size = rng.choice([1, 10, 100, 700, 3000, 9000])
        out.append((struct.pack("<I", (i % keys if keys else i) + 1), struct.pack("<I", i) + rng.randbytes(size)))
    return out


@pytest.mark.parametrize("method", ["hash", "btree"])
@pytest.mark.parametrize("lorder", [1234, 4321])
@pytest.mark.parametrize("pagesize", [512, 4096])
@pytest.mark.parametrize("dups", ["", "dup", "dupsort"])
def test_every_record_db_dump_reads(tmp_path: Path, method: str, lorder: int, pagesize: int, dups: str) -> None:
    """Every key/data pair ``db5.3_dump`` reads from a file ``db5.3_load`` wrote, no more,
    no fewer: hash pages and B-tree leaves, overflow chains, duplicates on the page and in
    off-page trees (sorted: duplicate leaves; unsorted: recno leaves, with internal pages
    at 512-byte pages), little- and big-endian files."""
    records = random_records(300 if pagesize == 512 else 120, hash((method, lorder, pagesize, dups)) & 0xFFFF,
                             7 if dups else None)
    path = B.write_db(tmp_path / "x.db", records, method=method, lorder=lorder, pagesize=pagesize, duplicates=dups)
    types = set(B.page_types(path)[2])
    assert bdb.P_OVERFLOW in types
    if dups:  # the duplicates went off the page, into trees of their own
        assert (bdb.P_LDUP if dups == "dupsort" else bdb.P_LRECNO) in types
    f = bdb.BdbFile(path.read_bytes())
    assert f.kind == method and f.swapped == (lorder == 4321)
    got = [(r.key, r.data) for r in f.records()]
    assert not f.problems and all(r[1] is not None for r in got)
    assert sorted(got) == sorted(B.dump(path)) == sorted(records)


def test_duplicates_on_the_hash_page(tmp_path: Path) -> None:
    """Small duplicates of one key stay on the hash page (``H_DUPLICATE``): each its record."""
    records = [(b"\1\0\0\0", struct.pack("<I", i)) for i in range(20)] + [(b"\2\0\0\0", b"x")]
    path = B.write_db(tmp_path / "d.db", records, method="hash", duplicates="dup")
    data = path.read_bytes()
    kinds = set()
    for page in pages(path, bdb.P_HASH):
        n = struct.unpack_from("<H", data, 4096 * page + 20)[0]
        kinds |= {data[4096 * page + off] for off in struct.unpack_from(f"<{n}H", data, 4096 * page + bdb.PAGE_HEADER)}
    assert bdb.H_DUPLICATE in kinds
    got = [(r.key, r.data) for r in bdb.BdbFile(data).records()]
    assert sorted(got) == sorted(B.dump(path)) == sorted(records)


# ---- rpm Packages: every header read, counts reconciled -----------------------------------------
@pytest.mark.parametrize("method", ["hash", "btree"])
@pytest.mark.parametrize("lorder", [1234, 4321])
def test_rpm5_headers_every_one_read(tmp_path: Path, rpmroot: Path, method: str, lorder: int) -> None:
    """A Packages of the fixture's 12 headers, 4 with rpm 5's FILESTATES type: the built-in
    reader reads all 12 (and notes the variant); librpm reads 8 and the other 4 are said
    with the numbers; ``auto`` takes the complete reading and says why."""
    root = root_with(tmp_path / "root", rpm5_headers(rpmroot), method=method, lorder=lorder)
    py = read(root, "python")
    assert (py.reader, py.records, py.read, py.failed, len(py.packages)) == ("python", 12, 12, 0, 12)
    assert not py.errors, messages(py)
    assert any("4 header(s) store tag 1029 as INT8" in n for n in py.notes), py.notes
    kind = "hash" if method == "hash" else "B-tree"
    assert f"Berkeley DB {kind} version 9, {'big' if lorder == 4321 else 'little'}-endian, 4096-byte pages" in py.notes
    if not rpmdb.librpm_available():
        return
    lib = read(root, "librpm")
    assert (lib.reader, lib.records, lib.read, lib.failed) == ("librpm", 12, 8, 4)
    assert "rpm database (bdb): librpm read 8 of the 12 package headers stored; 4 could not be read" in messages(lib)
    # what librpm itself logged (it skips them with a log line, not an error a caller sees)
    assert any(m.startswith("rpm database (bdb): librpm said: 'error: rpmdb: damaged header #") for m in messages(lib))
    auto = read(root, "auto")
    assert (auto.reader, auto.records, auto.read, auto.failed) == ("python", 12, 12, 0) and not auto.errors
    assert auto.why == "librpm read 8 of the 12 headers stored, the built-in reader 12"
    # record for record, librpm's 8 are the built-in reader's
    assert set(lib.packages) < set(py.packages)


@pytest.mark.parametrize("method", ["hash", "btree"])
def test_byte_swapped_copies_read_the_same(tmp_path: Path, rpmroot: Path, method: str) -> None:
    """The same database reloaded by the tools in the other byte order reads the same."""
    little = root_with(tmp_path / "le", rpm5_headers(rpmroot), method=method, pagesize=512)
    big = tmp_path / "be"
    (big / "var/lib/rpm").mkdir(parents=True)
    B.swap_copy(little / "var/lib/rpm/Packages", big / "var/lib/rpm/Packages")
    assert B.page_types(big / "var/lib/rpm/Packages")[0] == ">"
    for prefer in ["python", "auto"] + (["librpm"] if rpmdb.librpm_available() else []):
        a, b = read(little, prefer), read(big, prefer)
        assert (a.records, a.read, a.failed) == (b.records, b.read, b.failed) and a.records == 12, prefer
        assert sorted(a.packages, key=lambda p: p.id) == sorted(b.packages, key=lambda p: p.id), prefer


@pytest.mark.parametrize("method,lorder,pagesize", [("hash", 1234, 4096), ("hash", 4321, 512),
                                                    ("btree", 1234, 512), ("btree", 4321, 4096)])
def test_librpm_and_the_builtin_reader_agree(tmp_path: Path, rpmroot: Path, method: str, lorder: int,
                                             pagesize: int) -> None:
    """On every Berkeley DB file librpm reads whole, both readers give the same package
    records (every field, the file lists too) and the same counts."""
    need_librpm()
    root = root_with(tmp_path / "root", fixture_headers(rpmroot), method=method, lorder=lorder, pagesize=pagesize)
    a, b = read(root, "librpm"), read(root, "python")
    assert not a.errors and not b.errors
    assert (a.records, a.read, a.failed) == (b.records, b.read, b.failed) == (12, 12, 0)
    assert sorted(a.packages, key=lambda p: p.id) == sorted(b.packages, key=lambda p: p.id)
    assert read(root, "auto").why == "librpm read every header stored"


@pytest.mark.parametrize("folder,backend,fname,n", [("libuuid-bdb", "bdb", "Packages", 1),
                                                    ("cbl-mariner-2.0", "sqlite", "rpmdb.sqlite", 129),
                                                    ("sle15-bci", "ndb", "Packages.db", 35)])
def test_shared_databases_counted_and_agreed(folder: str, backend: str, fname: str, n: int) -> None:
    """The real databases of fixtures/data/rpmdb: every record counted and read by the
    built-in reader, and by librpm where it reads the backend, record for record."""
    fs = DirectoryRoot(SHARED / folder)
    py = rpmdb.read_database(fs, "/", backend, fname, {}, prefer="python")
    assert (py.records, py.read, py.failed) == (n, n, 0) and len(py.packages) == n
    if backend != "ndb" and rpmdb.librpm_available():
        lib = rpmdb.read_database(fs, "/", backend, fname, {}, prefer="librpm")
        assert (lib.records, lib.read, lib.failed) == (n, n, 0)
        assert sorted(lib.packages, key=lambda p: p.id) == sorted(py.packages, key=lambda p: p.id)


def test_old_hash_version_read_directly(tmp_path: Path, rpmroot: Path) -> None:
    """A hash version 8 file (Berkeley DB before 4.6: its pages ``P_HASH_UNSORTED``), made
    from a db5.3 file by setting the version and the page types as the old library wrote
    them: read as it is, by both readers, the same."""
    root = root_with(tmp_path / "root", fixture_headers(rpmroot), method="hash", pagesize=1024)
    path = root / "var/lib/rpm/Packages"
    poke(path, 16, "<I", 8)
    for page in pages(path, bdb.P_HASH):
        poke(path, 1024 * page + 25, "B", bdb.P_HASH_UNSORTED)
    py = read(root, "python")
    assert (py.records, py.read, py.failed) == (12, 12, 0) and not py.errors
    assert "Berkeley DB hash version 8, little-endian, 1024-byte pages" in py.notes
    if rpmdb.librpm_available():
        lib = read(root, "librpm")
        assert not lib.errors and sorted(lib.packages, key=lambda p: p.id) == sorted(py.packages, key=lambda p: p.id)


# ---- damage -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["hash", "btree"])
def test_one_corrupt_record_is_one_error_and_the_rest_is_read(tmp_path: Path, rpmroot: Path, method: str) -> None:
    """One overflow page of one header freed under it: that header is one error record and
    counted failed, the 11 others are read (librpm stops at the damage: the built-in
    reader's reading wins), and the scan's FC-INV-002 fails with the numbers."""
    root = root_with(tmp_path / "root", fixture_headers(rpmroot), method=method, pagesize=512)
    path = root / "var/lib/rpm/Packages"
    victim = pages(path, bdb.P_OVERFLOW)[5]
    poke(path, 512 * victim + 25, "B", bdb.P_INVALID)
    for prefer in ["python", "auto"] + (["librpm"] if rpmdb.librpm_available() else []):
        db = read(root, prefer)
        if db.reader == "librpm":
            assert db.records == 12 and db.read is not None and db.read < 12 and db.failed == 12 - db.read
            continue
        assert (db.records, db.read, db.failed, len(db.packages)) == (12, 11, 1, 11), prefer
        headers = [m for m in messages(db) if m.startswith("rpm database (bdb): package header ")]
        assert len(headers) == 1 and f"page {victim} is a invalid page" in headers[0], messages(db)
        assert "rpm database (bdb): 1 of the 12 package headers stored could not be read" in messages(db)
    doc = scan_root(root)
    validate(doc)
    (entry,) = doc["databases"]
    assert (entry["records"], entry["read"], entry["failed"], entry["reader"]) == (12, 11, 1, "python")
    (finding,) = [f for f in doc["findings"] if f["rule"] == "FC-INV-002"]
    assert finding["state"] == "fail" and finding["subject"] == "/var/lib/rpm/Packages"
    assert "11 of the 12 records it stores were read (1 failed)" in finding["message"]
    assert finding["evidence"]["failed"] == 1
    assert any(f["rule"] == "FC-ERR-001" and f["state"] == "error" for f in doc["findings"])
    # and the CLI's summary says so
    run = subprocess.run([str(Path(sys.executable).with_name("flightcheck")), "scan", str(root), "-j", "1",
                          "-o", str(tmp_path / "out"), "--fail-on", "never"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "read in part: 11 of the 12 records it stores" in run.stdout + run.stderr


def test_complete_database_passes_the_rule(tmp_path: Path, rpmroot: Path) -> None:
    """The rpm 5 database read whole (by the built-in reader): FC-INV-002 passes, and the
    result says which reader read it and why."""
    root = root_with(tmp_path / "root", rpm5_headers(rpmroot), method="btree")
    doc = scan_root(root)
    validate(doc)
    (entry,) = doc["databases"]
    assert (entry["records"], entry["read"], entry["failed"], entry["packages"]) == (12, 12, 0, 12)
    if rpmdb.librpm_available():
        assert entry["reader"] == "python" and entry["reader_reason"].startswith("librpm read 8 of the 12")
    (finding,) = [f for f in doc["findings"] if f["rule"] == "FC-INV-002"]
    assert finding["state"] == "pass"


def hostile(path: Path, case: str) -> None:
    """Damage a written Packages (512-byte pages) one way."""
    order, size, types = B.page_types(path)
    data = bytearray(path.read_bytes())
    kind = "hash" if bdb.P_HASHMETA in types else "btree"
    leaf = types.index(bdb.P_HASH if kind == "hash" else bdb.P_LBTREE, 1)
    ovfl = [i for i, t in enumerate(types) if t == bdb.P_OVERFLOW]
    if case == "truncated":
        del data[len(data) // 2 + 100:]
    elif case == "overflow-loop":  # an overflow page pointing back at itself
        chained = next(p for p in ovfl if struct.unpack_from(order + "I", data, p * size + 16)[0])
        struct.pack_into(order + "I", data, chained * size + 16, chained)
    elif case == "page-cycle":  # two overflow chains ending in each other
        a, b = ovfl[0], ovfl[-1]
        struct.pack_into(order + "I", data, a * size + 16, b)
        struct.pack_into(order + "I", data, b * size + 16, a)
    elif case == "huge-record":  # every long item claims 2 GiB
        for page in (i for i, t in enumerate(types) if t in (bdb.P_HASH, bdb.P_LBTREE)):
            n = struct.unpack_from(order + "H", data, page * size + 20)[0]
            for off in struct.unpack_from(f"{order}{n}H", data, page * size + 26):
                at = page * size + off
                if (kind == "hash" and data[at] == 3) or (kind == "btree" and data[at + 2] == 3):
                    struct.pack_into(order + "I", data, at + 8, 0x7FFFFFFF)
    elif case == "wrong-page-type":  # a key/data page of the other access method
        data[leaf * size + 25] = bdb.P_LBTREE if kind == "hash" else bdb.P_HASH
    elif case == "entries":  # a page claiming more entries than it holds
        struct.pack_into(order + "H", data, leaf * size + 20, 0xFFFF)
    elif case == "garbage":  # every page but the meta page random
        data[size:] = random.Random(7).randbytes(len(data) - size)
    path.write_bytes(bytes(data))


CASES = ["truncated", "overflow-loop", "page-cycle", "huge-record", "wrong-page-type", "entries", "garbage"]


@pytest.mark.parametrize("method", ["hash", "btree"])
@pytest.mark.parametrize("case", CASES)
def test_hostile_packages_files(tmp_path: Path, rpmroot: Path, method: str, case: str) -> None:
    """Damaged Berkeley DB files: an error record with the counts, never a crash, never
    silence, in bounded time; whatever was intact is read."""
    root = root_with(tmp_path / "root", fixture_headers(rpmroot), method=method, pagesize=512)
    hostile(root / "var/lib/rpm/Packages", case)
    for prefer in ["python", "auto"]:
        t0 = time.monotonic()
        db = read(root, prefer)
        assert time.monotonic() - t0 < 10, (case, prefer)
        errs = messages(db)
        assert errs, (case, prefer)
        counted = db.records or 0
        assert db.read is not None and db.read < 12 + 1
        if case in ("overflow-loop", "page-cycle", "huge-record"):
            # the chains are damaged, the records are all there: counted, each failed one said
            assert db.records == 12 and db.failed and db.read + db.failed == 12, errs
            if db.reader == "python":
                assert sum(m.startswith("rpm database (bdb): package header ") for m in errs) == db.failed
        if case == "huge-record":
            assert any("MAX_BDB_RECORD_BYTES" in m for m in errs)
        if case in ("overflow-loop", "page-cycle"):
            assert any("met twice" in m for m in errs), errs
        if case in ("truncated", "wrong-page-type", "entries", "garbage"):
            assert db.unread_parts or db.records is None or counted < 12, errs
            assert any("skipped" in m or "truncated" in m or "could not" in m for m in errs), errs
    doc = scan_root(root)
    validate(doc)
    (finding,) = [f for f in doc["findings"] if f["rule"] == "FC-INV-002"]
    assert finding["state"] == "fail", finding


def test_caps_are_named() -> None:
    assert limits.MAX_BDB_RECORD_BYTES == 256 << 20 and limits.MAX_BDB_PAGES > 0 and limits.MAX_BDB_TREE_DEPTH > 0


def test_no_database_at_all(tmp_path: Path) -> None:
    """A Packages that is no Berkeley DB file: one error record, nothing counted."""
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    (tmp_path / "var/lib/rpm/Packages").write_bytes(b"\0" * 4096)
    db = read(tmp_path, "python")
    assert db.records is None and not db.packages
    assert any("not a Berkeley DB hash or B-tree file (bad magic)" in m for m in messages(db))
    doc = scan_root(tmp_path)
    validate(doc)
    (finding,) = [f for f in doc["findings"] if f["rule"] == "FC-INV-002"]
    assert finding["state"] == "error" and "could not be counted" in finding["message"]


# ---- the other backends: the same accounting ------------------------------------------------------
def test_sqlite_row_that_is_no_blob_is_counted(tmp_path: Path, rpmroot: Path) -> None:
    """A row of rpmdb.sqlite whose blob is text: counted, failed, said (it was skipped
    silently before)."""
    db_file = tmp_path / "var/lib/rpm/rpmdb.sqlite"
    db_file.parent.mkdir(parents=True)
    shutil.copyfile(rpmroot / "var/lib/rpm/rpmdb.sqlite", db_file)
    con = sqlite3.connect(db_file)
    hnum = con.execute("SELECT min(hnum) FROM Packages").fetchone()[0]
    con.execute("UPDATE Packages SET blob = 'text' WHERE hnum = ?", (hnum,))
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    db = rpmdb.read_database(DirectoryRoot(tmp_path), "/var/lib/rpm", "sqlite", "rpmdb.sqlite", {}, prefer="python")
    assert (db.records, db.read, db.failed) == (12, 11, 1)
    assert f"rpm database (sqlite): package header 0: row {hnum}: its blob is a str, not bytes" in messages(db)


def test_ndb_damage_is_counted(tmp_path: Path) -> None:
    """A real ndb Packages.db (SLE 15) with one slot's magic and one blob's header broken:
    the slot is an uncounted part, the blob a failed record, the 33 others read."""
    data = bytearray((SHARED / "sle15-bci/Packages.db").read_bytes())
    slots = [i for i in range(4096 // 16 - 2) if struct.unpack_from("<II", data, 32 + 16 * i)[1]]
    struct.pack_into("<I", data, 32 + 16 * slots[0], 0)  # slot magic
    blkoff = struct.unpack_from("<I", data, 32 + 16 * slots[1] + 8)[0]
    struct.pack_into("<I", data, blkoff * 16, 0)  # blob magic
    (tmp_path / "Packages.db").write_bytes(bytes(data))
    db = rpmdb.read_database(DirectoryRoot(tmp_path), "/", "ndb", "Packages.db", {}, prefer="auto")
    assert (db.reader, db.records, db.read, db.failed, db.unread_parts) == ("python", 34, 33, 1, 1)
    assert any("bad blob header" in m for m in messages(db))
    assert any("ndb slot" in m and "bad magic" in m for m in messages(db))


@pytest.mark.parametrize("method", ["hash", "btree"])
def test_long_keys_with_duplicates(tmp_path: Path, method: str) -> None:
    """Keys on overflow pages, each with small duplicates (a B-tree leaf lists one key item
    for all its duplicates): every pair as db5.3_dump reads it."""
    records = [(bytes([k]) * 2000, struct.pack("<I", i)) for k in range(1, 4) for i in range(5)]
    path = B.write_db(tmp_path / "k.db", records, method=method, pagesize=512, duplicates="dup")
    f = bdb.BdbFile(path.read_bytes())
    got = [(r.key, r.data) for r in f.records()]
    assert not f.problems and sorted(got) == sorted(B.dump(path)) == sorted(records)


def test_encrypted_file_is_refused_whole(tmp_path: Path) -> None:
    path = B.write_db(tmp_path / "e.db", [(b"k", b"v")], method="btree")
    poke(path, 24, "B", 1)
    with pytest.raises(bdb.BdbError, match="encrypted"):
        bdb.BdbFile(path.read_bytes())


def test_pre_31_duplicate_pages_read_directly(tmp_path: Path) -> None:
    """Duplicates as Berkeley DB before 3.1 kept them off the page (a chain of
    ``P_DUPLICATE`` pages, hash version 5), made from a db5.3 file whose off-page
    duplicate sets are single recno leaves, by setting the version and those pages' type
    as the old library wrote them: every pair read, no upgrade step."""
    records = [(struct.pack("<I", k), struct.pack("<I", i) * 25) for k in range(1, 4) for i in range(12)]
    path = B.write_db(tmp_path / "old.db", records, method="hash", duplicates="dup")
    leaves = pages(path, bdb.P_LRECNO)
    assert leaves and not pages(path, bdb.P_IRECNO)  # each duplicate set one leaf, no tree above it
    poke(path, 16, "<I", 5)
    for page in leaves:
        poke(path, 4096 * page + 25, "B", bdb.P_DUPLICATE)
    f = bdb.BdbFile(path.read_bytes())
    assert f.version == 5
    got = [(r.key, r.data) for r in f.records()]
    assert not f.problems and sorted(got) == sorted(records)


def overflow_bomb(path: Path, pages: int) -> int:
    """A B-tree file of 512-byte pages (the meta page db5.3_load wrote, then ``pages``
    pages): every other page a leaf of 20 pairs whose data are overflow items of 200 MB
    starting at random pages, the others overflow pages chained at random. Returns how
    many records it stores."""
    B.write_db(path, [(b"k", b"v")], method="btree", pagesize=512)
    meta = bytearray(path.read_bytes()[:512])
    struct.pack_into("<I", meta, 32, pages)  # last_pgno
    rng = random.Random(5)
    body = bytearray(rng.randbytes(512 * pages))
    leaves = 0
    for i in range(pages):
        b = 512 * i
        struct.pack_into("<I", body, b + 8, i + 1)
        if i % 2:
            leaves += 1
            body[b + 25] = bdb.P_LBTREE
            struct.pack_into("<H", body, b + 20, 40)
            for j in range(40):
                off = 112 + 8 * j
                struct.pack_into("<H", body, b + 26 + 2 * j, off)
                body[b + off + 2] = bdb.B_KEYDATA if j % 2 == 0 else bdb.B_OVERFLOW
                struct.pack_into("<H", body, b + off, 1) if j % 2 == 0 else \
                    struct.pack_into("<II", body, b + off + 4, rng.randrange(1, pages), 200_000_000)
        else:
            body[b + 25] = bdb.P_OVERFLOW
            struct.pack_into("<H", body, b + 22, 486)
            struct.pack_into("<I", body, b + 16, rng.randrange(1, pages))
    path.write_bytes(bytes(meta) + bytes(body))
    return leaves * 20


def test_broken_records_are_counted_not_listed(tmp_path: Path) -> None:
    """163,840 records on 16,384 pages of leaves whose every record leads into random overflow chains: every
    record counted and failed, the first MAX_RPM_HEADER_ERRORS said one by one, the rest in
    one line, in bounded time."""
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    stored = overflow_bomb(tmp_path / "var/lib/rpm/Packages", 16_384)
    for prefer in ["python", "auto"]:
        t0 = time.monotonic()
        db = read(tmp_path, prefer)
        assert time.monotonic() - t0 < 60, prefer
        assert (db.records, db.read, db.failed) == (stored, 0, stored), prefer
        assert len(db.errors) < limits.MAX_RPM_HEADER_ERRORS + 10
        assert sum(len(m) for m in messages(db)) < 400 * (limits.MAX_RPM_HEADER_ERRORS + 10)
        if prefer == "python":
            assert any(f"{stored - limits.MAX_RPM_HEADER_ERRORS:,} more headers that could not be read are counted"
                       in m for m in messages(db))


def test_counts_survive_the_scan_cache(tmp_path: Path, rpmroot: Path) -> None:
    """A read remembered by the scan cache comes back with its counts, reason and notes."""
    from scanner.inventory.packages import database_from_memo, database_to_memo

    root = root_with(tmp_path / "root", rpm5_headers(rpmroot), method="btree")
    db = read(root, "auto")
    back = database_from_memo(database_to_memo(db), "rpm", db.path, "bdb")
    assert back == db and (back.records, back.read, back.why, back.notes) == (db.records, db.read, db.why, db.notes)


@pytest.mark.parametrize("method", ["hash", "btree"])
def test_rpm5_big_endian_header_numbers(tmp_path: Path, rpmroot: Path, method: str) -> None:
    """rpm 5.3 and later store the header number keys big-endian (and its key 0 too): both
    readers read every header, and agree."""
    blobs = fixture_headers(rpmroot)
    records = [(b"\0\0\0\0", struct.pack(">I", len(blobs) + 1))]
    records += [(struct.pack(">I", i), b) for i, b in enumerate(blobs, 1)]
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    B.write_db(tmp_path / "var/lib/rpm/Packages", records, method=method)
    py = read(tmp_path, "python")
    assert (py.records, py.read, py.failed) == (12, 12, 0) and not py.errors
    if rpmdb.librpm_available():
        lib = read(tmp_path, "librpm")
        assert (lib.records, lib.read, lib.failed) == (12, 12, 0) and not lib.errors
        assert sorted(lib.packages, key=lambda p: p.id) == sorted(py.packages, key=lambda p: p.id)
