"""Stage 6, result: the one JSON document every report and later command reads.

The document is versioned (``"schema": "flightcheck/result/1"``) and described by the JSON
Schema ``result-1.schema.json`` beside this file; :func:`validate` checks a document
against it. Field names are stable once released: add, never rename.

Strings from the target (paths, sonames, symbol names) may hold bytes that are not UTF-8;
they are written with those bytes as ``\\xNN`` escapes so the document is always valid JSON
text in UTF-8.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from scanner import __version__
from scanner.errors import ErrorRecord
from scanner.inventory.census import Census
from scanner.inventory.elf import ElfRecord
from scanner.checks import FAILING_STATES, SEVERITIES, STATES, Finding, Policy, Rule, rule_pack_version, verdict
from scanner.inventory.packages import Package, PackageDatabase
from scanner.licensing import LinkedLicense, PackageLicense
from scanner.linkage.loader import Linkage
from scanner.resources import schema_path

SCHEMA_ID = "flightcheck/result/1"


@dataclass(frozen=True)
class TargetInfo:
    """What was scanned: its kind, where it is, what it says it is."""

    kind: str  # directory | image | domain | repository
    root: str
    os: dict[str, str]
    machine: str | None
    image: dict[str, Any] | None = None  # for images: backend, mounts, problems
    domain: dict[str, Any] | None = None  # for libvirt domains: name, uuid, state, interfaces and their networks
    repository: dict[str, Any] | None = None  # for repositories: source, method, traffic


@dataclass(frozen=True)
class ScanInfo:
    started: str  # ISO 8601, UTC
    finished: str
    duration_seconds: float
    options: dict[str, Any]
    timings: dict[str, float] | None = None  # seconds per stage


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
                shared: dict[LinkedLicense, dict[str, Any]] | None = None) -> dict[str, Any]:
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
        "purl": text(p.purl),
        "files": len(p.files),
        "database": text(p.database),
        **({"location": text(p.location)} if p.location else {}),
    }


def error_to_json(err: ErrorRecord) -> dict[str, str]:
    return {"path": text(err.path), "stage": err.stage, "message": text(err.message)}


def build(target: TargetInfo, scan: ScanInfo, census: Census, linkage: Linkage,
          databases: Sequence[PackageDatabase] = (), owners: Mapping[str, str | None] | None = None,
          licenses: Mapping[str, PackageLicense] | None = None,
          linked: Mapping[str, Sequence[LinkedLicense]] | None = None) -> dict[str, Any]:
    """Assemble the result document from the stages' records (checks are added by
    :func:`add_findings`)."""
    owners = owners or {}
    licenses = licenses or {}
    linked = linked or {}
    shared: dict[LinkedLicense, dict[str, Any]] = {}
    elves = [
        elf_to_json(r, linkage.closures.get(r.path), owners.get(r.path),
                    licenses.get(owners.get(r.path) or ""), linked.get(r.path, ()), shared)
        for r in census.elves
    ]
    unresolved = linkage.unresolved
    types = Counter(r.type for r in census.elves)
    db_errors = [e for db in databases for e in db.errors]
    errors = [error_to_json(e) for e in (*census.errors, *db_errors, *linkage.errors)]
    packages = [package_to_json(p, licenses.get(p.id)) for db in databases for p in db.packages]
    refs: dict[str, str] = {}
    for lic in licenses.values():
        for ref, raw in lic.outcome.refs.items():
            refs.setdefault(ref, raw)
    statuses = Counter(p["license_status"] for p in packages if p["license_status"])
    categories = Counter(p["license_category"] for p in packages if p["license_category"])
    return {
        "schema": SCHEMA_ID,
        "tool": {"name": "flightcheck", "version": __version__},
        "scan": {
            "started": scan.started,
            "finished": scan.finished,
            "duration_seconds": round(scan.duration_seconds, 3),
            "options": _jsonable(scan.options),
            **({"timings": {k: round(v, 3) for k, v in scan.timings.items()}} if scan.timings else {}),
        },
        "target": {
            "kind": target.kind,
            "root": text(target.root),
            "os": {k: text(v) for k, v in target.os.items()},
            "machine": _jsonable(target.machine),
            "loader": {
                "cache": _jsonable(linkage.cache),
                "interpreters": [
                    {
                        "path": text(c.interpreter),
                        "flavour": c.flavour,
                        "system_dirs": [text(d) for d in c.system_dirs],
                        "system_dirs_from": c.source,
                        "lib": _jsonable(c.lib),
                        "platform": _jsonable(c.platform),
                    }
                    for c in linkage.loaders
                ],
            },
            **({"image": _jsonable(target.image)} if target.image else {}),
            **({"domain": _jsonable(target.domain)} if target.domain else {}),
            **({"repository": _jsonable(target.repository)} if target.repository else {}),
        },
        "summary": {
            "files": census.files,
            "elves": len(census.elves),
            "executables": types["executable"] + types["pie"],
            "libraries": types["shared-library"],
            "static": sum(1 for r in census.elves if r.static),
            "setuid": sum(1 for r in census.elves if r.setuid or r.setgid),
            "unresolved_sonames": len(unresolved),
            "packages": len(packages),
            "unowned_elves": sum(1 for r in census.elves if owners.get(r.path) is None),
            "licenses": {k: statuses[k] for k in ("exact", "guess", "unknown", "none")},
            "license_categories": dict(sorted(categories.items())),
            "errors": len(errors),
        },
        "databases": [
            {"manager": db.manager, "path": text(db.path), "backend": db.backend, "reader": db.reader,
             "packages": len(db.packages), **database_counts(db)}
            for db in databases
        ],
        "packages": packages,
        "elves": elves,
        "unresolved": [
            {"soname": text(name), "needed_by": [text(p) for p in sorted(users)]}
            for name, users in sorted(unresolved.items())
        ],
        "license_refs": [{"id": k, "text": text(v)} for k, v in sorted(refs.items())],
        "errors": errors,
    }


def add_findings(doc: dict[str, Any], rules: Sequence[Rule], findings: Sequence[Finding], policy: Policy,
                 fail_on: str, waivers: str | None) -> dict[str, Any]:
    """Put the checks' outcome into the document: the rules run, the findings, the verdict.
    ``summary.findings`` counts the failing findings per severity, errors included (a rule
    that could not judge the target counts as failing, as it does for the verdict), so
    every report that reads the summary agrees with the gate."""
    doc["rules"] = [
        {"id": r.id, "check": r.check, "title": r.title, "severity": r.severity, "family": r.family,
         "rationale": r.rationale, "fix": r.fix, "references": r.references, "enabled": r.enabled}
        for r in rules
    ]
    doc["findings"] = [
        {"id": f.id, "rule": f.rule, "title": f.title, "severity": f.severity, "state": f.state,
         "subject": text(f.subject), "message": text(f.message), "evidence": _jsonable(f.evidence),
         "references": f.references, "waiver": f.waiver}
        for f in findings
    ]
    failing = Counter(f.severity for f in findings if f.state in FAILING_STATES)
    doc["policy"] = {"sources": list(policy.sources), "waivers": waivers, "fail_on": fail_on,
                     "rule_pack": rule_pack_version(), "verdict": verdict(list(findings), fail_on)}
    doc["summary"]["findings"] = {s: failing[s] for s in SEVERITIES}
    doc["summary"]["waived"] = sum(1 for f in findings if f.state == "waived")
    states = Counter(f.state for f in findings)
    doc["summary"]["states"] = {s: states[s] for s in STATES}
    doc["summary"]["verdict"] = doc["policy"]["verdict"]
    return doc


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {text(str(k)): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, str):
        return text(v)
    return v


def write(doc: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``result.json`` into ``out_dir`` (created if needed) atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dest = out / "result.json"
    tmp = out / ".result.json.tmp"
    # compact: a whole host's result is tens of megabytes (jq pretty-prints it); orjson
    # encodes it several times faster than json's C encoder
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
    os.replace(tmp, dest)
    return dest


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a result document, refusing one of another schema."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise ValueError(f"{path}: not a {SCHEMA_ID} document")
    return doc


def schema() -> dict[str, Any]:
    with open(schema_path(), encoding="utf-8") as fh:
        found: dict[str, Any] = json.load(fh)
    return found


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``doc`` matches the result schema."""
    import jsonschema

    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


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
