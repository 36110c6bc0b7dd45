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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scanner import result as resultmod
from scanner.checks import CheckContext, effective_rules, evaluate, load_policy, load_rules, load_waivers, rules_for
from scanner.errors import ErrorRecord
from scanner.inventory.census import Census
from scanner.inventory.packages import PackageDatabase
from scanner.licensing import license_packages, load_tables
from scanner.linkage.loader import Linkage
from scanner.repo import repodata
# the package records are built by the repository reader (scanner/repo/reader.py)
from scanner.repo.reader import dedupe as _dedupe
from scanner.repo.reader import from_files as _from_files
from scanner.repo.reader import from_repodata as _from_repodata
from scanner.repo.sources import RepoError, open_source

__all__ = ["RepoError", "RepoOptions", "inventory"]

@dataclass(frozen=True)
class RepoOptions:
    filelists: bool = False
    policy: Path | None = None
    waivers: Path | None = None
    fail_on: str = "high"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    findings = evaluate(CheckContext([], doc["packages"], [], policy, None, errors=doc["errors"],
                                     databases=doc["databases"]), rules, waivers)
    return resultmod.add_findings(doc, rules, findings, policy, options.fail_on,
                                  str(options.waivers) if options.waivers else None)
