"""The package-reader interface (scanner/inventory/readers.py), the one purl builder, the memo
interface and its store, the code fingerprint, and the census driver's strategies, on real
inputs: the rpm fixture root's database and files, dpkg status files written here."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

from packageurl import PackageURL

from scanner.errors import ErrorRecord
from scanner.inventory import dpkg, rpmdb
from scanner.inventory.cache import CensusCache, ScanCache
from scanner.inventory.cachefile import CacheFile, code_version
from scanner.inventory.census import take_census
from scanner.inventory.memo import READER_CODE, code_fingerprint, file_key, remembered
from scanner.inventory.memostore import MemoStore
from scanner.inventory.packages import Package, PackageDatabase
from scanner.inventory.purl import distro, namespace, purl
from scanner.inventory.readers import (Found, Location, ReadContext, read_databases, read_package_databases,
                                       registered)
from scanner.target import DirectoryRoot, RootFS

DEBIAN = {"ID": "debian", "VERSION_ID": "12"}


def stanza(name: str, version: str) -> str:
    return (f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n"
            "Maintainer: Fixture <f@example.invalid>\nDescription: a package\n\n")


def both_root(tmp: Path, rpmroot: Path) -> Path:
    """A root with the fixture's rpm database and a dpkg database of two packages."""
    root = tmp / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    shutil.copyfile(rpmroot / "var/lib/rpm/rpmdb.sqlite", root / "var/lib/rpm/rpmdb.sqlite")
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(stanza("alpha", "1.0-1") + stanza("beta", "2:3.1"))
    (root / "var/lib/dpkg/info/alpha.list").write_text("/usr/bin/alpha\n")
    (root / "var/lib/dpkg/info/beta.list").write_text("/usr/bin/beta\n")
    return root


# ---- the purl builder ----------------------------------------------------------------------------
def test_purl_is_packageurls_own_for_text() -> None:
    got = purl("rpm", "bash", "5.1.8", epoch=2, release="1.cm2", arch="x86_64", namespace="mariner", distro="mariner-2.0")
    want = PackageURL(type="rpm", namespace="mariner", name="bash", version="5.1.8-1.cm2",
                      qualifiers={"arch": "x86_64", "epoch": "2", "distro": "mariner-2.0"}).to_string()
    assert got == want == "pkg:rpm/mariner/bash@5.1.8-1.cm2?arch=x86_64&distro=mariner-2.0&epoch=2"
    assert purl("dpkg", "libc6", "2.36-9", arch="amd64", namespace=namespace(DEBIAN), distro=distro(DEBIAN)) \
        == "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12"
    assert purl("rpm", "x", "1", epoch=0, release=None, repository_url="https://r.example/a b/") \
        == "pkg:rpm/x@1?repository_url=https://r.example/a%20b/"
    assert distro({"ID": "alpine"}) == "alpine" and distro({}) is None and namespace({"ID": ""}) is None


def test_purl_percent_encodes_undecodable_bytes() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert purl("dpkg", name, "1.0") == "pkg:deb/caf%E9@1.0"


# ---- the registry -----------------------------------------------------------------------------------
def test_every_registered_reader_in_order(tmp_path: Path, rpmroot: Path) -> None:
    """rpm first, then dpkg, apk and opkg (the first read owns a file two claim); each database
    read once, the same records as each reader's own entry point."""
    assert [r.manager for r in registered()] == ["rpm", "dpkg", "apk", "opkg"]
    fs = DirectoryRoot(both_root(tmp_path, rpmroot))
    dbs = read_package_databases(fs, DEBIAN, "python")
    assert [(d.manager, d.path, d.backend) for d in dbs] == [("rpm", "/var/lib/rpm/rpmdb.sqlite", "sqlite"),
                                                             ("dpkg", "/var/lib/dpkg/status", "dpkg-status")]
    assert dbs[0] == rpmdb.read_all(fs, DEBIAN, prefer="python")[0]
    assert dbs[1] == dpkg.read_database(fs, DEBIAN)
    assert [(p.name, p.epoch, p.files) for p in dbs[1].packages] == [("alpha", None, ("/usr/bin/alpha",)),
                                                                      ("beta", 2, ("/usr/bin/beta",))]
    (tmp_path / "empty").mkdir()
    assert read_package_databases(DirectoryRoot(tmp_path / "empty"), DEBIAN) == []


class _ListReader:
    """A reader of a made-up manager whose database is one text file of package names:
    what adding a reader takes, and the registry's notes rule."""

    manager = "dpkg"  # (a manager the records allow)

    def __init__(self) -> None:
        self.reads = 0

    def locate(self, fs: RootFS, ctx: ReadContext) -> Found:
        notes = (ErrorRecord("/etc/names.d", "inventory", "could not be looked at"),)
        if fs.is_file("/names"):
            return Found((Location("/names", "names"),), notes)
        return Found((), notes)

    def identity(self, fs: RootFS, location: Location, ctx: ReadContext) -> str | None:
        return file_key(fs.stat(location.path))

    def read(self, fs: RootFS, location: Location, ctx: ReadContext) -> PackageDatabase:
        self.reads += 1
        names = fs.read(location.path, 1 << 20).decode().split()
        packages = tuple(Package(f"deb/{n}_1_all", "dpkg", n, None, "1", None, None, None, None, None,
                                      purl("dpkg", n, "1"), (), location.path) for n in names)
        return PackageDatabase(self.manager, location.path, location.backend, "names", packages)

    def keep(self, db: PackageDatabase) -> bool:
        return True

    def reader_name(self, ctx: ReadContext) -> str:
        return "names"


def test_a_reader_never_sees_the_memo(tmp_path: Path) -> None:
    """The registry remembers a read under the database's identity: the reader runs once
    for two scans of an unchanged file, again when the file changes; its notes go with the
    first database, or stand as a database of backend ``unknown`` when none was found."""
    (tmp_path / "names").write_text("one two\n")
    fs, ctx, reader = DirectoryRoot(tmp_path), ReadContext(DEBIAN), _ListReader()
    cache = tmp_path / "cache.sqlite"
    for _ in range(2):
        memo = MemoStore(cache, "DirectoryRoot:t")
        (db,) = read_databases(reader, fs, ctx, memo)
        memo.commit()
        assert [p.name for p in db.packages] == ["one", "two"] and db.errors[0].path == "/etc/names.d"
    assert reader.reads == 1 and memo.hits == {"dpkg": 1}
    time.sleep(0.01)
    (tmp_path / "names").write_text("one two three\n")
    (db,) = read_databases(reader, fs, ctx, MemoStore(cache, "DirectoryRoot:t"))
    assert reader.reads == 2 and len(db.packages) == 3
    os.unlink(tmp_path / "names")
    (db,) = read_databases(reader, fs, ctx)
    assert (db.path, db.backend, db.reader, db.packages) == ("/etc/names.d", "unknown", "names", ())


def test_dpkg_read_remembered_until_a_list_changes(tmp_path: Path, rpmroot: Path) -> None:
    fs = DirectoryRoot(both_root(tmp_path, rpmroot))
    cache = ScanCache(tmp_path / "c.sqlite", "DirectoryRoot:t")
    first = read_package_databases(fs, DEBIAN, "python", cache.memo)
    cache.commit()
    cache.close()
    again = ScanCache(tmp_path / "c.sqlite", "DirectoryRoot:t")
    assert read_package_databases(fs, DEBIAN, "python", again.memo) == first
    assert again.memo.hits == {"dpkg": 1, "rpm": 1} and again.stats()["memo_hits"] == {"dpkg": 1, "rpm": 1}
    (tmp_path / "root/var/lib/dpkg/info/gamma.list").write_text("/x\n")
    assert read_package_databases(fs, DEBIAN, "python", again.memo) == first
    assert again.memo.hits == {"dpkg": 1, "rpm": 2}


# ---- the memo and the code fingerprint ------------------------------------------------------------
def test_remembered_keeps_only_what_may_be_kept(tmp_path: Path) -> None:
    memo = MemoStore(tmp_path / "m.sqlite", "t")
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    def key() -> str:
        return "k"

    assert remembered(memo, "n", "x", key, compute, encode=lambda v: v, decode=int, keep=lambda v: v > 1) == 1
    assert remembered(memo, "n", "x", key, compute, encode=lambda v: v, decode=int, keep=lambda v: v > 1) == 2
    memo.commit()
    memo = MemoStore(tmp_path / "m.sqlite", "t")
    assert remembered(memo, "n", "x", key, compute, encode=lambda v: v, decode=int) == 2 and len(calls) == 2
    assert remembered(memo, "n", "x", lambda: None, compute, encode=lambda v: v, decode=int) == 3  # no key
    assert memo.get("n", "x", "k", lambda v: int("not a number")) is None  # a value its reader refuses is a miss


def test_code_fingerprint_follows_the_source() -> None:
    assert code_fingerprint("inventory/rpm*.py") == code_fingerprint("inventory/rpm*.py")
    assert code_fingerprint("inventory/rpm*.py") != code_fingerprint("inventory/rpmdb.py")
    assert code_fingerprint("inventory/no-such-module.py") != code_fingerprint("inventory/other-missing.py")
    assert code_version().endswith("+" + code_fingerprint(*READER_CODE))


def test_memo_rows_of_another_code_version_are_not_answered(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    memo = MemoStore(path, "t")
    memo.put("rpm", "/db", "k", {"v": 1})
    memo.commit()
    db = sqlite3.connect(path)
    db.execute("UPDATE memo SET version = 'older'")
    db.commit()
    db.close()
    assert MemoStore(CacheFile(path, "t")).get("rpm", "/db", "k", dict) is None


# ---- the census driver's strategies ------------------------------------------------------------------
def test_every_census_strategy_finds_the_same(tmp_path: Path, rpmroot: Path) -> None:
    """No cache; a first scan filling the cache; a rescan in one process; a rescan by
    subtrees in two: the same ELF records and errors."""
    fs = DirectoryRoot(rpmroot)
    plain = take_census(fs, jobs=2)
    path = tmp_path / "census.sqlite"
    for jobs in (2, 1, 2):
        cache = CensusCache(path, "DirectoryRoot:" + fs.label)
        got = take_census(DirectoryRoot(rpmroot), jobs=jobs, cache=cache)
        cache.commit()
        cache.close()
        assert (got.elves, got.errors, got.files) == (plain.elves, plain.errors, plain.files)
    assert cache.hits == plain.files and cache.misses == 0
