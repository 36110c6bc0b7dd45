"""rpm databases of a target: found where the target keeps them, read without changing them.

Where: ``/var/lib/rpm`` (RHEL up to 8, SUSE before 15.?), ``/usr/lib/sysimage/rpm``
(Fedora 36+, SUSE), and any ``%_dbpath`` the target's own rpm macro files set.

How: the database files are copied into a private temporary folder and the copy is opened,
because librpm writes into any folder it opens (``-shm``/``-wal`` files, even an empty
``rpmdb.sqlite``). librpm (the ``rpm`` bindings) reads sqlite and Berkeley DB here; the
pure-Python reader (:mod:`scanner.inventory.rpmheader`) reads ndb, and all three when the
bindings are missing. The reader used is named in the result.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator
from typing import Any

from scanner.errors import ErrorRecord
from scanner.inventory import rpmheader
from scanner.inventory.packages import (Package, PackageDatabase, database_from_memo, database_to_memo, make_purl,
                                        package_id)
from scanner.target import RootFS

DEFAULT_DBPATHS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
BACKEND_FILES = (("sqlite", "rpmdb.sqlite"), ("ndb", "Packages.db"), ("bdb", "Packages"))
MACRO_FILES = ("/usr/lib/rpm/macros", "/usr/lib/rpm/macros.d/*", "/etc/rpm/macros", "/etc/rpm/macros.*",
               "/usr/lib/rpm/*/macros")
_MACRO_VARS = {"_var": "/var", "_usr": "/usr", "_prefix": "/usr", "_usrlib": "/usr/lib",
               "_sysconfdir": "/etc", "_localstatedir": "/var", "_lib": "lib"}
MAX_DB_BYTES = 2 << 30


def librpm_available() -> bool:
    try:
        import rpm  # noqa: F401
    except ImportError:
        return False
    return True


def _macro_dbpaths(fs: RootFS) -> list[str]:
    """``%_dbpath`` values the target's own macro files define (later files win, as in rpm)."""
    found: list[str] = []
    for pattern in MACRO_FILES:
        for path in fs.glob(pattern):
            try:
                text = fs.read(path, 1 << 20).decode("utf-8", "replace")
            except OSError:
                continue
            for m in re.finditer(r"^%_dbpath\s+(\S+)\s*$", text, re.M):
                value = re.sub(r"%\{(\w+)\}", lambda v: _MACRO_VARS.get(v.group(1), v.group(0)), m.group(1))
                if value.startswith("/") and "%" not in value:
                    found.append(posixpath.normpath(value))
    return found[-1:]  # the last definition is the one rpm uses


def find_databases(fs: RootFS) -> list[tuple[str, str, str]]:
    """``(canonical folder, backend, file name)`` of every rpm database in the target."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for d in (*_macro_dbpaths(fs), *DEFAULT_DBPATHS):
        try:
            canon = fs.resolve(d)
        except OSError:
            continue
        if canon in seen or not fs.is_dir(canon):
            continue
        seen.add(canon)
        for backend, fname in BACKEND_FILES:
            if fs.is_file(posixpath.join(canon, fname)):
                out.append((canon, backend, fname))
                break
    return out


def _copy_db(fs: RootFS, folder: str, backend: str, fname: str, dest: str) -> None:
    """Copy the database file(s) into ``dest`` (sqlite's WAL beside it, if any, so
    committed-but-not-checkpointed data is seen)."""
    names = [fname]
    if backend == "sqlite":
        names += [fname + "-wal"]
    for name in names:
        src = posixpath.join(folder, name)
        if not fs.is_file(src):
            continue
        with fs.open(src) as fh, open(os.path.join(dest, name), "wb") as out:
            copied = 0
            while chunk := fh.read(1 << 20):
                copied += len(chunk)
                if copied > MAX_DB_BYTES:
                    raise rpmheader.RpmDbError(f"{src} is larger than {MAX_DB_BYTES >> 30} GiB")
                out.write(chunk)


def _headers_librpm(dbdir: str) -> Iterator[rpmheader.RpmHeader]:
    import rpm

    rpm.setVerbosity(rpm.RPMLOG_CRIT)  # librpm warns on stderr about absent index files
    rpm.addMacro("_dbpath", dbdir)
    try:
        ts = rpm.TransactionSet()
        ts.setVSFlags(-1)  # no signature or digest checks: reading, not installing
        try:
            mi = ts.dbMatch()
        except rpm.error as exc:
            raise rpmheader.RpmDbError(f"librpm: {exc}") from exc
        if mi is None:
            raise rpmheader.RpmDbError("librpm cannot open the database")
        for h in mi:
            yield rpmheader.RpmHeader(
                name=h["name"],
                epoch=h["epoch"],
                version=h["version"] or "",
                release=h["release"] or "",
                arch=h["arch"],
                source=h["sourcerpm"],
                vendor=h["vendor"],
                license=h["license"],
                files=tuple(h["filenames"] or ()),
            )
        ts.closeDB()
    finally:
        rpm.delMacro("_dbpath")
        rpm.setVerbosity(rpm.RPMLOG_NOTICE)


def _headers_python(dbdir: str, backend: str, fname: str, errors: list[str]) -> Iterator[rpmheader.RpmHeader]:
    path = os.path.join(dbdir, fname)
    if backend == "sqlite":
        blobs = rpmheader.sqlite_blobs(path)
    else:
        with open(path, "rb") as fh:
            data = fh.read()
        blobs = rpmheader.bdb_blobs(data) if backend == "bdb" else rpmheader.ndb_blobs(data)
    for i, blob in enumerate(blobs):
        try:
            yield rpmheader.parse_header(blob)
        except rpmheader.RpmDbError as exc:
            errors.append(f"package header {i}: {exc}")


def read_database(fs: RootFS, folder: str, backend: str, fname: str, os_release: dict[str, str],
                  *, prefer: str = "auto") -> PackageDatabase:
    """Read one rpm database. ``prefer``: ``auto`` (librpm where it reads the backend,
    the built-in reader otherwise or when librpm fails), ``librpm`` or ``python``."""
    use_librpm = prefer != "python" and backend in ("sqlite", "bdb") and librpm_available()
    if prefer == "librpm" and not use_librpm:
        db_path = posixpath.join(folder, fname)
        return PackageDatabase("rpm", db_path, backend, "librpm", (), (ErrorRecord(
            db_path, "inventory", f"rpm database ({backend}): librpm cannot read this backend here"),))
    db = _read(fs, folder, backend, fname, os_release, use_librpm)
    if use_librpm and prefer == "auto" and not db.packages and db.errors:
        fallback = _read(fs, folder, backend, fname, os_release, False)
        if fallback.packages:
            return fallback
        # neither could read it: say what each reader found
        msg = "; ".join([e.message for e in db.errors] + [
            e.message.replace(f"rpm database ({backend}): ", "built-in reader: ") for e in fallback.errors])
        return PackageDatabase("rpm", db.path, backend, db.reader, (), (ErrorRecord(db.path, "inventory", msg),))
    return db


def _read(fs: RootFS, folder: str, backend: str, fname: str, os_release: dict[str, str],
          use_librpm: bool) -> PackageDatabase:
    reader = "librpm" if use_librpm else "python"
    db_path = posixpath.join(folder, fname)
    errors: list[str] = []
    packages: list[Package] = []
    with tempfile.TemporaryDirectory(prefix="flightcheck-rpmdb-") as tmp:
        try:
            _copy_db(fs, folder, backend, fname, tmp)
            headers = _headers_librpm(tmp) if use_librpm else _headers_python(tmp, backend, fname, errors)
            for h in headers:
                if h.name == "gpg-pubkey":
                    continue  # imported signing keys, not software
                pid = package_id("rpm", h.name, h.epoch, h.version, h.release, h.arch)
                packages.append(Package(
                    id=pid, manager="rpm", name=h.name, epoch=h.epoch, version=h.version,
                    release=h.release, arch=h.arch, source=h.source, vendor=h.vendor,
                    license_raw=h.license,
                    purl=make_purl("rpm", os_release, h.name, h.epoch, h.version, h.release, h.arch),
                    files=h.files, database=db_path,
                ))
        except (rpmheader.RpmDbError, OSError) as exc:
            errors.append(str(exc) if isinstance(exc, rpmheader.RpmDbError) else f"cannot read: {exc.strerror or exc}")
    errs = tuple(ErrorRecord(db_path, "inventory", f"rpm database ({backend}): {m}") for m in errors)
    return PackageDatabase("rpm", db_path, backend, reader, tuple(packages), errs)


def read_all(fs: RootFS, os_release: dict[str, str], *, prefer: str = "auto", memo: Any = None) -> list[PackageDatabase]:
    """Every rpm database of the target. ``memo`` (the scan cache) keeps each read for
    the next scan while the database file (and its WAL) is unchanged."""
    return [_remembered(fs, folder, backend, fname, os_release, prefer, memo)
            for folder, backend, fname in find_databases(fs)]


def _fingerprint(fs: RootFS, folder: str, backend: str, fname: str, os_release: dict[str, str], prefer: str) -> str:
    """What a read depends on: the database file's identity (and its WAL's), the reader
    asked for and whether librpm is here, and the os-release fields in the purls."""
    from scanner.inventory.cache import file_key  # noqa: PLC0415

    h = hashlib.sha256(f"{backend}\0{fname}\0{prefer}\0{librpm_available()}\0{sorted(os_release.items())}".encode())
    for name in (fname, fname + "-wal"):
        try:
            h.update(file_key(fs.stat(posixpath.join(folder, name))).encode())
        except FileNotFoundError:
            h.update(b"-")
    return h.hexdigest()[:32]


def _remembered(fs: RootFS, folder: str, backend: str, fname: str, os_release: dict[str, str], prefer: str,
                memo: Any) -> PackageDatabase:
    if memo is None:
        return read_database(fs, folder, backend, fname, os_release, prefer=prefer)
    db_path = posixpath.join(folder, fname)
    try:
        key = _fingerprint(fs, folder, backend, fname, os_release, prefer)
    except OSError:
        return read_database(fs, folder, backend, fname, os_release, prefer=prefer)
    hit = memo.memo_get_key("rpm", db_path, key, lambda v: database_from_memo(v, "rpm", db_path, backend))
    if hit is not None:  # (None also when it is not what flightcheck wrote: read again)
        return hit
    db = read_database(fs, folder, backend, fname, os_release, prefer=prefer)
    if not any("cannot read" in e.message for e in db.errors):  # a failure of the moment is not kept
        memo.memo_put_key("rpm", db_path, key, database_to_memo(db))
    return db
