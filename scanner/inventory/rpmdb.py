"""rpm databases of a target: found where the target keeps them, read without changing them.

Where: ``/var/lib/rpm`` (RHEL up to 8, SUSE before 15.?), ``/usr/lib/sysimage/rpm``
(Fedora 36+, SUSE), and any ``%_dbpath`` the target's own rpm macro files set.

How: the database files are copied into a private temporary folder and the copy is opened,
because librpm writes into any folder it opens (``-shm``/``-wal`` files, even an empty
``rpmdb.sqlite``). librpm (the ``rpm`` bindings) reads sqlite and Berkeley DB here; the
pure-Python reader (:mod:`scanner.inventory.rpmheader`) reads ndb, and all three when the
bindings are missing. The reader used is named in the result, with why.

Every record accounted for: the records the database stores are counted by walking its
storage (:mod:`scanner.inventory.rpmstore`) and reconciled with the headers read
(``PackageDatabase.records``, ``read``, ``failed``, ``unread_parts``). librpm skips a header
it refuses with a log line only (rpm 5's FILESTATES as INT8: "BAD, tag 1029 type 2"): its
log lines are kept, the shortfall is an error record with the numbers, and with ``auto``
the built-in reader, which reads rpm 5's integer type variants, reads the database too;
the reading with more headers wins.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from typing import IO, Any

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.inventory import rpmheader, rpmstore
from scanner.inventory.memo import file_key
from scanner.inventory.packages import Package, PackageDatabase, PathBudget, checked_arch, package_id, shown
from scanner.inventory import purl as purlmod
from scanner.inventory.purl import purl
from scanner.inventory.readers import Found, Location, ReadContext, read_databases, register
from scanner.limits import LimitExceeded
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


def _macro_dbpaths(fs: RootFS, errors: list[ErrorRecord]) -> list[str]:
    """``%_dbpath`` values the target's own macro files define (later files win, as in rpm).
    A macro file or glob that cannot be read is an error record: it may have named the
    database."""
    found: list[str] = []
    for pattern in MACRO_FILES:
        try:
            paths = fs.glob(pattern)
        except (OSError, LimitExceeded) as exc:
            errors.append(ErrorRecord(pattern, "inventory", f"rpm macro files: {exc}"))
            continue
        for path in paths:
            try:
                text = fs.read(path, 1 << 20).decode("utf-8", "replace")
            except OSError as exc:
                errors.append(ErrorRecord(path, "inventory", f"rpm macro file cannot be read: {exc.strerror or exc}"))
                continue
            for m in re.finditer(r"^%_dbpath\s+(\S+)\s*$", text, re.M):
                value = re.sub(r"%\{(\w+)\}", lambda v: _MACRO_VARS.get(v.group(1), v.group(0)), m.group(1))
                if value.startswith("/") and "%" not in value:
                    found.append(posixpath.normpath(value))
    return found[-1:]  # the last definition is the one rpm uses


def find_databases(fs: RootFS, errors: list[ErrorRecord] | None = None) -> list[tuple[str, str, str]]:
    """``(canonical folder, backend, file name)`` of every rpm database in the target
    (what could not be looked at goes to ``errors``)."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for d in (*_macro_dbpaths(fs, errors if errors is not None else []), *DEFAULT_DBPATHS):
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


def header_from_librpm(h: Any, budget: PathBudget) -> rpmheader.RpmHeader:
    """The fields flightcheck uses of a header librpm decoded (``rpm.hdr``). The file list is
    built here, within ``budget``, from the tags librpm keeps (``h["filenames"]`` would
    build every path in C first, however large, and raises on a damaged one)."""
    import rpm

    name = h["name"]
    if not name:
        raise rpmheader.RpmDbError("header has no NAME")
    problems: list[str] = []
    largest = rpmheader.largest_file_tag(h.unload())
    if largest > limits.MAX_RPM_HEADER_FILES:
        files: tuple[str, ...] = ()
        problems.append(rpmheader.too_many_files(largest))
    else:
        files = rpmheader.file_list(h[rpm.RPMTAG_BASENAMES], h[rpm.RPMTAG_DIRNAMES], h[rpm.RPMTAG_DIRINDEXES],
                                    h[rpm.RPMTAG_OLDFILENAMES], budget, problems)
    return rpmheader.RpmHeader(name=name, epoch=h["epoch"], version=h["version"] or "", release=h["release"] or "",
                               arch=h["arch"], source=h["sourcerpm"], vendor=h["vendor"], license=h["license"],
                               files=files, problems=tuple(problems))


class _Errors(list[str]):
    """One read's error lines. Headers that could not be read are all counted (``failed``),
    the first ``MAX_RPM_HEADER_ERRORS`` each said in a line of its own (a hostile database
    of a million broken records is not a million error records)."""

    failed = 0

    def header(self, i: int, why: str) -> None:
        self.failed += 1
        if self.failed <= limits.MAX_RPM_HEADER_ERRORS:
            self.append(f"package header {i}: {why}")

    def unlisted(self) -> None:
        """The line counting the headers not listed, if any."""
        if self.failed > limits.MAX_RPM_HEADER_ERRORS:
            self.append(str(LimitExceeded("MAX_RPM_HEADER_ERRORS", limits.MAX_RPM_HEADER_ERRORS,
                                          f"{self.failed - limits.MAX_RPM_HEADER_ERRORS:,} more headers that could "
                                          "not be read are counted, not listed")))


def _headers_librpm(dbdir: str, budget: PathBudget, errors: _Errors) -> Iterator[rpmheader.RpmHeader]:
    """Every header librpm reads (it skips damaged ones with a log line only: :func:`_read`
    compares what it got with what the database holds, and librpm's first error lines,
    written to a file in the private folder rather than the terminal, are kept)."""
    import rpm

    rpm.setVerbosity(rpm.RPMLOG_ERR)  # (librpm warns about absent index files: not errors)
    rpm.addMacro("_dbpath", dbdir)
    log = open(os.path.join(dbdir, ".librpm.log"), "w+", encoding="utf-8", errors="replace")
    rpm.setLogFile(log)
    try:
        ts = rpm.TransactionSet()
        ts.setVSFlags(-1)  # no signature or digest checks: reading, not installing
        try:
            mi = ts.dbMatch()
        except rpm.error as exc:
            raise rpmheader.RpmDbError(f"librpm: {exc}") from exc
        if mi is None:
            raise rpmheader.RpmDbError("librpm cannot open the database")
        for i, h in enumerate(mi):
            try:
                header = header_from_librpm(h, budget)
            except Exception as exc:  # noqa: BLE001 - one header's failure is that header's error record
                errors.header(i, _why(exc))
                continue
            yield header
        ts.closeDB()
    finally:
        rpm.setLogFile(sys.stderr)
        rpm.delMacro("_dbpath")
        rpm.setVerbosity(rpm.RPMLOG_NOTICE)
        errors.extend(_librpm_said(log))
        log.close()


def _librpm_said(log: IO[str]) -> list[str]:
    """librpm's error lines (the first few, and how many more), one error line."""
    log.seek(0)
    lines = [line.strip() for line in log.read(64 << 10).splitlines() if line.strip()]
    if not lines:
        return []
    more = len(lines) - 3
    return [f"librpm said: {shown(' | '.join(lines[:3]), 600)}" + (f" (and {more:,} more lines)" if more > 0 else "")]


def _why(exc: BaseException) -> str:
    """One line for an error record: the message of the errors the readers raise on
    purpose, the type too for anything else."""
    if isinstance(exc, (rpmheader.RpmDbError, LimitExceeded)):
        return str(exc)
    return f"cannot be decoded ({type(exc).__name__}: {exc})"


def _headers_python(store: rpmstore.Store, budget: PathBudget, errors: _Errors) -> Iterator[rpmheader.RpmHeader]:
    """Every header of the database's storage the built-in reader can read; each record it
    cannot is a ``package header N`` line in ``errors``."""
    for i, rec in enumerate(store.records()):
        if rec.blob is None:
            errors.header(i, str(rec.problem))
            continue
        try:
            header = rpmheader.parse_header(rec.blob, budget)
        except Exception as exc:  # noqa: BLE001 - one header's failure is that header's error record
            errors.header(i, _why(exc))
            continue
        yield header


def read_database(fs: RootFS, folder: str, backend: str, fname: str, os_release: dict[str, str],
                  *, prefer: str = "auto") -> PackageDatabase:
    """Read one rpm database. ``prefer``: ``auto`` (librpm where it reads the backend; the
    built-in reader otherwise, or when librpm fails or reads fewer headers than the
    database stores and the built-in reader reads more), ``librpm`` or ``python``. The
    database's ``why`` says which read it and why."""
    use_librpm = prefer != "python" and backend in ("sqlite", "bdb") and librpm_available()
    if prefer == "librpm" and not use_librpm:
        db_path = posixpath.join(folder, fname)
        return PackageDatabase("rpm", db_path, backend, "librpm", (), (ErrorRecord(
            db_path, "inventory", f"rpm database ({backend}): librpm cannot read this backend here"),),
            why="--rpm-reader librpm")
    db = _read(fs, folder, backend, fname, os_release, use_librpm)
    if prefer != "auto":
        return replace(db, why=f"--rpm-reader {prefer}")
    if not use_librpm:
        return replace(db, why=f"librpm cannot read {backend} here" if librpm_available() else "no librpm bindings")
    if db.records is not None and (db.read or 0) >= db.records and not db.unread_parts \
            and not (not db.packages and db.errors):
        return replace(db, why="librpm read every header stored")
    fallback = _read(fs, folder, backend, fname, os_release, False)
    stored = ("an uncounted number of" if db.records is None
              else f"at least {db.records:,}" if db.unread_parts else f"{db.records:,}")
    if (fallback.read or 0) > (db.read or 0):
        # (its records name each header it could not read)
        return replace(fallback, why=f"librpm read {db.read or 0:,} of the {stored} headers stored, the built-in "
                                     f"reader {fallback.read or 0:,}")
    if not db.packages and db.errors:
        # neither could read it: say what each reader found
        lines = [e.message for e in db.errors] + [
            e.message.replace(f"rpm database ({backend}): ", "built-in reader: ") for e in fallback.errors]
        more = len(lines) - 40
        msg = "; ".join(lines[:20] + lines[-20:] if more > 0 else lines) + (f" ({more:,} more lines)" if more > 0 else "")
        return replace(db, packages=(), errors=(ErrorRecord(db.path, "inventory", msg),),
                       why="neither librpm nor the built-in reader could read it")
    return replace(db, why=f"librpm read {db.read or 0:,} of the {stored} headers stored, the built-in reader "
                           f"no more ({fallback.read or 0:,})")


def _read(fs: RootFS, folder: str, backend: str, fname: str, os_release: dict[str, str],
          use_librpm: bool) -> PackageDatabase:
    """One reader's read of a database, with the records its storage holds counted and
    reconciled with the headers read: every record not read is said, with the numbers."""
    reader = "librpm" if use_librpm else "python"
    db_path = posixpath.join(folder, fname)
    errors = _Errors()
    packages: list[Package] = []
    budget = PathBudget()
    read = 0
    records: int | None = None
    variants: dict[tuple[int, int], int] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="flightcheck-rpmdb-") as tmp:
        store = rpmstore.Store(os.path.join(tmp, fname), backend)
        try:
            _copy_db(fs, folder, backend, fname, tmp)
            headers = _headers_librpm(tmp, budget, errors) if use_librpm else _headers_python(store, budget, errors)
            for h in headers:
                read += 1
                for v in h.variants:
                    variants[v] = variants.get(v, 0) + 1
                if h.name == "gpg-pubkey":
                    continue  # imported signing keys, not software
                problems = list(h.problems)
                try:
                    packages.append(_package(h, os_release, db_path, problems))
                except Exception as exc:  # noqa: BLE001 - one package's failure is its own error record
                    problems.append(_why(exc))
                errors.extend(f"package {shown(h.name, 100)}: {m}" for m in problems)
            records = _reconcile(store, use_librpm, read, errors)
        except OSError as exc:
            errors.append(f"cannot read: {exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - the database stops here; what was read is kept
            errors.append(_why(exc))
    if store.layout:
        notes.append(store.layout)
    notes.extend(f"{n:,} header(s) store tag {tag} as {_TYPE_NAMES.get(typ, typ)}, a width rpm 4 does not declare "
                 f"for it (an older rpm's writing): read by the stored type" for (tag, typ), n in sorted(variants.items()))
    starved = budget.starved_record(db_path)
    errs = tuple(ErrorRecord(db_path, "inventory", f"rpm database ({backend}): {m}") for m in errors)
    failed = None if records is None else max(records - read, 0)
    return PackageDatabase("rpm", db_path, backend, reader, tuple(packages), errs + ((starved,) if starved else ()),
                           records=records, read=read, failed=failed, unread_parts=store.unread,
                           notes=tuple(notes))


_TYPE_NAMES = {1: "CHAR", 2: "INT8", 3: "INT16", 4: "INT32", 5: "INT64"}


def _reconcile(store: rpmstore.Store, use_librpm: bool, read: int, errors: _Errors) -> int | None:
    """The records the storage holds (None: it could not be walked), after the read; the
    lines saying what was not read (headers skipped or failed, pages not counted) go to
    ``errors``."""
    errors.unlisted()
    failed = errors.failed
    if use_librpm:
        records: int | None
        try:
            records, counted = rpmstore.count(store.path, store.backend)
            store.problems, store.layout, store.unread = counted.problems, counted.layout, counted.unread
        except (rpmheader.RpmDbError, OSError) as exc:
            records = None
            errors.append(f"the stored headers could not be counted: {_why(exc)}")
        skipped = records - read - failed if records is not None and records > read + failed else 0
        if skipped and records is not None:
            errors.append(f"librpm read {read:,} of the {records:,} package headers stored; "
                          f"{skipped:,} could not be read")
    else:
        records = read + failed
        if failed:
            errors.append(f"{failed:,} of the {records:,} package headers stored could not be read")
    errors.extend(store.problems)
    if store.unread:
        errors.append(f"{store.unread:,} part(s) of the storage could not be read: the count of "
                      f"{records or 0:,} headers stored leaves out what they held")
    return records


def _package(h: rpmheader.RpmHeader, os_release: dict[str, str], db_path: str, problems: list[str]) -> Package:
    """The package record of one header of an installed database."""
    return rpm_package(h.name, h.epoch, h.version, h.release, h.arch, source=h.source, vendor=h.vendor,
                       license_raw=h.license, files=h.files, database=db_path, problems=problems,
                       namespace=purlmod.namespace(os_release), distro=purlmod.distro(os_release))


def rpm_package(name: str, epoch: int | None, version: str, release: str | None, arch: str | None, *,
                source: str | None, vendor: str | None, license_raw: str | None, files: tuple[str, ...],
                database: str, problems: list[str], location: str | None = None, namespace: str | None = None,
                distro: str | None = None, repository_url: str | None = None) -> Package:
    """One rpm package record, installed (``namespace``/``distro`` from the target's
    os-release) or in a repository (``location``, ``repository_url``): an ARCH that is no
    architecture name is left out, and said in ``problems``."""
    arch = checked_arch(arch, problems)
    return Package(
        id=package_id("rpm", name, epoch, version, release, arch), manager="rpm", name=name, epoch=epoch,
        version=version, release=release, arch=arch, source=source, vendor=vendor, license_raw=license_raw,
        purl=purl("rpm", name, version, epoch=epoch, release=release, arch=arch, namespace=namespace, distro=distro,
                  repository_url=repository_url),
        files=files, database=database, location=location,
    )


def _failed(path: str, backend: str, prefer: str, exc: BaseException) -> PackageDatabase:
    """A database whose read failed as a whole: no packages, one record saying why."""
    return PackageDatabase("rpm", path, backend, "python" if prefer == "python" else "librpm", (),
                           (ErrorRecord(path, "inventory", f"rpm database ({backend}): {_why(exc)}"),))


@register
class RpmReader:
    """The rpm databases of a target (:class:`~scanner.inventory.readers.PackageReader`):
    every one found, read by librpm or the built-in reader as ``ctx.rpm_reader`` asks. One
    database that cannot be read, whatever the reason, is that database's error record; the
    others are read. Macro files that could not be looked at (one may have named a database
    elsewhere) are the reader's notes (see :func:`~scanner.inventory.readers.read_databases`)."""

    manager = "rpm"

    def locate(self, fs: RootFS, ctx: ReadContext) -> Found:
        errors: list[ErrorRecord] = []
        try:
            found = find_databases(fs, errors)
        except Exception as exc:  # noqa: BLE001 - looking for databases failed: said, not a crash
            errors.append(ErrorRecord("/", "inventory", f"rpm databases could not be looked for: {_why(exc)}"))
            found = []
        return Found(tuple(Location(posixpath.join(folder, fname), backend, (folder, fname))
                           for folder, backend, fname in found), tuple(errors))

    def identity(self, fs: RootFS, location: Location, ctx: ReadContext) -> str:
        """The database file's identity (and its WAL's), the reader asked for and whether
        librpm is here, and the os-release fields in the purls."""
        folder, fname = location.parts
        backend, prefer = location.backend, ctx.rpm_reader
        h = hashlib.sha256(f"{backend}\0{fname}\0{prefer}\0{librpm_available()}\0"
                           f"{sorted(ctx.os_release.items())}".encode())
        for name in (fname, fname + "-wal"):
            try:
                h.update(file_key(fs.stat(posixpath.join(folder, name))).encode())
            except FileNotFoundError:
                h.update(b"-")
        return h.hexdigest()[:32]

    def read(self, fs: RootFS, location: Location, ctx: ReadContext) -> PackageDatabase:
        folder, fname = location.parts
        try:
            return read_database(fs, folder, location.backend, fname, dict(ctx.os_release), prefer=ctx.rpm_reader)
        except Exception as exc:  # noqa: BLE001 - a database's failure is its own error record
            return _failed(location.path, location.backend, ctx.rpm_reader, exc)

    def keep(self, db: PackageDatabase) -> bool:
        return not any("cannot read" in e.message for e in db.errors)  # a failure of the moment is not kept

    def reader_name(self, ctx: ReadContext) -> str:
        return "python" if ctx.rpm_reader == "python" else "librpm"


def read_all(fs: RootFS, os_release: dict[str, str], *, prefer: str = "auto") -> list[PackageDatabase]:
    """Every rpm database of the target, not remembered (see :class:`RpmReader`)."""
    return read_databases(RpmReader(), fs, ReadContext(os_release, prefer))
