"""The license inventory of a YUM/DNF repository, before anything is installed
(``flightcheck repo SOURCE``).

SOURCE is a folder or an http(s) URL. The packages come from the best place there is:

1. ``repodata/repomd.xml`` and its ``primary`` document (streamed; ``filelists`` too
   when file lists are asked for);
2. without repodata, or when it cannot be read: the ``.rpm`` files themselves, found by
   walking the folder or by following an HTTP index page's links (inside the repository's
   URL prefix only), each read only as far as its header.

The packages then go through the same license normalisation, categories, policy, gate
and reports as a system scan. The result document is the same schema with
``target.kind = "repository"``, no ELF records, and only the package-level rules.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scanner import result as resultmod
from scanner.checks import CheckContext, effective_rules, evaluate, load_policy, load_rules, load_waivers, rules_for
from scanner.errors import ErrorRecord
from scanner.inventory.census import Census
from scanner.inventory.packages import (Package, PackageDatabase, PathBudget, checked_arch, package_id, shown)
from scanner.inventory.purl import purl
from scanner.inventory.rpmheader import RpmHeader
from scanner.licensing import license_packages, load_tables
from scanner.linkage.loader import Linkage
from scanner.repo import repodata, rpmfile
from scanner.repo.sources import HttpSource, RepoError, Source, open_source

__all__ = ["RepoError", "RepoOptions", "inventory"]

FETCH_THREADS = 8  # rpm headers over HTTP: latency-bound, so several at a time


@dataclass(frozen=True)
class RepoOptions:
    filelists: bool = False
    policy: Path | None = None
    waivers: Path | None = None
    fail_on: str = "high"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _purl(source: Source, name: str, epoch: int | None, version: str, release: str | None, arch: str | None) -> str:
    """A repository package's purl: no namespace or distro (a repository is not a system),
    the repository's URL when it was read over HTTP."""
    return purl("rpm", name, version, epoch=epoch, release=release, arch=arch,
                repository_url=source.base if isinstance(source, HttpSource) else None)


def _package(source: Source, name: str, epoch: int | None, version: str, release: str | None, arch: str | None,
             license_raw: str | None, vendor: str | None, srpm: str | None, location: str | None,
             files: tuple[str, ...], problems: list[str]) -> Package:
    """One package record (an ARCH that is no architecture name is left out, and said in
    ``problems``)."""
    arch = checked_arch(arch, problems)
    return Package(id=package_id("rpm", name, epoch, version, release, arch), manager="rpm", name=name,
                   epoch=epoch, version=version, release=release, arch=arch, source=srpm, vendor=vendor,
                   license_raw=license_raw, purl=_purl(source, name, epoch, version, release, arch), files=files,
                   database=source.label, location=location)


def _from_repodata(source: Source, want_files: bool, info: dict[str, Any], errors: list[ErrorRecord]) -> list[Package]:
    md = repodata.read_repomd(source)
    info.update(method="repodata", revision=md.revision,
                primary=md.data["primary"].location if "primary" in md.data else None)
    files: dict[str, tuple[str, ...]] = {}
    budget = PathBudget()
    if want_files:
        for pkgid, paths in repodata.filelists(source, md):
            problems: list[str] = []
            files[pkgid] = budget.paths((("", f) for f in paths), problems)
            errors.extend(ErrorRecord(md.data["filelists"].location, "inventory", f"package {shown(pkgid, 64)}: {m}")
                          for m in problems)
        info["filelists"] = md.data["filelists"].location
        starved = budget.starved_record(md.data["filelists"].location)
        if starved:
            errors.append(starved)
    out = []
    for p in repodata.primary_packages(source, md):
        problems = []
        out.append(_package(source, p.name, p.epoch, p.version, p.release, p.arch, p.license, p.vendor,
                            p.sourcerpm, p.location, files.get(p.pkgid or "", ()), problems))
        errors.extend(ErrorRecord(p.location or md.data["primary"].location, "inventory", m) for m in problems)
    return out


def _from_files(source: Source, want_files: bool, info: dict[str, Any],
                errors: list[ErrorRecord]) -> tuple[list[Package], str]:
    """Every ``.rpm`` file's header, each file one item: whatever stops one (a damaged
    header, a FIFO, a cap) is that file's error record, and the others are read."""
    info["method"] = "index" if isinstance(source, HttpSource) else "folder"
    rels = list(source.packages())
    readers: Counter[str] = Counter()

    def one(rel: str) -> RpmHeader | ErrorRecord:
        try:
            h, reader = rpmfile.read_header(source, rel, PathBudget())
        except (RepoError, OSError) as exc:
            return ErrorRecord(rel, "inventory", f"rpm file: {exc}")
        except Exception as exc:  # noqa: BLE001 - one file's failure is its own error record
            return ErrorRecord(rel, "inventory", f"rpm file: cannot be read ({type(exc).__name__}: {exc})")
        readers[reader] += 1
        return h

    threads = FETCH_THREADS if isinstance(source, HttpSource) else 1
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, rels))
    out = []
    budget = PathBudget()  # the repository's file lists together, counted here in one thread
    for rel, r in zip(rels, results):
        if isinstance(r, ErrorRecord):
            errors.append(r)
            continue
        h, problems = r, list(r.problems)
        files = budget.paths((("", f) for f in h.files), problems) if want_files else ()
        try:
            out.append(_package(source, h.name, h.epoch, h.version, h.release, h.arch, h.license, h.vendor,
                                h.source, rel, files, problems))
        except Exception as exc:  # noqa: BLE001 - one file's failure is its own error record
            problems.append(f"rpm file: cannot be read ({type(exc).__name__}: {exc})")
        errors.extend(ErrorRecord(rel, "inventory", m) for m in problems)
    starved = budget.starved_record(source.label)
    if starved:
        errors.append(starved)
    return out, (readers.most_common(1)[0][0] if readers else "librpm")


def _dedupe(packages: list[Package], errors: list[ErrorRecord]) -> Iterator[Package]:
    """One record per package id (a repository may carry the same NEVRA twice)."""
    seen: set[str] = set()
    for p in packages:
        if p.id in seen:
            errors.append(ErrorRecord(p.database, "inventory", f"{p.id} is in the repository more than once"))
            continue
        seen.add(p.id)
        yield p


def inventory(spec: str, options: RepoOptions = RepoOptions()) -> dict[str, Any]:
    """The result document of one repository. Raises RepoError when nothing can be read."""
    started, t0 = _now(), time.monotonic()
    policy = load_policy(options.policy)
    waivers = load_waivers(options.waivers) if options.waivers else []
    # the rules that judge packages alone (applies_to names "repository"; the others need
    # a system: ELF files, /boot, /etc)
    rules = rules_for(effective_rules(load_rules(), policy), "repository", waivers)
    tables = load_tables().with_overrides(policy.names, policy.exceptions)

    source = open_source(spec)
    errors: list[ErrorRecord] = []
    info: dict[str, Any] = {"source": source.label, "kind": source.kind}
    backend, reader = "repodata", "python"
    read_errors: list[ErrorRecord] = []
    try:
        packages = _from_repodata(source, options.filelists, info, read_errors)
        errors += read_errors
    except FileNotFoundError:
        packages = None
    except RepoError as exc:
        errors.append(ErrorRecord(repodata.REPOMD, "inventory", f"repodata: {exc}; read the .rpm files instead"))
        packages = None
    except Exception as exc:  # noqa: BLE001 - the metadata's failure, not the run's: the .rpm files remain
        errors.append(ErrorRecord(repodata.REPOMD, "inventory", f"repodata: cannot be read ({type(exc).__name__}: "
                                                                f"{exc}); read the .rpm files instead"))
        packages = None
    if packages is None:
        backend = "rpm-files"
        packages, reader = _from_files(source, options.filelists, info, errors)
        if not packages and errors and errors[0].path == repodata.REPOMD:
            raise RepoError(errors[0].message)
    packages = list(_dedupe(packages, errors))
    info["traffic"] = source.traffic.as_dict()
    for link in source.traffic.skipped_links:
        errors.append(ErrorRecord(link.split(":", 1)[0], "inventory", f"link skipped: {link.split(': ', 1)[-1]}"))

    db = PackageDatabase("rpm", source.label, backend, reader, tuple(packages), tuple(errors))
    licenses = license_packages(None, [db], tables, policy.network_copyleft)  # type: ignore[arg-type]
    arches = Counter(p.arch for p in packages if p.arch and p.arch not in ("noarch", "src"))
    target = resultmod.TargetInfo(kind="repository", root=source.label, os={},
                                  machine=arches.most_common(1)[0][0] if arches else None, repository=info)
    scan_info = resultmod.ScanInfo(started=started, finished=_now(), duration_seconds=time.monotonic() - t0,
                                   options={"filelists": options.filelists,
                                            "policy": str(options.policy) if options.policy else None,
                                            "waivers": str(options.waivers) if options.waivers else None,
                                            "fail_on": options.fail_on})
    doc = resultmod.build(target, scan_info, Census((), (), 0), Linkage({}, (), "none"), [db], {}, licenses, {})
    del licenses, packages, db
    findings = evaluate(CheckContext([], doc["packages"], [], policy, None, errors=doc["errors"]), rules, waivers)
    return resultmod.add_findings(doc, rules, findings, policy, options.fail_on,
                                  str(options.waivers) if options.waivers else None)
