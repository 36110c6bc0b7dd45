"""The renderers of a ``flightcheck/diff/1`` document (:func:`scanner.diff.diff`).

:func:`render_text` writes it for a terminal or a cron mail, :func:`render_html` as one
self-contained page in the style of the HTML report (``reports/diff.html.j2`` with
``reports/report.css`` inlined). Both read only the diff document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scanner.findings import SEV_RANK
from scanner.textsafe import visible_tree


def _where(side: dict[str, Any]) -> str:
    what = side.get("domain") or side.get("root") or "?"
    return f"{what} ({side.get('os') or 'unknown OS'}, {side.get('machine') or '?'})"


def _short(v: Any, width: int = 160) -> str:
    text = " ".join(str(v or "").split())
    if len(text) <= width:
        return text
    cut = text[:width - 1]
    if " " in cut[width // 2:]:  # at a word's end when there is one in the second half
        cut = cut.rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def _finding_line(f: dict[str, Any], width: int = 110) -> str:
    """``[severity] RULE subject: message``, the message cut to fit ``width`` (but never
    below 40 characters)."""
    head = f"[{f['severity']}] {f['rule']} {f['subject']}: "
    return head + _short(f.get("message") or f.get("title"), max(40, width - len(head)))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _lic(v: Any) -> str:
    return "(none)" if v in (None, "") else str(v)


def render_text(d: dict[str, Any]) -> str:
    """The diff for a terminal or a cron mail: a header, then only the groups that have
    something, each line one change. Every string of the documents is in its visible
    spelling (:func:`scanner.textsafe.visible`): a name from a target cannot start a line
    of its own or send an escape sequence to the terminal that shows the text."""
    d = visible_tree(d)
    a, b, s = d["old"], d["new"], d["summary"]
    lines = [f"flightcheck diff: {_where(b)}",
             f"  old: {a.get('source') or '-'}  scanned {a.get('started') or '?'}  verdict {str(a.get('verdict')).upper()}",
             f"  new: {b.get('source') or '-'}  scanned {b.get('started') or '?'}  verdict {str(b.get('verdict')).upper()}"]
    lines += [f"warning: {w}" for w in d["warnings"]]
    if not s["changed"]:
        lines.append(f"no changes ({s['findings_still_failing']} findings still failing)")
        return "\n".join(lines) + "\n"
    lines.append(f"  packages: {s['packages_added']} added, {s['packages_removed']} removed, "
                 f"{s['packages_upgraded']} upgraded, {s['packages_downgraded']} downgraded; "
                 f"{_n(s['license_changes'], 'license change')}")
    lines.append(f"  findings: {s['findings_new']} new, {s['findings_fixed']} fixed, {s['findings_newly_waived']} newly "
                 f"waived, {s['findings_still_failing']} still failing; "
                 f"{_n(s['added_unowned_elves'], 'unowned ELF file')} added")
    p = d["packages"]

    def group(title: str, rows: list[str]) -> None:
        if rows:
            lines.append("")
            lines.append(f"{title} ({len(rows)}):")
            lines.extend(f"  {r}" for r in rows)

    def name(r: dict[str, Any]) -> str:
        return f"{r['name']}.{r['arch']}" if r.get("arch") else str(r["name"])

    group("New findings", [_finding_line(f) for f in d["findings"]["new"]])
    group("Fixed findings", [f"[{f['severity']}] {f['rule']} {f['subject']}"
                             + ("" if f["new_state"] in (None, "pass") else f" (now {f['new_state']})")
                             for f in d["findings"]["fixed"]])
    group("Newly waived", [f"[{f['severity']}] {f['rule']} {f['subject']}: "
                           + ((f.get("waiver") or {}).get("reason") or "waived") for f in d["findings"]["newly_waived"]])
    group("Packages upgraded", [f"{name(r)} {r['old_version']} -> {r['new_version']}" for r in p["upgraded"]])
    group("Packages DOWNGRADED", [f"{name(r)} {r['old_version']} -> {r['new_version']}" for r in p["downgraded"]])
    group("Packages added", [f"{name(r)} {r['version']} ({_lic(r['license_spdx'] or r['license_raw'])})"
                             for r in p["added"]])
    group("Packages removed", [f"{name(r)} {r['version']}" for r in p["removed"]])
    lic_rows = []
    for r in d["license_changes"]:
        lic_rows.append(f"{name(r)} {r['new_version']}: {_lic(r['raw']['old'])} -> {_lic(r['raw']['new'])}")
        if r["spdx"]["old"] != r["spdx"]["new"]:
            lic_rows.append(f"    SPDX {_lic(r['spdx']['old'])} -> {_lic(r['spdx']['new'])}")
    if lic_rows:
        lines += ["", f"License changes ({len(d['license_changes'])}):", *(f"  {r}" for r in lic_rows)]
    group("ELF files added outside any package",
          [f"{e['path']} ({e['type']}{', setuid' if e['setuid'] else ''}{', setgid' if e['setgid'] else ''})"
           for e in d["added_unowned_elves"]])
    if s["findings_still_failing"]:
        lines += ["", f"Still failing: {s['findings_still_failing']} findings"
                  + " (" + ", ".join(f"{n} {sev}" for sev, n in _by_sev(d["findings"]["still_failing"]).items() if n)
                  + ")"]
    return "\n".join(lines) + "\n"


def _by_sev(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {s: 0 for s in sorted(SEV_RANK, key=SEV_RANK.__getitem__, reverse=True)}
    for r in rows:
        out[r["severity"]] = out.get(r["severity"], 0) + 1
    return out


def render_html(d: dict[str, Any], template_dir: Path | None = None) -> str:
    """The diff as one self-contained HTML page (``reports/diff.html.j2``), styled by the
    report's own ``report.css``, inlined; every string is escaped by autoescape, and is in
    its visible spelling, as in the text (no control or bidi character of a target)."""
    from scanner.reports.html import asset, environment, template_folders  # jinja2: only the HTML needs it

    d = visible_tree(d)
    folders = template_folders(template_dir)
    env = environment(folders, finalize=None)
    return env.get_template("diff.html.j2").render(d=d, css=asset(folders, "report.css"),
                                                   still_by_sev=_by_sev(d["findings"]["still_failing"]))
