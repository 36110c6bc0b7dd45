"""opkg's database of a target (OpenWrt; Yocto/OpenEmbedded images built with ipk packages):
the ``status`` file, ``/usr/lib/opkg/status`` on OpenWrt and ``/var/lib/opkg/status`` on
Yocto/OE, and beside it ``info/<package>.list`` (the package's files, one absolute path a line;
OpenWrt may add the file's mode as a second, tab-separated field) and ``info/<package>.control``
(the package's control paragraph), as ``opkg files`` and ``opkg search`` read them.

``status`` is Debian-control paragraphs (``Package``, ``Version``, ``Architecture``, ``Status``
``want flag state``); a package whose state is ``not-installed`` or ``config-files`` is not
installed (``install ok installed``, ``install user installed``, ``install hold installed``
are). OpenWrt keeps the ``License`` field only in ``info/<package>.control``; Yocto's status may
carry it itself, and then that one is taken.

Package URLs: ``pkg:opkg/<os ID>/<name>@<version>?arch=...&distro=<ID>-<VERSION_ID>``. opkg is
not a registered purl type (the purl spec lists none for ipk packages). Syft (1.x,
``syft/pkg/cataloger/debian``: its ``dpkg-db-cataloger`` also globs ``**/lib/opkg/status`` and
``**/lib/opkg/info/*.control``) catalogs opkg's packages as ``deb`` packages and writes a
``pkg:deb`` purl only when os-release names ``debian`` in ``ID`` or ``ID_LIKE``, so on OpenWrt
and Yocto it writes none; this reader writes its own type rather than claim they are Debian's.

Hostile input (see :mod:`scanner.inventory.textdb`): a paragraph with a line that is not
``Field: value``, without a valid ``Package`` or any ``Version``, or with a ``Status`` that is
not three words is an error record and is skipped; an architecture that is none, a ``.list``
line that is not an absolute, normalised path (``../../etc/passwd``) or is longer than PATH_MAX,
and a ``.list`` (or ``.control``) that is not a regular file each become an error record, and so
does a package with no ``.list`` at all (opkg writes one for every package it installs).
"""

from __future__ import annotations

import posixpath
import re

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.inventory.packages import Package, PackageDatabase, PathBudget, checked_arch, shown
from scanner.inventory.purl import distro, namespace, purl
from scanner.inventory.readers import register
from scanner.inventory.textdb import (Paragraph, TextDbReader, control_fields, ends_cut, lines_of, overlong_version,
                                      paragraphs, read_paragraphs,
                                      read_capped, read_located, read_path_list)
from scanner.target import RootFS

CANDIDATES = ("/usr/lib/opkg/status", "/var/lib/opkg/status")
MANAGER, BACKEND = "opkg", "opkg-status"
GONE = {"not-installed", "config-files"}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]{0,255}")
_EPOCH = re.compile(r"[0-9]{1,9}")


@register
class OpkgReader(TextDbReader):
    """opkg's database (:class:`~scanner.inventory.readers.PackageReader`): ``status`` and
    the ``.list`` and ``.control`` files of ``info/`` beside it (their identities are part of
    what a remembered read depends on)."""

    manager, backend, candidates = MANAGER, BACKEND, CANDIDATES
    beside, beside_suffixes = "info", (".list", ".control")

    def parse(self, fs: RootFS, os_release: dict[str, str], path: str) -> PackageDatabase:
        return _read(fs, os_release, path)


def read_database(fs: RootFS, os_release: dict[str, str]) -> PackageDatabase | None:
    """The opkg database of the target, or None when it has none."""
    return read_located(fs, CANDIDATES, "opkg", MANAGER, BACKEND,
                        lambda status: _read(fs, os_release, status))


def _read(fs: RootFS, os_release: dict[str, str], status: str) -> PackageDatabase:
    """Every paragraph of ``status``, each package's files (``info/`` beside it) within one
    budget, the paragraphs counted and reconciled with the packages listed."""
    errors: list[ErrorRecord] = []
    data = read_capped(fs, status, limits.MAX_OPKG_STATUS_BYTES, "MAX_OPKG_STATUS_BYTES", errors, whole=b"\n\n")
    if data is None:
        return PackageDatabase(MANAGER, status, BACKEND, "python", (), tuple(errors))
    ends_cut(data, status, errors)
    info = posixpath.dirname(status) + "/info"
    packages = read_paragraphs(data, status, lambda start, block, budget: _package(
        fs, os_release, status, info, control_fields(start, block), budget, errors), errors)
    return PackageDatabase(MANAGER, status, BACKEND, "python", tuple(packages), tuple(errors))


def _package(fs: RootFS, os_release: dict[str, str], status: str, info: str, para: Paragraph, budget: PathBudget,
             errors: list[ErrorRecord]) -> Package | str | None:
    """The record of one status paragraph; ``"gone"`` for a package not installed; None (and
    an error record) for a paragraph that names no package that can be listed."""
    where = f"paragraph at line {para.line}"
    name, version = para.get("Package"), para.get("Version")
    if not name or not version or not _NAME.fullmatch(name):
        errors.append(ErrorRecord(status, "inventory", f"{where}: no valid Package/Version field; skipped"))
        return None
    state = (para.get("Status") or "").split()
    if len(state) != 3:
        errors.append(ErrorRecord(status, "inventory", f"package {name}: Status {shown(para.get('Status') or '')} "
                                                       "is not 'want flag state'; skipped"))
        return None
    if state[2] in GONE:
        return "gone"
    overlong = overlong_version(status, name, version)
    if overlong is not None:
        errors.append(overlong)
        return None
    problems: list[str] = []
    if any(c.isspace() or not c.isprintable() for c in version):
        problems.append(f"Version {shown(version)} holds spaces or control characters; listed as it is")
    e, colon, _ = version.partition(":")
    epoch = (int(e) or None) if colon and _EPOCH.fullmatch(e) else None
    arch = checked_arch(para.get("Architecture"), problems)
    control = _control(fs, f"{info}/{name}.control", errors)
    files = _files(fs, f"{info}/{name}.list", budget, errors)
    errors.extend(ErrorRecord(status, "inventory", f"package {name}: {m}") for m in problems)
    license_raw = para.get("License") or (control.get("License") if control else None) or None
    source = (control.get("SourceName") if control else None) or name
    vendor = para.get("Maintainer") or (control.get("Maintainer") if control else None) or None
    return Package(
        id=f"opkg/{name}_{version}_{arch or 'all'}", manager=MANAGER, name=name, epoch=epoch, version=version,
        release=None, arch=arch, source=source, vendor=vendor, license_raw=license_raw,
        purl=purl("opkg", name, version, arch=arch, namespace=namespace(os_release),
                                                             distro=distro(os_release)), files=files, database=status,
    )


def _control(fs: RootFS, path: str, errors: list[ErrorRecord]) -> Paragraph | None:
    """The package's own control paragraph (where OpenWrt keeps ``License``), or None when
    there is none or it cannot be read (then an error record says why)."""
    if not (fs.exists(path) or fs.is_symlink(path)):
        return None
    data = read_capped(fs, path, limits.MAX_OPKG_CONTROL_BYTES, "MAX_OPKG_CONTROL_BYTES", errors)
    if data is None:
        return None
    for start, block in paragraphs(lines_of(data)):
        try:
            return control_fields(start, block)
        except ValueError as exc:
            errors.append(ErrorRecord(path, "inventory", f"{exc}; its License is not read"))
        return None
    return None


def _files(fs: RootFS, path: str, budget: PathBudget, errors: list[ErrorRecord]) -> tuple[str, ...]:
    """The package's files from its ``.list``; none, and an error record, when it has no
    readable list."""
    if fs.is_file(path):
        return read_path_list(fs, path, budget, errors)
    if fs.exists(path) or fs.is_symlink(path):  # a FIFO, a device, a folder, a dangling link: never opened
        errors.append(ErrorRecord(path, "inventory", "not a regular file; not read, the package's files are "
                                                     "listed as nobody's"))
    else:
        errors.append(ErrorRecord(path, "inventory", "missing: the package's files are listed as nobody's"))
    return ()
