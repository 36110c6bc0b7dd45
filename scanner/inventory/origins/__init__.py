"""Origins of the ELF files no system package database owns.

After the census and the package databases, the ELF files still unowned are explained where
they can be, each origin a package record with its own manager, purl and files:

1. Python distributions (:mod:`.python`): the ``*.dist-info`` / ``*.egg-info`` of the site
   folders above an unowned file; their ``RECORD`` lists the files they own;
2. what the file says of itself (:mod:`.embedded`): systemd's ``.note.package``
   (manager ``elf-note``), Go build info (``golang``: the main module owns the file, its
   dependencies are packages of their own without files) and cargo-auditable data
   (``cargo``, the same way).

What is left is grouped into trees (:func:`unowned_trees`), so that a report can say "836
files under /root/.pyenv" once; FC-INV-001 still fires for each file, with its tree.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.inventory.elf import ElfParseError
from scanner.inventory.origins.embedded import Embedded, Module, read_embedded
from scanner.inventory.origins.python import read_site, site_folders
from scanner.inventory.packages import Package, PackageDatabase
from scanner.inventory.purl import purl_string
from scanner.limits import LimitExceeded
from scanner.target import RootFS

#: the purl type of a package note's ``type`` field (systemd's spec names rpm, deb, ...)
NOTE_PURL_TYPES = {"rpm": "rpm", "deb": "deb", "apk": "apk", "alpm": "alpm", "ipk": "opkg"}


@dataclass(frozen=True)
class Tree:
    """Unowned ELF files grouped under one folder: the highest folder that holds no owned
    ELF file (split into its sub-folders when it is ``/`` or a folder just below it)."""

    top: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Origins:
    databases: tuple[PackageDatabase, ...]
    errors: tuple[ErrorRecord, ...]


def find_origins(fs: RootFS, unowned: Sequence[str]) -> Origins:
    """The package records that explain ``unowned`` ELF files (paths as the census
    recorded them), Python distributions first, then what the files declare themselves."""
    errors: list[ErrorRecord] = []
    databases = [read_site(fs, site) for site in site_folders(fs, unowned, errors)]
    owned = {f for db in databases for p in db.packages for f in p.files}
    rest = [p for p in unowned if p not in owned]
    if len(rest) > limits.MAX_ORIGIN_FILES:
        errors.append(ErrorRecord(rest[limits.MAX_ORIGIN_FILES], "inventory", str(LimitExceeded(
            "MAX_ORIGIN_FILES", limits.MAX_ORIGIN_FILES, f"{len(rest):,} unowned ELF files to read for their origin"))))
        rest = rest[: limits.MAX_ORIGIN_FILES]
    for path in rest:
        try:
            fh, st = fs.open_resolved(path)
            with fh:
                found, notes = read_embedded(fh, st.st_size)
        except (OSError, ElfParseError, LimitExceeded) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            errors.append(ErrorRecord(path, "inventory", f"origin not read: {why}"))
            continue
        errors += [ErrorRecord(path, "inventory", f"origin: {n}") for n in notes]
        databases += [_embedded_database(path, e) for e in found if e.modules or e.notes]
    return Origins(tuple(databases), tuple(errors))


def _embedded_database(path: str, found: Embedded) -> PackageDatabase:
    """The packages one file declares, as a database named after the file: its own
    component owns it, the others (dependencies) own no file."""
    packages = tuple(_package(path, found.kind, m) for m in found.modules)
    backend = {"elf-note": "elf-note", "golang": "go-buildinfo", "cargo": "cargo-auditable"}[found.kind]
    errors = tuple(ErrorRecord(path, "inventory", n) for n in found.notes if "not read" in n)
    return PackageDatabase(found.kind, path, backend, "python", packages, errors)


def _package(path: str, kind: str, m: Module) -> Package:
    files = (path,) if m.main else ()
    if kind == "golang":
        namespace, _, name = m.name.rpartition("/")
        purl = purl_string("golang", namespace or None, name, m.version, {})
        vendor = None
    elif kind == "cargo":
        purl = purl_string("cargo", None, m.name, m.version, {})
        vendor = None
    else:
        ptype = NOTE_PURL_TYPES.get(m.facts.get("type", ""), "generic")
        quals = {"arch": m.facts["architecture"]} if m.facts.get("architecture") else {}
        purl = purl_string(ptype, None, m.name, m.version, quals)
        vendor = m.facts.get("os") or None
    source = m.replaced_by if kind == "golang" else m.facts.get("source")
    return Package(id=f"{kind}/{m.name}@{m.version}:{path}", manager=kind, name=m.name, epoch=None,
                   version=m.version, release=None, arch=m.facts.get("architecture") or None, source=source,
                   vendor=vendor, license_raw=None, purl=purl, files=files, database=path)


def unowned_trees(unowned: Iterable[str], owned: Iterable[str]) -> list[Tree]:
    """The unowned ELF files grouped by their top: the highest ancestor folder with no
    owned ELF file under it. A top of ``/`` or one folder below it (``/root``, ``/opt``,
    ``/home``) is split into its sub-folders, which name what was installed there better."""
    dirty: set[str] = {"/"}
    for path in owned:
        folder = posixpath.dirname(path)
        while folder not in dirty:
            dirty.add(folder)
            folder = posixpath.dirname(folder)
    groups: dict[str, list[str]] = {}
    for path in unowned:
        parts = path.strip("/").split("/")[:-1]
        top = posixpath.dirname(path)
        for depth in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:depth])
            if folder not in dirty:
                top = "/" + "/".join(parts[:max(depth, 2)]) if depth < 2 and len(parts) >= 2 else folder
                break
        groups.setdefault(top, []).append(path)
    return [Tree(top, tuple(sorted(files))) for top, files in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
