"""The pipeline wired once: target -> inventory -> linkage -> licensing -> checks -> result.
The CLI and the tests call :func:`scan`; each stage stays a pure function of the ones
before it."""

from __future__ import annotations

import dataclasses
import gc
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scanner import result as resultmod
from scanner.checks import (
    CheckContext, Policy, Rule, Waiver, effective_rules, judge, load_policy, load_rules, load_waivers, rules_for,
)
from scanner.inventory import census_file, take_census
from scanner.inventory.cache import ScanCache
from scanner.inventory.census import Census, Progress, census_paths
from scanner.errors import ErrorRecord
from scanner.inventory.osrelease import read_os_release
from scanner.inventory.packages import OwnershipIndex, PackageDatabase
from scanner.inventory.origins import Origins, find_origins
from scanner.inventory.readers import read_package_databases
from scanner.inventory.sysconf import SystemConfig, read_system_config
from scanner.licensing import (
    PackageLicense,
    license_closures,
    license_packages,
    load_tables,
)
from scanner.licensing.naming import license_naming
from scanner.linkage.loader import resolve_all
from scanner.records import Records, project
from scanner.target import DirectoryRoot, RootFS


@dataclass(frozen=True)
class ScanOptions:
    jobs: int | None = None
    cross_mounts: bool = False
    exclude: tuple[str, ...] = field(default=())
    paths: tuple[str, ...] = ("/",)
    rpm_reader: str = "auto"  # auto | librpm | python
    packages: bool = True
    licenses: bool = True
    policy: Path | None = None
    waivers: Path | None = None
    fail_on: str = "high"
    cache: Path | None = None  # the census cache (--cache): unchanged files are not parsed again


@dataclass(frozen=True)
class Gate:
    """What judges a target: the policy, the rules with its overrides applied, the waivers
    and the severity that fails. Loaded before anything is read (:func:`load_gate`)."""

    policy: Policy
    rules: list[Rule]
    waivers: list[Waiver]
    fail_on: str
    waivers_path: Path | None = None


def load_gate(policy: Path | None, waivers: Path | None, fail_on: str) -> Gate:
    """The gate of a scan or a repository inventory. A malformed policy or waiver file
    raises :class:`scanner.checks.PolicyError`."""
    loaded = load_policy(policy)
    return Gate(loaded, effective_rules(load_rules(), loaded), load_waivers(waivers) if waivers else [], fail_on,
                waivers)


def conclude(gate: Gate, target: resultmod.TargetInfo, records: Records, started: str, t0: float,
             options: dict[str, Any], timings: dict[str, float] | None = None, *,
             system: SystemConfig | None = None, domain: dict[str, Any] | None = None) -> dict[str, Any]:
    """The last two stages, the same for every kind of target: the rules that apply to it
    judge the records (checks), then the result document is built once from both."""
    mark = time.monotonic()
    rules = rules_for(gate.rules, target.kind, gate.waivers)
    ctx = CheckContext(records.elves, records.packages, records.unresolved, gate.policy, errors=records.errors,
                       domain=domain, system=system, databases=records.databases)
    judgement = judge(ctx, rules, gate.waivers, gate.policy, gate.fail_on,
                      str(gate.waivers_path) if gate.waivers_path else None)
    if timings is not None:
        timings["checks"] = time.monotonic() - mark
    info = resultmod.ScanInfo(started=started, finished=_now(), duration_seconds=time.monotonic() - t0,
                              options=options, timings=timings)
    return resultmod.build(target, info, records, judgement)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """A scan builds hundreds of thousands of small, acyclic records: the cyclic garbage
    collector's default pace (every 700 allocations, rescanning what is already there)
    costs a rescan about a tenth of its time. What exists before the scan (modules,
    tables) is frozen out of collections, and young collections run less often; what
    does make cycles (pyelftools, report rendering) is still collected."""
    before = gc.get_threshold()
    gc.freeze()  # also spares forked workers copying those pages when a collection touches them
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def scan(fs: RootFS, options: ScanOptions = ScanOptions(), progress: Progress | None = None) -> dict[str, Any]:
    """Scan one target and return its result document. A malformed policy or waiver file
    raises :class:`scanner.checks.PolicyError` before anything is read."""
    with _fewer_collections():
        return _scan(fs, options, progress)


def _scan(fs: RootFS, options: ScanOptions, progress: Progress | None) -> dict[str, Any]:
    started, t0 = _now(), time.monotonic()
    gate = load_gate(options.policy, options.waivers, options.fail_on)
    policy = gate.policy

    # the package databases and their licenses, then the system configuration the boot and
    # IPv6 rules judge, are read in a thread while the census workers parse ELF files
    # (started once they are forked: never fork a busy thread)
    timings: dict[str, float] = {}
    mark = time.monotonic()
    cache = ScanCache(options.cache, f"{type(fs).__name__}:{fs.label}") if options.cache else None
    with ThreadPoolExecutor(1, thread_name_prefix="flightcheck-packages") as background:
        packages: list[Future[Packages]] = []
        system: list[Future[SystemConfig]] = []  # then the configuration the boot and IPv6 rules judge

        def start_background() -> None:
            packages.append(background.submit(_packages, fs, options, policy, cache))
            system.append(background.submit(read_system_config, fs))

        census = take_census(
            fs, jobs=options.jobs, exclude=options.exclude, paths=options.paths, progress=progress,
            started=start_background,
            cache=cache.census if cache else None,
        )
        timings["census"] = time.monotonic() - mark
        os_release, databases, ownership, pkg_licenses, timings["packages"], os_errors = packages[0].result()
        system_config = system[0].result()
    census = _with_target_errors(fs, census)
    if os_errors:  # an os-release that is there but could not be read
        census = dataclasses.replace(census, errors=(*census.errors, *os_errors))
    mark = time.monotonic()
    owner = ownership.owner
    owners = {r.path: ownership.owner(r.path) for r in census.elves}  # each ELF file looked up once
    if options.packages:  # what no system database owns: Python distributions, Go, Rust, package notes
        try:
            origins = find_origins(fs, [path for path, pkg in owners.items() if pkg is None])
        except Exception as exc:  # noqa: BLE001 - the origins stage's failure, not the scan's: its files stay unowned
            origins = Origins((), (ErrorRecord("/", "inventory", f"the origins of unowned files could not be read "
                                                                 f"({type(exc).__name__}: {exc})"),))
        if origins.databases:
            databases = [*databases, *origins.databases]
            by_origin = OwnershipIndex(fs, origins.databases)
            owner = lambda path: ownership.owner(path) or by_origin.owner(path)  # noqa: E731
            owners = {path: pkg or by_origin.owner(path) for path, pkg in owners.items()}
            if options.licenses:
                # what the files declare of themselves (Python metadata) is SPDX-style, whatever
                # the system's own convention
                tables = load_tables().for_naming("spdx").with_overrides(policy.names, policy.exceptions)
                pkg_licenses = {**pkg_licenses,
                                **license_packages(fs, origins.databases, tables, policy.network_copyleft)}
        if origins.errors:
            census = dataclasses.replace(census, errors=(*census.errors, *origins.errors))
    timings["origins"] = time.monotonic() - mark
    mark = time.monotonic()
    if cache is not None:
        cache.commit(prune=tuple(options.paths) == ("/",) and not options.exclude)
        cache.close()
    timings["cache"] = time.monotonic() - mark
    mark = time.monotonic()
    # libraries outside the census are read only as far as the loader reads them
    linkage = resolve_all(
        fs, census.elves,
        lambda p: census_file(fs, p, light=True),
        lambda ps: census_paths(fs, ps, jobs=options.jobs, light=True),
    )
    timings["linkage"] = time.monotonic() - mark
    mark = time.monotonic()
    linked = (license_closures(census.elves, linkage.closures, owners, owner, pkg_licenses)
              if options.licenses else {})

    timings["licensing"] = time.monotonic() - mark
    mark = time.monotonic()
    records = project(databases, pkg_licenses, census, linkage, owners, linked)
    timings["records"] = time.monotonic() - mark
    machines = Counter(r.machine for r in census.elves if r.is_executable)
    identity = fs.identity
    target = resultmod.TargetInfo(
        kind=identity.kind,
        root=identity.root,
        os=os_release,
        machine=machines.most_common(1)[0][0] if machines else None,
        image=identity.image,
        domain=identity.domain,
    )
    del census, linkage, owners, linked, pkg_licenses, databases
    return conclude(gate, target, records, started, t0, _options_json(fs, options, cache), timings,
                    domain=identity.domain, system=system_config)


def _options_json(fs: RootFS, options: ScanOptions, cache: ScanCache | None) -> dict[str, Any]:
    """The scan's options as the result records them."""
    return {
        "jobs": options.jobs,
        "cross_mounts": options.cross_mounts,
        "exclude": list(options.exclude),
        "paths": list(options.paths),
        "live": isinstance(fs, DirectoryRoot) and fs.is_live,
        "rpm_reader": options.rpm_reader,
        "packages": options.packages,
        "licenses": options.licenses,
        "policy": str(options.policy) if options.policy else None,
        "waivers": str(options.waivers) if options.waivers else None,
        "fail_on": options.fail_on,
        **({"cache": cache.stats()} if cache is not None else {}),
    }


def _with_target_errors(fs: RootFS, census: Census) -> Census:
    """The census with what the target itself could not read (a disk image's partitions,
    volumes, fstab mounts, damaged file-system metadata: ``fs.target_errors()``) added as
    error records, so that they reach ``errors`` and FC-ERR-001 like any unread file.
    Damage a census walk already reported (``cannot walk: ...``) is not repeated."""
    records = fs.target_errors()
    if not records:
        return census
    seen = {(e.path, e.message.removeprefix("cannot walk: ")) for e in census.errors if e.stage == "target"}
    reported = {e.path for e in census.errors}
    new = [e for e in records if (e.path, e.message) not in seen
           and not (e.message.startswith("inode ") and e.path in reported)]
    return dataclasses.replace(census, errors=(*census.errors, *new)) if new else census


Packages = tuple[dict[str, str], list[PackageDatabase], OwnershipIndex, dict[str, PackageLicense], float,
                 tuple[ErrorRecord, ...]]


def _packages(fs: RootFS, options: ScanOptions, policy: Policy, cache: ScanCache | None = None) -> Packages:
    """The target's identity, package databases, ownership index and package licenses
    (by the shipped name tables and the policy's own), and the seconds it took."""
    t0 = time.monotonic()
    memo = cache.memo if cache is not None else None
    os_errors: list[ErrorRecord] = []
    os_release = read_os_release(fs, os_errors)
    databases = read_package_databases(fs, os_release, options.rpm_reader, memo) if options.packages else []
    ownership = OwnershipIndex(fs, databases)
    licenses: dict[str, PackageLicense] = {}
    if options.licenses:
        naming = license_naming(os_release, [db.manager for db in databases])
        tables = load_tables().for_naming(naming).with_overrides(policy.names, policy.exceptions)
        licenses = license_packages(fs, databases, tables, policy.network_copyleft, memo)
    return os_release, databases, ownership, licenses, time.monotonic() - t0, tuple(os_errors)

