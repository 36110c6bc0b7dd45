"""``flightcheck fleet scan``: the guests of many hypervisors on Dask (:mod:`scanner.fleet`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scanner.checks import PolicyError, load_policy, load_waivers
from scanner.cli.app import DEBUG_OPTION, EXIT_ERROR, EXIT_FAIL, EXIT_PASS, console, fail, main, table
from scanner.cli.options import GATE_OPTIONS, QUIET_OPTION, GateOptions, OutputOptions, grouped
from scanner.reports import parse_formats
from scanner.scan import ScanOptions
from scanner.textsafe import markup


@main.group()
def fleet() -> None:
    """Audit the guests of many hypervisors, on Dask workers that run where the disks are."""


@fleet.command("scan")
@click.option("--inventory", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A TOML file of [[hypervisor]] tables: name, uri, include, exclude, groups.")
@click.option("-c", "--connect", "connects", multiple=True, metavar="URI",
              help="A hypervisor's libvirt URI (repeatable), instead of or beside --inventory.")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="An existing Dask scheduler whose workers carry --resources hypervisor-NAME=1 "
                   "[default: a LocalCluster on this machine holding every hypervisor].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Workers of the LocalCluster (without --scheduler).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Guests one LocalCluster worker scans at a time.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Census processes per guest scan.")
@click.option("--resume", is_flag=True,
              help="Skip guests whose disks have not changed since their last scan stored in --history.")
@click.option("--allow-running", is_flag=True, help="Also scan running guests (their disks may be inconsistent).")
@click.option("--backing-dir", "backing_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Also follow qcow2 backing files in this folder on the hypervisors (repeatable).")
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for OUTPUT/HYPERVISOR/DOMAIN/result.json, fleet.json and fleet.html.")
@GATE_OPTIONS
@QUIET_OPTION
@DEBUG_OPTION
@grouped(gate=GateOptions, out=OutputOptions)
def fleet_scan(inventory: Path | None, connects: tuple[str, ...], scheduler: str | None, workers: int, threads: int,
               jobs: int, resume: bool, allow_running: bool, backing_dirs: tuple[str, ...], gate: GateOptions,
               out: OutputOptions) -> None:
    """Scan every domain (active and inactive) of every hypervisor, each on a Dask worker of
    its hypervisor; store each result in --history as it finishes; write fleet.json and
    fleet.html. Exit 1 when any guest fails the gate or could not be scanned."""
    from scanner.fleet import FleetError, FleetOptions, fleet_scan as run_fleet, from_uris, load_inventory
    from scanner.fleet.work import GuestJob

    try:
        formats = parse_formats(out.formats)
        hypervisors = (load_inventory(inventory) if inventory else []) + from_uris(list(connects))
        if not hypervisors:
            raise FleetError("give --inventory FILE or --connect URI")
        load_policy(gate.policy)
        if gate.waivers:
            load_waivers(gate.waivers)
    except (FleetError, PolicyError, ValueError) as exc:
        fail(str(exc))
    if resume and not gate.history:
        fail("--resume needs --history DB (where the last scans are)")
    job = GuestJob("", "", "", allow_running=allow_running, backing_dirs=backing_dirs,
                   options=ScanOptions(jobs=jobs, policy=gate.policy, waivers=gate.waivers, fail_on=gate.fail_on))
    options = FleetOptions(output=out.output, history=gate.history, resume=resume, scheduler=scheduler,
                           workers=workers, threads=threads, formats=tuple(formats), template=out.template, job=job)

    def progress(done: int, total: int) -> None:
        if not out.quiet:
            click.echo(f"fleet: {done} of {total} guests done", err=True)

    result, document = run_fleet(hypervisors, options, progress)
    if not out.quiet:
        if document.get("dashboard"):
            click.echo(f"fleet: Dask dashboard was {document['dashboard']}", err=True)
        rows = table("hypervisor", "domain", "outcome", "verdict", box=None)
        for r in result.rows:
            rows.add_row(*(markup(str(v or "")) for v in (r["hypervisor"], r.get("domain") or "—", r["outcome"],
                                                         r.get("verdict") or r.get("reason") or "")))
        console().print(rows)
        console().print(f"fleet: {markup(result.verdict.upper())}; {out.output / 'fleet.html'}")
    errors = any(r["outcome"] == "error" for r in result.rows)
    sys.exit(EXIT_FAIL if result.verdict == "fail" else (EXIT_ERROR if errors else EXIT_PASS))
