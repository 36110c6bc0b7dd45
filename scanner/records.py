"""The records that pass from the inventory, linkage and licensing stages to the checks and
the result document, in the plain-data form both read (:class:`Records`, made once by
:func:`project`).

The checks evaluate these records; the result document holds them unchanged. Neither stage
edits them, and this module imports neither: data flows one way, stages -> records ->
checks -> result.

Strings from the target (paths, sonames, symbol names) may hold bytes that are not UTF-8;
they are kept as ``\\xNN`` escapes (:func:`text`) so the document is always valid JSON text
in UTF-8.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.errors import ErrorRecord
from scanner.inventory.census import Census
from scanner.inventory.elf import ElfRecord
from scanner.inventory.origins import unowned_trees
from scanner.inventory.packages import Package, PackageDatabase
from scanner.licensing import LinkedLicense, PackageLicense
from scanner.linkage.loader import Linkage

#: the loader block of a target whose libraries were not resolved (a repository)
NO_LOADER: dict[str, Any] = {"cache": "none", "interpreters": []}


@dataclass(frozen=True)
class Records:
    """Everything the earlier stages found, as plain data: what the checks read and the
    result document holds. ``summary`` has the counts only typed records know (ELF types,
    static, setuid, unowned files); the license counts are read from ``packages``."""

    elves: list[dict[str, Any]] = field(default_factory=list)
    packages: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    databases: list[dict[str, Any]] = field(default_factory=list)
    license_refs: list[dict[str, str]] = field(default_factory=list)
    unowned_trees: list[dict[str, Any]] = field(default_factory=list)
    loader: dict[str, Any] = field(default_factory=lambda: dict(NO_LOADER))
    summary: dict[str, int] = field(default_factory=dict)


def project(databases: Sequence[PackageDatabase], licenses: Mapping[str, PackageLicense],
            census: Census | None = None, linkage: Linkage | None = None,
            owners: Mapping[str, str | None] | None = None,
            linked: Mapping[str, Sequence[LinkedLicense]] | None = None) -> Records:
    """The stages' typed records made plain data, once. A repository has packages only:
    no ``census`` (ELF files) and no ``linkage``."""
    owners = owners or {}
    linked = linked or {}
    elves_in = census.elves if census is not None else ()
    closures = linkage.closures if linkage is not None else {}
    shared: dict[LinkedLicense, dict[str, Any]] = {}
    trees = unowned_trees([r.path for r in elves_in if owners.get(r.path) is None],
                          [r.path for r in elves_in if owners.get(r.path) is not None])
    tree_of = {path: t.top for t in trees for path in t.files}
    elves = [
        elf_to_json(r, closures.get(r.path), owners.get(r.path),
                    licenses.get(owners.get(r.path) or ""), linked.get(r.path, ()), shared, tree_of.get(r.path))
        for r in elves_in
    ]
    unresolved = linkage.unresolved if linkage is not None else {}
    db_errors = [e for db in databases for e in db.errors]
    errors = [error_to_json(e) for e in (*(census.errors if census else ()), *db_errors,
                                         *(linkage.errors if linkage else ()))]
    refs: dict[str, str] = {}
    for lic in licenses.values():
        for ref, raw in lic.outcome.refs.items():
            refs.setdefault(ref, raw)
    types = Counter(r.type for r in elves_in)
    return Records(
        elves=elves,
        packages=[package_to_json(p, licenses.get(p.id)) for db in databases for p in db.packages],
        unresolved=[{"soname": text(name), "needed_by": [text(p) for p in sorted(users)]}
                    for name, users in sorted(unresolved.items())],
        errors=errors,
        databases=[database_to_json(db) for db in databases],
        license_refs=[{"id": k, "text": text(v)} for k, v in sorted(refs.items())],
        unowned_trees=[{"top": text(t.top), "files": len(t.files), "first": [text(p) for p in t.files[:5]]}
                       for t in trees],
        loader=loader_to_json(linkage) if linkage is not None else dict(NO_LOADER),
        summary={
            "files": census.files if census is not None else 0,
            "elves": len(elves_in),
            "executables": types["executable"] + types["pie"],
            "libraries": types["shared-library"],
            # statically linked executables only: relocatable objects (kernel modules among
            # them) have no dynamic section either, and are counted on their own
            "static": sum(1 for r in elves_in if r.static and r.type in ("executable", "pie")),
            "relocatable": types["relocatable"],
            "kernel_modules": sum(1 for r in elves_in if r.type == "relocatable" and r.path.endswith(".ko")),
            "setuid": sum(1 for r in elves_in if r.setuid or r.setgid),
            "unresolved_sonames": len(unresolved),
            "unowned_elves": sum(1 for r in elves_in if owners.get(r.path) is None),
            "unowned_trees": len(trees),
        },
    )


def loader_to_json(linkage: Linkage) -> dict[str, Any]:
    """How the target's loader was configured: its cache and each interpreter's search."""
    return {
        "cache": jsonable(linkage.cache),
        "interpreters": [
            {
                "path": text(c.interpreter),
                "flavour": c.flavour,
                "system_dirs": [text(d) for d in c.system_dirs],
                "system_dirs_from": c.source,
                "lib": jsonable(c.lib),
                "platform": jsonable(c.platform),
            }
            for c in linkage.loaders
        ],
    }


def database_to_json(db: PackageDatabase) -> dict[str, Any]:
    return {"manager": db.manager, "path": text(db.path), "backend": db.backend, "reader": db.reader,
            "packages": len(db.packages), **database_counts(db),
            **({"prefix_stripped": text(db.prefix_stripped), "prefix_note": text(db.prefix_note or "")}
               if db.prefix_stripped else {})}


def database_counts(db: PackageDatabase) -> dict[str, Any]:
    """The counts of one database entry (rpm: ``records`` stored, ``read``, ``failed``),
    why its reader read it, and its notes; only what the reader said."""
    out: dict[str, Any] = {k: v for k, v in (("records", db.records), ("read", db.read), ("failed", db.failed))
                           if v is not None}
    if db.unread_parts:
        out["unread_parts"] = db.unread_parts
    if db.why:
        out["reader_reason"] = text(db.why)
    if db.notes:
        out["notes"] = [text(n) for n in db.notes]
    return out


def jsonable(v: Any) -> Any:
    """A value of plain data with every string made safe by :func:`text`."""
    if isinstance(v, dict):
        return {text(str(k)): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, str):
        return text(v)
    return v


def text(s: str) -> str:
    """A target string made safe for JSON: undecodable bytes (surrogate escapes) become
    visible ``\\xNN`` sequences."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _ascii_record(rec: ElfRecord, closure: Mapping[str, str | None]) -> bool:
    """Whether every name of a record and its closure is ASCII: then :func:`text` has
    nothing to do, and a record of hundreds of names skips it name by name
    (``str.isascii`` reads a flag CPython keeps, it does not scan the string)."""
    isascii = str.isascii
    return (rec.path.isascii() and (rec.interpreter is None or rec.interpreter.isascii())
            and (rec.soname is None or rec.soname.isascii())
            and all(map(isascii, rec.needed)) and all(map(isascii, rec.imports))
            and all(map(isascii, rec.rpath)) and all(map(isascii, rec.runpath))
            and all(map(isascii, closure)) and all(map(isascii, filter(None, closure.values()))))


def elf_to_json(rec: ElfRecord, closure: Mapping[str, str | None] | None, owner: str | None = None,
                own: PackageLicense | None = None, linked: Sequence[LinkedLicense] = (),
                shared: dict[LinkedLicense, dict[str, Any]] | None = None, tree: str | None = None) -> dict[str, Any]:
    closure = closure or {}
    plain = _ascii_record(rec, closure)
    t = _same if plain else text
    return {
        "path": t(rec.path),
        "type": rec.type,
        "class": rec.elf_class,
        "byte_order": rec.byte_order,
        "machine": rec.machine,
        "osabi": rec.osabi,
        "interpreter": t(rec.interpreter) if rec.interpreter is not None else None,
        "needed": list(rec.needed) if plain else [text(n) for n in rec.needed],
        "rpath": list(rec.rpath) if plain else [text(n) for n in rec.rpath],
        "runpath": list(rec.runpath) if plain else [text(n) for n in rec.runpath],
        "soname": t(rec.soname) if rec.soname is not None else None,
        "flags_1": list(rec.flags_1),
        "static": rec.static,
        "setuid": rec.setuid,
        "setgid": rec.setgid,
        "mode": f"{rec.mode:04o}",
        "uid": rec.uid,
        "gid": rec.gid,
        "size": rec.size,
        "sha256": rec.sha256,
        "sha1": rec.sha1,
        "imports": list(rec.imports) if plain else [text(n) for n in rec.imports],
        "closure": dict(closure) if plain else {text(k): (text(v) if v is not None else None)
                                                for k, v in closure.items()},
        "owner": owner,
        "license": own.outcome.spdx if own else None,
        "license_category": own.category if own else "unknown",
        "linked_licenses": [_linked_json(r, shared) for r in linked],
        **({"tree": t(tree)} if tree is not None else {}),
    }


def _linked_json(r: LinkedLicense, shared: dict[LinkedLicense, dict[str, Any]] | None) -> dict[str, Any]:
    """One linked library's row; with ``shared``, one dict per distinct row (the same
    library recurs in thousands of closures; the document is only read, never edited)."""
    row = shared.get(r) if shared is not None else None
    if row is None:
        row = {"soname": text(r.soname), "path": text(r.path) if r.path else None, "package": r.package,
               "license": r.license, "category": r.category}
        if shared is not None:
            shared[r] = row
    return row


def _same(s: str) -> str:
    return s


def package_to_json(p: Package, lic: PackageLicense | None = None) -> dict[str, Any]:
    raw = lic.raw if lic is not None else p.license_raw
    return {
        "id": text(p.id),
        "manager": p.manager,
        "name": text(p.name),
        "epoch": p.epoch,
        "version": text(p.version),
        "release": text(p.release) if p.release is not None else None,
        "arch": text(p.arch) if p.arch is not None else None,
        "source": text(p.source) if p.source is not None else None,
        "vendor": text(p.vendor) if p.vendor is not None else None,
        "license_raw": text(raw) if raw is not None else None,
        "license_spdx": lic.outcome.spdx if lic else None,
        "license_status": lic.outcome.status if lic else None,
        "license_category": lic.category if lic else None,
        "license_source": lic.source if lic else None,
        "license_notes": [text(n) for n in lic.outcome.notes] if lic else [],
        **({"license_evidence": text(lic.evidence)} if lic and lic.evidence else {}),
        "purl": text(p.purl),
        "files": len(p.files),
        "database": text(p.database),
        **({"location": text(p.location)} if p.location else {}),
    }


def error_to_json(err: ErrorRecord) -> dict[str, str]:
    return {"path": text(err.path), "stage": err.stage, "message": text(err.message)}

