"""Package ownership: rpm (librpm and the built-in reader, every backend) and dpkg, against
real databases and the package managers' own answers."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from scanner.inventory import rpmdb
from scanner.inventory.osrelease import read_os_release
from scanner.inventory.packages import OwnershipIndex, Package, PackageDatabase
from scanner.scan import read_package_databases
from scanner.target import DirectoryRoot

from conftest import REPO, by_path, scan_root

SHARED = REPO / "fixtures" / "data" / "rpmdb"  # real databases, provenance in fixtures/data/README.md
DATABASES = [("cbl-mariner-2.0", "sqlite", "rpmdb.sqlite"), ("libuuid-bdb", "bdb", "Packages"),
             ("sle15-bci", "ndb", "Packages.db")]


def expected(folder: str) -> set[tuple[str, ...]]:
    with open(SHARED / folder / "expected.csv", newline="") as fh:
        return {(r["name"], r["version"], r["release"], r["arch"], r["sourcerpm"], r["license"])
                for r in csv.DictReader(fh)}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# librpm reads sqlite and Berkeley DB here (Debian's librpm has no ndb); the built-in
# reader reads all three
CASES = [(*d, "python") for d in DATABASES] + [(*d, "librpm") for d in DATABASES if d[1] != "ndb"]


@pytest.mark.parametrize("folder,backend,fname,reader", CASES)
def test_real_databases_yield_expected_packages(folder: str, backend: str, fname: str, reader: str) -> None:
    if reader == "librpm" and not rpmdb.librpm_available():
        pytest.skip("the rpm bindings are not importable (make installs python3-rpm and the rpm shim)")
    where = SHARED / folder
    before = snapshot(where)
    db = rpmdb.read_database(DirectoryRoot(where), "/", backend, fname, {"ID": "test"}, prefer=reader)
    assert not db.errors and db.reader == reader and db.backend == backend
    got = {(p.name, p.version, p.release, p.arch, p.source, p.license_raw) for p in db.packages}
    assert got == expected(folder)
    # file lists came out too (a few meta packages own no file)
    assert sum(1 for p in db.packages if p.files) >= 0.8 * len(db.packages)
    # read in place, changed nothing, left nothing behind
    assert snapshot(where) == before


def test_ndb_goes_to_the_builtin_reader() -> None:
    fs = DirectoryRoot(SHARED / "sle15-bci")
    forced = rpmdb.read_database(fs, "/", "ndb", "Packages.db", {}, prefer="librpm")
    assert not forced.packages and "librpm cannot read this backend" in forced.errors[0].message
    auto = rpmdb.read_database(fs, "/", "ndb", "Packages.db", {}, prefer="auto")
    assert auto.reader == "python" and len(auto.packages) == 35 and not auto.errors


def test_find_databases_and_macros(tmp_path: Path) -> None:
    root = tmp_path
    (root / "usr/lib/sysimage/rpm").mkdir(parents=True)
    (root / "usr/lib/sysimage/rpm/rpmdb.sqlite").write_bytes(b"")
    (root / "var/lib").mkdir(parents=True)
    os.symlink("../../usr/lib/sysimage/rpm", root / "var/lib/rpm")  # Fedora 36+
    (root / "opt/db").mkdir(parents=True)
    (root / "opt/db/Packages.db").write_bytes(b"")
    (root / "etc/rpm").mkdir(parents=True)
    (root / "etc/rpm/macros.dbpath").write_text("%_dbpath /opt/db\n")
    found = rpmdb.find_databases(DirectoryRoot(root))
    # the symlinked /var/lib/rpm is the same database, read once
    assert found == [("/opt/db", "ndb", "Packages.db"), ("/usr/lib/sysimage/rpm", "sqlite", "rpmdb.sqlite")]


def test_fixture_root_owners_match_rpm_qf(rpmroot: Path, rpmroot_result: dict, tmp_path: Path) -> None:
    """rpm itself, on a copy of the root (rpm writes into the database folder it opens)."""
    copy = tmp_path / "root"
    shutil.copytree(rpmroot, copy, symlinks=True)
    out = subprocess.run(["rpm", "--root", str(copy), "--dbpath", "/var/lib/rpm", "-qa", "--qf",
                          "[%{FILENAMES}\t%{=NAME}-%{=VERSION}-%{=RELEASE}.%{=ARCH}\n]"],
                         capture_output=True, text=True, check=True).stdout
    rpm_owner = dict(line.split("\t") for line in out.splitlines() if line)
    elves = by_path(rpmroot_result)
    checked = 0
    for path, e in elves.items():
        if path in rpm_owner:
            assert e["owner"] == "rpm/" + rpm_owner[path], path
            checked += 1
        else:
            assert e["owner"] is None, path
    assert checked == len(elves) - 1
    assert elves["/usr/local/bin/unowned-tool"]["owner"] is None
    assert rpmroot_result["summary"]["unowned_elves"] == 1
    # also through rpm -qf, one file at a time, as the old loop did
    for path in ("/usr/bin/hello", "/usr/lib64/libgreet.so.1.0.0", "/opt/originapp/lib/liborigin.so.1"):
        q = subprocess.run(["rpm", "--root", str(copy), "--dbpath", "/var/lib/rpm", "-qf", path],
                           capture_output=True, text=True, check=True).stdout.strip()
        assert elves[path]["owner"] == f"rpm/{q}"
    (db,) = rpmroot_result["databases"]
    # (the counts were added to the entry by issue 17: the keys it had are compared as before)
    assert {k: db[k] for k in ("manager", "path", "backend", "reader", "packages")} == {
        "manager": "rpm", "path": "/var/lib/rpm/rpmdb.sqlite", "backend": "sqlite",
        "reader": "librpm" if rpmdb.librpm_available() else "python", "packages": 12}
    assert (db["records"], db["read"], db["failed"]) == (12, 12, 0) and "unread_parts" not in db
    hello = next(p for p in rpmroot_result["packages"] if p["name"] == "hello")
    assert hello["license_raw"] == "GPLv2+" and hello["source"] == "hello-1.0-1.src.rpm"
    assert hello["purl"] == "pkg:rpm/fixture/hello@1.0-1?arch=x86_64&distro=fixture-1"


def test_both_rpm_readers_agree_on_the_fixture(rpmroot: Path) -> None:
    if not rpmdb.librpm_available():
        pytest.skip("the rpm bindings are not importable")
    fs = DirectoryRoot(rpmroot)
    (a,) = rpmdb.read_all(fs, {}, prefer="librpm")
    (b,) = rpmdb.read_all(fs, {}, prefer="python")
    assert a.reader == "librpm" and b.reader == "python"
    assert sorted(a.packages, key=lambda p: p.id) == sorted(b.packages, key=lambda p: p.id)


def test_scan_changes_no_database(rpmroot: Path) -> None:
    dbdir = rpmroot / "var/lib/rpm"
    before = snapshot(dbdir)
    names = sorted(os.listdir(dbdir))
    for reader in ("auto", "python"):
        scan_root(rpmroot, rpm_reader=reader)
    assert snapshot(dbdir) == before and sorted(os.listdir(dbdir)) == names


# ---- dpkg, against this host's dpkg -S ------------------------------------------------------
MERGED = (("/usr/lib/", "/lib/"), ("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"))


def dpkg_s(paths: list[str]) -> dict[str, set[str]]:
    out = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True).stdout
    owners: dict[str, set[str]] = {}
    for line in out.splitlines():
        if line.startswith("diversion by"):
            continue
        pkgs, _, path = line.rpartition(": ")
        owners[path] = {p.strip().split(":")[0] for p in pkgs.split(",")}
    return owners


def test_host_owners_match_dpkg_s(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/var/lib/dpkg/status").exists() or not shutil.which("dpkg"):
        pytest.skip("this host is not a dpkg system")
    fs = DirectoryRoot("/")
    (db,) = [d for d in read_package_databases(fs, read_os_release(fs)) if d.manager == "dpkg"]
    index = OwnershipIndex(fs, [db])
    names = {p.id: p.name for p in db.packages}
    files = []
    for top in ("/usr/bin", "/usr/sbin", "/usr/lib"):
        for dirpath, _dirs, fnames in os.walk(top):
            files.extend(os.path.join(dirpath, f) for f in fnames if not any(c in f for c in "[]*?\\"))
    random.Random(3).shuffle(files)
    sample = [f for f in files if os.path.isfile(f) and not os.path.islink(f)][:400]
    direct = dpkg_s(sample)
    aliased_q = {}
    for f in sample:
        if f not in direct:
            for usr, alias in MERGED:
                if f.startswith(usr):
                    aliased_q[alias + f[len(usr):]] = f
    aliased = dpkg_s(list(aliased_q)) if aliased_q else {}
    agree = through_alias = unowned = 0
    for f in sample:
        want = direct.get(f)
        if want is None:
            alias = next((a for a, real in aliased_q.items() if real == f), None)
            want = aliased.get(alias) if alias else None
            if want is not None:
                through_alias += 1
        got = index.owner(f)
        if want is None:
            assert got is None, f
            unowned += 1
        else:
            assert got is not None and names[got] in want, (f, got, want)
        agree += 1
    with capsys.disabled():
        print(f"\ndpkg -S oracle: {agree}/{len(sample)} files agree ({through_alias} through merged-/usr aliases, "
              f"{unowned} unowned)")
    assert len(sample) >= 300


# ---- hostile databases ------------------------------------------------------------------------
def test_bad_databases_are_error_records_and_the_rest_goes_on(tmp_path: Path, rpmroot: Path) -> None:
    root = tmp_path / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    (root / "usr/lib/sysimage/rpm").mkdir(parents=True)
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    data = (SHARED / "cbl-mariner-2.0/rpmdb.sqlite").read_bytes()
    (root / "var/lib/rpm/rpmdb.sqlite").write_bytes(data[: len(data) // 3])  # truncated sqlite
    (root / "usr/lib/sysimage/rpm/Packages").write_bytes(random.Random(1).randbytes(65536))  # random bytes
    (root / "var/lib/dpkg/status").write_text(
        "Package: good\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: A <a@b>\n\n"
        "Status: install ok installed\nVersion: 2\nDescription: no package field\n\n"
        "Package: BAD NAME\nVersion: 1\nStatus: install ok installed\n\n"
        "Package: other\nStatus: install ok installed\nVersion: 3:2.0\nArchitecture: all\nSource: src (1)\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n"
    )
    (root / "var/lib/dpkg/info/good:amd64.list").write_text(
        "/.\n/usr\n/usr/bin\n/usr/bin/good\n../../etc/passwd\n/usr/../../etc/shadow\nrelative/path\n")
    (root / "var/lib/dpkg/diversions").write_text("/usr/bin/good\n/usr/bin/good.real\nother\n/dangling\n")
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(rpmroot / "usr/bin/static-app", root / "usr/bin/good.real")
    shutil.copy2(rpmroot / "usr/bin/static-app", root / "usr/bin/good")
    doc = scan_root(root)
    errs = [(e["path"], e["message"]) for e in doc["errors"]]
    assert any(p == "/var/lib/rpm/rpmdb.sqlite" for p, _ in errs)
    assert any(p == "/usr/lib/sysimage/rpm/Packages" and "Berkeley DB" in m for p, m in errs)
    assert sum(1 for p, m in errs if p == "/var/lib/dpkg/status" and "paragraph" in m) == 2
    bad_lines = [m for p, m in errs if p == "/var/lib/dpkg/info/good:amd64.list"]
    assert len(bad_lines) == 3 and all("not a path inside the target" in m for m in bad_lines)
    assert any(p == "/var/lib/dpkg/diversions" for p, _ in errs)
    pk = {p["name"]: p for p in doc["packages"]}
    assert set(pk) == {"good", "other"}  # the good stanzas are read; config-files is not installed
    assert pk["other"]["epoch"] == 3 and pk["other"]["version"] == "3:2.0" and pk["other"]["source"] == "src"
    assert pk["good"]["purl"].startswith("pkg:deb/good@1.0-1?arch=amd64")
    elves = by_path(doc)
    # /usr/bin/good is diverted by "other" to good.real: the file at good.real is good's
    assert elves["/usr/bin/good.real"]["owner"] == pk["good"]["id"]
    assert elves["/usr/bin/good"]["owner"] is None


def test_os_identity_without_os_release(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/redhat-release").write_text("Red Hat Enterprise Linux Server release 5.11 (Tikanga)\n")
    assert read_os_release(DirectoryRoot(tmp_path)) == {
        "NAME": "Red Hat Enterprise Linux Server", "PRETTY_NAME": "Red Hat Enterprise Linux Server release 5.11 (Tikanga)",
        "VERSION_ID": "5.11", "ID": "rhel"}
    (tmp_path / "etc/redhat-release").unlink()
    (tmp_path / "etc/debian_version").write_text("6.0.10\n")
    assert read_os_release(DirectoryRoot(tmp_path))["ID"] == "debian"


def test_ownership_follows_folder_links_as_the_target_resolves_them(tmp_path: Path) -> None:
    """Folder links met while indexing (relative with ``..``, absolute, chained, looping,
    and one aiming above the root) land where a full resolution inside the root lands;
    each listed file is owned under that canonical path, and nothing outside the root is
    looked at."""
    root = tmp_path / "root"
    for d in ("usr/lib/x", "usr/share/doc/real", "opt/data", "srv"):
        (root / d).mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")  # merged /usr
    os.symlink("real", root / "usr/share/doc/alias")  # Debian's doc folder links
    os.symlink("/opt/data", root / "srv/abs")  # absolute: inside the root, not the host's /opt
    os.symlink("../srv/abs", root / "usr/chain")  # a link to a link
    os.symlink("loop-b", root / "usr/loop-a")
    os.symlink("loop-a", root / "usr/loop-b")
    os.symlink("../../../../../../etc", root / "usr/up")  # above the root: clamped to /etc inside it
    for f in ("usr/lib/x/libz.so.1", "usr/share/doc/real/copyright", "opt/data/a.db"):
        (root / f).write_text("x")
    listed = ("/lib/x/libz.so.1", "/usr/share/doc/alias/copyright", "/srv/abs/a.db", "/usr/chain/b.db",
              "/usr/loop-a/f", "/usr/up/passwd", "/usr/missing/g")
    pkg = Package("p", "dpkg", "p", None, "1", None, None, None, None, None, "pkg:deb/p@1", listed)
    fs = DirectoryRoot(str(root))
    index = OwnershipIndex(fs, [PackageDatabase("dpkg", "/var/lib/dpkg", "dpkg-status", "python", (pkg,))])
    for f in listed:
        folder, _, name = f.rpartition("/")
        try:
            want = fs.resolve(folder, strict=False).rstrip("/") + "/" + name
        except OSError:  # the loop: kept under its recorded name
            want = f
        assert index.canonical(f) == want, f
        assert index.owner(want) == "p", f
    assert index.canonical("/lib/x/libz.so.1") == "/usr/lib/x/libz.so.1"
    assert index.canonical("/srv/abs/a.db") == "/opt/data/a.db"
    assert index.canonical("/usr/chain/b.db") == "/opt/data/b.db"
    assert index.canonical("/usr/up/passwd") == "/etc/passwd"
    assert index.owner("/usr/loop-a/f") == "p" and index.owner("/usr/lib/x/other") is None
