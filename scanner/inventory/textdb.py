"""What the text package databases of small systems share: Alpine's apk
(``lib/apk/db/installed``) and opkg's (OpenWrt, Yocto/OpenEmbedded: ``status`` and
``info/<package>.list``/``.control``). Both are paragraphs of ``key: value`` lines, as dpkg's
status is; both list a package's files as paths the target wrote.

The target is hostile here exactly as in :mod:`scanner.inventory.dpkg`: every file is opened
through the target's own API (never a FIFO or a device: a file that is not regular is an error
record, not a hang), read up to a named cap and no further (whole lines only), bytes that are not
UTF-8 are kept as surrogate escapes, a path that is not absolute and normalised or is longer than
PATH_MAX is an error record, and the paths one database builds are bounded by
:class:`~scanner.inventory.packages.PathBudget`. A paragraph that cannot be read is an error
record and the rest is read; the paragraphs read and the packages listed are counted and
reconciled (:func:`reconcile`), so no package is lost without a record saying so.

Their caps are in :mod:`scanner.limits` (``MAX_APK_INSTALLED_BYTES``, ``MAX_OPKG_STATUS_BYTES``,
``MAX_OPKG_CONTROL_BYTES``), read when a database is read.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.inventory.memo import file_key
from scanner.inventory.packages import Package, PackageDatabase, PathBudget, shown
from scanner.inventory.readers import Found, Location, ReadContext
from scanner.limits import LimitExceeded
from scanner.target import RootFS


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of a text database: its fields in order (a key may repeat: apk's ``F``
    and ``R`` lines), and the line it starts on (1-based, for error messages)."""

    line: int
    fields: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        """The first value of ``key``, or None."""
        for k, v in self.fields:
            if k == key:
                return v
        return None


def locate(fs: RootFS, candidates: tuple[str, ...], what: str) -> tuple[str | None, list[ErrorRecord]]:
    """The first of ``candidates`` the target has (a file or anything else there: a FIFO is
    then refused when read, not taken for "no database"), and a record for each further one
    that is a different file (the same file under two names, ``/lib`` linking to ``usr/lib``,
    is one database)."""
    found = [p for p in candidates if fs.exists(p) or fs.is_symlink(p)]
    if not found:
        return None, []
    notes = []
    for other in found[1:]:
        try:
            same = fs.resolve(found[0]) == fs.resolve(other)
        except OSError:
            same = False
        if not same:
            notes.append(ErrorRecord(other, "inventory", f"a second {what} database; not read ({found[0]} was)"))
    return found[0], notes


def unreadable(manager: str, path: str, backend: str, why: str) -> PackageDatabase:
    """A database that could not be read at all: no packages, one record saying why."""
    return PackageDatabase(manager, path, backend, "python", (), (ErrorRecord(path, "inventory", why),))


def read_located(fs: RootFS, candidates: tuple[str, ...], what: str, manager: str, backend: str,
                 read: Callable[[str], PackageDatabase]) -> PackageDatabase | None:
    """The database found at the first of ``candidates`` read by ``read``, or None when the
    target has none; a failure of the whole read is the database's one error record (never
    the scan's), and what :func:`locate` noticed (a second, different database) is kept."""
    path, notes = locate(fs, candidates, what)
    if path is None:
        return None
    try:
        db = read(path)
    except Exception as exc:  # noqa: BLE001 - the database's failure is its error record, not the scan's
        db = unreadable(manager, path, backend, f"cannot be read ({type(exc).__name__}: {exc})")
    if notes:
        db = PackageDatabase(db.manager, db.path, db.backend, db.reader, db.packages, tuple(notes) + db.errors)
    return db


def read_capped(fs: RootFS, path: str, cap: int, cap_name: str, errors: list[ErrorRecord],
                whole: bytes = b"\n") -> bytes | None:
    """The bytes of the regular file ``path``, at most ``cap`` of them; None (and an error
    record) when it is not a regular file or cannot be read. A file over the cap is cut at the
    last ``whole`` separator before it (a line, or a paragraph with ``b"\\n\\n"``), so nothing is
    read half, and the cut is said."""
    if not fs.is_file(path):
        why = "not a regular file; not read" if fs.exists(path) or fs.is_symlink(path) else "missing"
        errors.append(ErrorRecord(path, "inventory", why))
        return None
    try:
        data = fs.read(path, cap + 1)
    except OSError as exc:
        errors.append(ErrorRecord(path, "inventory", f"cannot read: {exc.strerror or exc}"))
        return None
    if len(data) > cap:
        data = data[:data.rfind(whole, 0, cap) + len(whole)] if whole in data[:cap] else b""
        errors.append(ErrorRecord(path, "inventory", str(LimitExceeded(cap_name, cap, "read only that far"))))
    return data


def decode(data: bytes) -> str:
    """Text with undecodable bytes kept as surrogate escapes (the project's one policy)."""
    return data.decode("utf-8", "surrogateescape")


def lines_of(data: bytes) -> list[str]:
    """The lines of ``data``, split at ``\\n`` only (``str.splitlines`` would also split at
    U+2028, ``\\x1c``, ``\\x85`` and ``\\r``, which a name may hold), ``\\r\\n`` taken as one."""
    text = decode(data)
    if text.endswith("\n"):
        text = text[:-1]
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")] if text else []


def paragraphs(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, lines)`` of each blank-line separated paragraph."""
    start, block = 0, list[str]()
    for n, line in enumerate(lines, 1):
        if line.strip():
            if not block:
                start = n
            block.append(line)
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


def control_fields(start: int, block: list[str]) -> Paragraph:
    """A Debian-control paragraph (``Key: value``, continuation lines starting with a space or
    a tab, as opkg writes ``Conffiles`` and ``Description``). ValueError naming the line when a
    line is neither: the paragraph is then not trusted at all, as dpkg refuses it."""
    fields: list[tuple[str, str]] = []
    for i, line in enumerate(block):
        if line[:1] in (" ", "\t"):
            if not fields:
                raise ValueError(f"line {start + i}: a continuation line with no field before it")
            k, v = fields[-1]
            fields[-1] = (k, v + "\n" + line.strip())
            continue
        key, colon, value = line.partition(":")
        if not colon or not _CONTROL_KEY.fullmatch(key):
            raise ValueError(f"line {start + i}: {shown(line, 80)} is not a 'Field: value' line")
        fields.append((key, value.strip()))
    return Paragraph(start, tuple(fields))


_CONTROL_KEY = re.compile(r"[!-9;-~][!-9;-~]*")  # deb-control(5): printable ASCII but ':', not '#' first


def checked_path(path: str, problems: list[str], where: str) -> str | None:
    """``path`` when it is absolute and normalised (a trailing ``/`` of a folder allowed), else
    None and a line in ``problems``: ``../../etc/passwd``, ``usr/bin/x``, ``/a/./b`` name no file
    the package manager wrote, and following them could lead out of the root."""
    norm = posixpath.normpath(path) if path.startswith("/") else ""
    if not norm or norm != (path.rstrip("/") or "/") or "/../" in path + "/" or norm.startswith("//"):
        problems.append(f"{where}: {shown(path)} is not a path inside the target; ignored")
        return None
    return norm


def read_path_list(fs: RootFS, path: str, budget: PathBudget, errors: list[ErrorRecord]) -> tuple[str, ...]:
    """A package's file list (opkg's ``info/<package>.list``): one absolute path a line; a
    second, tab-separated field (OpenWrt writes the file's mode there) is not part of the path.
    Read up to the package's cap (a huge file is never read whole); each bad line is an error
    record naming it, and the caps cut it as :class:`PathBudget` says."""
    data = read_capped(fs, path, limits.MAX_PACKAGE_FILES_CHARS, "MAX_PACKAGE_FILES_CHARS", errors)
    if data is None:
        return ()
    problems: list[str] = []

    def pairs() -> Iterator[tuple[str, str]]:
        for n, line in enumerate(lines_of(data), 1):
            entry = line.split("\t", 1)[0]
            if not entry or entry == "/.":
                continue
            if len(entry) > limits.MAX_PACKAGE_PATH_CHARS:
                yield "", entry  # left out, and counted, by the budget
                continue
            norm = checked_path(entry, problems, f"line {n}")
            if norm is not None and norm != "/":
                yield "", norm

    files = budget.paths(pairs(), problems)
    errors.extend(ErrorRecord(path, "inventory", m) for m in problems)
    return files


def ends_cut(data: bytes, path: str, errors: list[ErrorRecord]) -> None:
    """An error record when the file ends inside a line: both apk and opkg end every line
    (and every paragraph) with a newline, so such a file was cut short, and its last
    paragraph may be missing what followed (it is read as it is)."""
    if data and not data.endswith(b"\n"):
        errors.append(ErrorRecord(path, "inventory", "the file ends inside a line: it was cut short; its last "
                                                     "paragraph is read as it is"))


def read_paragraphs(data: bytes, path: str, parse: Callable[[int, list[str], PathBudget], object],
                    errors: list[ErrorRecord]) -> list[Package]:
    """The packages of a paragraph database (apk's ``installed``, opkg's ``status``): every
    paragraph handed to ``parse(start_line, lines, budget)`` with one file-list budget for
    the database; a paragraph whose parser raises is an error record; the paragraphs read
    are reconciled with the packages listed and those ``parse`` says are ``"gone"``."""
    packages: list[Package] = []
    budget = PathBudget()
    read = gone = 0
    for start, block in paragraphs(lines_of(data)):
        read += 1
        try:
            pkg = parse(start, block, budget)
        except Exception as exc:  # noqa: BLE001 - one paragraph's failure is its own error record
            errors.append(ErrorRecord(path, "inventory", f"paragraph at line {start}: cannot be read "
                                                         f"({type(exc).__name__}: {exc}); skipped"))
            continue
        if isinstance(pkg, Package):
            packages.append(pkg)
        elif pkg == "gone":
            gone += 1
    starved = budget.starved_record(path)
    if starved:
        errors.append(starved)
    reconcile(path, read, len(packages), gone, errors)
    return packages


def overlong_version(path: str, name: str, version: str) -> ErrorRecord | None:
    """The error record of a package whose version is longer than
    ``MAX_PACKAGE_VERSION_CHARS`` (it is then skipped), else None."""
    if len(version) <= limits.MAX_PACKAGE_VERSION_CHARS:
        return None
    return ErrorRecord(path, "inventory", f"package {name}: " + str(LimitExceeded(
        "MAX_PACKAGE_VERSION_CHARS", limits.MAX_PACKAGE_VERSION_CHARS, f"a version of {len(version):,} characters"))
        + "; skipped")


def reconcile(path: str, read: int, listed: int, not_installed: int, errors: list[ErrorRecord]) -> None:
    """One error record when the paragraphs read are not all accounted for: each is a listed
    package or one recorded as not installed; any other was skipped (its own record says why)
    and is counted here, so a database read in part never passes for a whole one."""
    skipped = read - listed - not_installed
    if skipped:
        errors.append(ErrorRecord(path, "inventory", f"{read:,} paragraphs read, {listed:,} packages listed, "
                                                     f"{not_installed:,} not installed, {skipped:,} skipped"))


def fingerprint(fs: RootFS, path: str, os_release: Mapping[str, str], folder: str | None = None,
                suffixes: tuple[str, ...] = ()) -> str | None:
    """What a read of the database file ``path`` depends on: its identity, the os-release
    fields its purls carry, and (opkg) the identities of the files of ``folder`` ending in one
    of ``suffixes`` (their names and stats, not contents: listed inside the root, never
    followed out of it). None when ``path`` is not a regular file (never read, so nothing to
    remember); OSError when it cannot be looked at."""
    if not fs.is_file(path):
        return None
    h = hashlib.sha256(repr(sorted(os_release.items())).encode("utf-8", "surrogateescape"))
    if folder is not None:
        try:
            for name, kind, st in sorted(fs.listdir_stat(fs.resolve(folder))):
                if name.endswith(suffixes):
                    h.update(f"{name}\0{kind}\0{file_key(st) if st else '-'}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(b"no folder")
    return file_key(fs.stat(path)) + "+" + h.hexdigest()[:32]


class TextDbReader:
    """The :class:`~scanner.inventory.readers.PackageReader` of a one-file text database
    (apk's ``installed``, opkg's ``status``): found at the first of ``candidates`` (a second,
    different one is a record, not read), read by ``parse`` (``fs, os_release, path``), its
    whole failure the database's one error record. Subclasses set the class attributes."""

    manager = ""
    backend = ""
    candidates: tuple[str, ...] = ()
    #: the folder beside the database whose files a read also depends on (opkg's ``info``)
    beside: str | None = None
    beside_suffixes: tuple[str, ...] = ()

    def parse(self, fs: RootFS, os_release: dict[str, str], path: str) -> PackageDatabase:
        raise NotImplementedError

    def locate(self, fs: RootFS, ctx: ReadContext) -> Found:
        path, notes = locate(fs, self.candidates, self.manager)
        return Found((Location(path, self.backend),) if path else (), tuple(notes))

    def identity(self, fs: RootFS, location: Location, ctx: ReadContext) -> str | None:
        folder = posixpath.join(posixpath.dirname(location.path), self.beside) if self.beside else None
        return fingerprint(fs, location.path, ctx.os_release, folder, self.beside_suffixes)

    def read(self, fs: RootFS, location: Location, ctx: ReadContext) -> PackageDatabase:
        try:
            return self.parse(fs, dict(ctx.os_release), location.path)
        except Exception as exc:  # noqa: BLE001 - the database's failure is its error record, not the scan's
            return unreadable(self.manager, location.path, self.backend,
                              f"cannot be read ({type(exc).__name__}: {exc})")

    def keep(self, db: PackageDatabase) -> bool:
        return True

    def reader_name(self, ctx: ReadContext) -> str:
        return "python"
