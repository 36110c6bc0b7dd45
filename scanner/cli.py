"""The ``flightcheck`` command: a thin layer that wires the pipeline stages.

Exit codes: 0 the scan passed, 1 the policy failed, 2 the target could not be scanned
(or the command could not do its work), 130 interrupted (Ctrl-C). A crash is never 1:
every command runs inside one error boundary (:class:`_Guarded`) that turns an unexpected
exception into one line on standard error and exit 2; ``--debug`` (on the command, or
``flightcheck --debug COMMAND``) adds the traceback.

Every string that may come from the target reaches the terminal through
:mod:`scanner.textsafe`: :func:`~scanner.textsafe.markup` for rich output (markup escaped,
control characters visible), :func:`~scanner.textsafe.visible` for plain lines.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scanner import __version__
from scanner import result as resultmod
from scanner.inventory.cache import default_path as census_cache_path
from scanner.checks import (
    FAIL_ON, FAILING_STATES, SEV_RANK, SEVERITIES, PolicyError, effective_rules, load_policy, load_rules,
)
from scanner.reports import FORMATS, parse_formats, write_reports
from scanner.scan import ScanOptions, scan as run_scan
from scanner.target import IMAGE_BACKENDS, TargetError, open_target
from scanner.textsafe import json_dumps, markup, visible

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C



# rich is imported when something is printed: a quiet scheduled scan does not pay for it
def _console(**kwargs: Any) -> "Console":
    """A rich console that does not turn ``:name:`` in a target string into an emoji."""
    from rich.console import Console  # noqa: PLC0415

    return Console(**{"emoji": False, **kwargs})


def _table(*args: Any, **kwargs: Any) -> "Table":
    from rich.table import Table  # noqa: PLC0415

    return Table(*args, **kwargs)


def _progress(show: bool) -> Any:
    """A progress bar on the terminal, or nothing (a context giving None)."""
    if not show:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.fields[files]} files, {task.fields[elves]} ELF"),
                    TimeElapsedColumn(), console=_console(stderr=True), transient=True)

_DEBUG_KEY = "flightcheck.debug"


def _note_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """Remember --debug where :func:`_debugging` and the error boundary find it: ``ctx.meta``
    is one dict shared by a command's context and its groups', so ``flightcheck --debug
    CMD`` and ``flightcheck CMD --debug`` both count."""
    if value:
        ctx.meta[_DEBUG_KEY] = True
    return value


_DEBUG_OPTION = click.option("--debug", is_flag=True, callback=_note_debug, help="Print tracebacks of errors.")


def _debugging(debug: bool = False) -> bool:
    """Whether tracebacks were asked for, on this command or on the group."""
    ctx = click.get_current_context(silent=True)
    return debug or bool(ctx is not None and ctx.meta.get(_DEBUG_KEY))


def _fail(message: str, debug: bool) -> None:
    """One line on standard error, exit 2. The message may quote target paths and names,
    so it is made visible: no escape sequence or newline of the target reaches the terminal."""
    if _debugging(debug) and sys.exc_info()[1] is not None:  # a refusal of our own has no trace
        traceback.print_exc()
    click.echo(f"flightcheck: error: {visible(message)}", err=True)
    sys.exit(EXIT_ERROR)


class _Guarded(click.Group):
    """The error boundary of every command. click itself turns ``EOFError`` (which a damaged
    image's reader may raise) into a bare ``Aborted!`` with exit 1, and lets any other
    exception out as a traceback with exit 1, which a CI gate reads as "policy failed".
    Here an unexpected exception is one line and exit 2, an interrupt is one line and exit
    130, and a click error that would exit 1 exits 2; the commands' own ``sys.exit`` codes
    and click's usage errors (exit 2) pass through."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if exc.exit_code != EXIT_FAIL:
                raise
            exc.show()
            sys.exit(EXIT_ERROR)
        except (KeyboardInterrupt, click.Abort):
            click.echo("\nflightcheck: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.exceptions.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: anything unexpected is one line, exit 2
            if _debugging():
                traceback.print_exc()
            hint = "" if _debugging() else " (--debug shows the traceback)"
            click.echo(f"flightcheck: error: {visible(_describe(exc))}{hint}", err=True)
            sys.exit(EXIT_ERROR)


def _describe(exc: BaseException) -> str:
    """An unexpected exception as one line: its type, and its message when it has one."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _gate_options(command: Any) -> Any:
    """The options every command that judges a target shares (scan, repo): reports,
    policy, waivers, the gate, the history."""
    options = [
        click.option("--format", "formats", default="json", show_default=True, metavar="LIST",
                     help="Comma-separated outputs besides result.json: html, pdf, spdx-json, spdx-tv, sarif, junit."),
        click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="A folder with your own report.html.j2 (and report.css, print.css, report.js) for html "
                          "and pdf."),
        click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="A policy TOML file laid over the default policy (license lists, rule overrides, names)."),
        click.option("--waivers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="A waivers TOML file: accepted findings (rule, subject glob, reason, expiry date)."),
        click.option("--fail-on", type=click.Choice(FAIL_ON), default="high", show_default=True,
                     help="Exit 1 when a finding at or above this severity fails (never: always exit 0)."),
        click.option("--history", metavar="DB",
                     help="Also store the result in a scan history: an SQLite file, or a SQLAlchemy URL "
                          "(postgresql+psycopg://USER@HOST/DB). See: flightcheck history."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(cls=_Guarded, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flightcheck")
@click.option("--debug", is_flag=True, callback=_note_debug, expose_value=False,
              help="Print tracebacks of errors, for any command.")
def main() -> None:
    """Offline compliance and audit scanner for Linux systems: every ELF file, what it
    links (resolved as the target's own loader would), in one JSON result."""


@main.command()
@click.argument("root", required=False, type=click.Path(path_type=str))
@click.option("--image", "images", multiple=True, type=click.Path(path_type=str), metavar="FILE",
              help="Scan a virtual machine's disk image instead (qcow2 with backing files, vmdk, raw; repeat for "
                   "each disk of one machine). Read-only, without mounting.")
@click.option("--image-backend", type=click.Choice(IMAGE_BACKENDS), default="auto", show_default=True,
              help="How images are read: dissect (pure Python, the [images] extra, AGPL-3.0), guestfs (libguestfs's "
                   "appliance, LGPL; one launch per machine), or auto (dissect when installed, else guestfs).")
@click.option("--backing-dir", "backing_dirs", multiple=True, type=click.Path(path_type=str), metavar="DIR",
              help="Also follow an image's backing files and extents inside DIR (repeatable); by default only "
                   "inside the folder of the image that names them.")
@click.option("--domain", "domains", multiple=True, metavar="NAME",
              help="Scan a libvirt domain's disks (repeatable); results go to OUTPUT/NAME/.")
@click.option("--all-domains", is_flag=True, help="Scan every libvirt domain, active or shut off.")
@click.option("-c", "--connect", metavar="URI", help="libvirt URI for --domain/--all-domains (as virsh -c).")
@click.option("--allow-running", is_flag=True,
              help="Also scan running domains (their images may be inconsistent while they are read).")
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for result.json (created if missing).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Parallel parsing processes [default: all cores].")
@click.option("--cross-mounts", is_flag=True,
              help="Also walk file systems mounted below ROOT (never /proc, /sys and other kernel pseudo file systems).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip files whose path inside the target matches GLOB (repeatable), e.g. '/usr/lib/debug/*'.")
@click.option("--path", "paths", multiple=True, metavar="PATH",
              help="Census only these folders or files inside the target (repeatable; default: all of /). "
                   "Libraries they link are still found wherever the loader would look.")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), is_flag=False, default=None,
              flag_value=str(census_cache_path()), metavar="PATH",
              help="Keep census results in this SQLite file and reuse them for unchanged files (same size, mtime, "
                   f"ctime, inode, mode, owner). --cache alone: {census_cache_path()}.")
@click.option("--rpm-reader", type=click.Choice(["auto", "librpm", "python"]), default="auto", show_default=True,
              help="How rpm databases are read: librpm where it can read the backend, else the built-in reader; "
                   "or force one.")
@click.option("--no-packages", is_flag=True, help="Skip the package databases (no ownership, no licenses).")
@click.option("--no-licenses", is_flag=True, help="Skip license analysis (packages and ownership are still read).")
@_gate_options
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar [default: when standard error is a terminal].")
@click.option("-q", "--quiet", is_flag=True, help="No summary on standard output.")
@_DEBUG_OPTION
def scan(root: str | None, images: tuple[str, ...], image_backend: str, backing_dirs: tuple[str, ...],
         domains: tuple[str, ...], all_domains: bool,
         connect: str | None, allow_running: bool, output: Path, jobs: int | None, cross_mounts: bool,
         exclude: tuple[str, ...], paths: tuple[str, ...], cache: Path | None, rpm_reader: str, no_packages: bool,
         no_licenses: bool,
         formats: str, template: Path | None, policy: Path | None, waivers: Path | None, fail_on: str,
         history: str | None, progress: bool | None, quiet: bool, debug: bool) -> None:
    """Scan ROOT (a folder holding a system's /, default /), --image disks, or libvirt
    domains, and write OUTPUT/result.json (OUTPUT/DOMAIN/result.json for domains)."""
    try:
        wanted = parse_formats(formats)
    except ValueError as exc:
        _fail(str(exc), debug)
        return
    options = ScanOptions(jobs=jobs, cross_mounts=cross_mounts, exclude=exclude, paths=paths or ("/",),
                          rpm_reader=rpm_reader, packages=not no_packages, licenses=not no_licenses, cache=cache,
                          policy=policy, waivers=waivers, fail_on=fail_on)
    if domains or all_domains:
        if root or images:
            _fail("give ROOT, --image or --domain/--all-domains, not several", debug)
        sys.exit(_scan_domains(domains, all_domains, connect, allow_running, output, options, wanted, template,
                               progress, quiet, debug, image_backend, history=history, backing_dirs=backing_dirs))
    try:
        if root and images:
            raise TargetError("give either ROOT or --image, not both")
        fs = open_target(root, images=list(images), cross_mounts=cross_mounts, backend=image_backend,
                         backing_dirs=backing_dirs)
    except TargetError as exc:
        _fail(str(exc), debug)
        return
    sys.exit(_scan_one(fs, output, options, wanted, template, progress, quiet, debug, history=history)[0])


def _scan_one(fs: Any, output: Path, options: ScanOptions, wanted: list[str], template: Path | None,
              progress: bool | None, quiet: bool, debug: bool,
              history: str | None = None) -> tuple[int, dict[str, Any] | None]:
    """Scan one opened target; its exit code and document."""
    show = sys.stderr.isatty() if progress is None else progress
    t0 = time.monotonic()
    try:
        with fs, _progress(show) as bar:
            task = bar.add_task(f"scanning {markup(fs.label)}", total=None, files=0, elves=0) if bar else None
            doc = run_scan(fs, options, progress=(lambda files, elves: bar.update(task, files=files, elves=elves))
                           if bar else None)
        dest = resultmod.write(doc, output)
        extra = write_reports(doc, Path(output), wanted, template)
        for warning in doc["scan"]["options"].get("cache", {}).get("warnings", []):
            click.echo(f"flightcheck: warning: {visible(str(warning))}", err=True)
    except PolicyError as exc:
        _fail(str(exc), debug)
        return EXIT_ERROR, None
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), debug)
        return EXIT_ERROR, None
    if not quiet:
        print_summary(doc, dest, time.monotonic() - t0, _console())
        for path in extra:
            _console().print(f"report: {markup(path)}", highlight=False)
    if history and not _store_history(doc, history, quiet, debug):
        return EXIT_ERROR, doc  # result.json is written all the same
    return (EXIT_FAIL if doc["policy"]["verdict"] == "fail" else EXIT_PASS), doc


def _scan_domains(names: tuple[str, ...], all_domains: bool, connect: str | None, allow_running: bool,
                  output: Path, options: ScanOptions, wanted: list[str], template: Path | None,
                  progress: bool | None, quiet: bool, debug: bool, image_backend: str = "auto",
                  history: str | None = None, backing_dirs: tuple[str, ...] = ()) -> int:
    """Scan libvirt domains, each into OUTPUT/NAME/, and write OUTPUT/fleet.json
    (backing files followed as for --image: the domain's own chain, ``backing_dirs``)."""
    from scanner.target.libvirt import connect as lv_connect, domain_images, list_domains

    try:
        known = list_domains(lv_connect(connect))
    except TargetError as exc:
        _fail(str(exc), debug)
        return EXIT_ERROR
    by_name = {d.name: d for d in known}
    missing = [n for n in names if n not in by_name]
    if missing:
        _fail(f"no domain {', '.join(missing)} (see: flightcheck domains{' --connect ' + connect if connect else ''})",
              debug)
    chosen = known if all_domains else [by_name[n] for n in names]
    fleet, worst = [], EXIT_PASS
    for dom in chosen:
        entry: dict[str, Any] = {"domain": dom.name, "uuid": dom.uuid, "state": dom.state}
        try:
            disks = domain_images(dom, allow_running=allow_running)
        except TargetError as exc:
            entry.update(outcome="skipped", reason=str(exc))
            click.echo(visible(f"flightcheck: skipped: {exc}"), err=True)
            if not all_domains:
                worst = EXIT_ERROR
            fleet.append(entry)
            continue
        if dom.active:
            click.echo(visible(f"flightcheck: warning: {dom.name} is {dom.state}; its disks may be inconsistent "
                               "while read"), err=True)
        try:
            # its identity carries the domain's facts: its interfaces and their libvirt networks, for the IPv6 rules
            fs = open_target(images=disks, backend=image_backend, backing_dirs=backing_dirs, domain=dom.facts())
        except TargetError as exc:
            entry.update(outcome="error", reason=str(exc))
            # one line each, never wrapped to the terminal's width (scripts grep these)
            click.echo(visible(f"flightcheck: error: {dom.name}: {exc}"), err=True)
            worst = EXIT_ERROR
            fleet.append(entry)
            continue
        code, doc = _scan_one(fs, output / dom.name, options, wanted, template, progress, quiet, debug,
                              history=history)
        worst = max(worst, code)
        if doc is None:
            entry.update(outcome="error", reason="the scan could not finish")
            fleet.append(entry)
            continue
        link = f"{dom.name}/report.html" if "html" in wanted else f"{dom.name}/result.json"
        entry.update(outcome="scanned", disks=disks, result=str(output / dom.name / "result.json"), link=link,
                     os=doc["target"]["os"].get("PRETTY_NAME") or doc["target"]["os"].get("ID"),
                     packages=doc["summary"]["packages"], elves=doc["summary"]["elves"],
                     verdict=doc["policy"]["verdict"], findings=doc["summary"]["findings"])
        fleet.append(entry)
    output.mkdir(parents=True, exist_ok=True)
    verdict = "fail" if any(e.get("verdict") == "fail" for e in fleet) else "pass"
    (output / "fleet.json").write_text(json.dumps({"connect": connect, "verdict": verdict, "domains": fleet},
                                                  indent=1) + "\n")
    from scanner.reports.html import render_fleet

    (output / "fleet.html").write_text(render_fleet(fleet, connect, verdict, template), encoding="utf-8")
    if not quiet:
        table = _table("domain", "state", "outcome", "verdict", box=None)
        for e in fleet:
            table.add_row(*(markup(v) for v in (e["domain"], e["state"], e["outcome"],
                                                e.get("verdict") or e.get("reason", ""))))
        _console().print(table)
    return worst


@main.command()
@click.argument("source", type=str)
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for result.json and the reports (created if missing).")
@click.option("--filelists", is_flag=True,
              help="Also read each package's file list (filelists metadata, or the rpm headers).")
@_gate_options
@click.option("-q", "--quiet", is_flag=True, help="No summary on standard output.")
@_DEBUG_OPTION
def repo(source: str, output: Path, filelists: bool, formats: str, template: Path | None, policy: Path | None,
         waivers: Path | None, fail_on: str, history: str | None, quiet: bool, debug: bool) -> None:
    """The license inventory of a YUM/DNF repository before anything is installed.
    SOURCE is a folder or an http(s) URL: repodata/repomd.xml when there is one, else the
    .rpm files of the folder or of its HTTP index pages (read as far as their headers)."""
    from scanner.repo import RepoError, RepoOptions, inventory

    t0 = time.monotonic()
    try:
        wanted = parse_formats(formats)
        doc = inventory(source, RepoOptions(filelists=filelists, policy=policy, waivers=waivers, fail_on=fail_on))
        dest = resultmod.write(doc, output)
        extra = write_reports(doc, Path(output), wanted, template)
    except (RepoError, PolicyError, ValueError) as exc:
        _fail(str(exc), debug)
        return
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), debug)
        return
    if not quiet:
        print_summary(doc, dest, time.monotonic() - t0, _console())
        for path in extra:
            _console().print(f"report: {markup(path)}", highlight=False)
    if history and not _store_history(doc, history, quiet, debug):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FAIL if doc["policy"]["verdict"] == "fail" else EXIT_PASS)


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
        _fail(str(exc), False)
        return
    table = _table("domain", "state", "target", "type", "source", box=None)
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
            table.add_row(*(markup(v) for v in (d.name if i == 0 else "", d.state if i == 0 else "", target, kind,
                                                source)))
    _console().print(table)


@main.command()
@click.argument("result", type=click.Path(path_type=Path))
@click.option("-f", "--format", "formats", default="html", show_default=True, metavar="LIST",
              help=f"Comma-separated formats: {', '.join(FORMATS[1:])}.")
@click.option("-o", "--output", "output", default="out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the reports (created if missing).")
@click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder with your own report.html.j2 (and report.css, print.css, report.js).")
@_DEBUG_OPTION
def report(result: Path, formats: str, output: Path, template: Path | None, debug: bool) -> None:
    """Render a saved RESULT (result.json) to reports, without scanning again."""
    try:
        wanted = parse_formats(formats)
        doc = resultmod.load(result)
    except (OSError, ValueError) as exc:
        _fail(str(exc) if not isinstance(exc, OSError) else f"{result}: {exc.strerror or exc}", debug)
        return
    try:
        for path in write_reports(doc, output, wanted, template):
            click.echo(f"report: {visible(str(path))}")
    except Exception as exc:  # noqa: BLE001 - a renderer failure is one clear line
        _fail(f"cannot render: {exc}", debug)
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
@_DEBUG_OPTION
def diff_cmd(old: str, new: str, formats: str, output: Path | None, db: str | None, fail_on_new: str | None,
             template: Path | None, quiet: bool, debug: bool) -> None:
    """What changed from OLD to NEW: packages added, removed, upgraded; license changes;
    findings new, fixed, still failing, newly waived; ELF files added outside any package.
    OLD and NEW are result.json files, or integers: ids in the scan history."""
    from scanner import diff as diffmod

    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in DIFF_FORMATS]
    if unknown or not wanted:
        _fail(f"unknown diff format {', '.join(unknown) or repr(formats)} (choose from {', '.join(DIFF_FORMATS)})",
              debug)
    docs = [_load_for_diff(arg, db, debug) for arg in (old, new)]
    try:
        d = diffmod.diff(docs[0][0], docs[1][0], old_label=docs[0][1], new_label=docs[1][1])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        _fail(f"not a well-formed result document ({type(exc).__name__}: {exc})", debug)
        return
    renderers = {"text": diffmod.render_text,
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
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), debug)
    except Exception as exc:  # noqa: BLE001 - a renderer failure is one clear line
        _fail(f"cannot render: {exc}", debug)
    if fail_on_new and diffmod.fails_on_new(d, fail_on_new):
        hits = [f for f in d["findings"]["new"] if SEV_RANK[f["severity"]] >= SEV_RANK[fail_on_new]]
        click.echo(f"flightcheck: {len(hits)} new finding(s) at or above {fail_on_new}", err=True)
        sys.exit(EXIT_FAIL)
    sys.exit(EXIT_PASS)


def _load_for_diff(arg: str, db: str | None, debug: bool) -> tuple[dict[str, Any], str]:
    """A result document from a file, or from the history when ARG is an integer that is
    not a file; and a label for it. Exits 2 with one line when it cannot be read."""
    path = Path(arg)
    if arg.isdigit() and not path.exists():
        try:
            from scanner import history
        except ImportError as exc:
            _fail(f"{arg}: no such file, and the scan history cannot be read here ({exc})", debug)
        where = db or history.default_db()
        try:
            return history.load(where, int(arg)), f"history {history.describe(where)} #{arg}"
        except Exception as exc:  # noqa: BLE001 - HistoryError, or a database error: one line
            _fail(str(exc), debug)
    try:
        return resultmod.load(path), str(path)
    except json.JSONDecodeError as exc:
        _fail(f"{arg}: not JSON ({exc.msg}, line {exc.lineno})", debug)
    except UnicodeDecodeError:
        _fail(f"{arg}: not a JSON text (not UTF-8)", debug)
    except ValueError as exc:
        _fail(str(exc), debug)
    except OSError as exc:
        _fail(f"{arg}: {exc.strerror or exc}", debug)
    raise AssertionError("unreachable")  # _fail exits


def _store_history(doc: dict[str, Any], db: str, quiet: bool, debug: bool) -> bool:
    """Store a written result in the scan history; False, after one line on standard
    error, when it cannot be stored."""
    from scanner.history import HistoryError, store

    try:
        scan_id = store(doc, db)
    except HistoryError as exc:
        if _debugging(debug):
            traceback.print_exc()
        click.echo(f"flightcheck: error: {visible(str(exc))}", err=True)
        return False
    if not quiet:
        _console().print(f"history: stored as {scan_id}", highlight=False)
    return True


def _history_db(db: str | None) -> str:
    from scanner.history import default_db

    return db or default_db()


_HISTORY_DB = click.option("--history", "db", metavar="DB",
                           help="The history: an SQLite file or a SQLAlchemy URL (postgresql+psycopg://USER@HOST/DB) "
                                "[default: $FLIGHTCHECK_HISTORY, else ~/.local/share/flightcheck/history.sqlite].")


@main.group("history")
def history_group() -> None:
    """The scan history: results stored by scan --history DB, each with its target, time
    and verdict, in an SQLite file or PostgreSQL."""


@history_group.command("list")
@click.option("--target", help="Only scans of this target (as listed: its root, image or domain name).")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Only the newest N scans.")
@_HISTORY_DB
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
@_DEBUG_OPTION
def history_list(target: str | None, limit: int | None, db: str | None, as_json: bool, debug: bool) -> None:
    """List the stored scans, newest first."""
    from scanner.history import HistoryError, describe, list_scans

    db = _history_db(db)
    try:
        rows = list_scans(db, target=target, limit=limit)
    except HistoryError as exc:
        _fail(str(exc), debug)
        return
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
    table = _table(box=None, pad_edge=False)
    for name in ("id", "started (UTC)", "target", "kind", "verdict", "failing\nc/h/m/l", "packages", "ELF\nfiles"):
        table.add_column(name, justify="right" if name in ("id", "packages", "ELF\nfiles") else "left",
                         overflow="fold", no_wrap=name != "target")
    for c in cells:
        color = "red" if c[4] == "fail" else "green"
        table.add_row(*c[:4], f"[{color}]{c[4]}[/]", *c[5:])
    console = _console()
    # a terminal folds long targets; a pipe or file gets whole lines
    (console if console.is_terminal else _console(width=100_000)).print(table)


@history_group.command("show")
@click.argument("scan_id", metavar="ID", type=int)
@_HISTORY_DB
@click.option("-o", "--output", "output", type=click.Path(path_type=Path),
              help="Write the stored result.json (and the --format reports) into this folder.")
@click.option("--format", "formats", default="json", show_default=True, metavar="LIST",
              help=f"With -o, comma-separated outputs besides result.json: {', '.join(FORMATS[1:])}.")
@click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder with your own report.html.j2 (and report.css, print.css, report.js) for html and pdf.")
@_DEBUG_OPTION
def history_show(scan_id: int, db: str | None, output: Path | None, formats: str, template: Path | None,
                 debug: bool) -> None:
    """Show a stored scan's summary, as the scan printed it; with -o, write its result.json
    and reports again."""
    from scanner.history import HistoryError, describe, get

    db = _history_db(db)
    try:
        wanted = parse_formats(formats)
        if not output and any(f != "json" for f in wanted):
            raise ValueError("--format writes files: give -o DIR")
        row, doc = get(db, scan_id)
    except (HistoryError, ValueError) as exc:
        _fail(str(exc), debug)
        return
    dest: Any = f"scan {row.id} in history {describe(db)}"
    extra: list[Path] = []
    if output:
        try:
            dest = resultmod.write(doc, output)
            extra = write_reports(doc, output, wanted, template)
        except OSError as exc:
            _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), debug)
        except Exception as exc:  # noqa: BLE001 - a renderer failure is one clear line
            _fail(f"cannot render: {exc}", debug)
    out = _console()
    out.print(f"scan {row.id}: started {markup(row.started)}, flightcheck {markup(row.tool_version or '?')}",
              highlight=False)
    print_summary(doc, dest, float(doc.get("scan", {}).get("duration_seconds") or 0), out)
    for path in extra:
        out.print(f"report: {markup(path)}", highlight=False)


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
        _fail(str(exc), False)
        return
    table = _table("id", "severity", "family", "title", box=None)
    for r in pack:
        if family and r.family != family:
            continue
        table.add_row(*(markup(v) for v in (r.id, r.severity + ("" if r.enabled else " (off)"), r.family, r.title)))
    _console().print(table)


@rules.command("show")
@click.argument("rule_id")
def rules_show(rule_id: str) -> None:
    """Show one rule: its check, rationale, fix, parameters and references."""
    found = [r for r in load_rules() if r.id.lower() == rule_id.lower()]
    if not found:
        _fail(f"no rule {rule_id} (see: flightcheck rules list)", False)
        return
    r = found[0]
    out = _console()
    out.print(f"[bold]{markup(r.id)}[/] {markup(r.title)}", highlight=False)
    for label, value in (("severity", r.severity), ("family", r.family), ("check", r.check),
                         ("rationale", r.rationale), ("fix", r.fix)):
        out.print(visible(f"  {label}: {value}"), highlight=False, markup=False)
    for key, value in r.params.items():
        out.print(visible(f"  parameter {key}: {value}"), highlight=False, markup=False)
    for key, value in r.references.items():
        out.print(visible(f"  {key}: {', '.join(value) if isinstance(value, list) else value}"), highlight=False,
                  markup=False)


def print_summary(doc: dict[str, Any], dest: Path, seconds: float, console: "Console") -> None:
    """The terminal summary of a result document. Every value that comes from the document
    (so, perhaps, from the target: its OS name, paths, sonames, subjects) goes through
    :func:`markup`; the document may also be an old or foreign result.json."""
    s = doc["summary"]
    os_name = ("YUM/DNF repository" if doc["target"]["kind"] == "repository" else
               doc["target"]["os"].get("PRETTY_NAME") or doc["target"]["os"].get("ID") or "unknown OS")
    console.print(f"[bold]flightcheck[/]: {markup(doc['target']['root'])} ({markup(os_name)}, "
                  f"{markup(doc['target']['machine'] or '?')})", highlight=False)
    table = _table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    repo_info = doc["target"].get("repository")
    rows: tuple[tuple[str, Any], ...] = ((
        ("packages", s.get("packages", 0)),
        *((f"  {cat}", n) for cat, n in s.get("license_categories", {}).items()),
        ("errors", s["errors"]),
        ("time", f"{seconds:.1f} s"),
    ) if repo_info else ())
    for label, value in rows or (
        ("files examined", s["files"]),
        ("ELF files", s["elves"]),
        ("executables", s["executables"]),
        ("libraries", s["libraries"]),
        ("static", s.get("static", 0)),
        ("setuid/setgid", s.get("setuid", 0)),
        ("packages", s.get("packages", 0)),
        ("unowned ELF files", s.get("unowned_elves", 0)),
        ("unresolved sonames", s["unresolved_sonames"]),
        ("errors", s["errors"]),
        ("time", f"{seconds:.1f} s"),
    ):
        table.add_row(markup(label), markup(value))
    console.print(table)
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
    for item in doc["unresolved"][:10]:
        users = item["needed_by"]
        more = f" (+{len(users) - 1} more)" if len(users) > 1 else ""
        console.print(f"  unresolved [yellow]{markup(item['soname'])}[/] needed by {markup(users[0])}{more}",
                      highlight=False)
    if len(doc["unresolved"]) > 10:
        console.print(f"  ... {len(doc['unresolved']) - 10} more unresolved sonames in the result")
    fails = [f for f in doc.get("findings", []) if f["state"] in FAILING_STATES]
    counted = s.get("findings", {})
    by_sev = {sev: counted.get(sev, 0) for sev in ("critical", "high", "medium", "low")}
    lic = s.get("licenses", {})
    if lic:
        console.print(f"  licenses: {markup(lic.get('exact', 0))} exact SPDX, {markup(lic.get('guess', 0))} guessed, "
                      f"{markup(lic.get('unknown', 0))} unknown, {markup(lic.get('none', 0))} none declared",
                      highlight=False)
    console.print("  findings: " + ", ".join(f"{markup(n)} {markup(sev)}" for sev, n in by_sev.items())
                  + f" failing; {markup(s.get('waived', 0))} waived", highlight=False)
    worst = sorted(fails, key=lambda f: -SEV_RANK[f["severity"]])[:5]
    for f in worst:
        unjudged = " (could not be judged: counts as failing)" if f["state"] == "error" else ""
        console.print(visible(f"  [{f['severity']}] {f['rule']} {f['subject']}: {f['title']}") + unjudged,
                      highlight=False, markup=False)
    policy = doc.get("policy", {})
    color = "red" if policy.get("verdict") == "fail" else "green"
    console.print(f"verdict: [bold {color}]{markup(str(policy.get('verdict', 'pass')).upper())}[/] "
                  f"(fail on {markup(policy.get('fail_on'))} and above)")
    console.print(f"result: {markup(dest)}", highlight=False)


def entry() -> None:
    """The ``flightcheck`` command: the CLI, then a quick exit. A whole host's scan leaves
    millions of small objects; freeing them one by one and the interpreter's last
    garbage collection cost a rescan about a twentieth of its time, and the process
    is ending anyway. Exit handlers still run, output is flushed, files are closed."""
    import atexit  # noqa: PLC0415
    import os  # noqa: PLC0415

    try:
        main()
        code: int = 0
    except SystemExit as exc:  # kept (with its frames) until the process ends
        if isinstance(exc.code, int) or exc.code is None:
            code = exc.code or 0
        else:  # sys.exit(message): a failure, said on one visible line
            print(visible(str(exc.code)), file=sys.stderr)
            code = EXIT_ERROR
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
