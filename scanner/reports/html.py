"""The HTML report (``reports/report.html.j2``); the PDF is :mod:`scanner.reports.pdf`.

The HTML is one self-contained file: CSS, JavaScript, the SVG charts and the data are
inline, and a Content-Security-Policy forbids any request, so it works offline and as a CI
artifact. The page's markup (summary, charts, rules, metadata) is rendered here; every
string from the target goes through Jinja2's autoescape, and before that through
:func:`scanner.textsafe.visible` (every expression's value, by the environment's
``finalize``): autoescape leaves control characters, bidi overrides and undecodable bytes
as they are, and a report must show a name as every other output spells it.

The big tables (findings grouped by rule and group, packages, executables with their
linked libraries and dependency trees, unowned files by tree) are drawn on demand by
``report.js`` from compact data (:mod:`scanner.reports.pagedata`: shared tables of strings
and paths referenced by index), embedded gzip-compressed in base64 and read with the
browser's own ``DecompressionStream``. A host's result (24,000 ELF files, 16,000
findings) makes a page of about 1 MB.
"""

from __future__ import annotations

import base64
import gzip
import json
from html import escape
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from scanner.findings import FAILING_STATES, SEV_RANK, SEVERITIES, STATES
from scanner.licensing.categories import ORDER as CATEGORY_ORDER
from scanner.reports import headline
from scanner.reports.groups import group_findings
from scanner.reports.pagedata import page_data
from scanner.resources import content_dir
from scanner.textsafe import visible

SECTIONS = (("summary", "Summary"), ("findings", "Findings"), ("packages", "Packages and licenses"),
            ("executables", "Executables and the licenses they link"),
            ("unowned", "Unowned files and unresolved libraries"), ("rules", "Rules"), ("metadata", "Scan metadata"))
SEV_COLORS = {"critical": "#7f1d1d", "high": "#b3261e", "medium": "#b26a00", "low": "#4a6fa5", "info": "#6b7280"}
CAT_COLORS = {"public-domain": "#3f8f5a", "permissive": "#5aa469", "weak-copyleft": "#d89b2b", "copyleft": "#c9473f",
              "network-copyleft": "#8e1f1a", "proprietary": "#7b52ae", "unknown": "#9aa3b2"}
#: the order findings are listed in: what counts against the verdict first (fail and error)
STATE_ORDER = ("fail", "error", "waived", "pass", "notapplicable", "informational")


def template_folders(template_dir: Path | None) -> list[Path]:
    """Where templates and assets are looked up: the user's ``--template`` folder first,
    then the shipped ``reports/``."""
    default = content_dir("reports")
    return [template_dir, default] if template_dir else [default]


def asset(folders: list[Path], name: str) -> str:
    """The text of asset ``name`` (a CSS or JavaScript file) from the first folder that has it."""
    for folder in folders:
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    raise FileNotFoundError(f"report asset {name} not found in {', '.join(map(str, folders))}")


def bar_chart(values: list[tuple[str, int, str]], width: int = 320) -> str:
    """A horizontal bar chart as inline SVG (label, value, colour)."""
    top = max([v for _, v, _ in values] + [1])
    row, label_w = 22, 118 if width < 400 else 150
    h = row * len(values) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img">']
    for i, (label, value, color) in enumerate(values):
        y = i * row + 2
        w = int((width - label_w - 10 - 8 * len(str(top))) * value / top)
        parts.append(f'<text x="0" y="{y + 14}" font-size="12" fill="#1d2330">{escape(visible(label))}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1)}" height="14" rx="2" fill="{color}"/>'
                     f'<text x="{label_w + w + 6}" y="{y + 14}" font-size="12" fill="#1d2330">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def score(doc: dict[str, Any]) -> int:
    """The headline's score (:mod:`scanner.reports.headline`): it cannot contradict the verdict."""
    return headline.score(doc)


def charts(doc: dict[str, Any]) -> dict[str, Any]:
    """The summary's pictures, as inline SVG: failing findings by severity and by rule,
    packages by license category."""
    failing = {s: 0 for s in reversed(SEVERITIES) if s != "info"}
    by_rule: dict[str, int] = {}
    for f in doc.get("findings", []):
        if f["state"] in FAILING_STATES:
            by_rule[f["rule"]] = by_rule.get(f["rule"], 0) + 1
            if f["severity"] in failing:
                failing[f["severity"]] += 1
    severity = {r["id"]: r.get("severity", "info") for r in doc.get("rules", [])}
    top = sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))[:12]
    cats = doc["summary"].get("license_categories", {})
    return {"severity_chart": bar_chart([(s, n, SEV_COLORS[s]) for s, n in failing.items()]),
            "category_chart": bar_chart([(c, cats.get(c, 0), CAT_COLORS[c]) for c in CATEGORY_ORDER]),
            "rule_chart": bar_chart([(r, n, SEV_COLORS.get(severity.get(r, "info"), "#6b7280")) for r, n in top],
                                    width=520) if top else '<p class="muted">No failing findings.</p>',
            "failing_by_rule": by_rule}


def common(doc: dict[str, Any], folders: list[Path]) -> dict[str, Any]:
    """What the HTML page and the PDF both show."""
    os_name = doc["target"]["os"].get("PRETTY_NAME") or doc["target"]["os"].get("ID")
    return {
        "doc": doc,
        "target_name": f"{os_name} at {doc['target']['root']}" if os_name else doc["target"]["root"],
        "verdict": doc.get("policy", {}).get("verdict", "pass"),
        "score": score(doc),
        "reason": headline.reason(doc),
        "rule_pack": doc.get("policy", {}).get("rule_pack", "—"),
        "sections": SECTIONS,
        "severities": [s for s in reversed(SEVERITIES)],
        "states": STATES,
        "sev_rank": SEV_RANK,
        "rules": {r["id"]: r for r in doc.get("rules", [])},
        "rule_groups": group_findings(doc),
        "findings_total": len(doc.get("findings", [])),
        "unowned_count": sum(1 for e in doc["elves"] if e.get("owner") is None and e["type"] != "debuginfo"),
        **charts(doc),
        "css": asset(folders, "report.css"),
    }


def context(doc: dict[str, Any], *, print_: bool, folders: list[Path]) -> dict[str, Any]:
    """The HTML page's context; ``findings`` lists what counts against the verdict first."""
    order = {s: i for i, s in enumerate(STATE_ORDER)}
    findings = sorted(doc.get("findings", []), key=lambda f: (order.get(f["state"], 9), -SEV_RANK[f["severity"]],
                                                               f["rule"], f["subject"]))
    return {**common(doc, folders), "print": print_, "findings": findings,
            "data_blob": packed_data(doc), "js": asset(folders, "report.js")}


def packed_data(doc: dict[str, Any]) -> str:
    """The page's data (:mod:`scanner.reports.pagedata`) as JSON, gzip-compressed and in
    base64: a host's 6 MB of tables is under 1 MB this way. The page decompresses it with
    the browser's own ``DecompressionStream`` (no request, no library). Base64 holds no
    character that could end a ``<script>`` element."""
    raw = json.dumps(page_data(doc), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, 6, mtime=0)).decode("ascii")


def _finalize(value: Any) -> Any:
    """Every plain string a template prints, in the visible spelling (markup the code made
    itself, such as the SVG charts and ``tojson``'s output, is left as it is)."""
    return visible(value) if type(value) is str else value


def environment(folders: list[Path], finalize: Callable[[Any], Any] | None = _finalize) -> Environment:
    """The Jinja2 environment every HTML page is rendered in: templates from ``folders``,
    autoescape on; ``finalize`` (by default: every printed string in its visible spelling)
    as the caller needs it."""
    return Environment(loader=ChoiceLoader([FileSystemLoader(str(f)) for f in folders]),
                       autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
                       trim_blocks=True, lstrip_blocks=True, finalize=finalize)


def render(doc: dict[str, Any], *, print_: bool = False, template_dir: Path | None = None) -> str:
    folders = template_folders(template_dir)
    return environment(folders).get_template("report.html.j2").render(**context(doc, print_=print_, folders=folders))


def write_html(doc: dict[str, Any], dest: Path, template_dir: Path | None = None) -> None:
    dest.write_text(render(doc, template_dir=template_dir), encoding="utf-8")


def write_pdf(doc: dict[str, Any], dest: Path, template_dir: Path | None = None) -> None:
    from scanner.reports import pdf

    pdf.write(doc, dest, template_dir)

