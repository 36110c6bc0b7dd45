"""``flightcheck history list|show``: the scan history (results stored by ``scan
--history DB``), and reading a result from it for ``flightcheck diff``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from scanner import result as resultmod
from scanner.cli.app import DEBUG_OPTION, console, fail, main, table
from scanner.cli.options import TEMPLATE_HELP
from scanner.cli.output import print_reports, print_summary, write_result
from scanner.reports import FORMATS, parse_formats
from scanner.textsafe import json_dumps, markup, visible


def history_db(db: str | None) -> str:
    """The history database asked for, else the default one."""
    from scanner.history import default_db

    return db or default_db()


HISTORY_DB = click.option("--history", "db", metavar="DB",
                          help="The history: an SQLite file or a SQLAlchemy URL (postgresql+psycopg://USER@HOST/DB) "
                               "[default: $FLIGHTCHECK_HISTORY, else ~/.local/share/flightcheck/history.sqlite].")


@main.group("history")
def history_group() -> None:
    """The scan history: results stored by scan --history DB, each with its target, time
    and verdict, in an SQLite file or PostgreSQL."""


@history_group.command("list")
@click.option("--target", help="Only scans of this target (as listed: its root, image or domain name).")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Only the newest N scans.")
@HISTORY_DB
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
@DEBUG_OPTION
def history_list(target: str | None, limit: int | None, db: str | None, as_json: bool) -> None:
    """List the stored scans, newest first."""
    from scanner.history import HistoryError, describe, list_scans

    db = history_db(db)
    try:
        rows = list_scans(db, target=target, limit=limit)
    except HistoryError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json_dumps([r.to_json() for r in rows]))
        return
    if not rows:
        click.echo(visible(f"no scans{' of ' + target if target else ''} in history {describe(db)}"))
        return
    # every cell may come from the target (its root, a domain name) or from whoever wrote the database
    cells = [tuple(markup(c) for c in (r.id, str(r.started).replace("T", " ").removesuffix("+00:00"), r.target,
                                       r.kind, r.verdict, "/".join(str(n) for n in (r.critical, r.high, r.medium,
                                                                                     r.low)),
                                       r.packages, r.elves)) for r in rows]
    shown = table(box=None, pad_edge=False)
    for name in ("id", "started (UTC)", "target", "kind", "verdict", "failing\nc/h/m/l", "packages", "ELF\nfiles"):
        shown.add_column(name, justify="right" if name in ("id", "packages", "ELF\nfiles") else "left",
                         overflow="fold", no_wrap=name != "target")
    for c in cells:
        color = "red" if c[4] == "fail" else "green"
        shown.add_row(*c[:4], f"[{color}]{c[4]}[/]", *c[5:])
    out = console()
    # a terminal folds long targets; a pipe or file gets whole lines
    (out if out.is_terminal else console(width=100_000)).print(shown)


@history_group.command("show")
@click.argument("scan_id", metavar="ID", type=int)
@HISTORY_DB
@click.option("-o", "--output", "output", type=click.Path(path_type=Path),
              help="Write the stored result.json (and the --format reports) into this folder.")
@click.option("--format", "formats", default="json", show_default=True, metavar="LIST",
              help=f"With -o, comma-separated outputs besides result.json: {', '.join(FORMATS[1:])}.")
@click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path), help=TEMPLATE_HELP)
@DEBUG_OPTION
def history_show(scan_id: int, db: str | None, output: Path | None, formats: str, template: Path | None) -> None:
    """Show a stored scan's summary, as the scan printed it; with -o, write its result.json
    and reports again."""
    from scanner.history import HistoryError, describe, get

    db = history_db(db)
    try:
        wanted = parse_formats(formats)
        if not output and any(f != "json" for f in wanted):
            raise ValueError("--format writes files: give -o DIR")
        row, doc = get(db, scan_id)
    except (HistoryError, ValueError) as exc:
        fail(str(exc))
    dest: Path | str | None = f"scan {row.id} in history {describe(db)}"
    extra: list[Path] = []
    if output:
        dest, extra = write_result(doc, output, wanted, template, render_errors=True)
    out = console()
    out.print(f"scan {row.id}: started {markup(row.started)}, flightcheck {markup(row.tool_version or '?')}",
              highlight=False)
    print_summary(doc, dest, float(doc.get("scan", {}).get("duration_seconds") or 0), out)
    print_reports(extra, out)


@history_group.command("report")
@click.argument("target")
@HISTORY_DB
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for history.html (and history.pdf).")
@click.option("--format", "formats", default="html", show_default=True, metavar="LIST",
              help="Comma-separated: html, pdf.")
@click.option("-n", "--last", type=click.IntRange(min=2), default=30, show_default=True,
              help="The newest N scans of the target.")
@click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path), help=TEMPLATE_HELP)
@DEBUG_OPTION
def history_report(target: str, db: str | None, output: Path, formats: str, last: int, template: Path | None) -> None:
    """One TARGET over time (as `history list` names it): its verdict, failing findings by
    severity and license categories per stored scan, as small line charts and a table, and
    what changed between its last two scans."""
    from scanner.diff import diff
    from scanner.history import HistoryError, get, list_scans
    from scanner.reports import timeline

    db = history_db(db)
    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    if not wanted or any(f not in ("html", "pdf") for f in wanted):
        fail(f"unknown format in {formats!r} (choose from html, pdf)")
    try:
        rows = sorted(list_scans(db, target=target), key=lambda r: (r.started, r.id))[-last:]
        docs = [(r.id, get(db, r.id)[1]) for r in rows]
    except HistoryError as exc:
        fail(str(exc))
    if not docs:
        fail(f"no stored scan of {target!r} (see: flightcheck history list)")
    points = [timeline.point(doc, scan_id) for scan_id, doc in docs]
    changes = diff(docs[-2][1], docs[-1][1], old_label=f"scan {docs[-2][0]}", new_label=f"scan {docs[-1][0]}") \
        if len(docs) > 1 else None
    for path in timeline.write(target, points, changes, output, wanted, template):
        console().print(f"report: {markup(str(path))}", highlight=False)


def load_result(arg: str, db: str | None) -> tuple[dict[str, Any], str]:
    """A result document from a file, or from the history when ARG is an integer that is
    not a file; and a label for it. Exits 2 with one line when it cannot be read."""
    path = Path(arg)
    if arg.isdigit() and not path.exists():
        try:
            from scanner import history
        except ImportError as exc:
            fail(f"{arg}: no such file, and the scan history cannot be read here ({exc})")
        where = db or history.default_db()
        try:
            return history.load(where, int(arg)), f"history {history.describe(where)} #{arg}"
        except Exception as exc:  # noqa: BLE001 - HistoryError, or a database error: one line
            fail(str(exc))
    try:
        return resultmod.load(path), str(path)
    except json.JSONDecodeError as exc:
        fail(f"{arg}: not JSON ({exc.msg}, line {exc.lineno})")
    except UnicodeDecodeError:
        fail(f"{arg}: not a JSON text (not UTF-8)")
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{arg}: {exc.strerror or exc}")
