"""``flightcheck scan`` (a root folder, disk images, or libvirt domains) and ``flightcheck
repo`` (a YUM/DNF repository): the commands that judge a target and write its result."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from scanner.checks import PolicyError
from scanner.cli.app import (
    DEBUG_OPTION, EXIT_ERROR, EXIT_FAIL, EXIT_PASS, console, error_line, fail, main, os_error, progress_bar, table,
)
from scanner.cli.options import (
    CENSUS_OPTIONS, GATE_OPTIONS, QUIET_OPTION, TARGET_OPTIONS, CensusOptions, GateOptions, OutputOptions,
    TargetOptions, grouped, scan_options,
)
from scanner.cli.output import print_reports, print_summary, store_history, write_result
from scanner.reports import parse_formats
from scanner.scan import ScanOptions, scan as run_scan
from scanner.target import TargetError, open_target
from scanner.textsafe import markup, visible


@main.command()
@TARGET_OPTIONS
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for result.json (created if missing).")
@CENSUS_OPTIONS
@GATE_OPTIONS
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar [default: when standard error is a terminal].")
@QUIET_OPTION
@DEBUG_OPTION
@grouped(target=TargetOptions, census=CensusOptions, gate=GateOptions, out=OutputOptions)
def scan(target: TargetOptions, census: CensusOptions, gate: GateOptions, out: OutputOptions) -> None:
    """Scan ROOT (a folder holding a system's /, default /), --image disks, or libvirt
    domains, and write OUTPUT/result.json (OUTPUT/DOMAIN/result.json for domains)."""
    try:
        wanted = parse_formats(out.formats)
    except ValueError as exc:
        fail(str(exc))
    options = scan_options(census, gate)
    if target.libvirt:
        if target.root or target.images:
            fail("give ROOT, --image or --domain/--all-domains, not several")
        sys.exit(scan_domains(target, options, out, wanted, gate.history))
    try:
        if target.root and target.images:
            raise TargetError("give either ROOT or --image, not both")
        fs = open_target(target.root, images=list(target.images), cross_mounts=census.cross_mounts,
                         backend=target.image_backend, backing_dirs=target.backing_dirs)
    except TargetError as exc:
        fail(str(exc))
    sys.exit(scan_one(fs, out.output, options, out, wanted, gate.history)[0])


def scan_one(fs: Any, output: Path, options: ScanOptions, out: OutputOptions, wanted: list[str],
             history: str | None = None) -> tuple[int, dict[str, Any] | None]:
    """Scan one opened target into ``output``; its exit code and document."""
    show = sys.stderr.isatty() if out.progress is None else out.progress
    t0 = time.monotonic()
    try:
        with fs, progress_bar(show) as bar:
            task = bar.add_task(f"scanning {markup(fs.label)}", total=None, files=0, elves=0) if bar else None
            doc = run_scan(fs, options, progress=(lambda files, elves: bar.update(task, files=files, elves=elves))
                           if bar else None)
    except PolicyError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error(exc))
    dest, extra = write_result(doc, output, wanted, out.template)
    for warning in doc["scan"]["options"].get("cache", {}).get("warnings", []):
        click.echo(f"flightcheck: warning: {visible(str(warning))}", err=True)
    if not out.quiet:
        print_summary(doc, dest, time.monotonic() - t0, console())
        print_reports(extra)
    if history and not store_history(doc, history, out.quiet):
        return EXIT_ERROR, doc  # result.json is written all the same
    return (EXIT_FAIL if doc["policy"]["verdict"] == "fail" else EXIT_PASS), doc


def scan_domains(target: TargetOptions, options: ScanOptions, out: OutputOptions, wanted: list[str],
                 history: str | None = None) -> int:
    """Scan libvirt domains, each into OUTPUT/NAME/, and write OUTPUT/fleet.json and
    fleet.html (backing files followed as for --image: the domain's own chain,
    ``--backing-dir``). The exit code is the worst of the guests'."""
    from scanner.reports.fleet import Fleet, write_fleet
    from scanner.target.libvirt import connect as lv_connect, domain_images, list_domains

    try:
        known = list_domains(lv_connect(target.connect))
    except TargetError as exc:
        fail(str(exc))
    by_name = {d.name: d for d in known}
    missing = [n for n in target.domains if n not in by_name]
    if missing:
        where = f" --connect {target.connect}" if target.connect else ""
        fail(f"no domain {', '.join(missing)} (see: flightcheck domains{where})")
    chosen = known if target.all_domains else [by_name[n] for n in target.domains]
    fleet, worst = Fleet(target.connect), EXIT_PASS
    for dom in chosen:
        try:
            disks = domain_images(dom, allow_running=target.allow_running)
        except TargetError as exc:
            fleet.skipped(dom.name, dom.uuid, dom.state, str(exc))
            click.echo(visible(f"flightcheck: skipped: {exc}"), err=True)
            if not target.all_domains:
                worst = EXIT_ERROR
            continue
        if dom.active:
            click.echo(visible(f"flightcheck: warning: {dom.name} is {dom.state}; its disks may be inconsistent "
                               "while read"), err=True)
        try:
            # its identity carries the domain's facts: its interfaces and their libvirt networks, for the IPv6 rules
            fs = open_target(images=disks, backend=target.image_backend, backing_dirs=target.backing_dirs,
                             domain=dom.facts())
        except TargetError as exc:
            fleet.error(dom.name, dom.uuid, dom.state, str(exc))
            error_line(f"{dom.name}: {exc}")
            worst = EXIT_ERROR
            continue
        code, doc = scan_one(fs, out.output / dom.name, options, out, wanted, history)
        worst = max(worst, code)
        if doc is None:
            fleet.error(dom.name, dom.uuid, dom.state, "the scan could not finish")
            continue
        fleet.scanned(dom.name, dom.uuid, dom.state, disks=disks, output=out.output, doc=doc, html="html" in wanted)
    write_fleet(fleet, out.output, out.template)
    if not out.quiet:
        rows = table("domain", "state", "outcome", "verdict", box=None)
        for row in fleet.rows():
            rows.add_row(*(markup(v) for v in row))
        console().print(rows)
    return worst


@main.command()
@click.argument("source", type=str)
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for result.json and the reports (created if missing).")
@click.option("--filelists", is_flag=True,
              help="Also read each package's file list (filelists metadata, or the rpm headers).")
@GATE_OPTIONS
@QUIET_OPTION
@DEBUG_OPTION
@grouped(gate=GateOptions, out=OutputOptions)
def repo(source: str, filelists: bool, gate: GateOptions, out: OutputOptions) -> None:
    """The license inventory of a YUM/DNF repository before anything is installed.
    SOURCE is a folder or an http(s) URL: repodata/repomd.xml when there is one, else the
    .rpm files of the folder or of its HTTP index pages (read as far as their headers)."""
    from scanner.repo import RepoError, RepoOptions, inventory

    t0 = time.monotonic()
    try:
        wanted = parse_formats(out.formats)
        doc = inventory(source, RepoOptions(filelists=filelists, policy=gate.policy, waivers=gate.waivers,
                                            fail_on=gate.fail_on))
    except (RepoError, PolicyError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error(exc))
    try:
        dest, extra = write_result(doc, out.output, wanted, out.template)
    except ValueError as exc:  # a report refused (an SPDX document that does not validate): one line
        fail(str(exc))
    if not out.quiet:
        print_summary(doc, dest, time.monotonic() - t0, console())
        print_reports(extra)
    if gate.history and not store_history(doc, gate.history, out.quiet):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FAIL if doc["policy"]["verdict"] == "fail" else EXIT_PASS)
