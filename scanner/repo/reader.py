"""A repository's packages as records: from ``repodata/`` (``primary``, and ``filelists`` when
file lists are asked for) or from the ``.rpm`` files' headers, each package an rpm
:class:`~scanner.inventory.packages.Package` built as an installed one is
(:func:`scanner.inventory.rpmdb.rpm_package`, the one purl builder), named by the repository
(``database``) and its file (``location``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scanner.errors import ErrorRecord
from scanner.inventory.packages import Package, PathBudget, shown
from scanner.inventory.rpmdb import rpm_package
from scanner.inventory.rpmheader import RpmHeader
from scanner.repo import repodata, rpmfile
from scanner.repo.sources import HttpSource, RepoError, Source

FETCH_THREADS = 8  # rpm headers over HTTP: latency-bound, so several at a time


def repo_package(source: Source, name: str, epoch: int | None, version: str, release: str | None, arch: str | None,
                 license_raw: str | None, vendor: str | None, srpm: str | None, location: str | None,
                 files: tuple[str, ...], problems: list[str]) -> Package:
    """One package record: no namespace or distro in its purl (a repository is not a
    system), the repository's URL when it was read over HTTP (an ARCH that is no
    architecture name is left out, and said in ``problems``)."""
    return rpm_package(name, epoch, version, release, arch, source=srpm, vendor=vendor, license_raw=license_raw,
                       files=files, database=source.label, problems=problems, location=location,
                       repository_url=source.base if isinstance(source, HttpSource) else None)


def from_repodata(source: Source, want_files: bool, info: dict[str, Any], errors: list[ErrorRecord]) -> list[Package]:
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
        out.append(repo_package(source, p.name, p.epoch, p.version, p.release, p.arch, p.license, p.vendor,
                            p.sourcerpm, p.location, files.get(p.pkgid or "", ()), problems))
        errors.extend(ErrorRecord(p.location or md.data["primary"].location, "inventory", m) for m in problems)
    return out


def from_files(source: Source, want_files: bool, info: dict[str, Any],
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
            out.append(repo_package(source, h.name, h.epoch, h.version, h.release, h.arch, h.license, h.vendor,
                                h.source, rel, files, problems))
        except Exception as exc:  # noqa: BLE001 - one file's failure is its own error record
            problems.append(f"rpm file: cannot be read ({type(exc).__name__}: {exc})")
        errors.extend(ErrorRecord(rel, "inventory", m) for m in problems)
    starved = budget.starved_record(source.label)
    if starved:
        errors.append(starved)
    return out, (readers.most_common(1)[0][0] if readers else "librpm")


def dedupe(packages: list[Package], errors: list[ErrorRecord]) -> Iterator[Package]:
    """One record per package id (a repository may carry the same NEVRA twice)."""
    seen: set[str] = set()
    for p in packages:
        if p.id in seen:
            errors.append(ErrorRecord(p.database, "inventory", f"{p.id} is in the repository more than once"))
            continue
        seen.add(p.id)
        yield p
