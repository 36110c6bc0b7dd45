"""Python distributions: the origin of extension modules and bundled libraries that no
system package database lists (a pyenv tree, a virtualenv, ``pip install --user``).

An installed distribution is a ``NAME-VERSION.dist-info`` folder (the core metadata in
``METADATA`` and the files pip installed in ``RECORD``, paths relative to the folder that
holds it: PyPA's "Recording installed projects") or, from setuptools' older installs, an
``.egg-info`` folder (``PKG-INFO``, ``installed-files.txt`` relative to the ``.egg-info``
folder itself). Only the folders that hold an ELF file no system package owns are looked
at: each such file's ancestors are listed once, and a folder holding them (:func:`is_site`)
is a site folder whose distributions are all read.

The license is read as the metadata declares it: ``License-Expression`` (core metadata
2.4, PEP 639, an SPDX expression), else a one-line ``License`` field, else the
``License ::`` trove classifiers (their last part, joined with AND when there are several:
the classifiers do not say whether several mean a choice, and AND promises nothing the
package did not say). The source is recorded with the license.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import HeaderParser

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.inventory.packages import Package, PackageDatabase
from scanner.inventory.purl import purl_string
from scanner.limits import LimitExceeded
from scanner.target import RootFS

MANAGER = "python"
#: the suffixes of installed-distribution folders
SUFFIXES = (".dist-info", ".egg-info")


#: trove classifiers (PyPI's ``License ::`` list) by the name the license tables read: the
#: SPDX id where the classifier names one license and version, else the umbrella name the
#: tables read as a guess ("BSD License" says neither which BSD nor which clauses)
CLASSIFIERS = {
    "BSD License": "BSD",
    "GNU General Public License (GPL)": "GPL",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Library or Lesser General Public License (LGPL)": "LGPL",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Eclipse Public License 1.0": "EPL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "zlib/libpng License": "Zlib",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
}


@dataclass(frozen=True)
class Declared:
    """A distribution's license as its metadata declares it, and which field said so."""

    raw: str | None
    source: str  # python-license-expression | python-license | python-classifier | none


def site_folders(fs: RootFS, paths: Iterable[str], errors: list[ErrorRecord]) -> list[str]:
    """The folders among the ancestors of ``paths`` that hold installed distributions,
    each ancestor listed at most once and at most ``MAX_ORIGIN_FOLDERS`` in all."""
    seen: set[str] = set()
    found: list[str] = []
    for path in paths:
        folder = posixpath.dirname(path)
        while folder not in seen and folder not in ("", "/"):
            seen.add(folder)
            if len(seen) > limits.MAX_ORIGIN_FOLDERS:
                errors.append(ErrorRecord(path, "inventory", str(LimitExceeded(
                    "MAX_ORIGIN_FOLDERS", limits.MAX_ORIGIN_FOLDERS, "folders looked at for Python distributions"))))
                return sorted(found)
            try:
                names = fs.listdir(folder)
            except OSError:
                names = []
            if is_site(folder, names):
                found.append(folder)
            folder = posixpath.dirname(folder)
    return sorted(found)


def is_site(folder: str, names: list[tuple[str, str]]) -> bool:
    """Whether a folder holds installed distributions: a ``site-packages`` or
    ``dist-packages`` folder with any, or any folder with a ``.dist-info`` (an ``.egg-info``
    alone is also what ``pip install -e`` leaves in a source checkout, which installs nothing)."""
    dists = [name for name, kind in names if kind == "dir" and name.endswith(SUFFIXES)]
    if posixpath.basename(folder) in ("site-packages", "dist-packages"):
        return bool(dists)
    return any(name.endswith(".dist-info") for name in dists)


def read_site(fs: RootFS, site: str) -> PackageDatabase:
    """Every distribution installed in one site folder, as one package database."""
    packages: list[Package] = []
    errors: list[ErrorRecord] = []
    try:
        names = sorted(name for name, kind in fs.listdir(site) if kind == "dir" and name.endswith(SUFFIXES))
    except OSError as exc:
        return PackageDatabase(MANAGER, site, "site-packages", "python", (),
                               (ErrorRecord(site, "inventory", f"cannot list: {exc.strerror or exc}"),))
    if len(names) > limits.MAX_PYTHON_DISTRIBUTIONS:
        errors.append(ErrorRecord(site, "inventory", str(LimitExceeded(
            "MAX_PYTHON_DISTRIBUTIONS", limits.MAX_PYTHON_DISTRIBUTIONS, f"{len(names):,} distributions"))))
        names = names[: limits.MAX_PYTHON_DISTRIBUTIONS]
    for name in names:
        folder = f"{site}/{name}"
        try:
            packages.append(_distribution(fs, site, folder, errors))
        except (OSError, ValueError, LimitExceeded) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            errors.append(ErrorRecord(folder, "inventory", f"Python distribution not read: {why}"))
    return PackageDatabase(MANAGER, site, "site-packages", "python", tuple(packages), tuple(errors))


def _read_text(fs: RootFS, path: str, cap: str) -> str:
    """A metadata file's text, refused over its cap (read one byte past it to know)."""
    limit = getattr(limits, cap)
    with fs.open(path) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded(cap, limit, path)
    return data.decode("utf-8", "surrogateescape")


def _distribution(fs: RootFS, site: str, folder: str, errors: list[ErrorRecord]) -> Package:
    egg = folder.endswith(".egg-info")
    meta = HeaderParser().parsestr(_read_text(fs, f"{folder}/{'PKG-INFO' if egg else 'METADATA'}",
                                              "MAX_PYTHON_METADATA_BYTES"))
    name, version = (meta.get("Name") or "").strip(), (meta.get("Version") or "").strip()
    if not name or not version:
        raise ValueError("its metadata names no Name and Version")
    if len(name) + len(version) > limits.MAX_PACKAGE_VERSION_CHARS:
        raise ValueError("its Name and Version are implausibly long")
    files = _files(fs, site, folder, egg, errors)
    declared = declared_license(meta.get("License-Expression"), meta.get("License"),
                                meta.get_all("Classifier") or [],
                                [] if meta.get("License-Expression") else
                                _license_texts(fs, folder, meta.get_all("License-File") or []))
    return Package(
        id=f"pypi/{name}@{version}:{folder}", manager=MANAGER, name=name, epoch=None, version=version,
        release=None, arch=None, source=None, vendor=(meta.get("Author") or meta.get("Maintainer") or None),
        license_raw=declared.raw, purl=purl_string("pypi", None, normalized_name(name), version, {}),
        files=files, database=site, license_from=declared.source if declared.raw else None)


def _files(fs: RootFS, site: str, folder: str, egg: bool, errors: list[ErrorRecord]) -> tuple[str, ...]:
    """The files the installer recorded, made absolute and normalised. Paths that are
    implausibly long or not paths at all are left out, and so is the rest of a list that
    stops parsing (a field past the csv module's limit): both said in one error record."""
    name = "installed-files.txt" if egg else "RECORD"
    try:
        text = _read_text(fs, f"{folder}/{name}", "MAX_PYTHON_RECORD_BYTES")
    except FileNotFoundError:
        return ()
    base = folder if egg else site
    rows: Iterable[list[str]] = ([line] for line in text.splitlines()) if egg else csv.reader(io.StringIO(text))
    out: list[str] = []
    dropped, stopped = 0, ""
    try:
        for row in rows:
            if not row or not row[0]:
                continue
            path = posixpath.normpath(row[0] if row[0].startswith("/") else f"{base}/{row[0]}")
            if len(row[0]) > limits.MAX_PACKAGE_PATH_CHARS or not path.startswith("/") or path.startswith("//"):
                dropped += 1
                continue
            out.append(path)
    except csv.Error as exc:
        stopped = f"; the list stops parsing after {len(out):,} paths ({exc}), the rest is not read"
    if dropped or stopped:
        errors.append(ErrorRecord(f"{folder}/{name}", "inventory", f"{dropped:,} paths left out (longer than "
                                  f"MAX_PACKAGE_PATH_CHARS or not paths){stopped}: the files they name show as "
                                  "unowned"))
    return tuple(out)


def _license_texts(fs: RootFS, folder: str, names: list[str]) -> list[str]:
    """The license files a distribution ships (``License-File``: under ``licenses/`` of
    the .dist-info since core metadata 2.4, beside METADATA before), at most four, each
    within ``MAX_PYTHON_METADATA_BYTES``; a name that climbs out of the folder is skipped."""
    texts: list[str] = []
    for name in names[:4]:
        if not name or name.startswith("/") or ".." in name.split("/"):
            continue
        for path in (f"{folder}/licenses/{name}", f"{folder}/{name}"):
            try:
                texts.append(_read_text(fs, path, "MAX_PYTHON_METADATA_BYTES"))
                break
            except (OSError, LimitExceeded):
                continue
    return texts


def declared_license(expression: str | None, field: str | None, classifiers: list[str],
                     license_texts: list[str] | None = None) -> Declared:
    """The license a distribution declares, by the order of precedence of its metadata:
    ``License-Expression``; else what the license files it ships grant (read by the
    notice reader, :mod:`scanner.licensing.notice`: the exact BSD variant, the GPL's
    version clause); else a one-line ``License``; else the classifiers."""
    if expression and expression.strip():
        return Declared(expression.strip(), "python-license-expression")
    if license_texts:
        from scanner.licensing.notice import read_notice

        names = [f.name for text in license_texts for f in read_notice(text).found]
        if names:
            return Declared(" AND ".join(dict.fromkeys(names)), "python-license-file")
    if field and field.strip() and "\n" not in field.strip() and len(field.strip()) <= 200 \
            and field.strip().upper() not in ("UNKNOWN", "NONE"):
        return Declared(field.strip(), "python-license")
    named = [c.rsplit("::", 1)[-1].strip() for c in classifiers if c.startswith("License ::")]
    named = [n for n in named if n and n not in ("OSI Approved", "Other/Proprietary License")] or named
    if named:
        return Declared(" AND ".join(dict.fromkeys(CLASSIFIERS.get(n, n) for n in named)), "python-classifier")
    return Declared(None, "none")


def normalized_name(name: str) -> str:
    """PEP 503's normalised project name (the purl spec's ``pypi`` type asks for it)."""
    return re.sub(r"[-_.]+", "-", name).lower()
