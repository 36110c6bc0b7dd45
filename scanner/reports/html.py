"""The HTML report and the PDF, from one Jinja2 template (``reports/report.html.j2``).

The HTML is one self-contained file: CSS, JavaScript, the SVG charts and the data for the
dependency trees are inline, and a Content-Security-Policy forbids any request, so it
works offline and as a CI artifact. Every string from the target goes through Jinja2's
autoescape, and before that through :func:`scanner.textsafe.visible` (every expression's
value, by the environment's ``finalize``): autoescape leaves control characters, bidi
overrides and undecodable bytes as they are, and a report must show a name as every other
output spells it. The JSON embedded for the trees is made of visible strings and escaped for
a ``<script>`` element.

The PDF is the same template rendered with ``print`` on and ``print.css`` added, by
weasyprint: a cover page, a table of contents with page numbers (``target-counter``),
running header and footer (``string-set``, ``counter(pages)``), and tables whose header
repeats on every page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from scanner.findings import FAILING_STATES, SEV_RANK, SEVERITIES, STATES
from scanner.licensing.categories import ORDER as CATEGORY_ORDER, RANK as CATEGORY_RANK
from scanner.reports import headline
from scanner.resources import content_dir
from scanner.textsafe import visible, visible_tree

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
    row, label_w = 22, 118
    h = row * len(values) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img">']
    for i, (label, value, color) in enumerate(values):
        y = i * row + 2
        w = int((width - label_w - 40) * value / top)
        parts.append(f'<text x="0" y="{y + 14}" font-size="12" fill="#1d2330">{label}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1)}" height="14" rx="2" fill="{color}"/>'
                     f'<text x="{label_w + w + 6}" y="{y + 14}" font-size="12" fill="#1d2330">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def score(doc: dict[str, Any]) -> int:
    """The headline's score (:mod:`scanner.reports.headline`): it cannot contradict the verdict."""
    return headline.score(doc)


def _script_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c").replace(
        ">", "\\u003e").replace("&", "\\u0026")


def context(doc: dict[str, Any], *, print_: bool, folders: list[Path]) -> dict[str, Any]:
    order = {s: i for i, s in enumerate(STATE_ORDER)}
    findings = sorted(doc.get("findings", []), key=lambda f: (order.get(f["state"], 9), -SEV_RANK[f["severity"]],
                                                               f["rule"], f["subject"]))
    failing = {s: 0 for s in reversed(SEVERITIES) if s != "info"}
    for f in doc.get("findings", []):
        if f["state"] in FAILING_STATES and f["severity"] in failing:
            failing[f["severity"]] += 1
    cats = doc["summary"].get("license_categories", {})
    failing_by_rule: dict[str, int] = {}
    for f in doc.get("findings", []):
        if f["state"] in FAILING_STATES:
            failing_by_rule[f["rule"]] = failing_by_rule.get(f["rule"], 0) + 1
    executables = []
    for e in doc["elves"]:
        if e["type"] not in ("executable", "pie"):
            continue
        linked = e.get("linked_licenses", [])
        strictest = max((r["category"] for r in linked), key=CATEGORY_RANK.__getitem__, default="—")
        executables.append({**e, "strictest": strictest})
    graph = {e["path"]: {"n": e["needed"], "c": e["closure"]} for e in doc["elves"] if e["needed"]}
    os_name = doc["target"]["os"].get("PRETTY_NAME") or doc["target"]["os"].get("ID")
    return {
        "doc": doc,
        "print": print_,
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
        "failing_by_rule": failing_by_rule,
        "findings": findings,
        "packages": sorted(doc.get("packages", []), key=lambda p: (p["name"], p["version"])),
        "executables": executables,
        "unowned": [e for e in doc["elves"] if e.get("owner") is None and e["type"] != "debuginfo"],
        "severity_chart": bar_chart([(s, n, SEV_COLORS[s]) for s, n in failing.items()]),
        "category_chart": bar_chart([(c, cats.get(c, 0), CAT_COLORS[c]) for c in CATEGORY_ORDER]),
        "graph_json": _script_json(visible_tree(graph)),
        "css": asset(folders, "report.css"),
        "print_css": asset(folders, "print.css"),
        "js": asset(folders, "report.js"),
    }


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
    from weasyprint import HTML  # imported here: it loads pango, and only the PDF needs it

    HTML(string=render(doc, print_=True, template_dir=template_dir)).write_pdf(str(dest))

