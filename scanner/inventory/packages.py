"""Package records and file ownership, shared by every package manager.

Each manager's reader (:mod:`scanner.inventory.rpmdb`, :mod:`scanner.inventory.dpkg`, behind
the interface of :mod:`scanner.inventory.readers`) turns its database into :class:`Package`
records in a :class:`PackageDatabase`;
ownership is computed afterwards, once, from those records: an index from canonical path
inside the target to package id. Paths are canonicalised through the target's own links,
so a file recorded as ``/lib/x86_64-linux-gnu/libc.so.6`` owns
``/usr/lib/x86_64-linux-gnu/libc.so.6`` when ``/lib`` links to ``usr/lib`` (merged /usr).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.limits import LimitExceeded
from scanner.target import RootFS


@dataclass(frozen=True)
class Package:
    """One installed package, whatever manager installed it."""

    id: str
    manager: str  # rpm | dpkg | apk | opkg | python | golang | cargo | elf-note
    name: str
    epoch: int | None
    version: str
    release: str | None
    arch: str | None
    source: str | None  # source rpm / source package
    vendor: str | None  # rpm vendor / dpkg maintainer
    license_raw: str | None  # rpm LICENSE tag; dpkg: set by the licensing stage
    purl: str
    files: tuple[str, ...] = field(repr=False)
    database: str = ""  # guest path of the database it came from (a repository's folder or URL)
    location: str | None = None  # repositories: the package file, relative to the repository
    #: where the license was read when not the manager's one field (Python metadata: which of
    #: License-Expression, License, the classifiers); the licensing stage's ``source``
    license_from: str | None = None


@dataclass(frozen=True)
class PackageDatabase:
    """What one database of the target holds."""

    manager: str
    path: str  # guest path of the database folder or file
    backend: str  # sqlite | bdb | ndb | dpkg-status | apk-installed | opkg-status
    reader: str  # librpm | python | python-debian
    packages: tuple[Package, ...]
    errors: tuple[ErrorRecord, ...] = ()
    #: the install prefix removed from its packages' paths (they are matched without it: see
    #: :mod:`scanner.inventory.relocation`), and the note that says why; None for nearly all
    prefix_stripped: str | None = None
    prefix_note: str | None = None
    #: records the database stores, by a walk of its storage (rpm: one per package header;
    #: None when not counted, or when the storage could not be walked at all)
    records: int | None = None
    #: headers (records) read into packages (rpm: gpg-pubkey headers are read, not listed)
    read: int | None = None
    #: records counted but not read (each said in an error record)
    failed: int | None = None
    #: parts of the storage (pages, slots) whose records could not even be counted
    unread_parts: int = 0
    #: why this reader read it (``--rpm-reader auto``: which reader, and why)
    why: str = ""
    #: what was read differently from how the format's own tools read it (not errors)
    notes: tuple[str, ...] = ()


class PathBudget:
    """What file lists one database (or one repository's filelists) may still build.

    A package's file list is built from the target's own strings (rpm: a directory name
    joined to each base name; dpkg: the lines of a ``.list``), so its size is the attacker's
    choice: 1 MiB directory names times 150,000 base names is 150 GB. Every path is
    measured *before* it is built: longer than ``MAX_PACKAGE_PATH_CHARS`` it names no file
    and is left out; a package's list stops at ``MAX_PACKAGE_FILES_CHARS`` and the
    database's lists at ``MAX_DATABASE_FILES_CHARS`` (the packages after that are listed
    without files). Each cut is said in ``problems`` (for the package's error record): a
    file whose owner was not read then shows as unowned *and* explained, never silently."""

    def __init__(self) -> None:
        self.left = limits.MAX_DATABASE_FILES_CHARS
        #: packages whose files were not read at all because the database's cap was reached
        self.starved = 0

    def paths(self, pairs: Iterable[tuple[str, str]], problems: list[str]) -> tuple[str, ...]:
        """The paths ``folder + name`` of ``pairs``, within the caps; what was left out is
        appended to ``problems`` as one line each."""
        if self.left <= 0:
            self.starved += 1
            return ()
        out: list[str] = []
        used = too_long = 0
        for folder, name in pairs:
            n = len(folder) + len(name)
            if n > limits.MAX_PACKAGE_PATH_CHARS:
                too_long += 1
                continue
            if used + n > limits.MAX_PACKAGE_FILES_CHARS:
                problems.append(str(LimitExceeded("MAX_PACKAGE_FILES_CHARS", limits.MAX_PACKAGE_FILES_CHARS,
                                                  f"file list cut after {len(out):,} paths")))
                break
            if n > self.left:
                problems.append(str(LimitExceeded("MAX_DATABASE_FILES_CHARS", limits.MAX_DATABASE_FILES_CHARS,
                                                  f"file list cut after {len(out):,} paths; the packages after "
                                                  "this one are listed without their files")))
                self.left = 0
                break
            used += n
            self.left -= n
            out.append(folder + name if folder else name)
        if too_long:
            problems.insert(0, str(LimitExceeded("MAX_PACKAGE_PATH_CHARS", limits.MAX_PACKAGE_PATH_CHARS,
                                                 f"{too_long:,} longer file paths left out")))
        return tuple(out)

    def starved_record(self, path: str) -> ErrorRecord | None:
        """The one record for the packages listed without files, or None when there are none."""
        if not self.starved:
            return None
        return ErrorRecord(path, "inventory", str(LimitExceeded(
            "MAX_DATABASE_FILES_CHARS", limits.MAX_DATABASE_FILES_CHARS,
            f"the files of {self.starved:,} more packages were not read")))


# ---- a database read, remembered by the scan cache (--cache) -----------------------------
def database_to_memo(db: PackageDatabase) -> dict[str, Any]:
    """A database read as plain JSON values, for the scan cache."""
    return {"reader": db.reader,
            # a package's files as one NUL-separated string (no path holds a NUL): a database
            # of 140,000 paths reads back as 1,000 strings, split in C
            "packages": [[p.id, p.name, p.epoch, p.version, p.release, p.arch, p.source, p.vendor, p.license_raw,
                          p.purl, "\0".join(p.files)] for p in db.packages],
            "errors": [[e.path, e.message] for e in db.errors],
            "counts": [db.records, db.read, db.failed, db.unread_parts], "why": db.why, "notes": list(db.notes)}


def database_from_memo(value: Any, manager: str, path: str, backend: str) -> PackageDatabase:
    """A remembered read back into records, every field's type checked (ValueError when
    one does not fit: the database is then read again)."""
    if not isinstance(value, dict) or not isinstance(value.get("packages"), list) \
            or not isinstance(value.get("reader"), str) or not isinstance(value.get("errors"), list):
        raise ValueError("not a remembered package database")
    packages = []
    for p in value["packages"]:
        if not isinstance(p, list) or len(p) != 11:
            raise ValueError("not a package")
        pid, name, epoch, version, release, arch, source, vendor, license_raw, purl, files = p
        if not all(isinstance(x, str) for x in (pid, name, version, purl)) \
                or not all(x is None or isinstance(x, str) for x in (release, arch, source, vendor, license_raw)) \
                or not (epoch is None or type(epoch) is int) \
                or not isinstance(files, str):
            raise ValueError("a package field of the wrong type")
        packages.append(Package(id=pid, manager=manager, name=name, epoch=epoch, version=version, release=release,
                                arch=arch, source=source, vendor=vendor, license_raw=license_raw, purl=purl,
                                files=tuple(files.split("\0")) if files else (), database=path))
    errors = []
    for e in value["errors"]:
        if not isinstance(e, list) or len(e) != 2 or not all(isinstance(x, str) for x in e):
            raise ValueError("not an error record")
        errors.append(ErrorRecord(e[0], "inventory", e[1]))
    counts, why, notes = value.get("counts"), value.get("why"), value.get("notes")
    if not isinstance(counts, list) or len(counts) != 4 or not all(c is None or type(c) is int for c in counts) \
            or not isinstance(why, str) or not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ValueError("counts, why or notes of the wrong type")
    return PackageDatabase(manager, path, backend, value["reader"], tuple(packages), tuple(errors),
                           records=counts[0], read=counts[1], failed=counts[2], unread_parts=counts[3] or 0, why=why,
                           notes=tuple(notes))


def package_id(manager: str, name: str, epoch: int | None, version: str, release: str | None,
               arch: str | None) -> str:
    """A stable, readable id: ``rpm/bash-5.1.8-1.cm2.x86_64``, ``deb/libc6_2.36-9_amd64``."""
    if manager == "dpkg":
        return f"deb/{name}_{version}_{arch or 'all'}"
    evr = (f"{epoch}:" if epoch else "") + version + (f"-{release}" if release else "")
    return f"rpm/{name}-{evr}.{arch or 'noarch'}"


_SURROGATE = re.compile(r"\\udc([89a-f][0-9a-f])")


def shown(value: str, limit: int = 200) -> str:
    """A target string quoted for an error message: control characters escaped (``repr``),
    an undecodable byte spelled ``\\xNN`` as :func:`scanner.result.text` spells it in the
    rest of the result (not ``\\udcNN``), and at most ``limit`` characters of it."""
    cut = value[:limit]
    return _SURROGATE.sub(r"\\x\1", repr(cut)) + ("..." if len(value) > limit else "")


_ARCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def checked_arch(arch: str | None, problems: list[str]) -> str | None:
    """An architecture as package managers name them (``x86_64``, ``noarch``, ``amd64``,
    ``armhf``, ``all``); anything else (bytes that are not UTF-8, escape sequences,
    markup: a field nothing checks before the target's own tools) is left out of the
    record and said in ``problems``, rather than carried into ids, purls and reports."""
    if arch is None or _ARCH.fullmatch(arch):
        return arch
    problems.append(f"architecture {shown(arch, 64)} is not an architecture name; left out")
    return None


class OwnershipIndex:
    """Canonical guest path -> id of the package that installed it, built once. When two
    packages list the same file (under the same name, or under names that resolve to
    the same place, such as ``/lib/...`` and ``/usr/lib/...`` on a merged-/usr system),
    the first package read owns it."""

    def __init__(self, fs: RootFS, databases: Iterable[PackageDatabase]) -> None:
        self.fs = fs
        self._dirs: dict[str, str] = {}
        self._ids: list[str] = [pkg.id for db in databases for pkg in db.packages]
        lists = [pkg.files for db in databases for pkg in db.packages]
        # listed path -> index of the first package listing it, in bulk (later updates
        # overwrite, so the packages are taken last to first)
        raw: dict[str, int] = {}
        for i in range(len(lists) - 1, -1, -1):
            raw.update(dict.fromkeys(lists[i], i))
        # each folder resolved once. A file in a folder that resolves to itself (nearly all)
        # is listed under its canonical path; a folder that resolves elsewhere (``/lib`` on
        # a merged-/usr system) is noted as an alias of where it leads, and looked at only
        # when a path there is asked for
        self._aliases: dict[str, list[str]] = {}
        for d in {f.rpartition("/")[0] for f in raw}:
            c = self._canonical_dir(d)
            if c != (d or "/"):
                self._aliases.setdefault(c, []).append(d)
        self._owners = raw

    @property
    def owners(self) -> dict[str, str]:
        """The whole index (canonical path -> package id)."""
        moved = {d for ds in self._aliases.values() for d in ds}
        best = {path: i for path, i in self._owners.items() if path.rpartition("/")[0] not in moved}
        for path, i in self._owners.items():
            if path.rpartition("/")[0] in moved:
                target = self.canonical(path)
                if best.get(target, i + 1) > i:
                    best[target] = i
        return {path: self._ids[i] for path, i in best.items()}

    def canonical(self, path: str) -> str:
        """``path`` with its folder resolved inside the target (the file name itself is
        kept: a package that ships a symlink owns the link, not its target)."""
        parent, _, name = path.rpartition("/")
        d = self._dirs.get(parent)
        if d is None:
            d = self._canonical_dir(parent)
        return (d if d != "/" else "") + "/" + name

    def _canonical_dir(self, d: str) -> str:
        """Folders resolved one component at a time on top of their resolved parent: one
        ``lstat`` per distinct folder, a full resolution only where a link is met. Iterative
        (the nearest resolved ancestor first, then down): a package may list a path of
        thousands of components, deeper than Python's recursion limit."""
        if d in ("", "/"):
            return "/"
        got = self._dirs.get(d)
        if got is not None:
            return got
        pending: list[str] = []  # d and its ancestors not resolved yet, deepest first
        while d not in ("", "/") and d not in self._dirs:
            pending.append(d)
            d = d.rpartition("/")[0]
        base = self._dirs.get(d, "/")
        for folder in reversed(pending):
            cand = (base if base != "/" else "") + "/" + folder.rpartition("/")[2]
            try:
                st = self.fs.lstat(cand)
                if stat.S_ISLNK(st.st_mode):
                    cand = self.fs.resolve(cand, strict=False)
            except OSError:
                pass  # a folder that is not there keeps its recorded name
            self._dirs[folder] = base = cand
        return base

    def owner(self, path: str) -> str | None:
        """The package that installed ``path`` (under any name that leads there), the
        first one read when several did."""
        target = self.canonical(path)
        i = self._owners.get(target)
        folder, _, name = target.rpartition("/")
        for alias in self._aliases.get(folder or "/", ()):
            j = self._owners.get((alias if alias != "/" else "") + "/" + name)
            if j is not None and (i is None or j < i):
                i = j
        return None if i is None else self._ids[i]
