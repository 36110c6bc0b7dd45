"""The commands' option groups, as dataclasses.

click hands a command one keyword argument per option; :func:`grouped` gathers them into
the dataclasses below (each field named as click names the parameter), so a command
takes a few typed values (``TargetOptions``, ``CensusOptions``, ``GateOptions``,
``OutputOptions``) and passes them on. The options themselves are declared once here, in
the order ``--help`` lists them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from scanner.checks import FAIL_ON
from scanner.inventory.cache import default_path as census_cache_path
from scanner.scan import ScanOptions
from scanner.target import IMAGE_BACKENDS

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]


@dataclass(frozen=True)
class TargetOptions:
    """What to scan: a root folder, disk images, or libvirt domains, and how to open them."""

    root: str | None = None
    images: tuple[str, ...] = ()
    image_backend: str = "auto"
    backing_dirs: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    all_domains: bool = False
    connect: str | None = None
    allow_running: bool = False

    @property
    def libvirt(self) -> bool:
        """Whether libvirt domains are the target."""
        return bool(self.domains or self.all_domains)


@dataclass(frozen=True)
class CensusOptions:
    """How the target is read: parallelism, what is walked, the census cache, the readers."""

    jobs: int | None = None
    cross_mounts: bool = False
    exclude: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    cache: Path | None = None
    rpm_reader: str = "auto"
    no_packages: bool = False
    no_licenses: bool = False


@dataclass(frozen=True)
class GateOptions:
    """How a result is judged and kept: the policy, the waivers, the gate, the history."""

    policy: Path | None = None
    waivers: Path | None = None
    fail_on: str = "high"
    history: str | None = None


@dataclass(frozen=True)
class OutputOptions:
    """Where results go and what is shown: the folder, the report formats, the template,
    the progress bar and the summary."""

    output: Path = Path("out")
    formats: str = "json"
    template: Path | None = None
    progress: bool | None = None
    quiet: bool = False


def scan_options(census: CensusOptions, gate: GateOptions) -> ScanOptions:
    """The pipeline's options from the command line's."""
    return ScanOptions(jobs=census.jobs, cross_mounts=census.cross_mounts, exclude=census.exclude,
                       paths=census.paths or ("/",), rpm_reader=census.rpm_reader, packages=not census.no_packages,
                       licenses=not census.no_licenses, cache=census.cache, policy=gate.policy, waivers=gate.waivers,
                       fail_on=gate.fail_on)


def grouped(**groups: type[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Call the command with one dataclass per group instead of one argument per option:
    ``@grouped(target=TargetOptions)`` takes every click parameter named like a field of
    ``TargetOptions`` and passes ``target=TargetOptions(...)`` (fields a command does not
    offer keep their defaults). Put it right above the function, below the options."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def call(*args: Any, **params: Any) -> None:
            for name, cls in groups.items():
                fields = [f.name for f in dataclasses.fields(cls)]
                params[name] = cls(**{k: params.pop(k) for k in fields if k in params})
            command(*args, **params)

        return call

    return decorate


def stack(*options: Decorator[F]) -> Decorator[F]:
    """Several click options as one decorator, listed by ``--help`` in the order given."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


TEMPLATE_HELP = "A folder with your own report.html.j2 (and report.css, print.css, report.js) for html and pdf."

#: the options every command that judges a target shares (scan, repo): reports, policy,
#: waivers, the gate, the history
GATE_OPTIONS: Decorator[Any] = stack(
    click.option("--format", "formats", default="json", show_default=True, metavar="LIST",
                 help="Comma-separated outputs besides result.json: html, pdf, spdx-json, spdx-tv, cyclonedx-json, sarif, "
                      "junit."),
    click.option("--template", type=click.Path(exists=True, file_okay=False, path_type=Path), help=TEMPLATE_HELP),
    click.option("--policy", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="A policy TOML file laid over the default policy (license lists, rule overrides, names)."),
    click.option("--waivers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="A waivers TOML file: accepted findings (rule, subject glob, reason, expiry date)."),
    click.option("--fail-on", type=click.Choice(FAIL_ON), default="high", show_default=True,
                 help="Exit 1 when a finding at or above this severity fails (never: always exit 0)."),
    click.option("--history", metavar="DB",
                 help="Also store the result in a scan history: an SQLite file, or a SQLAlchemy URL "
                      "(postgresql+psycopg://USER@HOST/DB). See: flightcheck history."),
)

TARGET_OPTIONS: Decorator[Any] = stack(
    click.argument("root", required=False, type=click.Path(path_type=str)),
    click.option("--image", "images", multiple=True, type=click.Path(path_type=str), metavar="FILE",
                 help="Scan a virtual machine's disk image instead (qcow2 with backing files, vmdk, raw; repeat for "
                      "each disk of one machine). Read-only, without mounting."),
    click.option("--image-backend", type=click.Choice(IMAGE_BACKENDS), default="auto", show_default=True,
                 help="How images are read: dissect (pure Python, the [images] extra, AGPL-3.0), guestfs (libguestfs's "
                      "appliance, LGPL; one launch per machine), or auto (dissect when installed, else guestfs)."),
    click.option("--backing-dir", "backing_dirs", multiple=True, type=click.Path(path_type=str), metavar="DIR",
                 help="Also follow an image's backing files and extents inside DIR (repeatable); by default only "
                      "inside the folder of the image that names them."),
    click.option("--domain", "domains", multiple=True, metavar="NAME",
                 help="Scan a libvirt domain's disks (repeatable); results go to OUTPUT/NAME/."),
    click.option("--all-domains", is_flag=True, help="Scan every libvirt domain, active or shut off."),
    click.option("-c", "--connect", metavar="URI", help="libvirt URI for --domain/--all-domains (as virsh -c)."),
    click.option("--allow-running", is_flag=True,
                 help="Also scan running domains (their images may be inconsistent while they are read)."),
)

CENSUS_OPTIONS: Decorator[Any] = stack(
    click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                 help="Parallel parsing processes [default: all cores]."),
    click.option("--cross-mounts", is_flag=True,
                 help="Also walk file systems mounted below ROOT (never /proc, /sys and other kernel pseudo file "
                      "systems)."),
    click.option("--exclude", multiple=True, metavar="GLOB",
                 help="Skip files whose path inside the target matches GLOB (repeatable), e.g. '/usr/lib/debug/*'."),
    click.option("--path", "paths", multiple=True, metavar="PATH",
                 help="Census only these folders or files inside the target (repeatable; default: all of /). "
                      "Libraries they link are still found wherever the loader would look."),
    click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), is_flag=False, default=None,
                 flag_value=str(census_cache_path()), metavar="PATH",
                 help="Keep census results in this SQLite file and reuse them for unchanged files (same size, mtime, "
                      f"ctime, inode, mode, owner). --cache alone: {census_cache_path()}."),
    click.option("--rpm-reader", type=click.Choice(["auto", "librpm", "python"]), default="auto", show_default=True,
                 help="How rpm databases are read: librpm where it can read the backend, else the built-in reader; "
                      "or force one."),
    click.option("--no-packages", is_flag=True, help="Skip the package databases (no ownership, no licenses)."),
    click.option("--no-licenses", is_flag=True, help="Skip license analysis (packages and ownership are still read)."),
)

QUIET_OPTION = click.option("-q", "--quiet", is_flag=True, help="No summary on standard output.")
