"""What the commands write and print about a result: result.json and its reports
(:func:`write_result`), the list of reports written, the terminal summary
(:func:`print_summary`), and storing a result in the scan history.

Every value that comes from a result document (so, perhaps, from the target: its OS name,
paths, sonames, subjects) reaches the terminal through :func:`scanner.textsafe.markup` or
:func:`scanner.textsafe.visible`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner import result as resultmod
from scanner.reports import headline
from scanner.reports.groups import group_findings
from scanner.cli.app import console as new_console, error_line, fail, os_error, table as new_table
from scanner.reports import write_reports
from scanner.textsafe import markup, visible

if TYPE_CHECKING:
    from rich.console import Console


def write_result(doc: dict[str, Any], output: Path, wanted: Iterable[str], template: Path | None, *,
                 result: bool = True, render_errors: bool = False,
                 file_errors: bool = True) -> tuple[Path | None, list[Path]]:
    """Write ``output/result.json`` (unless ``result`` is false) and the reports ``wanted``
    into ``output``; return result.json's path and the reports written. A file that
    cannot be written is one error line (``PATH: REASON``) and exit 2; with
    ``render_errors``, so is any failure of a renderer (``cannot render: ...``), else that
    goes to the error boundary. ``file_errors`` false says a file that cannot be written
    as a renderer failure too (as ``flightcheck report`` always has)."""
    try:
        dest = resultmod.write(doc, output) if result else None
        return dest, write_reports(doc, Path(output), wanted, template)
    except OSError as exc:
        if file_errors or not render_errors:
            fail(os_error(exc))
        fail(f"cannot render: {exc}")
    except Exception as exc:
        if not render_errors:
            raise
        fail(f"cannot render: {exc}")


def print_reports(written: Iterable[Path], console: "Console | None" = None) -> None:
    """``report: PATH`` for each report written."""
    out = console or new_console()
    for path in written:
        out.print(f"report: {markup(path)}", highlight=False)


def store_history(doc: dict[str, Any], db: str, quiet: bool) -> bool:
    """Store a written result in the scan history; False, after one line on standard
    error, when it cannot be stored."""
    from scanner.history import HistoryError, store

    try:
        scan_id = store(doc, db)
    except HistoryError as exc:
        error_line(str(exc))
        return False
    if not quiet:
        new_console().print(f"history: stored as {scan_id}", highlight=False)
    return True


def _os_name(doc: dict[str, Any]) -> str:
    if doc["target"]["kind"] == "repository":
        return "YUM/DNF repository"
    return str(doc["target"]["os"].get("PRETTY_NAME") or doc["target"]["os"].get("ID") or "unknown OS")


def _summary_rows(doc: dict[str, Any], seconds: float) -> tuple[tuple[str, Any], ...]:
    """The label and value rows of the summary table: a repository's packages and license
    categories, or a system's files."""
    s = doc["summary"]
    if doc["target"].get("repository"):
        return (("packages", s.get("packages", 0)),
                *((f"  {cat}", n) for cat, n in s.get("license_categories", {}).items()),
                ("errors", s["errors"]),
                ("time", f"{seconds:.1f} s"))
    return (("files examined", s["files"]), ("ELF files", s["elves"]), ("executables", s["executables"]),
            ("libraries", s["libraries"]), ("static", s.get("static", 0)), ("setuid/setgid", s.get("setuid", 0)),
            ("packages", s.get("packages", 0)), ("unowned ELF files", s.get("unowned_elves", 0)),
            ("unresolved sonames", s["unresolved_sonames"]), ("errors", s["errors"]), ("time", f"{seconds:.1f} s"))


def _print_sources(doc: dict[str, Any], console: "Console") -> None:
    """Where the result was read from: the repository's traffic, the image's mounts and
    problems, the package databases."""
    repo_info = doc["target"].get("repository")
    if repo_info:
        t = repo_info["traffic"]
        console.print(f"  read from {markup(repo_info['method'])}: {markup(t['requests'])} requests "
                      f"({markup(t['range_requests'])} ranged), {markup(t['bytes'])} bytes", highlight=False)
        for link in t.get("skipped_links", [])[:5]:
            console.print(f"  [yellow]skipped[/] {markup(link)}", highlight=False)
    image = doc["target"].get("image")
    if image:
        places = ", ".join(f"{m['path']} <- {m['source']}" for m in image["mounts"])
        console.print(f"  read by {markup(image['backend'])}: {markup(places)}", highlight=False)
        for problem in image["problems"]:
            console.print(f"  [yellow]image problem[/]: {markup(problem)}", highlight=False)
    for db in doc.get("databases", []) if not repo_info else ():
        console.print(f"  {markup(db['manager'])} database {markup(db['path'])} ({markup(db['backend'])}, "
                      f"read by {markup(db['reader'])}): {markup(db['packages'])} packages", highlight=False)
        if db.get("prefix_stripped"):
            console.print(f"  [yellow]install prefix {markup(db['prefix_stripped'])} stripped[/]: "
                          f"{markup(db.get('prefix_note', ''))}", highlight=False)
        if db.get("failed") or db.get("unread_parts"):
            parts = f"; {db['unread_parts']:,} part(s) of its storage not counted" if db.get("unread_parts") else ""
            console.print(f"  [yellow]read in part[/]: {db.get('read', 0):,} of the {db.get('records', 0):,} records "
                          f"it stores{parts}", highlight=False)


def _print_findings(doc: dict[str, Any], console: "Console") -> None:
    """The unresolved sonames, the license counts, the failing findings (the worst five
    named) and the verdict."""
    s = doc["summary"]
    for item in doc["unresolved"][:10]:
        users = item["needed_by"]
        more = f" (+{len(users) - 1} more)" if len(users) > 1 else ""
        console.print(f"  unresolved [yellow]{markup(item['soname'])}[/] needed by {markup(users[0])}{more}",
                      highlight=False)
    if len(doc["unresolved"]) > 10:
        console.print(f"  ... {len(doc['unresolved']) - 10} more unresolved sonames in the result")
    counted = s.get("findings", {})
    by_sev = {sev: counted.get(sev, 0) for sev in ("critical", "high", "medium", "low")}
    lic = s.get("licenses", {})
    if lic:
        console.print(f"  licenses: {markup(lic.get('exact', 0))} exact SPDX, {markup(lic.get('guess', 0))} guessed, "
                      f"{markup(lic.get('unknown', 0))} unknown, {markup(lic.get('none', 0))} none declared",
                      highlight=False)
    console.print("  findings: " + ", ".join(f"{markup(n)} {markup(sev)}" for sev, n in by_sev.items())
                  + f" failing; {markup(s.get('waived', 0))} waived", highlight=False)
    # grouped as every report groups them: by rule, then by tree, package or subject
    failing_rules = [r for r in group_findings(doc) if r.failing]
    for r in failing_rules[:6]:
        unjudged = " (could not be judged: counts as failing)" if r.states.get("error") else ""
        console.print(visible(f"  [{r.severity}] {r.rule} {r.title}: {r.failing} failing") + unjudged,
                      highlight=False, markup=False)
        shown = [g for g in r.groups if g.failing][:3]
        for g in shown:
            console.print(visible(f"      {g.label}"), highlight=False, markup=False)
        rest = sum(1 for g in r.groups if g.failing) - len(shown)
        if rest > 0:
            console.print(f"      ... {rest} more group(s) in the report", highlight=False, markup=False)
    if len(failing_rules) > 6:
        console.print(f"  ... {len(failing_rules) - 6} more failing rule(s) in the report", highlight=False, markup=False)
    policy = doc.get("policy", {})
    color = "red" if policy.get("verdict") == "fail" else "green"
    console.print(f"verdict: [bold {color}]{markup(str(policy.get('verdict', 'pass')).upper())}[/] "
                  f"(fail on {markup(policy.get('fail_on'))} and above; score {headline.score(doc)}/100)")
    console.print(visible(headline.reason(doc)), highlight=False, markup=False)


def print_summary(doc: dict[str, Any], dest: Path | str | None, seconds: float, console: "Console") -> None:
    """The terminal summary of a result document. The document may also be an old or
    foreign result.json."""
    console.print(f"[bold]flightcheck[/]: {markup(doc['target']['root'])} ({markup(_os_name(doc))}, "
                  f"{markup(doc['target']['machine'] or '?')})", highlight=False)
    rows = new_table(show_header=False)
    rows.add_column(style="bold")
    rows.add_column(justify="right")
    for label, value in _summary_rows(doc, seconds):
        rows.add_row(markup(label), markup(value))
    console.print(rows)
    _print_sources(doc, console)
    _print_findings(doc, console)
    console.print(f"result: {markup(dest)}", highlight=False)
