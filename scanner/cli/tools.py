"""The commands that read what is already there: ``report`` (a saved result to reports),
``diff`` (two results), ``domains`` (libvirt's guests) and ``rules`` (the rule pack)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from scanner import result as resultmod
from scanner.checks import SEV_RANK, SEVERITIES, PolicyError, effective_rules, load_policy, load_rules
from scanner.cli.app import DEBUG_OPTION, EXIT_FAIL, EXIT_PASS, console, fail, main, os_error, table
from scanner.cli.history import load_result
from scanner.cli.output import write_result
from scanner.reports import FORMATS, parse_formats
from scanner.target import TargetError
from scanner.textsafe import json_dumps, markup, visible


@main.command()
@click.option("-c", "--connect", metavar="URI", help="libvirt URI (qemu:///system, qemu:///session, test:///...); "
                                                     "default: libvirt's default, as virsh.")
def domains(connect: str | None) -> None:
    """List every libvirt domain, active and inactive, with its state, disks and network
    interfaces (for a libvirt network: its addresses, or that it has no IPv6)."""
    from scanner.target.libvirt import connect as lv_connect, list_domains

    try:
        found = list_domains(lv_connect(connect))
    except TargetError as exc:
        fail(str(exc))
    shown = table("domain", "state", "target", "type", "source", box=None)
    for d in found:
        rows = [(disk.target, f"{disk.kind}/{disk.device}", disk.source or f"({disk.problem})") for disk in d.disks]
        rows = rows or [("-", "-", "no disks")]
        for nic in d.interfaces:
            net = nic.network
            if net is not None:
                addrs = [f"{ip.address}/{ip.prefix}" if ip.prefix is not None else str(ip.address)
                         for ip in net.ips if ip.address]
                where = f"{net.name} ({', '.join(addrs) or 'no addresses'}{'' if net.has_ipv6 else '; no IPv6'}"
                where += f"{'; inactive' if net.active is False else ''})"
                rows.append((nic.mac or "nic", f"network/{net.forward}", where))
            else:
                rows.append((nic.mac or "nic", nic.kind, f"({nic.problem})" if nic.problem else nic.source or "-"))
        for i, (target, kind, source) in enumerate(rows):
            shown.add_row(*(markup(v) for v in (d.name if i == 0 else "", d.state if i == 0 else "", target, kind,
                                                source)))
    console().print(shown)


@main.command()
@click.argument("result", type=click.Path(path_type=Path))
@click.option("-f", "--format", "formats", default="html", show_default=True, metavar="LIST",
              help=f"Comma-separated formats: {', '.join(FORMATS[1:])}.")
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the reports (created if missing).")
@click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder with your own report.html.j2 (and report.css, print.css, report.js).")
@DEBUG_OPTION
def report(result: Path, formats: str, output: Path, template: Path | None) -> None:
    """Render a saved RESULT (result.json) to reports, without scanning again."""
    try:
        wanted = parse_formats(formats)
        doc = resultmod.load(result)
    except (OSError, ValueError) as exc:
        fail(str(exc) if not isinstance(exc, OSError) else f"{result}: {exc.strerror or exc}")
    _, written = write_result(doc, output, wanted, template, result=False, render_errors=True, file_errors=False)
    for path in written:
        click.echo(f"report: {visible(str(path))}")
    sys.exit(EXIT_PASS)


DIFF_FORMATS = {"text": "diff.txt", "json": "diff.json", "html": "diff.html"}


@main.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option("-f", "--format", "formats", default="text", show_default=True, metavar="LIST",
              help="Comma-separated: text, json, html.")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path),
              help="Write diff.txt, diff.json, diff.html (as --format asks) into this folder, created if missing; "
                   "the text still goes to standard output. Without it, the formats go to standard output.")
@click.option("--history", "db", metavar="DB",
              help="The scan history an integer OLD or NEW is an id in (as for scan --history) "
                   "[default: $FLIGHTCHECK_HISTORY, else ~/.local/share/flightcheck/history.sqlite].")
@click.option("--fail-on-new", type=click.Choice(SEVERITIES), metavar="SEVERITY",
              help="Exit 1 when a new failing finding at or above SEVERITY appeared "
                   "(info, low, medium, high, critical).")
@click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder with your own diff.html.j2 (and report.css) for html.")
@click.option("-q", "--quiet", is_flag=True, help="With -o, print nothing on standard output.")
@DEBUG_OPTION
def diff_cmd(old: str, new: str, formats: str, output: Path | None, db: str | None, fail_on_new: str | None,
             template: Path | None, quiet: bool) -> None:
    """What changed from OLD to NEW: packages added, removed, upgraded; license changes;
    findings new, fixed, still failing, newly waived; ELF files added outside any package.
    OLD and NEW are result.json files, or integers: ids in the scan history."""
    from scanner import diff as diffmod

    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in DIFF_FORMATS]
    if unknown or not wanted:
        fail(f"unknown diff format {', '.join(unknown) or repr(formats)} (choose from {', '.join(DIFF_FORMATS)})")
    docs = [load_result(arg, db) for arg in (old, new)]
    try:
        d = diffmod.diff(docs[0][0], docs[1][0], old_label=docs[0][1], new_label=docs[1][1])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        fail(f"not a well-formed result document ({type(exc).__name__}: {exc})")
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {"text": diffmod.render_text,
                 "json": lambda x: json_dumps(x) + "\n",
                 "html": lambda x: diffmod.render_html(x, template)}
    try:
        if output is None:
            for fmt in dict.fromkeys(wanted):
                click.echo(renderers[fmt](d), nl=False)
        else:
            output.mkdir(parents=True, exist_ok=True)
            written = []
            for fmt in dict.fromkeys(wanted):
                dest = output / DIFF_FORMATS[fmt]
                dest.write_text(renderers[fmt](d), encoding="utf-8")
                written.append(dest)
            if not quiet:
                click.echo(diffmod.render_text(d), nl=False)
                for dest in written:
                    click.echo(f"diff: {visible(str(dest))}")
    except OSError as exc:
        fail(os_error(exc))
    except Exception as exc:  # noqa: BLE001 - a renderer failure is one clear line
        fail(f"cannot render: {exc}")
    if fail_on_new and diffmod.fails_on_new(d, fail_on_new):
        hits = [f for f in d["findings"]["new"] if SEV_RANK[f["severity"]] >= SEV_RANK[fail_on_new]]
        click.echo(f"flightcheck: {len(hits)} new finding(s) at or above {fail_on_new}", err=True)
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_PASS)



@main.group()
def rules() -> None:
    """The rule pack: what flightcheck checks, with severities and references."""


@rules.command("list")
@click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Show severities and switches as this policy file sets them.")
@click.option("--family", help="Only rules of this family (boot, ipv6, licenses).")
def rules_list(policy: Path | None, family: str | None) -> None:
    """List every rule: id, severity, family, title."""
    try:
        pack = effective_rules(load_rules(), load_policy(policy))
    except PolicyError as exc:
        fail(str(exc))
    shown = table("id", "severity", "family", "title", box=None)
    for r in pack:
        if family and r.family != family:
            continue
        shown.add_row(*(markup(v) for v in (r.id, r.severity + ("" if r.enabled else " (off)"), r.family, r.title)))
    console().print(shown)


@rules.command("show")
@click.argument("rule_id")
def rules_show(rule_id: str) -> None:
    """Show one rule: its check, rationale, fix, parameters and references."""
    found = [r for r in load_rules() if r.id.lower() == rule_id.lower()]
    if not found:
        fail(f"no rule {rule_id} (see: flightcheck rules list)")
    r = found[0]
    out = console()
    out.print(f"[bold]{markup(r.id)}[/] {markup(r.title)}", highlight=False)
    for label, value in (("severity", r.severity), ("family", r.family), ("check", r.check),
                         ("rationale", r.rationale), ("fix", r.fix)):
        out.print(visible(f"  {label}: {value}"), highlight=False, markup=False)
    for key, value in r.params.items():
        out.print(visible(f"  parameter {key}: {value}"), highlight=False, markup=False)
    for key, value in r.references.items():
        out.print(visible(f"  {key}: {', '.join(value) if isinstance(value, list) else value}"), highlight=False,
                  markup=False)
