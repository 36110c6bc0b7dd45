"""Alpine's apk database of a target: ``/lib/apk/db/installed`` (``/usr/lib/apk/db/installed``
on newer layouts), as ``apk info -L`` and ``apk info -W`` read it.

The database is paragraphs of ``X:value`` lines, one paragraph a package (apk-tools'
``apk_db_index_read``): ``P`` name, ``V`` version (``1.2.2-r3``: upstream version and package
release, kept whole, as apk compares and prints it), ``A`` architecture, ``L`` license (kept as
written: SPDX, ``MIT BSD GPL2+``, ``custom``; the licensing stage reads it), ``o`` origin (the
source package), ``m`` maintainer, ``c`` the aports commit; then the package's files: each ``F``
line names a folder (relative to the root) and the ``R`` lines after it the files in that
folder (``a``, ``M``, ``Z`` lines carry their modes and checksums and are not read here). A
package's files are the ``R`` entries, made absolute: ``F:usr/lib`` + ``R:libz.so.1`` is
``/usr/lib/libz.so.1``.

Package URLs follow the purl spec's ``apk`` type as Syft writes it:
``pkg:apk/alpine/musl@1.2.2-r3?arch=armv7&distro=alpine-3.14.2`` (namespace the os-release
``ID``, ``distro`` its ``ID-VERSION_ID``).

Hostile input (see :mod:`scanner.inventory.textdb`): a line that is not ``X:value``, a
paragraph without a valid ``P`` or any ``V`` (or a version over its cap) is an error record and
the package is skipped; a version apk would not parse, an architecture that is none, an ``F``
folder that is absolute or not normalised (``../../etc``), an ``R`` name that is not one file
name, or a path longer than PATH_MAX is an error record and the rest of the package is listed.
"""

from __future__ import annotations

import re

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.inventory.packages import Package, PackageDatabase, PathBudget, checked_arch, shown
from scanner.inventory.purl import distro, namespace, purl
from scanner.inventory.readers import register
from scanner.inventory.textdb import (Paragraph, TextDbReader, checked_path, ends_cut, overlong_version, read_capped,
                                      read_located, read_paragraphs)
from scanner.target import RootFS

CANDIDATES = ("/lib/apk/db/installed", "/usr/lib/apk/db/installed")
MANAGER, BACKEND = "apk", "apk-installed"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,255}")
# apk-tools' version grammar (src/version.c): digits and dots, one letter, ``_suffix[N]`` parts,
# ``~hash``, ``-rN``
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?")


@register
class ApkReader(TextDbReader):
    """apk's database (:class:`~scanner.inventory.readers.PackageReader`): ``installed``,
    which holds every package's file list inline."""

    manager, backend, candidates = MANAGER, BACKEND, CANDIDATES

    def parse(self, fs: RootFS, os_release: dict[str, str], path: str) -> PackageDatabase:
        return _read(fs, os_release, path)


def read_database(fs: RootFS, os_release: dict[str, str]) -> PackageDatabase | None:
    """The apk database of the target, or None when it has none."""
    return read_located(fs, CANDIDATES, "apk", MANAGER, BACKEND, lambda path: _read(fs, os_release, path))


def _read(fs: RootFS, os_release: dict[str, str], path: str) -> PackageDatabase:
    """Every paragraph of the database at ``path``, each package's files within one budget."""
    errors: list[ErrorRecord] = []
    data = read_capped(fs, path, limits.MAX_APK_INSTALLED_BYTES, "MAX_APK_INSTALLED_BYTES", errors, whole=b"\n\n")
    if data is None:
        return PackageDatabase(MANAGER, path, BACKEND, "python", (), tuple(errors))
    ends_cut(data, path, errors)
    packages = read_paragraphs(data, path, lambda start, block, budget: _package(os_release, path, start, block,
                                                                                 budget, errors), errors)
    return PackageDatabase(MANAGER, path, BACKEND, "python", tuple(packages), tuple(errors))


def _fields(start: int, block: list[str]) -> Paragraph:
    """The ``X:value`` lines of one paragraph; ValueError naming the first line that is not one."""
    fields = []
    for i, line in enumerate(block):
        if len(line) < 2 or line[1] != ":" or not (line[0].isascii() and line[0].isalpha()):
            raise ValueError(f"line {start + i}: {shown(line, 80)} is not an 'X:value' line")
        fields.append((line[0], line[2:]))
    return Paragraph(start, tuple(fields))


def _package(os_release: dict[str, str], path: str, start: int, block: list[str], budget: PathBudget,
             errors: list[ErrorRecord]) -> Package | None:
    """The record of the paragraph at line ``start``, or None (and an error record) when it
    names no package that can be listed."""
    where = f"paragraph at line {start}"
    try:
        para = _fields(start, block)
    except ValueError as exc:
        errors.append(ErrorRecord(path, "inventory", f"{where}: {exc}; skipped"))
        return None
    name, version = para.get("P"), para.get("V")
    if not name or not version or not _NAME.fullmatch(name):
        errors.append(ErrorRecord(path, "inventory", f"{where}: no valid P (name) or V (version) line; skipped"))
        return None
    overlong = overlong_version(path, name, version)
    if overlong is not None:
        errors.append(overlong)
        return None
    problems: list[str] = []
    if not _VERSION.fullmatch(version):
        problems.append(f"version {shown(version)} is not an apk version; listed as it is")
    arch = checked_arch(para.get("A"), problems)
    files = budget.paths(_file_pairs(para, problems), problems)
    errors.extend(ErrorRecord(path, "inventory", f"package {name}: {m}") for m in problems)
    return Package(
        id=f"apk/{name}-{version}.{arch or 'noarch'}", manager=MANAGER, name=name, epoch=None, version=version,
        release=None, arch=arch, source=para.get("o") or name, vendor=para.get("m") or None,
        license_raw=para.get("L") or None, purl=purl("apk", name, version, arch=arch, namespace=namespace(os_release),
                                                             distro=distro(os_release)),
        files=files, database=path,
    )


def _file_pairs(para: Paragraph, problems: list[str]) -> list[tuple[str, str]]:
    """``(folder, name)`` of each ``R`` line, the folder the ``F`` line before it names
    (``/`` before any), checked: the paths themselves are built, and measured, by the budget."""
    pairs: list[tuple[str, str]] = []
    folder: str | None = "/"
    for key, value in para.fields:
        if key == "F":
            if len(value) > limits.MAX_PACKAGE_PATH_CHARS:
                folder = "/" + value + "/"  # its files are longer still: the budget leaves them out, and counts them
            elif not value:
                folder = "/"
            else:
                norm = checked_path("/" + value, problems, f"folder F:{shown(value, 80)}")
                folder = None if norm is None else norm.rstrip("/") + "/"
        elif key == "R" and folder is not None:
            if not value or "/" in value or value in (".", ".."):
                problems.append(f"file R:{shown(value)} in {shown(folder)} is not a file name; ignored")
                continue
            pairs.append((folder, value))
    return pairs
