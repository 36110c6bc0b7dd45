"""dpkg's database of a Debian-family target: ``/var/lib/dpkg/status`` (parsed with
python-debian), ``info/<package>[:<arch>].list`` for each package's files, and
``diversions`` (a diverted file belongs to the diverting package; the diverted package's
copy lives at the new name), as ``dpkg -S`` reports them.

Hostile input: a paragraph without ``Package`` or ``Version``, a version dpkg would not
parse (``²:1.0``), an architecture that is none, a ``.list`` line that is not an absolute,
normalised path (``../../etc/passwd``) or is longer than PATH_MAX, and a ``.list`` that is not
a regular file each become an error record; the rest of the database is read. Bytes that
are not UTF-8 are kept as surrogate escapes (``\\udcff``): percent-encoded in purls, shown as
``\\xff`` in the result. The status file, each file list and the database's file lists
together are read up to named caps (:mod:`scanner.limits`).
"""

from __future__ import annotations

import codecs
import hashlib
import posixpath
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.inventory.memo import file_key
from scanner.inventory.packages import Package, PackageDatabase, PathBudget, package_id, shown
from scanner.inventory.purl import distro, namespace, purl
from scanner.inventory.readers import Found, Location, ReadContext, read_databases, register
from scanner.limits import LimitExceeded
from scanner.target import RootFS

ADMINDIR = "/var/lib/dpkg"
GONE = {"not-installed", "config-files"}
FIELDS = ("Package", "Version", "Architecture", "Status", "Source", "Maintainer")  # the fields read
_CODEC = "flightcheck_utf_8_surrogateescape"


def _find_codec(name: str) -> codecs.CodecInfo | None:
    """UTF-8 that keeps undecodable bytes as surrogate escapes, under a name python-debian's
    paragraph parser can be given: the status file is then read with this project's one
    policy for undecodable bytes (kept, percent-encoded in purls, ``\\xNN`` in the result),
    not with a charset guessed line by line."""
    if name != _CODEC:
        return None
    return codecs.CodecInfo(name=_CODEC, encode=lambda s, errors="strict": codecs.utf_8_encode(s, "surrogateescape"),
                            decode=lambda b, errors="strict": codecs.utf_8_decode(b, "surrogateescape", True))


codecs.register(_find_codec)


_VERSION_CHARS = re.compile(r"[A-Za-z0-9.+~:-]*")  # dpkg's parseversion(): upstream part
_REVISION_CHARS = re.compile(r"[A-Za-z0-9.+~]*")  # and revision part (ASCII: C's isalpha)
_EPOCH = re.compile(r"[+-]?[0-9]+")
_EPOCH_MAX = 2**31 - 1  # dpkg keeps the epoch in an int
_ARCH_CHARS = re.compile(r"[a-z0-9][a-z0-9-]*")


def parse_version(v: str) -> int | None:
    """The epoch of a Debian version ``[epoch:]upstream[-revision]``, the syntax checked as
    dpkg's ``parseversion()`` checks it, with its messages: ValueError saying what is
    wrong (dpkg itself refuses all of them but an invalid character, which it only warns
    about). The epoch is ASCII digits only, as C reads them (``int()`` also takes ``²`` and
    other scripts' digits); a version longer than ``MAX_PACKAGE_VERSION_CHARS`` raises
    LimitExceeded first (5,000 digits of epoch are a ValueError in ``int()`` itself)."""
    if len(v) > limits.MAX_PACKAGE_VERSION_CHARS:
        raise LimitExceeded("MAX_PACKAGE_VERSION_CHARS", limits.MAX_PACKAGE_VERSION_CHARS,
                            f"a version of {len(v):,} characters")
    v = v.strip()
    if not v:
        raise ValueError("version string is empty")
    if any(c.isspace() for c in v):
        raise ValueError("version string has embedded spaces")
    epoch = None
    e, colon, rest = v.partition(":")
    if colon:
        digits = _EPOCH.match(e)  # what C's strtol() reads, in ASCII
        if digits is None:
            raise ValueError("epoch in version is empty")
        if digits.end() != len(e):
            raise ValueError("epoch in version is not number")
        epoch = int(digits.group())
        if epoch < 0:
            raise ValueError("epoch in version is negative")
        if epoch > _EPOCH_MAX:
            raise ValueError("epoch in version is too big")
        if not rest:
            raise ValueError("nothing after colon in version number")
        v = rest
    upstream, dash, revision = v.rpartition("-") if "-" in v else (v, "", "")
    if dash and not revision:
        raise ValueError("revision number is empty")
    if not upstream:
        raise ValueError("version number is empty")
    if not _VERSION_CHARS.fullmatch(upstream):
        raise ValueError("invalid character in version number")
    if not _REVISION_CHARS.fullmatch(revision):
        raise ValueError("invalid character in revision number")
    return epoch


def _read_list(fs: RootFS, path: str, budget: PathBudget, errors: list[ErrorRecord]) -> tuple[str, ...]:
    """A package's ``.list``: absolute, normalised paths, within ``budget``'s caps (read
    up to the package's cap, so a huge file is never read whole)."""
    try:
        data = fs.read(path, limits.MAX_PACKAGE_FILES_CHARS + 1)
    except OSError as exc:
        errors.append(ErrorRecord(path, "inventory", f"cannot read: {exc.strerror or exc}; "
                                                     "the package's files are listed as nobody's"))
        return ()
    text = data.decode("utf-8", "surrogateescape")
    if len(data) > limits.MAX_PACKAGE_FILES_CHARS:
        text = text[:text.rfind("\n") + 1]  # not a path cut in two
    problems: list[str] = []

    def paths() -> Iterator[tuple[str, str]]:
        for n, line in enumerate(text.splitlines(), 1):
            if not line or line == "/.":
                continue
            if len(line) > limits.MAX_PACKAGE_PATH_CHARS:
                yield "", line  # left out, and counted, by the budget
                continue
            norm = posixpath.normpath(line)
            if not line.startswith("/") or norm != line.rstrip("/") or "/../" in line + "/":
                problems.append(f"line {n}: {shown(line)} is not a path inside the target; ignored")
                continue
            yield "", norm

    files = budget.paths(paths(), problems)
    if len(data) > limits.MAX_PACKAGE_FILES_CHARS and not any("MAX_PACKAGE_FILES_CHARS" in m for m in problems):
        problems.append(str(LimitExceeded("MAX_PACKAGE_FILES_CHARS", limits.MAX_PACKAGE_FILES_CHARS,
                                          "read only that far")))
    errors.extend(ErrorRecord(path, "inventory", m) for m in problems)
    return files


def _diversions(fs: RootFS, errors: list[ErrorRecord]) -> list[tuple[str, str, str]]:
    """``(from, to, by)`` triples of ``/var/lib/dpkg/diversions`` (``by`` is ``:`` for a
    local diversion)."""
    path = f"{ADMINDIR}/diversions"
    if not fs.exists(path):
        return []
    try:
        lines = fs.read(path, limits.MAX_DPKG_STATUS_BYTES).decode("utf-8", "surrogateescape").splitlines()
    except OSError as exc:
        errors.append(ErrorRecord(path, "inventory", f"cannot read: {exc.strerror or exc}; diversions not applied"))
        return []
    if len(lines) % 3:
        errors.append(ErrorRecord(path, "inventory",
                                  f"{len(lines)} lines is not a whole number of diversions; the last is ignored"))
    return [(lines[i], lines[i + 1], lines[i + 2]) for i in range(0, len(lines) - 2, 3)]


def _fingerprint(fs: RootFS, os_release: dict[str, str]) -> str:
    """What the database read depends on besides the status file: the ``.list`` files and
    diversions (their identities, not contents), and the os-release fields in the purls
    (see :meth:`DpkgReader.identity`)."""
    h = hashlib.sha256(repr(sorted(os_release.items())).encode())
    try:  # listed by its path inside the root: the host would follow a link in it out of the root
        for name, kind, st in sorted(fs.listdir_stat(fs.resolve(f"{ADMINDIR}/info"))):
            if name.endswith(".list"):
                h.update(f"{name}\0{kind}\0{file_key(st) if st else '-'}\n".encode("utf-8", "surrogateescape"))
    except OSError:
        h.update(b"no info folder")
    try:
        h.update(file_key(fs.stat(f"{ADMINDIR}/diversions")).encode())
    except OSError:
        h.update(b"no diversions")
    return "+" + h.hexdigest()[:32]


@register
class DpkgReader:
    """dpkg's database (:class:`~scanner.inventory.readers.PackageReader`): the status file
    and the ``.list`` files and diversions beside it."""

    manager = "dpkg"

    def locate(self, fs: RootFS, ctx: ReadContext) -> Found:
        status = f"{ADMINDIR}/status"
        if fs.is_file(status) or fs.exists(status):  # a FIFO, a device, a folder: refused when read, and said
            return Found((Location(status, "dpkg-status"),))
        return Found()

    def identity(self, fs: RootFS, location: Location, ctx: ReadContext) -> str | None:
        """The status file's identity, then :func:`_fingerprint`; None for a status that is
        not a regular file (never read, so nothing to remember)."""
        if not fs.is_file(location.path):
            return None
        return file_key(fs.stat(location.path)) + _fingerprint(fs, dict(ctx.os_release))

    def read(self, fs: RootFS, location: Location, ctx: ReadContext) -> PackageDatabase:
        status = location.path
        if not fs.is_file(status):
            return _unreadable(status, "not a regular file; not read")
        try:
            return _read_database(fs, dict(ctx.os_release), status)
        except Exception as exc:  # noqa: BLE001 - the database's failure is its error record, not the scan's
            return _unreadable(status, f"cannot be read ({type(exc).__name__}: {exc})")

    def keep(self, db: PackageDatabase) -> bool:
        return True

    def reader_name(self, ctx: ReadContext) -> str:
        return "python-debian"


def read_database(fs: RootFS, os_release: dict[str, str]) -> PackageDatabase | None:
    """The dpkg database of the target, or None when it has none (not remembered: see
    :class:`DpkgReader`)."""
    dbs = read_databases(DpkgReader(), fs, ReadContext(os_release))
    return dbs[0] if dbs else None


def _unreadable(status: str, why: str) -> PackageDatabase:
    """A dpkg database that could not be read at all: no packages, one record saying why."""
    return PackageDatabase("dpkg", status, "dpkg-status", "python-debian", (), (ErrorRecord(status, "inventory", why),))


def _read_database(fs: RootFS, os_release: dict[str, str], status: str) -> PackageDatabase:
    errors: list[ErrorRecord] = []
    try:
        data = fs.read(status, limits.MAX_DPKG_STATUS_BYTES + 1)
    except OSError as exc:
        return _unreadable(status, f"cannot read: {exc.strerror or exc}")
    if len(data) > limits.MAX_DPKG_STATUS_BYTES:
        data = data[:data.rfind(b"\n\n") + 1]  # whole paragraphs only
        errors.append(ErrorRecord(status, "inventory", str(LimitExceeded(
            "MAX_DPKG_STATUS_BYTES", limits.MAX_DPKG_STATUS_BYTES, "the packages after it were not read"))))
    from debian.deb822 import Deb822  # noqa: PLC0415 (imported when a database is read, not on a remembered one)

    packages: list[Package] = []
    budget = PathBudget()
    # lines as bytes (str.splitlines would also split at U+2028, \x1c, \x85), decoded by
    # python-debian with the codec below: its own decoder is strict, then guesses a charset
    paragraphs = Deb822.iter_paragraphs(data.splitlines(), fields=list(FIELDS), encoding=_CODEC)
    for n, para in enumerate(paragraphs, 1):
        try:
            pkg = _package(fs, os_release, status, n, para, budget, errors)
        except Exception as exc:  # noqa: BLE001 - one paragraph's failure is its own error record
            errors.append(ErrorRecord(status, "inventory", f"paragraph {n}: cannot be read "
                                                           f"({type(exc).__name__}: {exc}); skipped"))
            continue
        if pkg is not None:
            packages.append(pkg)
    starved = budget.starved_record(status)
    if starved:
        errors.append(starved)
    packages = _apply_diversions(packages, _diversions(fs, errors))
    return PackageDatabase("dpkg", status, "dpkg-status", "python-debian", tuple(packages), tuple(errors))


def _package(fs: RootFS, os_release: dict[str, str], status: str, n: int, para: Any, budget: PathBudget,
             errors: list[ErrorRecord]) -> Package | None:
    """The record of paragraph ``n`` (None for a package not installed). A paragraph without
    a valid name or any version, or with a version over its cap, is skipped; any other bad
    field (a version dpkg would not parse, an architecture that is none) is an error record
    and the package is listed all the same, as dpkg itself lists it."""
    name, version, arch = para.get("Package"), para.get("Version"), para.get("Architecture")
    if not name or not version or not re.match(r"^[a-z0-9][a-z0-9+.-]*$", name):
        errors.append(ErrorRecord(status, "inventory", f"paragraph {n}: no valid Package/Version field; skipped"))
        return None
    state = (para.get("Status") or "").split()
    if len(state) != 3 or state[2] in GONE:
        return None
    problems: list[str] = []
    try:
        epoch = parse_version(version)
    except LimitExceeded as exc:
        errors.append(ErrorRecord(status, "inventory", f"package {name}: {exc}; skipped"))
        return None
    except ValueError as exc:
        epoch = None
        problems.append(f"Version {shown(version)}: {exc}; listed with this version as it is")
    listed_as = f"{name}:{arch}" if arch and "/" not in arch else name  # the .list dpkg wrote, even so
    if arch is not None and not _ARCH_CHARS.fullmatch(arch):
        problems.append(f"Architecture {shown(arch, 64)} is not an architecture name; left out")
        arch = None
    files: tuple[str, ...] = ()
    for candidate in dict.fromkeys((f"{ADMINDIR}/info/{listed_as}.list", f"{ADMINDIR}/info/{name}.list")):
        if fs.is_file(candidate):
            files = _read_list(fs, candidate, budget, errors)
            break
        if fs.exists(candidate):  # a FIFO, a device, a folder: never opened
            errors.append(ErrorRecord(candidate, "inventory", "not a regular file; not read, the package's files "
                                                              "are listed as nobody's"))
            break
    errors.extend(ErrorRecord(status, "inventory", f"package {name}: {m}") for m in problems)
    source = (para.get("Source") or name).split(" ")[0]
    return Package(
        id=package_id("dpkg", name, epoch, version, None, arch),
        manager="dpkg", name=name, epoch=epoch, version=version, release=None, arch=arch,
        source=source, vendor=para.get("Maintainer"), license_raw=None,
        purl=purl("dpkg", name, version, arch=arch, namespace=namespace(os_release), distro=distro(os_release)),
        files=files, database=status,
    )


def _apply_diversions(packages: list[Package], diversions: list[tuple[str, str, str]]) -> list[Package]:
    """Rewrite file lists so each path names the package whose file is really there (one
    look-up per listed file: a hostile diversions file may hold a million entries)."""
    divert = {frm: (to, by) for frm, to, by in diversions}
    if not divert:
        return packages
    out = []
    for p in packages:
        if any(f in divert and divert[f][1] != p.name for f in p.files):
            p = replace(p, files=tuple(divert[f][0] if f in divert and divert[f][1] != p.name else f for f in p.files))
        out.append(p)
    return out
