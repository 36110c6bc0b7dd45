"""dpkg's database of a Debian-family target: ``/var/lib/dpkg/status`` (parsed with
python-debian), ``info/<package>[:<arch>].list`` for each package's files, and
``diversions`` (a diverted file belongs to the diverting package; the diverted package's
copy lives at the new name), as ``dpkg -S`` reports them.

Hostile input: a paragraph without ``Package`` or ``Version`` and a ``.list`` line that is
not an absolute, normalised path (``../../etc/passwd``) each become an error record; the
rest of the database is read.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import replace
from typing import Any


from scanner.errors import ErrorRecord
from scanner.inventory.packages import (Package, PackageDatabase, database_from_memo, database_to_memo, make_purl,
                                        package_id)
from scanner.target import RootFS

ADMINDIR = "/var/lib/dpkg"
GONE = {"not-installed", "config-files"}
MAX_STATUS = 256 << 20


def _parse_version(v: str) -> tuple[int | None, str, str | None]:
    """Debian ``[epoch:]upstream[-revision]``."""
    epoch = None
    if ":" in v:
        e, _, v = v.partition(":")
        epoch = int(e) if e.isdigit() else None
    upstream, sep, rev = v.rpartition("-")
    if not sep:
        return epoch, v, None
    return epoch, upstream, rev


def _read_list(fs: RootFS, path: str, errors: list[ErrorRecord]) -> tuple[str, ...]:
    try:
        text = fs.read(path, MAX_STATUS).decode("utf-8", "surrogateescape")
    except OSError:
        return ()
    files = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line == "/.":
            continue
        norm = posixpath.normpath(line)
        if not line.startswith("/") or norm != line.rstrip("/") or "/../" in line + "/":
            errors.append(ErrorRecord(path, "inventory", f"line {n}: {line!r} is not a path inside the target; ignored"))
            continue
        files.append(norm)
    return tuple(files)


def _diversions(fs: RootFS, errors: list[ErrorRecord]) -> list[tuple[str, str, str]]:
    """``(from, to, by)`` triples of ``/var/lib/dpkg/diversions`` (``by`` is ``:`` for a
    local diversion)."""
    path = f"{ADMINDIR}/diversions"
    try:
        lines = fs.read(path, MAX_STATUS).decode("utf-8", "surrogateescape").splitlines()
    except OSError:
        return []
    if len(lines) % 3:
        errors.append(ErrorRecord(path, "inventory", f"{len(lines)} lines is not a whole number of diversions; the last is ignored"))
    return [(lines[i], lines[i + 1], lines[i + 2]) for i in range(0, len(lines) - 2, 3)]


def _fingerprint(fs: RootFS, os_release: dict[str, str]) -> str:
    """What the database read depends on besides the status file: the ``.list`` files and
    diversions (their identities, not contents), and the os-release fields in the purls."""
    from scanner.inventory.cache import file_key

    h = hashlib.sha256(repr(sorted(os_release.items())).encode())
    try:
        for name, kind, st in sorted(fs.listdir_stat(f"{ADMINDIR}/info")):
            if name.endswith(".list"):
                h.update(f"{name}\0{kind}\0{file_key(st) if st else '-'}\n".encode("utf-8", "surrogateescape"))
    except OSError:
        h.update(b"no info folder")
    try:
        h.update(file_key(fs.stat(f"{ADMINDIR}/diversions")).encode())
    except OSError:
        h.update(b"no diversions")
    return "+" + h.hexdigest()[:32]


def read_database(fs: RootFS, os_release: dict[str, str], memo: Any = None) -> PackageDatabase | None:
    """The dpkg database of the target, or None when it has none. ``memo`` (the scan
    cache) keeps the read for the next scan while the status file, the ``.list`` files and
    the diversions are unchanged."""
    status = f"{ADMINDIR}/status"
    if not fs.is_file(status):
        return None
    if memo is not None:
        try:
            st, fp = fs.stat(status), _fingerprint(fs, os_release)
        except OSError:
            memo = None
    if memo is not None:
        hit = memo.memo_get("dpkg", status, st, fp, lambda v: database_from_memo(v, "dpkg", status, "dpkg-status"))
        if hit is not None:
            return hit
    db = _read_database(fs, os_release, status)
    if memo is not None:
        memo.memo_put("dpkg", status, st, database_to_memo(db), fp)
    return db


def _read_database(fs: RootFS, os_release: dict[str, str], status: str) -> PackageDatabase:
    errors: list[ErrorRecord] = []
    try:
        data = fs.read(status, MAX_STATUS)
    except OSError as exc:
        return PackageDatabase("dpkg", status, "dpkg-status", "python-debian", (),
                               (ErrorRecord(status, "inventory", f"cannot read: {exc.strerror or exc}"),))
    from debian.deb822 import Deb822  # noqa: PLC0415 (imported when a database is read, not on a remembered one)

    packages: list[Package] = []
    for n, para in enumerate(Deb822.iter_paragraphs(data.decode("utf-8", "surrogateescape").splitlines()), 1):
        name, version, arch = para.get("Package"), para.get("Version"), para.get("Architecture")
        if not name or not version or not re.match(r"^[a-z0-9][a-z0-9+.-]*$", name):
            errors.append(ErrorRecord(status, "inventory", f"paragraph {n}: no valid Package/Version field; skipped"))
            continue
        state = (para.get("Status") or "").split()
        if len(state) != 3 or state[2] in GONE:
            continue
        files = ()
        for candidate in (f"{ADMINDIR}/info/{name}:{arch}.list", f"{ADMINDIR}/info/{name}.list"):
            if fs.is_file(candidate):
                files = _read_list(fs, candidate, errors)
                break
        epoch, upstream, rev = _parse_version(version)
        source = (para.get("Source") or name).split(" ")[0]
        packages.append(Package(
            id=package_id("dpkg", name, epoch, version, None, arch),
            manager="dpkg", name=name, epoch=epoch, version=version, release=None, arch=arch,
            source=source, vendor=para.get("Maintainer"), license_raw=None,
            purl=make_purl("dpkg", os_release, name, None, version, None, arch),
            files=files, database=status,
        ))
    packages = _apply_diversions(packages, _diversions(fs, errors))
    return PackageDatabase("dpkg", status, "dpkg-status", "python-debian", tuple(packages), tuple(errors))


def _apply_diversions(packages: list[Package], diversions: list[tuple[str, str, str]]) -> list[Package]:
    """Rewrite file lists so each path names the package whose file is really there."""
    if not diversions:
        return packages
    moved: dict[tuple[str, str], str] = {}  # (package, from) -> to
    for frm, to, by in diversions:
        for p in packages:
            if p.name != by and frm in p.files:
                moved[(p.name, frm)] = to
    if not moved:
        return packages
    out = []
    for p in packages:
        if any((p.name, f) in moved for f in p.files):
            files = tuple(moved.get((p.name, f), f) for f in p.files)
            p = replace(p, files=files)
        out.append(p)
    return out
