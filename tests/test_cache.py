"""The census cache (``scan --cache``): unchanged files are not parsed again, changed ones
always are, and a cache that is not ours is rebuilt, never trusted. Real roots, real files,
a real SQLite file."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.scan import ScanOptions, scan
from scanner.target import DirectoryRoot

from conftest import by_path


@pytest.fixture()
def root(rpmroot: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "root"
    subprocess.run(["cp", "-a", str(rpmroot), str(dest)], check=True)
    return dest


def run(root: Path, cache: Path | None, **kw: object) -> dict:
    return scan(DirectoryRoot(root), ScanOptions(jobs=2, cache=cache, **kw))  # type: ignore[arg-type]


def stats(doc: dict) -> dict:
    return doc["scan"]["options"]["cache"]


def comparable(doc: dict) -> dict:
    return {"elves": by_path(doc), "errors": doc["errors"], "findings": doc["findings"], "files": doc["summary"]["files"]}


def test_rescan_reuses_and_reparses_exactly_the_touched_file(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "census.sqlite"
    cold = run(root, cache)
    assert stats(cold)["hits"] == 0 and stats(cold)["misses"] == cold["summary"]["files"]
    warm = run(root, cache)
    assert stats(warm)["misses"] == 0 and stats(warm)["hits"] == cold["summary"]["files"]
    assert comparable(warm) == comparable(cold) == comparable(run(root, None))
    # touch one file: exactly that one is parsed again
    hello = root / "usr/bin/hello"
    st = hello.stat()
    os.utime(hello, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = run(root, cache)
    assert stats(again)["misses"] == 1 and stats(again)["reparsed"] == ["/usr/bin/hello"]
    assert comparable(again) == comparable(cold)


def test_changes_that_keep_size_and_mtime_are_still_seen(root: Path, tmp_path: Path) -> None:
    """Bytes rewritten in place with the old mtime put back, and a chmod u+s (mtime
    unchanged): the ctime moved, so both are parsed again and the records say so."""
    cache = tmp_path / "census.sqlite"
    run(root, cache)
    lib = root / "usr/lib64/libgreet.so.1.0.0"
    st = lib.stat()
    data = bytearray(lib.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    lib.write_bytes(bytes(data))
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns))
    app = root / "usr/bin/hello"
    app.chmod(app.stat().st_mode | 0o4000)
    doc = run(root, cache)
    assert sorted(stats(doc)["reparsed"]) == ["/usr/bin/hello", "/usr/lib64/libgreet.so.1.0.0"]
    elves = by_path(doc)
    assert elves["/usr/bin/hello"]["setuid"] is True
    import hashlib

    assert elves["/usr/lib64/libgreet.so.1.0.0"]["sha256"] == hashlib.sha256(bytes(data)).hexdigest()


def test_new_and_removed_files(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "census.sqlite"
    run(root, cache)
    (root / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/local/bin/copy").write_bytes((root / "usr/bin/hello").read_bytes())
    (root / "usr/bin/hello").unlink()
    doc = run(root, cache)
    assert stats(doc)["reparsed"] == ["/usr/local/bin/copy"]
    assert "/usr/bin/hello" not in by_path(doc) and "/usr/local/bin/copy" in by_path(doc)
    db = sqlite3.connect(cache)
    listing = db.execute("SELECT listing FROM folder WHERE path = ?", (b"/usr/bin",)).fetchone()[0]
    assert b"hello\0" not in listing and listing.startswith(b"") and b"static-app\0" in listing
    # a folder that goes away entirely is forgotten too
    shutil.rmtree(root / "usr/local/bin")
    again = run(root, cache)
    assert stats(again)["misses"] == 0 and "/usr/local/bin/copy" not in by_path(again)
    assert db.execute("SELECT count(*) FROM folder WHERE path = ?", (b"/usr/local/bin",)).fetchone()[0] == 0


def test_split_into_many_parts(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same answers when the rescan is shared out folder by folder (the smallest
    parts the split allows), and folders near the top that vanish are forgotten."""
    from scanner.inventory import census

    cache = tmp_path / "census.sqlite"
    cold = run(root, cache)
    monkeypatch.setattr(census, "SPLIT_MIN", 1)
    (root / "opt/newcomer/deep/er").mkdir(parents=True)
    (root / "opt/newcomer/deep/er/tool").write_bytes((root / "usr/bin/hello").read_bytes())
    first = run(root, cache)
    assert stats(first)["reparsed"] == ["/opt/newcomer/deep/er/tool"]
    assert "/opt/newcomer/deep/er/tool" in by_path(first)
    shutil.rmtree(root / "opt/newcomer")
    warm = run(root, cache)
    assert stats(warm)["misses"] == 0 and stats(warm)["hits"] == cold["summary"]["files"]
    assert comparable(warm) == comparable(cold)
    db = sqlite3.connect(cache)
    assert db.execute("SELECT count(*) FROM folder WHERE path >= ? AND path < ?",
                      (b"/opt/newcomer/", b"/opt/newcomer0")).fetchone()[0] == 0


def test_first_fill_stores_folders_in_the_order_a_rescan_lists_them(root: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder whose files the first scan shares among many batches (finishing in any
    order) is stored in the order the folder lists them, so the first rescan finds it
    unchanged and writes nothing back."""
    from scanner.inventory import census

    many = root / "usr/share/many"
    many.mkdir(parents=True)
    for i in range(300):
        (many / f"f{random.Random(i).randrange(10**9):09d}").write_bytes(b"x" * (i % 7))
    shutil.copy(root / "usr/bin/hello", many / "hello")
    monkeypatch.setattr(census, "BATCH", 5)
    cache = tmp_path / "census.sqlite"
    run(root, cache)
    db = sqlite3.connect(cache)
    rows = dict(db.execute("SELECT path, listing FROM folder"))
    db.close()
    for path, lst in rows.items():
        stored = lst.split(b"\0")[::2]
        with os.scandir(root / path.decode().lstrip("/")) as it:
            listed = [os.fsencode(e.name) for e in it if e.is_file(follow_symlinks=False)]
        assert stored == listed, path
    warm = run(root, cache)
    assert stats(warm)["misses"] == 0
    db = sqlite3.connect(cache)
    assert dict(db.execute("SELECT path, listing FROM folder")) == rows


def test_random_bytes_cache_is_set_aside_and_rebuilt(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "census.sqlite"
    cache.write_bytes(bytes(random.Random(9).randrange(256) for _ in range(8192)))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", str(root), "--cache", str(cache), "-o", str(out),
                        "-q", "--fail-on", "never"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "warning: cache" in r.stderr and "not a flightcheck census cache" in r.stderr
    assert list(tmp_path.glob("census.sqlite.corrupt-*"))  # the user's file is kept, not deleted
    doc = json.loads((out / "result.json").read_text())
    assert stats(doc)["hits"] == 0 and stats(doc)["misses"] == doc["summary"]["files"]
    assert stats(run(root, cache))["misses"] == 0  # the rebuilt cache works


def test_another_database_is_not_used(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "other.sqlite"
    db = sqlite3.connect(cache)
    db.execute("CREATE TABLE census (x)")
    db.commit()
    db.close()
    doc = run(root, cache)
    assert "not a flightcheck census cache" in stats(doc)["warnings"][0]


def test_tampered_entries_are_not_trusted(root: Path, tmp_path: Path) -> None:
    """Entries are JSON decoded field by field: one that does not fit is a miss and is
    replaced; one claiming another file's path is refused too; a folder listing that
    does not parse makes every file of that folder a miss."""
    cache = tmp_path / "census.sqlite"
    cold = run(root, cache)
    db = sqlite3.connect(cache)
    (records,) = db.execute("SELECT records FROM folder WHERE path = ?", (b"/usr/bin",)).fetchone()
    items = json.loads(records)
    (lib,) = db.execute("SELECT records FROM folder WHERE path = ?", (b"/usr/lib64",)).fetchone()
    items["hello"] = [["elf", 1]]  # not a record
    items["static-app"] = json.loads(lib)["libgreet.so.1.0.0"]  # another file's record
    from scanner.inventory.cache import _FIELDS

    wrong = list(items["suid-app"][0])
    wrong[1 + _FIELDS.index("setuid")] = "yes"  # a boolean field holding a string
    items["suid-app"] = [wrong]
    libs = json.loads(lib)
    ghost = [list(libs["libgreet.so.1.0.0"][0])]
    ghost[0][1] = "/usr/lib64/ghost.so"
    libs["ghost.so"] = ghost  # a well-formed record of a file that is not there
    db.execute("UPDATE folder SET records = ? WHERE path = ?", (json.dumps(libs), b"/usr/lib64"))
    db.execute("UPDATE folder SET records = ? WHERE path = ?", (json.dumps(items), b"/usr/bin"))
    folder = b"/opt/rpathdemo/bin"
    (listing,) = db.execute("SELECT listing FROM folder WHERE path = ?", (folder,)).fetchone()
    db.execute("UPDATE folder SET listing = ? WHERE path = ?", (listing + b"\0odd", folder))
    db.commit()
    db.close()
    doc = run(root, cache)
    assert sorted(stats(doc)["reparsed"]) == ["/opt/rpathdemo/bin/rpath-app", "/opt/rpathdemo/bin/runpath-app",
                                              "/usr/bin/hello", "/usr/bin/static-app", "/usr/bin/suid-app"]
    assert by_path(doc)["/usr/bin/suid-app"]["setuid"] is True
    assert "/usr/lib64/ghost.so" not in by_path(doc)
    assert comparable(doc) == comparable(cold)
    assert stats(run(root, cache))["misses"] == 0  # and the entries were replaced
    (libs_now,) = sqlite3.connect(cache).execute("SELECT records FROM folder WHERE path = ?", (b"/usr/lib64",)).fetchone()
    assert "ghost.so" not in json.loads(libs_now)


def test_copyright_files_and_dpkg_database_are_remembered(tmp_path: Path) -> None:
    """A Debian root: each copyright file's license and the database read are kept; an
    edited copyright file is read again and its new license shows; a new .list file makes
    the database be read again."""
    import shutil

    if not shutil.which("dpkg-query"):
        pytest.skip("needs a Debian host (dpkg-query) to copy real package records from")
    root = tmp_path / "debian"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    names = [n for n in ("bash", "coreutils", "zlib1g", "libc6", "tar")
             if Path(f"/usr/share/doc/{n}/copyright").is_file()
             and subprocess.run(["dpkg-query", "-s", n], capture_output=True).returncode == 0]
    stanzas = []
    for n in names:  # real status stanzas, real copyright files, of this host's packages
        stanzas.append(subprocess.run(["dpkg-query", "-s", n], capture_output=True, text=True, check=True).stdout)
        (root / f"usr/share/doc/{n}").mkdir(parents=True)
        shutil.copy(f"/usr/share/doc/{n}/copyright", root / f"usr/share/doc/{n}/copyright")
        (root / f"var/lib/dpkg/info/{n}.list").write_text(f"/usr/share/doc/{n}\n/usr/share/doc/{n}/copyright\n")
    (root / "var/lib/dpkg/status").write_text("\n".join(s.strip() + "\n" for s in stanzas))
    assert len(names) >= 3
    cache = tmp_path / "census.sqlite"
    cold = run(root, cache)
    n = len(cold["packages"])
    assert n and stats(cold)["memo_hits"] == {}
    warm = run(root, cache)
    assert stats(warm)["memo_hits"] == {"copyright": n, "dpkg": 1, "licenses": 1}
    assert warm["packages"] == cold["packages"]
    copyrights = sorted((root / "usr/share/doc").glob("*/copyright"))
    assert copyrights
    target = copyrights[0]
    target.write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                      "Files: *\nCopyright: 2026 Someone\nLicense: MIT\n")
    changed = run(root, cache)
    pkg = next(p for p in changed["packages"] if p["name"] == target.parent.name)
    assert pkg["license_raw"] == "MIT" and pkg["license_source"] == "dep5"
    assert stats(changed)["memo_hits"] == {"copyright": n - 1, "dpkg": 1, "licenses": 1}
    (root / "var/lib/dpkg/info/extra.list").write_text("/usr/share/doc/extra\n")
    relisted = run(root, cache)
    assert "dpkg" not in stats(relisted)["memo_hits"] and relisted["packages"] == changed["packages"]


def test_license_outcomes_follow_the_policy(root: Path, tmp_path: Path) -> None:
    """The remembered license outcomes depend on the name tables: a policy that renames a
    license must not be answered from what the default tables said."""
    from scanner.scan import ScanOptions

    cache = tmp_path / "census.sqlite"
    first = run(root, cache)
    assert stats(run(root, cache))["memo_hits"].get("licenses") == 1
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses.names."Proprietary"]\nspdx = "LicenseRef-Vendor-EULA"\nproprietary = true\n')
    renamed = scan(DirectoryRoot(root), ScanOptions(jobs=2, cache=cache, policy=policy))
    assert "licenses" not in stats(renamed)["memo_hits"]
    vendor = {p["name"]: p for p in renamed["packages"]}["vendor-app"]
    assert vendor["license_spdx"] == "LicenseRef-Vendor-EULA"
    assert {p["name"]: p for p in first["packages"]}["vendor-app"]["license_spdx"] == "LicenseRef-Proprietary"


def test_mount_points_are_not_crossed(root: Path, tmp_path: Path) -> None:
    """A file system mounted inside the root is not walked (unless --cross-mounts), in a
    plain scan, a scan filling the cache and a rescan from it (which learns the mount
    points from the mount table instead of stat'ing every folder)."""
    mnt = root / "mnt/data"
    mnt.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "fc-test", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"needs permission to mount a tmpfs: {r.stderr.strip()}")
    try:
        shutil.copy(root / "usr/bin/hello", mnt / "hello")
        cache = tmp_path / "census.sqlite"
        for doc in (run(root, None), run(root, cache), run(root, cache)):
            assert "/mnt/data/hello" not in by_path(doc)
        crossed = scan(DirectoryRoot(root, cross_mounts=True), ScanOptions(jobs=2, cache=cache))
        assert "/mnt/data/hello" in by_path(crossed)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_file_names_that_are_not_utf8(root: Path, tmp_path: Path) -> None:
    """A program whose name is not UTF-8 (its record carries surrogate escapes, which the
    fast JSON reader refuses) is still answered from the cache, with the same record."""
    odd = os.fsencode(root / "usr/bin") + b"/caf\xe9-app"
    with open(odd, "wb") as fh:
        fh.write((root / "usr/bin/hello").read_bytes())
    os.chmod(odd, 0o755)
    cache = tmp_path / "census.sqlite"
    cold = run(root, cache)
    warm = run(root, cache)
    assert "/usr/bin/caf\\xe9-app" in by_path(cold)
    assert stats(warm)["misses"] == 0 and comparable(warm) == comparable(cold)


def test_rpm_database_read_is_remembered(root: Path, tmp_path: Path) -> None:
    """The rpm database read is kept while the database file is unchanged: a package
    erased from the database (rpm --justdb) is seen at once, and a remembered read that
    is not what flightcheck wrote is read again instead of trusted."""
    if not shutil.which("rpm"):
        pytest.skip("needs rpm to change the fixture's database")
    cache = tmp_path / "census.sqlite"
    cold = run(root, cache)
    assert "rpm" not in stats(cold)["memo_hits"]
    warm = run(root, cache)
    assert stats(warm)["memo_hits"]["rpm"] == 1 and warm["packages"] == cold["packages"]
    subprocess.run(["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-e", "--justdb", "--nodeps", "vendor-app"],
                   check=True, capture_output=True)
    erased = run(root, cache)
    assert "rpm" not in stats(erased)["memo_hits"]
    assert "vendor-app" not in {p["name"] for p in erased["packages"]} and len(erased["packages"]) == len(cold["packages"]) - 1
    db = sqlite3.connect(cache)
    db.execute("UPDATE memo SET value = ? WHERE kind = 'rpm'", ('{"reader": "librpm", "packages": [[1]], "errors": []}',))
    db.commit()
    db.close()
    tampered = run(root, cache)
    assert "rpm" not in stats(tampered)["memo_hits"] and tampered["packages"] == erased["packages"]
    assert stats(run(root, cache))["memo_hits"]["rpm"] == 1
