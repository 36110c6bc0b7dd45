"""The history of one target (``flightcheck history report TARGET``): its stored scans over
time as small inline-SVG line charts (failing findings by severity; packages by license
category) and a table, then what changed between the last two scans (the ``flightcheck
diff`` of them). Rendered from the stored result documents only; self-contained HTML (no
request leaves the page), and a PDF of the same page through weasyprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scanner.licensing.categories import ORDER as CATEGORY_ORDER

SEVERITIES = ("critical", "high", "medium", "low")
SEV_COLORS = {"critical": "#7a0010", "high": "#c62828", "medium": "#ef6c00", "low": "#f9a825"}
CAT_COLORS = {"public-domain": "#2e7d32", "permissive": "#43a047", "weak-copyleft": "#f9a825",
              "copyleft": "#ef6c00", "network-copyleft": "#c62828", "proprietary": "#6a1b9a", "unknown": "#757575"}


def point(doc: dict[str, Any], scan_id: int) -> dict[str, Any]:
    """One scan's point on the timeline, from its result document."""
    summary = doc.get("summary") or {}
    failing = summary.get("findings") or {}
    return {"id": scan_id, "started": (doc.get("scan") or {}).get("started", ""),
            "verdict": (doc.get("policy") or {}).get("verdict", "?"),
            "failing": {s: int(failing.get(s, 0)) for s in SEVERITIES},
            "categories": {c: int((summary.get("license_categories") or {}).get(c, 0)) for c in CATEGORY_ORDER},
            "packages": int(summary.get("packages", 0)), "elves": int(summary.get("elves", 0)),
            "errors": int(summary.get("errors", 0))}


def line_chart(points: Sequence[dict[str, Any]], series: dict[str, str], key: str, title: str,
               width: int = 560, height: int = 150) -> str:
    """An inline SVG line chart: one polyline per series (``name -> colour``) of
    ``points[i][key][name]`` against the scan's order; the axis labels are the first and
    last scan's time and the largest value."""
    if not points:
        return ""
    pad_l, pad_r, pad_t, pad_b = 36, 110, 18, 22
    top = max([1] + [p[key][s] for p in points for s in series])
    n = len(points)

    def xy(i: int, v: int) -> tuple[float, float]:
        x = pad_l + (width - pad_l - pad_r) * (i / (n - 1) if n > 1 else 0.5)
        y = pad_t + (height - pad_t - pad_b) * (1 - v / top)
        return x, y

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_esc(title)}"><title>{_esc(title)}</title>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" stroke="#999"/>',
             f'<text x="2" y="{pad_t + 4}" font-size="10">{top}</text>',
             f'<text x="2" y="{height - pad_b}" font-size="10">0</text>',
             f'<text x="{pad_l}" y="{height - 6}" font-size="10">{_esc(points[0]["started"][:16])}</text>',
             f'<text x="{width - pad_r}" y="{height - 6}" font-size="10" text-anchor="end">'
             f'{_esc(points[-1]["started"][:16])}</text>']
    for k, (name, colour) in enumerate(series.items()):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, p[key][name]) for i, p in enumerate(points)))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
        for i, p in enumerate(points):
            x, y = xy(i, p[key][name])
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>{_esc(name)}: '
                         f'{p[key][name]} (scan {p["id"]})</title></circle>')
        parts.append(f'<text x="{width - pad_r + 8}" y="{pad_t + 12 * k + 4}" font-size="10" fill="{colour}">'
                     f'{_esc(name)} {points[-1][key][name]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _esc(s: str) -> str:
    from markupsafe import escape

    return str(escape(s))


def render(target: str, points: list[dict[str, Any]], diff_doc: dict[str, Any] | None,
           template_dir: Path | None = None) -> str:
    """The page: charts, the table of scans (newest first), the last two scans' diff."""
    from scanner.reports.diff import render_text
    from scanner.reports.html import asset, environment, template_folders

    folders = template_folders(template_dir)
    return environment(folders).get_template("history.html.j2").render(
        target=target, points=list(reversed(points)), severities=SEVERITIES,
        failing_chart=line_chart(points, {s: SEV_COLORS[s] for s in SEVERITIES}, "failing",
                                 "failing findings by severity"),
        category_chart=line_chart(points, {c: CAT_COLORS[c] for c in CATEGORY_ORDER}, "categories",
                                  "packages by license category"),
        diff_text=render_text(diff_doc) if diff_doc is not None else None, css=asset(folders, "report.css"))


def write(target: str, points: list[dict[str, Any]], diff_doc: dict[str, Any] | None, out: Path,
          formats: Sequence[str], template_dir: Path | None = None) -> list[Path]:
    """``out/history.html`` (and ``history.pdf`` when asked for)."""
    out.mkdir(parents=True, exist_ok=True)
    page = render(target, points, diff_doc, template_dir)
    written = []
    if "html" in formats:
        (out / "history.html").write_text(page, encoding="utf-8")
        written.append(out / "history.html")
    if "pdf" in formats:
        from weasyprint import HTML

        HTML(string=page).write_pdf(str(out / "history.pdf"))
        written.append(out / "history.pdf")
    return written
