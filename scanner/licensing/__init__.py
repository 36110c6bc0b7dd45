"""Stage 4, licensing: every package's license as SPDX, its category, and for each ELF
file the licenses of everything it links (its own package's, then each library's
through the package that owns it): the table a lawyer asks for.

Inputs are the inventory's package records and the linkage's closures; the name tables
and the network-copyleft list are data (``rules/licenses/``, the policy)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from scanner.inventory.elf import ElfRecord
from scanner.inventory.memo import Memo, code_fingerprint
from scanner.inventory.packages import Package, PackageDatabase
from scanner.licensing.categories import DEFAULT_NETWORK_COPYLEFT, category
from scanner.licensing.debian import read_copyright
from scanner.licensing.normalize import LicenseOutcome, license_ref, normalize, one_spelling
from scanner.licensing.tables import LicenseTables, load_tables
from scanner.target import RootFS

__all__ = ["LicenseOutcome", "LicenseTables", "LinkedLicense", "PackageLicense", "license_closures",
           "license_packages", "load_tables", "normalize"]


#: the field each manager's records carry their license in (dpkg's is a copyright file): the
#: ``license_source`` of a package is its manager's name when that field is set. apk writes
#: SPDX since Alpine 3.x (``GPL-2.0-only``) and older lists (``MIT BSD GPL2+``); opkg's is
#: the recipe's ``LICENSE``: SPDX-style ids joined by ``&``/``|`` on Yocto (``GPLv2 & bzip2``,
#: OpenEmbedded's names), SPDX on OpenWrt (``GPL-2.0-or-later``)
LICENSE_FIELDS = {"rpm": "rpm LICENSE tag", "apk": "apk L: field", "opkg": "opkg License: field"}


@dataclass(frozen=True)
class PackageLicense:
    package: str  # package id
    raw: str | None
    source: str  # rpm | apk | opkg | dep5 | copyright-text | notice-text | pointer-only | none | a metadata field
    evidence: str
    outcome: LicenseOutcome
    category: str


@dataclass(frozen=True)
class LinkedLicense:
    """One line of the lawyer's table: a linked library and the license it brings."""

    soname: str
    path: str | None
    package: str | None
    license: str | None
    category: str


def license_packages(fs: RootFS | None, databases: Iterable[PackageDatabase], tables: LicenseTables,
                     network_copyleft: tuple[str, ...] = DEFAULT_NETWORK_COPYLEFT,
                     memo: Memo | None = None) -> dict[str, PackageLicense]:
    """The license of every package: rpm's LICENSE tag, apk's ``L:``, opkg's ``License:``,
    dpkg's copyright file (``memo``: the scan cache, which keeps what each copyright file
    said), the metadata of Python distributions. ``fs`` is None for a repository's
    packages, which have only their own declaration."""

    # what each distinct raw string meant last time, when the tables, the policy's names and
    # the code are the same (the scan cache): normalising is most of a rescan's license work
    fingerprint = _outcomes_fingerprint(tables, network_copyleft) if memo is not None else ""
    known = (memo.get("licenses", "outcomes", fingerprint, _a_dict) if memo is not None else None) or {}
    learned: dict[str, list[Any]] = {}

    @lru_cache(maxsize=None)
    def outcome(raw: str | None) -> tuple[LicenseOutcome, str]:
        key = "\0none" if raw is None else raw
        hit = _outcome_from_json(raw, known.get(key)) if isinstance(known, dict) else None
        if hit is not None:
            return hit
        o = normalize(raw, tables)
        cat = category(o.spdx, proprietary_refs=tables_props, public_domain_refs=tables_pd,
                       network_copyleft=network_copyleft)
        learned[key] = [o.spdx, o.status, o.refs, list(o.notes), o.proprietary, o.public_domain, cat]
        return o, cat

    tables_props = frozenset(e.spdx for e in tables.names.values() if e.proprietary and e.spdx.startswith("LicenseRef-"))
    tables_pd = frozenset(e.spdx for e in tables.names.values() if e.public_domain and e.spdx.startswith("LicenseRef-"))
    out: dict[str, PackageLicense] = {}
    for db in databases:
        for pkg in db.packages:
            try:
                out[pkg.id] = _package_license(fs, pkg, outcome, memo)
            except Exception as exc:  # noqa: BLE001 - one package's license, not the scan: unknown, never better
                ref = license_ref(f"{pkg.name}-license")
                why = f"could not be read ({type(exc).__name__}: {exc})"
                out[pkg.id] = PackageLicense(pkg.id, pkg.license_raw, "none", why,
                                             LicenseOutcome(pkg.license_raw, ref, "unknown", {ref: why}, (why,)),
                                             "unknown")
    if memo is not None and learned:
        memo.put("licenses", "outcomes", fingerprint, {**(known if isinstance(known, dict) else {}), **learned})
    return _one_ref_spelling(out, tables)


#: how a free-text copyright file was read, as a package's license notes say it
FREE_TEXT = {
    "copyright-text": "read from free-text copyright",
    "notice-text": "read from the notice text of a free-text copyright file (its grants, version clauses, license texts)",
    "pointer-only": "read from free-text copyright: only its /usr/share/common-licenses pointers name a license",
    "python-license-file": "read from the license text a Python distribution ships (its License-File)",
}

#: what each metadata field a license may be read from is called in a finding's evidence
FIELD_EVIDENCE = {
    "python-license-expression": "METADATA License-Expression (an SPDX expression, core metadata 2.4)",
    "python-license": "METADATA License field",
    "python-classifier": "METADATA License :: classifiers",
    "python-license-file": "the License-File texts of the .dist-info, read by the notice reader",
}


def _package_license(fs: RootFS | None, pkg: Package, outcome: Callable[[str | None], tuple[LicenseOutcome, str]],
                     memo: Memo | None) -> PackageLicense:
    """One package's license: dpkg's copyright file; the license field of the others' own
    records (rpm's LICENSE tag, apk's ``L:``, opkg's ``License:``, a Python distribution's
    metadata), source named by manager or field."""
    if pkg.manager == "dpkg" and fs is not None:
        deb = read_copyright(fs, pkg.name, memo)
        raw, source, evidence = deb.raw, deb.read or deb.source, deb.evidence
    elif pkg.license_from is not None:  # a field of the package's own metadata (Python)
        raw, source, evidence = pkg.license_raw, pkg.license_from, FIELD_EVIDENCE.get(pkg.license_from, pkg.license_from)
    elif pkg.manager in ("golang", "cargo", "elf-note"):  # what a binary declares names no license
        raw, source, evidence = None, "none", f"{pkg.manager} metadata names no license"
    else:
        manager = pkg.manager if pkg.manager in LICENSE_FIELDS else "rpm"
        raw, source, evidence = pkg.license_raw, (manager if pkg.license_raw else "none"), LICENSE_FIELDS[manager]
    o, cat = outcome(raw)
    if source in FREE_TEXT and o.status in ("exact", "guess"):  # a reading of free text is never certain
        o = LicenseOutcome(o.raw, o.spdx, "guess", o.refs, (*o.notes, FREE_TEXT[source]), o.proprietary, o.public_domain)
    elif source == "copyright-text" and raw is None:
        ref = license_ref(f"{pkg.name}-copyright")
        o = LicenseOutcome(None, ref, "unknown", {ref: evidence}, ("copyright file is not machine-readable",))
        cat = "unknown"
    return PackageLicense(pkg.id, raw, source, evidence, o, cat)


def _one_ref_spelling(out: dict[str, PackageLicense], tables: LicenseTables) -> dict[str, PackageLicense]:
    """Every LicenseRef id spelt one way across the packages (SPDX ids ignore case)."""
    preferred = frozenset(r for e in (*tables.names.values(), *tables.exceptions.values())
                          for r in re.findall(r"LicenseRef-[A-Za-z0-9.-]+", e.spdx))
    ids = list(out)
    for pid, o in zip(ids, one_spelling([out[i].outcome for i in ids], preferred)):
        if o is not out[pid].outcome:
            out[pid] = replace(out[pid], outcome=o)
    return out


def _outcomes_fingerprint(tables: LicenseTables, network_copyleft: tuple[str, ...]) -> str:
    """Everything a license outcome depends on: the name tables (with a policy's
    additions), the network-copyleft list, and the code that maps and categorises."""
    h = hashlib.sha256(repr((sorted(tables.names.items()), sorted(tables.exceptions.items()),
                             network_copyleft)).encode("utf-8", "surrogateescape"))
    h.update(code_fingerprint("licensing/categories.py", "licensing/normalize.py", "licensing/expression.py",
                              "licensing/tables.py").encode())
    return h.hexdigest()


def _outcome_from_json(raw: str | None, value: Any) -> tuple[LicenseOutcome, str] | None:
    """A remembered outcome, checked field by field (None when it does not fit)."""
    if not isinstance(value, list) or len(value) != 7:
        return None
    spdx, status, refs, notes, prop, pd, cat = value
    if not (isinstance(spdx, str) and isinstance(status, str) and isinstance(cat, str) and isinstance(refs, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in refs.items())
            and isinstance(notes, list) and all(isinstance(n, str) for n in notes)
            and isinstance(prop, bool) and isinstance(pd, bool)):
        return None
    return LicenseOutcome(raw, spdx, status, refs, tuple(notes), prop, pd), cat


def _a_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("not remembered license outcomes")
    return value


def license_closures(elves: Iterable[ElfRecord], closures: Mapping[str, Mapping[str, str | None]],
                     owners: Mapping[str, str | None], owner_of: Callable[[str], str | None],
                     licenses: Mapping[str, PackageLicense]) -> dict[str, list[LinkedLicense]]:
    """For each dynamic ELF file, every library of its closure with the package that owns
    it and that package's license."""
    out: dict[str, list[LinkedLicense]] = {}
    known: dict[tuple[str, str | None], LinkedLicense] = {}  # the same library recurs in thousands of closures
    for rec in elves:
        closure = closures.get(rec.path)
        if not closure:
            continue
        rows = []
        for soname, path in closure.items():
            row = known.get((soname, path))
            if row is None:
                pkg = owners.get(path) if path is not None and path in owners else (owner_of(path) if path else None)
                lic = licenses.get(pkg) if pkg else None
                row = known[soname, path] = LinkedLicense(soname, path, pkg, lic.outcome.spdx if lic else None,
                                                          lic.category if lic else "unknown")
            rows.append(row)
        out[rec.path] = rows
    return out

