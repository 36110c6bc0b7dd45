"""The PDF: an audit document an auditor reads in minutes, with the full lists attached.

Rendered by weasyprint from ``reports/audit.html.j2`` with ``report.css`` and ``print.css``:

1. a cover with the verdict and the sentence that explains it;
2. contents, with page numbers;
3. an executive summary on one page: the verdict, what fails and why (the failing rules and
   their largest group), the gate's settings, the waivers in force and what was not readable
   (error counts per stage);
4. findings by rule, each rule's largest groups summarised (label, count, first members);
5. packages and licenses as compact tables (license categories by outcome, the licenses by
   number of packages), executables by the strictest license they link, unowned trees;
6. an appendix of the rules with their references, and the scan's metadata.

The full detail is attached to the PDF as files (weasyprint's ``attachments``):
``findings.csv`` and ``findings.json`` (every finding, in its rule and group),
``packages.csv``, ``executables.csv`` (each with its linked libraries' strictest license),
``unowned.csv`` and ``errors.csv``. Every string in them is in the visible spelling, like
the rest of the report. The page count does not grow with the number of files: every list
in the body is capped, and says how many more are in which attachment.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from scanner.licensing.categories import ORDER as CATEGORY_ORDER, RANK as CATEGORY_RANK
from scanner.reports import html
from scanner.reports.groups import RuleGroup
from scanner.textsafe import json_dumps, visible, visible_tree

#: how much of each list the body shows (the attachments hold all of it)
GROUPS_PER_RULE, MEMBERS_PER_GROUP, LICENSES, TREES, UNRESOLVED, ERRORS = 6, 3, 40, 40, 25, 25
STATUSES = ("exact", "guess", "unknown", "none")


def _v(value: Any) -> str:
    return "" if value is None else visible(str(value))


def _csv(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_v(x) for x in row])
    return out.getvalue().encode("utf-8")


def _finding_rows(groups: list[RuleGroup]) -> Iterable[list[Any]]:
    for rg in groups:
        for g in rg.groups:
            for f in g.findings:
                w = f.get("waiver") or {}
                yield [rg.rule, f["severity"], f["state"], g.kind, g.key, f["subject"], f["message"],
                       w.get("reason"), w.get("expires"), json.dumps(f.get("evidence") or {}, ensure_ascii=False)]


def _findings_json(groups: list[RuleGroup]) -> bytes:
    doc = [{"rule": rg.rule, "title": rg.title, "severity": rg.severity, "findings": rg.findings,
            "failing": rg.failing,
            "groups": [{"kind": g.kind, "key": g.key, "label": g.label, "state": g.state, "severity": g.severity,
                        "findings": [{k: f.get(k) for k in ("id", "severity", "state", "subject", "message",
                                                             "evidence", "waiver")} for f in g.findings]}
                       for g in rg.groups]} for rg in groups]
    return json_dumps(visible_tree(doc), indent=None).encode("utf-8")


def _strictest(e: Mapping[str, Any]) -> str:
    return max((r["category"] for r in e.get("linked_licenses", [])), key=CATEGORY_RANK.__getitem__, default="")


def attachments(doc: Mapping[str, Any], groups: list[RuleGroup]) -> list[tuple[str, str, bytes]]:
    """(file name, description, content) of every file attached to the PDF."""
    elves = doc.get("elves", [])
    return [
        ("findings.csv", "Every finding, in its rule and group",
         _csv(["rule", "severity", "state", "group_kind", "group", "subject", "message", "waiver", "waiver_expires",
               "evidence"], _finding_rows(groups))),
        ("findings.json", "Every finding, grouped by rule and group", _findings_json(groups)),
        ("packages.csv", "Every package and its license",
         _csv(["id", "name", "version", "arch", "license_raw", "license_spdx", "outcome", "category", "files", "purl",
               "database"],
              ([p["id"], p["name"], p["version"], p.get("arch"), p.get("license_raw"), p.get("license_spdx"),
                p.get("license_status"), p.get("license_category"), p.get("files"), p.get("purl"), p.get("database")]
               for p in doc.get("packages", [])))),
        ("executables.csv", "Every executable, its license and the strictest license it links",
         _csv(["path", "type", "package", "license", "category", "strictest_linked", "libraries", "static", "setuid"],
              ([e["path"], e["type"], e.get("owner"), e.get("license"), e.get("license_category"), _strictest(e),
                len(e.get("linked_licenses", [])), e.get("static"), e.get("setuid")]
               for e in elves if e["type"] in ("executable", "pie")))),
        ("unowned.csv", "Every ELF file that belongs to no package",
         _csv(["path", "tree", "type", "sha256"], ([e["path"], e.get("tree"), e["type"], e.get("sha256")]
                                                  for e in elves if e.get("owner") is None))),
        ("errors.csv", "Everything that could not be read", _csv(["stage", "path", "message"], (
            [e.get("stage"), e.get("path"), e.get("message")] for e in doc.get("errors", [])))),
    ]


def _licenses(doc: Mapping[str, Any]) -> dict[str, Any]:
    """License categories by outcome, and the licenses by number of packages."""
    matrix = {c: dict.fromkeys(STATUSES, 0) for c in CATEGORY_ORDER}
    by_license: dict[str, list[str]] = {}
    category: dict[str, str] = {}
    for p in doc.get("packages", []):
        cat = p.get("license_category") or "unknown"
        status = p.get("license_status") or "none"
        matrix.setdefault(cat, dict.fromkeys(STATUSES, 0))[status if status in STATUSES else "none"] += 1
        key = p.get("license_spdx") or f"({status}) {p.get('license_raw') or 'none declared'}"
        by_license.setdefault(key, []).append(p["name"])
        category[key] = cat
    top = sorted(by_license.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {"matrix": {c: row for c, row in matrix.items() if sum(row.values())},
            "licenses": [(k, category[k], len(v), sorted(set(v))[:4]) for k, v in top[:LICENSES]],
            "licenses_more": max(0, len(top) - LICENSES)}


def _executables(doc: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Executables by their own license category and the strictest one they link."""
    table: dict[str, Counter[str]] = {}
    for e in doc.get("elves", []):
        if e["type"] in ("executable", "pie"):
            own = e.get("license_category") or "unknown"
            table.setdefault(own, Counter())[_strictest(e) or "links nothing"] += 1
    return {c: dict(table[c]) for c in CATEGORY_ORDER if c in table}


def context(doc: dict[str, Any], folders: list[Path]) -> dict[str, Any]:
    base = html.common(doc, folders)
    groups: list[RuleGroup] = base["rule_groups"]
    errors = Counter(str(e.get("stage", "?")) for e in doc.get("errors", []))
    waived = Counter(f["rule"] for f in doc.get("findings", []) if f["state"] == "waived")
    return {**base, "print": True, "print_css": html.asset(folders, "print.css"),
            "failing_rules": [rg for rg in groups if rg.failing],
            "limits": {"groups": GROUPS_PER_RULE, "members": MEMBERS_PER_GROUP, "trees": TREES,
                       "unresolved": UNRESOLVED, "errors": ERRORS},
            "error_stages": sorted(errors.items(), key=lambda kv: (-kv[1], kv[0])),
            "waived_by_rule": sorted(waived.items()), **_licenses(doc),
            "executables_matrix": _executables(doc), "linked_order": [*CATEGORY_ORDER, "links nothing"],
            "trees": doc.get("unowned_trees") or [],
            "attachment_names": [n for n, _, _ in attachments({}, [])]}


def render(doc: dict[str, Any], template_dir: Path | None = None) -> str:
    folders = html.template_folders(template_dir)
    return html.environment(folders).get_template("audit.html.j2").render(**context(doc, folders))


def write(doc: dict[str, Any], dest: Path, template_dir: Path | None = None) -> None:
    from weasyprint import HTML, Attachment  # imported here: it loads pango, and only the PDF needs it

    folders = html.template_folders(template_dir)
    ctx = context(doc, folders)
    page = html.environment(folders).get_template("audit.html.j2").render(**ctx)
    files = [Attachment(string=content, name=name, description=desc)
             for name, desc, content in attachments(doc, ctx["rule_groups"])]
    HTML(string=page).write_pdf(str(dest), attachments=files)
