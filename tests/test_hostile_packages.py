"""Hostile package databases, license strings and repositories (issue 15, the packages part).

Every input is real: dpkg roots written as the text files dpkg writes, rpm databases copied
from the rpm fixture root (rpmbuild + ``rpm --root``) with headers rebuilt around a hostile
value (``fixtures/build_hostile_corpus.py`` keeps every offset right, so librpm accepts
them), repositories of the fixture's real ``.rpm`` files, damaged byte by byte, and metadata
written the way createrepo_c writes it. Each case runs through the library and through the
CLI and must: finish (the memory cases under ``RLIMIT_AS`` of 2 GiB, each in under 60 s),
say what it could not read in an error record naming the item (and the cap, when one
stopped it), keep everything else, and never print a traceback. ``--fail-on never`` makes
any exit code but 0 a crash (exit 2 is a target that cannot be read at all).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import resource
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
from scanner.inventory import dpkg, osrelease, rpmdb
from scanner.inventory.packages import OwnershipIndex, PathBudget
from scanner.licensing import license_packages, load_tables, normalize
from scanner.repo import RepoOptions, inventory
from scanner.target import DirectoryRoot

from conftest import load_builder

FLIGHTCHECK = Path(sys.executable).with_name("flightcheck")
MEMORY = 2 << 30  # RLIMIT_AS for every CLI run here
SECONDS = 60.0
DEBIAN = {"ID": "debian", "VERSION_ID": "12"}
DEEP_PATH = "/" + "/".join(["a"] * 1200)  # 2,400 characters: a real path (under PATH_MAX), deeper than recursion
DEEP_PARENS = "(" * 1500 + "MIT" + ")" * 1500
NAME, VERSION, LICENSE, ARCH = 1000, 1001, 1014, 1022
DIRINDEXES, BASENAMES, DIRNAMES = 1116, 1117, 1118


# ---- helpers -----------------------------------------------------------------------------------
def run_cli(*args: str, out: Path) -> tuple[int, dict[str, Any] | None, str]:
    """``flightcheck ARGS -o OUT --fail-on never`` under RLIMIT_AS and a time limit:
    the exit code, result.json (parsed as strict UTF-8 JSON) and stderr. A traceback,
    a blown time limit or a memory error fail the test here."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    t0 = time.monotonic()
    r = subprocess.run([str(FLIGHTCHECK), *args, "-o", str(out), "--fail-on", "never"], check=False,
                       capture_output=True, text=True, timeout=SECONDS, preexec_fn=limit)
    seconds = time.monotonic() - t0
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr, r.stderr[-3000:]
    assert seconds < SECONDS
    result = out / "result.json"
    doc = json.loads(result.read_bytes().decode("utf-8")) if result.exists() else None
    return r.returncode, doc, r.stderr


def messages(doc: dict[str, Any] | Any, path: str | None = None) -> list[str]:
    """The messages of a result's (or a database's) error records, of ``path`` only if given."""
    errors = doc["errors"] if isinstance(doc, dict) else doc.errors
    as_pairs = [(e["path"], e["message"]) if isinstance(e, dict) else (e.path, e.message) for e in errors]
    return [m for p, m in as_pairs if path is None or p == path]


@pytest.fixture(scope="module")
def corpus() -> Any:
    """The hostile corpus builder: its rpm header rebuilder keeps a header well-formed around
    a replaced value (librpm loads it), so only the content is hostile."""
    return load_builder("build_hostile_corpus")


def rpm_root(tmp: Path, rpmroot: Path, blobs: dict[int, bytes]) -> Path:
    """A root holding a copy of the fixture's rpmdb.sqlite with the ``Packages`` blobs of
    some ``hnum`` replaced."""
    db = tmp / "var/lib/rpm/rpmdb.sqlite"
    db.parent.mkdir(parents=True)
    shutil.copyfile(rpmroot / "var/lib/rpm/rpmdb.sqlite", db)
    con = sqlite3.connect(db)
    try:
        for hnum, blob in blobs.items():
            con.execute("UPDATE Packages SET blob = ? WHERE hnum = ?", (blob, hnum))
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    (tmp / "etc").mkdir()
    shutil.copyfile(rpmroot / "etc/os-release", tmp / "etc/os-release")
    return tmp


def fixture_blobs(rpmroot: Path) -> dict[str, tuple[int, bytes]]:
    """The fixture database's headers by package name: ``(hnum, blob)``."""
    import rpm

    con = sqlite3.connect(f"file:{rpmroot}/var/lib/rpm/rpmdb.sqlite?mode=ro&immutable=1", uri=True)
    try:
        rows = con.execute("SELECT hnum, blob FROM Packages").fetchall()
    finally:
        con.close()
    return {rpm.hdr(blob)["name"]: (hnum, bytes(blob)) for hnum, blob in rows}


def dpkg_root(root: Path, status: bytes, lists: dict[str, bytes] | None = None,
              copyrights: dict[str, bytes] | None = None) -> Path:
    """A Debian root: os-release, dpkg's status, ``info/*.list`` (``b"FIFO"``: a FIFO there)
    and copyright files."""
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    (root / "var/lib/dpkg/status").write_bytes(status)
    for name, data in (lists or {}).items():
        path = root / "var/lib/dpkg/info" / f"{name}.list"
        if data == b"FIFO":
            os.mkfifo(path)
        else:
            path.write_bytes(data)
    for name, data in (copyrights or {}).items():
        (root / "usr/share/doc" / name).mkdir(parents=True)
        (root / "usr/share/doc" / name / "copyright").write_bytes(data)
    return root


def stanza(name: bytes, version: bytes, arch: bytes = b"amd64", extra: bytes = b"") -> bytes:
    return (b"Package: " + name + b"\nStatus: install ok installed\nArchitecture: " + arch + b"\nVersion: " + version
            + b"\nMaintainer: Fixture <f@example.invalid>\n" + extra + b"Description: a package\n\n")


# ---- dpkg --------------------------------------------------------------------------------------
VERSIONS = ["²:1.0", "١:1.0", "1.0-", "1:2.0-1", "1.0 2", "99999999999:1", "2147483647:1", "2147483648:1",
            "1.0_x", "abc", "1:", ":1", "1.0-1-2", "1.0-a:b", "1:a:b", "-1", "-1:1.0", "+1:1.0",
            "1.0~rc1+dfsg-3ubuntu0.1", "0:0", "a1:1", "1a:1"]


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query is not installed")
def test_versions_are_checked_as_dpkg_checks_them(tmp_path: Path) -> None:
    """The oracle is dpkg itself: for every version, dpkg-query refuses a status file
    holding it exactly when :func:`dpkg.parse_version` raises (but for an invalid character,
    which dpkg only warns about), and with the same message."""
    admin = tmp_path / "admin"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "available").touch()
    for version in VERSIONS:
        (admin / "status").write_bytes(stanza(b"a", version.encode()))
        r = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f", "${Version}\n"], check=False,
                           capture_output=True, text=True)
        try:
            dpkg.parse_version(version)
            ours = None
        except ValueError as exc:
            ours = str(exc)
        if ours is not None and ours != "invalid character in version number":
            assert r.returncode != 0 and f"'{version}': {ours}" in r.stderr, (version, ours, r.stderr)
        else:
            assert r.returncode == 0, (version, r.stderr)
            if ours is not None:
                assert ours in r.stderr  # dpkg's warning, word for word
    assert dpkg.parse_version("1:2.0-1") == 1 and dpkg.parse_version("2.36-9") is None


def test_hostile_dpkg_status(tmp_path: Path) -> None:
    """Non-UTF-8 bytes, epochs int() would take or choke on, an architecture that is none, a
    1,200-component path, a path longer than PATH_MAX and a FIFO for a file list: every
    package is listed (or skipped with a record saying so), the rest is read."""
    too_long = "/" + "b" * 5000
    status = b"".join([
        stanza(b"hello", b"1.0\xff-1", extra=b"Source: hello (1.0)\n"),
        stanza(b"superscript", "²:1.0".encode()),
        stanza(b"longepoch", b"9" * 5000 + b":1.0"),
        stanza(b"badarch", b"1.0", arch=b"am\xffd64"),
        stanza(b"good", b"1:2.0-1"),
        stanza(b"deep", b"1.0"),
        stanza(b"fifo", b"1.0"),
    ])
    root = dpkg_root(tmp_path / "root", status, {
        "deep": f"/.\n{DEEP_PATH}\n{too_long}\n/usr/bin/deep\n".encode(),
        "good": b"/usr/bin/good\n/usr/share/\xff\n",
        "fifo": b"FIFO",
        "badarch:am\udcffd64": b"/usr/bin/badarch\n",  # named by the architecture as dpkg wrote it
    })
    folder = str(root)
    for name in DEEP_PATH.split("/")[1:-1]:  # a real folder 1,199 levels deep (os.makedirs recurses)
        folder += "/" + name
        os.mkdir(folder)
    Path(folder, "a").write_text("x")
    try:
        _read_hostile_status(tmp_path, root, too_long)
    finally:  # shutil.rmtree (pytest's clean-up of old tmp folders) recurses: rm does not
        subprocess.run(["rm", "-rf", "--", str(root / "a")], check=True)


def _read_hostile_status(tmp_path: Path, root: Path, too_long: str) -> None:
    """The library's read of the root, then the CLI's."""
    fs = DirectoryRoot(root)
    db = dpkg.read_database(fs, DEBIAN)
    assert db is not None
    pk = {p.name: p for p in db.packages}
    assert set(pk) == {"hello", "superscript", "badarch", "good", "deep", "fifo"}
    errs = messages(db, "/var/lib/dpkg/status")
    assert any(m.startswith("package longepoch: limit MAX_PACKAGE_VERSION_CHARS (256) reached") and "skipped" in m
               for m in errs)
    assert "package superscript: Version '²:1.0': epoch in version is empty; listed with this version as it is" in errs
    assert pk["superscript"].version == "²:1.0" and pk["superscript"].epoch is None
    assert pk["good"].epoch == 1 and pk["good"].files == ("/usr/bin/good", "/usr/share/\udcff")
    # undecodable bytes: kept in memory, percent-encoded byte for byte in the purl
    assert pk["hello"].version == "1.0\udcff-1"
    assert pk["hello"].purl == "pkg:deb/debian/hello@1.0%FF-1?arch=amd64&distro=debian-12"
    assert any("package hello: Version '1.0\\xff-1': invalid character in version number" in m for m in errs)
    assert pk["badarch"].arch is None and pk["badarch"].purl == "pkg:deb/debian/badarch@1.0?distro=debian-12"
    assert pk["badarch"].files == ("/usr/bin/badarch",)
    assert "package badarch: Architecture 'am\\xffd64' is not an architecture name; left out" in errs
    assert pk["deep"].files == (DEEP_PATH, "/usr/bin/deep")
    assert messages(db, "/var/lib/dpkg/info/deep.list") == [
        "limit MAX_PACKAGE_PATH_CHARS (4,096) reached: 1 longer file paths left out"]
    assert pk["fifo"].files == ()
    assert messages(db, "/var/lib/dpkg/info/fifo.list") == [
        "not a regular file; not read, the package's files are listed as nobody's"]
    # ownership through 1,200 components: resolved folder by folder, not by recursion
    assert OwnershipIndex(fs, [db]).owner(DEEP_PATH) == pk["deep"].id

    code, doc, _ = run_cli("scan", str(root), "-j", "1", out=tmp_path / "out")
    assert code == 0 and doc is not None
    ids = {p["name"]: p["id"] for p in doc["packages"]}
    assert ids["hello"] == "deb/hello_1.0\\xff-1_amd64"  # result.text(): the byte made visible
    assert len(doc["packages"]) == 6
    assert any("MAX_PACKAGE_VERSION_CHARS" in m for m in messages(doc, "/var/lib/dpkg/status"))
    assert messages(doc, "/var/lib/dpkg/info/fifo.list")


def test_status_that_is_a_fifo(tmp_path: Path) -> None:
    """dpkg's status file as a FIFO: never opened (the scan does not wait for a writer), and
    the database is an error record rather than absent."""
    root = dpkg_root(tmp_path / "root", b"")
    (root / "var/lib/dpkg/status").unlink()
    os.mkfifo(root / "var/lib/dpkg/status")
    db = dpkg.read_database(DirectoryRoot(root), DEBIAN)
    assert db is not None and not db.packages
    assert messages(db) == ["not a regular file; not read"]
    code, doc, _ = run_cli("scan", str(root), "-j", "1", out=tmp_path / "out")
    assert code == 0 and doc is not None
    assert messages(doc, "/var/lib/dpkg/status") == ["not a regular file; not read"]


def test_deep_license_expressions(tmp_path: Path) -> None:
    """1,500 nested parentheses (a DEP-5 ``License:`` line here) were a RecursionError:
    now the license could not be read, which is ``unknown``, never a cleaner outcome;
    nesting a real license could have (32 levels) is still read."""
    tables = load_tables()
    deep = normalize(DEEP_PARENS, tables)
    assert deep.status == "unknown" and deep.spdx.startswith("LicenseRef-")
    assert deep.notes == ("could not be read: limit MAX_LICENSE_NESTING (32) reached: parentheses 1,500 deep",)
    nested = "MIT"
    for i in range(32):
        nested = f"(GPLv2+ {'or' if i % 2 else 'and'} {nested})"
    read = normalize(nested, tables)
    assert read.status == "guess" and read.spdx.startswith("GPL-2.0-or-later OR (GPL-2.0-or-later AND (")
    assert read.spdx.endswith("(GPL-2.0-or-later AND MIT" + ")" * 31)

    dep5 = (b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            b"Files: *\nCopyright: 2024 Someone\nLicense: " + DEEP_PARENS.encode() + b"\n\n"
            b"Files: debian/*\nCopyright: 2024 Someone\nLicense: GPL-2+\n")
    root = dpkg_root(tmp_path / "root", stanza(b"deeplic", b"1.0") + stanza(b"fine", b"1.0"),
                     copyrights={"deeplic": dep5, "fine": dep5.replace(DEEP_PARENS.encode(), b"MIT")})
    fs = DirectoryRoot(root)
    db = dpkg.read_database(fs, DEBIAN)
    assert db is not None
    lic = {k.split("_")[0]: v for k, v in license_packages(fs, [db], tables).items()}
    assert lic["deb/deeplic"].outcome.status == "unknown" and lic["deb/deeplic"].category == "unknown"
    assert lic["deb/fine"].outcome.spdx == "MIT AND GPL-2.0-or-later"

    code, doc, _ = run_cli("scan", str(root), "-j", "1", out=tmp_path / "out")
    assert code == 0 and doc is not None
    got = {p["name"]: p for p in doc["packages"]}
    assert got["deeplic"]["license_status"] == "unknown" and got["deeplic"]["license_category"] == "unknown"
    assert any("MAX_LICENSE_NESTING" in n for n in got["deeplic"]["license_notes"])


# ---- rpm databases -----------------------------------------------------------------------------
def test_hostile_rpm_headers(tmp_path: Path, rpmroot: Path, corpus: Any) -> None:
    """Headers with a non-UTF-8 NAME and ARCH, a LICENSE 1,500 parentheses deep, a DIRNAMES
    of 1,200 components, and one damaged header, in a copy of a real rpmdb.sqlite: both
    readers list every readable package and say what they could not read, with counts
    (librpm skips a damaged header without a word)."""
    blobs = fixture_blobs(rpmroot)
    s = corpus._strings
    hostile = {
        blobs["hello"][0]: corpus._rpm_rebuild(blobs["hello"][1], {NAME: s(b"he\xffllo"), ARCH: s(b"x86\xff_64")}),
        blobs["suidapp"][0]: corpus._rpm_rebuild(blobs["suidapp"][1], {LICENSE: s(DEEP_PARENS.encode())}),
        blobs["libgplcalc"][0]: corpus._rpm_rebuild(blobs["libgplcalc"][1], {DIRNAMES: s((DEEP_PATH + "/").encode())}),
        blobs["broken"][0]: blobs["broken"][1][:200],  # damaged: cut inside its data
    }
    root = rpm_root(tmp_path / "root", rpmroot, hostile)
    fs = DirectoryRoot(root)
    path = "/var/lib/rpm/rpmdb.sqlite"
    readers = ["python", "auto"] + (["librpm"] if rpmdb.librpm_available() else [])
    for reader in readers:
        db = rpmdb.read_database(fs, "/var/lib/rpm", "sqlite", "rpmdb.sqlite", DEBIAN, prefer=reader)
        pk = {p.name: p for p in db.packages}
        assert len(pk) == 11 and "broken" not in pk, reader
        errs = messages(db, path)
        if db.reader == "librpm":
            assert "rpm database (sqlite): librpm read 11 of the 12 package headers stored; 1 could not be read" in errs
        else:
            assert any(m.startswith("rpm database (sqlite): package header ") and "needs" in m for m in errs), errs
            assert "rpm database (sqlite): 1 of the 12 package headers stored could not be read" in errs
        bad = pk["he\udcffllo"]
        assert bad.arch is None and bad.purl == "pkg:rpm/debian/he%FFllo@1.0-1?distro=debian-12", reader
        assert "rpm database (sqlite): package 'he\\xffllo': architecture 'x86\\xff_64' is not an architecture " \
               "name; left out" in errs
        deep_files = [f for f in pk["libgplcalc"].files if f.startswith(DEEP_PATH)]
        assert deep_files and OwnershipIndex(fs, [db]).owner(deep_files[0]) == pk["libgplcalc"].id
        lic = license_packages(fs, [db], load_tables())[pk["suidapp"].id]
        assert lic.outcome.status == "unknown" and lic.category == "unknown"

    for reader in readers:
        code, doc, _ = run_cli("scan", str(root), "-j", "1", "--rpm-reader", reader, out=tmp_path / f"out-{reader}")
        assert code == 0 and doc is not None, reader
        got = {p["name"]: p for p in doc["packages"]}
        assert len(got) == 11 and got["he\\xffllo"]["id"] == "rpm/he\\xffllo-1.0-1.noarch"
        assert got["suidapp"]["license_status"] == "unknown"
        assert any("could not be read" in m or "package header" in m for m in messages(doc, path))


def _mutate_entry(blob: bytes, pick: Any, *, offset: int | None = None, dl: int | None = None) -> bytes:
    """``blob`` with the offset of the first index entry ``pick(tag, type)`` accepts
    replaced, or its data length, the rest byte for byte."""
    out = bytearray(blob)
    if dl is not None:
        struct.pack_into(">i", out, 4, dl)
    if offset is not None:
        il = struct.unpack_from(">i", blob, 0)[0]
        i = next(i for i in range(1, il) if pick(*struct.unpack_from(">ii", blob, 8 + 16 * i)))
        struct.pack_into(">i", out, 8 + 16 * i + 8, offset)
    return bytes(out)


def _retyped_as_bin(blob: bytes, tag: int) -> bytes:
    """``blob`` with the string entry ``tag`` declared BIN of as many bytes (its data, its
    length and every offset unchanged: only the type rpm declares for the tag is broken)."""
    out = bytearray(blob)
    il = struct.unpack_from(">i", blob, 0)[0]
    data = 8 + 16 * il
    i = next(i for i in range(il) if struct.unpack_from(">i", blob, 8 + 16 * i)[0] == tag)
    off = struct.unpack_from(">i", blob, 8 + 16 * i + 8)[0]
    length = blob.index(b"\0", data + off) - (data + off) + 1
    struct.pack_into(">i", out, 8 + 16 * i + 4, 7)
    struct.pack_into(">i", out, 8 + 16 * i + 12, length)
    return bytes(out)


def test_rpm_headers_checked_as_librpm_checks_them(tmp_path: Path, rpmroot: Path) -> None:
    """Headers librpm's ``headerImport`` refuses, each damaged only where the built-in reader
    never looked (a data length off by one, a tag it does not read pointing past the data,
    before it, or at an odd offset for its int32s, a string tag stored as binary): the
    built-in reader refuses them too,
    each one the database's error record, counted, and the other packages are kept."""
    import rpm

    blobs = fixture_blobs(rpmroot)
    not_read = {1000, 1001, 1002, 1003, 1011, 1014, 1022, 1044, 1027, 1116, 1117, 1118}
    hostile = {
        "hello": _mutate_entry(blobs["hello"][1], None, dl=struct.unpack_from(">i", blobs["hello"][1], 4)[0] - 1),
        "extra": _mutate_entry(blobs["extra"][1], lambda tag, typ: tag not in not_read and typ == 6, offset=1 << 20),
        "glibc": _mutate_entry(blobs["glibc"][1], lambda tag, typ: tag not in not_read and typ == 6, offset=-1),
        "suidapp": _mutate_entry(blobs["suidapp"][1], lambda tag, typ: tag not in not_read and typ == 4,
                                 offset=struct.unpack_from(">i", blobs["suidapp"][1], 4)[0] - 2),
        "libgplcalc": _retyped_as_bin(blobs["libgplcalc"][1], 1007),  # BUILDHOST: a string, same bytes
    }
    for name, blob in hostile.items():
        assert blob != blobs[name][1]
        with pytest.raises(rpm.error):  # the oracle: librpm itself refuses each
            rpm.hdr(blob)
    root = rpm_root(tmp_path / "root", rpmroot, {blobs[n][0]: b for n, b in hostile.items()})
    path = "/var/lib/rpm/rpmdb.sqlite"
    db = rpmdb.read_database(DirectoryRoot(root), "/var/lib/rpm", "sqlite", "rpmdb.sqlite", DEBIAN, prefer="python")
    assert db.reader == "python"
    assert {p.name for p in db.packages} == set(blobs) - set(hostile)
    errs = messages(db, path)
    assert "rpm database (sqlite): 5 of the 12 package headers stored could not be read" in errs
    headers = [m for m in errs if m.startswith("rpm database (sqlite): package header ")]
    assert len(headers) == 5, errs
    assert any("(tag 1007, type 7, offset" in m and "rpm declares this tag of type 6" in m for m in headers), headers
    dl = struct.unpack_from(">i", blobs["hello"][1], 4)[0] - 1
    assert any(f"and {dl} data bytes needs {len(blobs['hello'][1]) - 1} bytes, the blob has "
               f"{len(blobs['hello'][1])}" in m for m in headers), headers
    assert any("offset 1048576, count 1): offset outside the" in m for m in headers), headers
    assert any("offset -1, count 1): overlaps the data of the entry before it" in m for m in headers), headers
    assert any("type 4, offset" in m and "offset not aligned for its type" in m for m in headers), headers
    code, doc, _ = run_cli("scan", str(root), "-j", "1", "--rpm-reader", "python", out=tmp_path / "out")
    assert code == 0 and doc is not None and len(doc["packages"]) == 7
    assert "rpm database (sqlite): 5 of the 12 package headers stored could not be read" in messages(doc, path)


def test_rpm_file_lists_are_bounded(tmp_path: Path, rpmroot: Path, corpus: Any) -> None:
    """A 1 MiB directory name times 150,000 base names (150 GB of paths if built), a
    4,000-character one times 150,000 (600 MB) and 1.04 million empty base names (librpm
    itself refuses 2**20): read under 2 GiB of address space and a minute, each cut at its
    named cap and said, every package still listed."""
    blobs = fixture_blobs(rpmroot)
    n = 150_000
    bases = corpus._strings(*[b"f%06d" % i for i in range(n)])
    zeros = (n, struct.pack(f">{n}i", *([0] * n)))
    hostile = {
        blobs["hello"][0]: corpus._rpm_rebuild(blobs["hello"][1], {
            DIRNAMES: corpus._strings(b"/" + b"d" * (1 << 20) + b"/"), BASENAMES: bases, DIRINDEXES: zeros}),
        blobs["extra"][0]: corpus._rpm_rebuild(blobs["extra"][1], {
            DIRNAMES: corpus._strings(b"/" + b"e" * 3990 + b"/"), BASENAMES: bases, DIRINDEXES: zeros}),
        # more entries than any package has files (a list of pointers to empty strings is as big)
        blobs["glibc"][0]: corpus._rpm_rebuild(blobs["glibc"][1], {
            DIRNAMES: corpus._strings(b"/"), BASENAMES: (1_040_000, b"\0" * 1_040_000),
            DIRINDEXES: (1_040_000, bytes(4 * 1_040_000))}),
    }
    root = rpm_root(tmp_path / "root", rpmroot, hostile)
    path = "/var/lib/rpm/rpmdb.sqlite"
    for reader in ["python"] + (["librpm"] if rpmdb.librpm_available() else []):
        code, doc, _ = run_cli("scan", str(root), "-j", "1", "--rpm-reader", reader, out=tmp_path / f"out-{reader}")
        assert code == 0 and doc is not None
        got = {p["name"]: p for p in doc["packages"]}
        assert len(got) == 12, reader
        assert got["hello"]["files"] == 0
        assert 0 < got["extra"]["files"] < n
        errs = messages(doc, path)
        assert ("rpm database (sqlite): package 'hello': limit MAX_PACKAGE_PATH_CHARS (4,096) reached: 150,000 "
                "longer file paths left out") in errs
        assert any(m.startswith("rpm database (sqlite): package 'extra': limit MAX_PACKAGE_FILES_CHARS "
                                "(67,108,864) reached: file list cut after ") for m in errs)
        assert got["glibc"]["files"] == 0
        assert ("rpm database (sqlite): package 'glibc': limit MAX_RPM_HEADER_FILES (1,000,000) reached: a file "
                "tag of 1,040,000 entries; the package's files were not read") in errs


def test_database_file_list_cap_starves_later_packages() -> None:
    """Past ``MAX_DATABASE_FILES_CHARS`` the package that crossed it is cut and said, the
    ones after it get no files and one record counts them."""
    budget = PathBudget()
    budget.left = 25
    first: list[str] = []
    assert budget.paths([("/usr/bin/", "a"), ("/usr/bin/", "b"), ("/usr/bin/", "c")], first) == (
        "/usr/bin/a", "/usr/bin/b")
    assert first[0].startswith("limit MAX_DATABASE_FILES_CHARS (536,870,912) reached: file list cut after 2 paths")
    later: list[str] = []
    assert budget.paths([("/x/", "y")], later) == () and budget.paths([("/x/", "z")], later) == () and not later
    record = budget.starved_record("/var/lib/rpm/rpmdb.sqlite")
    assert record is not None and record.message.endswith("the files of 2 more packages were not read")


# ---- repositories ------------------------------------------------------------------------------
def damaged_rpms(folder: Path, rpmroot: Path, count: int, seed: int = 1) -> list[Path]:
    """``count`` copies of the fixture's .rpm files with 1 to 6 bytes of the main header's
    index and first data changed (seeded): the mutants that once ended a whole ``repo`` run
    (``_rpm.error: invalid header data``) are among them."""
    src = sorted((rpmroot.parent / "rpms").glob("*.rpm"))
    rng = random.Random(seed)
    out = []
    for i in range(count):
        data = bytearray(rng.choice(src).read_bytes())
        il, dl = struct.unpack_from(">ii", data, 96 + 8)
        sig = 16 + 16 * il + dl
        main = 96 + sig + (-sig % 8)
        end = min(len(data), main + 16 + 16 * struct.unpack_from(">i", data, main + 8)[0] + 2000)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(main + 8, end)] = rng.randrange(256)
        path = folder / f"m{i:03d}-1.0-1.x86_64.rpm"
        path.write_bytes(data)
        out.append(path)
    return out


def test_damaged_rpm_files_are_one_item_each(tmp_path: Path, rpmroot: Path) -> None:
    """300 damaged .rpm files next to the 12 good ones: each file is read or is its own
    error record; the good packages are all there."""
    repo = tmp_path / "repo"
    (repo / "Packages/a").mkdir(parents=True)
    (repo / "Packages/m").mkdir(parents=True)
    good = sorted((rpmroot.parent / "rpms").glob("*.rpm"))
    for f in good:
        shutil.copy(f, repo / "Packages/a" / f.name)
    bad = damaged_rpms(repo / "Packages/m", rpmroot, 300)

    doc = inventory(str(repo), RepoOptions(filelists=True, fail_on="never"))
    located = {p["location"] for p in doc["packages"]}
    duplicates = [e for e in doc["errors"] if "in the repository more than once" in e["message"]]
    assert {f"Packages/a/{f.name}" for f in good} <= located
    mutants = {f"Packages/m/{f.name}" for f in bad}
    unreadable = {e["path"] for e in doc["errors"] if e["message"].startswith("rpm file: ")} & mutants
    assert len(unreadable) > 100 and not unreadable & located
    # every mutant is a package, a file that could not be read, or a copy of a package already there
    assert len(mutants - located - unreadable) == len(duplicates)

    code, cli_doc, _ = run_cli("repo", str(repo), out=tmp_path / "out")
    assert code == 0 and cli_doc is not None
    assert len(cli_doc["packages"]) == len(doc["packages"])


def _repo_with(folder: Path, rpmroot: Path, primary: bytes, name: str = "primary.xml.gz") -> Path:
    """A repository folder: one real .rpm (what remains when the metadata cannot be read)
    and repodata whose repomd.xml names ``primary`` with its right checksum."""
    (folder / "repodata").mkdir(parents=True)
    (folder / "Packages").mkdir()
    shutil.copy(rpmroot.parent / "rpms/hello-1.0-1.x86_64.rpm", folder / "Packages")
    (folder / "repodata" / name).write_bytes(primary)
    digest = hashlib.sha256(primary).hexdigest()
    (folder / "repodata/repomd.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo">'
        f'<revision>1</revision><data type="primary"><checksum type="sha256">{digest}</checksum>'
        f'<location href="repodata/{name}"/><size>{len(primary)}</size></data></repomd>\n')
    return folder


HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" '
        b'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">\n')


def _gzip_bomb(head: bytes, part: bytes, total: int) -> bytes:
    """A gzip file of ``head`` then ``total`` bytes of ``part`` repeated: one member of a MiB
    of it, repeated (gzip allows many members; readers read them all as one stream), so a
    4 GiB bomb costs a MiB to build."""
    block = part * max(1, (1 << 20) // len(part))
    return gzip.compress(head) + gzip.compress(block, 9) * (total // len(block))


BOMBS = {
    # 4 MB of gzip, 4 GiB of one text: the parser would hold it whole
    "text": (lambda: _gzip_bomb(HEAD + b'<package type="rpm"><name>', b"A", 4 << 30), "MAX_REPO_XML_TOKEN_BYTES"),
    # one package of a billion empty elements
    "elements": (lambda: _gzip_bomb(HEAD + b'<package type="rpm"><name>x</name>', b"<x/>", 4 << 30),
                 "MAX_REPO_PACKAGE_ELEMENTS"),
    # tens of millions of tiny packages
    "packages": (lambda: _gzip_bomb(HEAD, b'<package type="rpm"><name>a</name></package>', 2 << 30),
                 "MAX_REPO_INFLATE_RATIO"),
    "depth": (lambda: gzip.compress(HEAD + b"<a>" * 100_000), "MAX_REPO_XML_DEPTH"),
    # a billion laughs: never expanded, the DTD is refused
    "entities": (lambda: gzip.compress(b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
                                       + b"".join(b'<!ENTITY %c "%s">' % (98 + i, (b"&%c;" % (97 + i)) * 10)
                                                  for i in range(9))
                                       + b']><metadata xmlns="http://linux.duke.edu/metadata/common">&j;</metadata>'),
                 "DTDForbidden"),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_metadata_bombs(bomb: str, tmp_path: Path, rpmroot: Path) -> None:
    """Metadata built to exhaust memory or time stops at its cap, named in the record, and
    the run reads the .rpm files instead."""
    make, cap = BOMBS[bomb]
    repo = _repo_with(tmp_path / "repo", rpmroot, make())
    code, doc, _ = run_cli("repo", str(repo), out=tmp_path / "out")
    assert code == 0 and doc is not None
    assert [p["name"] for p in doc["packages"]] == ["hello"]
    (msg,) = messages(doc, "repodata/repomd.xml")
    assert cap in msg and msg.endswith("read the .rpm files instead"), msg


def test_deep_license_in_primary(tmp_path: Path, rpmroot: Path) -> None:
    """A repository's primary.xml with a license 1,500 parentheses deep: that package's
    license is unknown, the other is read."""
    pkg = ('<package type="rpm"><name>{n}</name><arch>x86_64</arch><version epoch="0" ver="1" rel="1"/>'
           '<checksum type="sha256" pkgid="YES">{n}</checksum><location href="Packages/{n}.rpm"/>'
           '<format><rpm:license>{lic}</rpm:license></format></package>\n')
    xml = (HEAD + pkg.format(n="deep", lic=DEEP_PARENS).encode() + pkg.format(n="fine", lic="MIT").encode()
           + b"</metadata>\n")
    repo = _repo_with(tmp_path / "repo", rpmroot, gzip.compress(xml))
    doc = inventory(str(repo), RepoOptions(fail_on="never"))
    got = {p["name"]: p for p in doc["packages"]}
    assert got["deep"]["license_status"] == "unknown" and got["fine"]["license_spdx"] == "MIT"
    code, cli_doc, _ = run_cli("repo", str(repo), out=tmp_path / "out")
    assert code == 0 and cli_doc is not None and len(cli_doc["packages"]) == 2


def test_fifos_in_a_repository_never_block(tmp_path: Path, rpmroot: Path) -> None:
    """A FIFO named repomd.xml, primary.xml.gz or *.rpm (repositories are host folders,
    read directly): refused without being waited on, each an error record."""
    one = _repo_with(tmp_path / "fifo-primary", rpmroot, b"")
    (one / "repodata/primary.xml.gz").unlink()
    os.mkfifo(one / "repodata/primary.xml.gz")
    os.mkfifo(one / "Packages/evil-1.0-1.x86_64.rpm")
    two = _repo_with(tmp_path / "fifo-repomd", rpmroot, b"")
    (two / "repodata/repomd.xml").unlink()
    os.mkfifo(two / "repodata/repomd.xml")
    docs: dict[str, dict[str, Any]] = {}
    for repo in (one, two):
        code, doc, _ = run_cli("repo", str(repo), out=tmp_path / f"out-{repo.name}")
        assert code == 0 and doc is not None
        assert [p["name"] for p in doc["packages"]] == ["hello"]
        docs[repo.name] = doc
    (msg,) = messages(docs["fifo-primary"], "repodata/repomd.xml")
    assert msg == ("repodata: repodata/primary.xml.gz: not a regular file: FIFO; not read; "
                   "read the .rpm files instead")
    assert messages(docs["fifo-primary"], "Packages/evil-1.0-1.x86_64.rpm") == [
        "rpm file: Packages/evil-1.0-1.x86_64.rpm: not a regular file: FIFO; not read"]
    (msg,) = messages(docs["fifo-repomd"], "repodata/repomd.xml")
    assert msg == "repodata: repodata/repomd.xml: not a regular file: FIFO; not read; read the .rpm files instead"


# ---- os-release --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_os_release_that_is_not_a_file(kind: str, tmp_path: Path) -> None:
    """A FIFO or a character device at /etc/os-release is never opened (a FIFO would block)
    and is an error record naming its type, not a silently unknown OS; the identity is
    then taken from /usr/lib/os-release, as for a missing one."""
    if kind == "chardev" and os.geteuid() != 0:
        pytest.skip("making a character device (mknod) needs root")
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text('ID=fedora\nVERSION_ID="40"\n')
    if kind == "fifo":
        os.mkfifo(tmp_path / "etc/os-release")
    else:
        os.mknod(tmp_path / "etc/os-release", 0o600 | 0o020000, os.makedev(1, 3))
    errors: list[Any] = []
    assert osrelease.read_os_release(DirectoryRoot(tmp_path), errors) == {"ID": "fedora", "VERSION_ID": "40"}
    name = "FIFO" if kind == "fifo" else "character device"
    assert [(e.path, e.stage) for e in errors] == [("/etc/os-release", "inventory")]
    assert f"not a regular file: {name}" in errors[0].message, errors[0].message
    (tmp_path / "usr/lib/os-release").unlink()  # nothing else: an unknown OS, and still said
    errors.clear()
    assert osrelease.read_os_release(DirectoryRoot(tmp_path), errors) == {}
    assert [e.path for e in errors] == ["/etc/os-release"]


def test_unreadable_os_release_reaches_the_result_and_the_gate(tmp_path: Path) -> None:
    """Through the whole scan: the FIFO at /etc/os-release is an error record of the result,
    and FC-ERR-001 puts it before the gate (at --fail-on medium the scan fails)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text("ID=fedora\n")
    os.mkfifo(tmp_path / "etc/os-release")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "scanner", "scan", str(tmp_path), "-o", str(out), "--no-progress",
                          "--fail-on", "medium", "--exclude", "/out/*"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["target"]["os"] == {"ID": "fedora"}
    assert [e["path"] for e in doc["errors"] if e["stage"] == "inventory"] == ["/etc/os-release"]
    gate = [f for f in doc["findings"] if f["rule"] == "FC-ERR-001"]
    assert [f["state"] for f in gate] == ["error"] and "/etc/os-release" in json.dumps(gate[0]["evidence"])


def test_os_release_past_its_cap(tmp_path: Path) -> None:
    """An os-release larger than MAX_OS_RELEASE_BYTES is read up to the cap (whole lines)
    and an error record names the cap; the fields before it are kept."""
    cap = limits.MAX_OS_RELEASE_BYTES
    filler = b"".join(b"X_%06d=%s\n" % (i, b"y" * 50) for i in range(cap // 40))
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_bytes(b'ID=debian\nVERSION_ID="12"\n' + filler + b"ID=evil\n")
    errors: list[Any] = []
    fields = osrelease.read_os_release(DirectoryRoot(tmp_path), errors)
    assert fields["ID"] == "debian" and fields["VERSION_ID"] == "12"
    assert [e.path for e in errors] == ["/etc/os-release"]
    assert errors[0].message.startswith(f"limit MAX_OS_RELEASE_BYTES ({cap:,}) reached: read only its first ")
    (tmp_path / "etc/os-release").write_bytes(b"ID=debian\n" + b"#" * (cap - 10))  # exactly the cap: all of it
    errors.clear()
    assert osrelease.read_os_release(DirectoryRoot(tmp_path), errors) == {"ID": "debian"} and not errors


# ---- links out of the root ---------------------------------------------------------------------
def test_dpkg_admin_folder_linked_out_of_the_root(tmp_path: Path) -> None:
    """/var/lib/dpkg an absolute link to a folder of the host holding a status file and
    file lists: it is resolved inside the root (where the same path holds the target's own
    database), so the host's files are never read, listed or fingerprinted, with or
    without the scan cache."""
    from scanner.inventory.memostore import MemoStore
    from scanner.inventory.readers import ReadContext, read_databases

    host = tmp_path / "host-dpkg"  # outside the root
    (host / "info").mkdir(parents=True)
    (host / "status").write_bytes(stanza(b"hostonly", b"6.6"))
    (host / "info/hostonly.list").write_bytes(b"/usr/bin/hostonly\n")
    root = tmp_path / "root"
    inside = root / str(host).lstrip("/")  # the link's target as the target sees it
    (inside / "info").mkdir(parents=True)
    (inside / "status").write_bytes(stanza(b"guest", b"1.0"))
    (inside / "info/guest.list").write_bytes(b"/usr/bin/guest\n")
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/dpkg").symlink_to(host)  # absolute: the host kernel would follow it out
    fs = DirectoryRoot(root)
    fp = dpkg._fingerprint(fs, DEBIAN)
    (host / "info/more.list").write_bytes(b"/x\n")  # the host's folder changes, the target's does not
    assert dpkg._fingerprint(fs, DEBIAN) == fp
    (inside / "info/more.list").write_bytes(b"/x\n")  # the target's own folder is what is listed
    assert dpkg._fingerprint(fs, DEBIAN) != fp
    for memo in (None, MemoStore(tmp_path / "cache.db", "DirectoryRoot:test")):
        (db,) = read_databases(dpkg.DpkgReader(), fs, ReadContext(DEBIAN), memo)
        assert db is not None and [(p.name, p.files) for p in db.packages] == [("guest", ("/usr/bin/guest",))]
    (root / str(host).lstrip("/")).rename(root / "elsewhere")  # no database inside: none at all
    assert read_databases(dpkg.DpkgReader(), DirectoryRoot(root), ReadContext(DEBIAN),
                          MemoStore(tmp_path / "c2.db", "DirectoryRoot:t")) == []


def test_too_many_rpm_macro_files(tmp_path: Path, rpmroot: Path) -> None:
    """10,002 files named /etc/rpm/macros.* (one of which may name a database elsewhere):
    the glob stops at MAX_GLOB_MATCHES and says so, with the database found at the
    default place and also with none found (then as a database of unknown backend with
    no packages, never silently nothing), through the library and the CLI."""
    blobs = fixture_blobs(rpmroot)
    with_db = rpm_root(tmp_path / "with-db", rpmroot, {})
    without = tmp_path / "without-db"
    for root in (with_db, without):
        (root / "etc/rpm").mkdir(parents=True, exist_ok=True)
        for i in range(limits.MAX_GLOB_MATCHES + 2):
            (root / f"etc/rpm/macros.{i}").write_bytes(b"")
    want = ("rpm macro files: limit MAX_GLOB_MATCHES (10,000) reached: glob /etc/rpm/macros.*")
    (db,) = rpmdb.read_all(DirectoryRoot(with_db), DEBIAN, prefer="python")
    assert len(db.packages) == len(blobs) and messages(db, "/etc/rpm/macros.*") == [want]
    (db,) = rpmdb.read_all(DirectoryRoot(without), DEBIAN, prefer="python")
    assert (db.path, db.backend, db.packages) == ("/etc/rpm/macros.*", "unknown", ())
    assert messages(db) == [want]
    code, doc, _ = run_cli("scan", str(without), "-j", "1", out=tmp_path / "out")
    assert code == 0 and doc is not None and messages(doc, "/etc/rpm/macros.*") == [want]
