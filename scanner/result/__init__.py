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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from scanner import __version__
from scanner.findings import Judgement
from scanner.records import Records, jsonable, text
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


def build(target: TargetInfo, scan: ScanInfo, records: Records, judgement: Judgement) -> dict[str, Any]:
    """The result document, built once from the stages' records and the checks' judgement;
    nothing edits it afterwards."""
    return {
        "schema": SCHEMA_ID,
        "tool": {"name": "flightcheck", "version": __version__},
        "scan": _scan_block(scan),
        "target": _target_block(target, records),
        "summary": {**_summary(records), **_judged_summary(judgement)},
        "databases": records.databases,
        "packages": records.packages,
        "elves": records.elves,
        "unresolved": records.unresolved,
        "unowned_trees": records.unowned_trees,
        "license_refs": records.license_refs,
        "errors": records.errors,
        **_judgement_blocks(judgement),
    }


def judged(judgement: Judgement) -> dict[str, Any]:
    """The part of the document the checks decide (``rules``, ``findings``, ``policy`` and
    the summary's finding counts and verdict), alone: for tests and tools that judge
    findings without a scan."""
    return {"summary": _judged_summary(judgement), **_judgement_blocks(judgement)}


def _scan_block(scan: ScanInfo) -> dict[str, Any]:
    return {
        "started": scan.started,
        "finished": scan.finished,
        "duration_seconds": round(scan.duration_seconds, 3),
        "options": jsonable(scan.options),
        **({"timings": {k: round(v, 3) for k, v in scan.timings.items()}} if scan.timings else {}),
    }


def _target_block(target: TargetInfo, records: Records) -> dict[str, Any]:
    return {
        "kind": target.kind,
        "root": text(target.root),
        "os": {k: text(v) for k, v in target.os.items()},
        "machine": jsonable(target.machine),
        "loader": records.loader,
        **({"image": jsonable(target.image)} if target.image else {}),
        **({"domain": jsonable(target.domain)} if target.domain else {}),
        **({"repository": jsonable(target.repository)} if target.repository else {}),
    }


def _summary(records: Records) -> dict[str, Any]:
    """The counts of what was found (the checks' counts are :func:`_judged_summary`)."""
    counts = records.summary
    packages = records.packages
    statuses = Counter(p["license_status"] for p in packages if p["license_status"])
    categories = Counter(p["license_category"] for p in packages if p["license_category"])
    return {
        **{k: counts.get(k, 0) for k in ("files", "elves", "executables", "libraries", "static", "relocatable",
                                         "kernel_modules", "setuid", "unresolved_sonames")},
        "packages": len(packages),
        "unowned_elves": counts.get("unowned_elves", 0),
        "unowned_trees": counts.get("unowned_trees", 0),
        "licenses": {k: statuses[k] for k in ("exact", "guess", "unknown", "none")},
        "license_categories": dict(sorted(categories.items())),
        "errors": len(records.errors),
    }


def _judged_summary(judgement: Judgement) -> dict[str, Any]:
    """``summary.findings`` counts the failing findings per severity, errors included (a
    rule that could not judge the target counts as failing, as it does for the verdict),
    so every report that reads the summary agrees with the gate."""
    return {
        "findings": judgement.failing(),
        "waived": sum(1 for f in judgement.findings if f.state == "waived"),
        "states": judgement.states(),
        "verdict": judgement.verdict,
    }


def _judgement_blocks(judgement: Judgement) -> dict[str, Any]:
    """The rules run, the findings and the policy that decided the verdict."""
    return {
        "rules": [
            {"id": r.id, "check": r.check, "title": r.title, "severity": r.severity, "family": r.family,
             "rationale": r.rationale, "fix": r.fix, "references": r.references, "enabled": r.enabled}
            for r in judgement.rules
        ],
        "findings": [
            {"id": f.id, "rule": f.rule, "title": f.title, "severity": f.severity, "state": f.state,
             "subject": text(f.subject), "message": text(f.message), "evidence": jsonable(f.evidence),
             "references": f.references, "waiver": f.waiver}
            for f in judgement.findings
        ],
        "policy": {"sources": list(judgement.policy_sources), "waivers": judgement.waivers,
                   "fail_on": judgement.fail_on, "rule_pack": judgement.rule_pack, "verdict": judgement.verdict},
    }


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
