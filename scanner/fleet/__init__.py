"""``flightcheck fleet scan``: the guests of many hypervisors, scanned on Dask workers that
run where the disks are (:mod:`scanner.fleet.run`), each result written to
``OUTPUT/HYPERVISOR/DOMAIN/`` and stored in the history as it arrives, then ``fleet.json``
and ``fleet.html``: one row per guest, totals per hypervisor, the guests that moved between
hypervisors since their last stored scan, and a verdict that fails when any guest fails or
could not be scanned.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.fleet.inventory import FleetError, Hypervisor, from_uris, load_inventory
from scanner.fleet.run import LOST_AFTER, FleetRun, plan, run
from scanner.fleet.work import GuestJob

__all__ = ["FleetError", "FleetOptions", "Hypervisor", "fleet_scan", "from_uris", "load_inventory"]


@dataclass(frozen=True)
class FleetOptions:
    output: Path
    history: str | None = None
    resume: bool = False
    scheduler: str | None = None
    workers: int = 1
    threads: int = 1
    lost_after: float = LOST_AFTER  # seconds a hypervisor may have no worker before its guests are error rows
    formats: tuple[str, ...] = ("json",)
    template: Path | None = None
    job: GuestJob = field(default_factory=lambda: GuestJob("", "", ""))


def _history_target(hv: str, domain: str) -> str:
    return f"{hv}/{domain}"


def _last_scans(db: str | None, hypervisors: list[Hypervisor]) -> dict[str, dict[str, Any]]:
    """The last stored scan of each guest of these hypervisors (history target
    ``HYPERVISOR/DOMAIN``), as ``{target: {fingerprint, uuid, hypervisor, id}}``; and of
    every guest by uuid under ``uuid:UUID``, for the guests that moved."""
    if not db:
        return {}
    from scanner import history

    out: dict[str, dict[str, Any]] = {}
    try:
        rows = history.list_scans(db)
    except history.HistoryError:
        return {}
    latest: dict[str, Any] = {}  # each fleet guest's last stored scan: only those documents are read
    for row in sorted(rows, key=lambda r: (r.started, r.id)):
        if row.kind == "domain" and "/" in row.target:
            latest[row.target] = row
    for row in sorted(latest.values(), key=lambda r: (r.started, r.id)):  # a uuid's last sighting wins
        doc = history.load(db, row.id)
        dom = doc.get("target", {}).get("domain") or {}
        hv = (dom.get("hypervisor") or {}).get("name")
        info = {"fingerprint": dom.get("disks_fingerprint"), "uuid": dom.get("uuid"), "hypervisor": hv, "id": row.id}
        out[row.target] = info
        if dom.get("uuid"):
            out[f"uuid:{dom['uuid']}"] = info
    return out


def fleet_scan(hypervisors: list[Hypervisor], options: FleetOptions,
               progress: Callable[[int, int], None] | None = None) -> tuple[FleetRun, dict[str, Any]]:
    """Scan every wanted guest of ``hypervisors``; the run and the fleet document written."""
    from scanner import result as resultmod
    from scanner.reports import write_reports

    last = _last_scans(options.history, hypervisors)

    def previous(hv: str, domain: str) -> str | None:
        if not options.resume:
            return None
        fp = (last.get(_history_target(hv, domain)) or {}).get("fingerprint")
        return fp if isinstance(fp, str) else None

    jobs, unreachable = plan(hypervisors, options.job, previous)

    def sink(res: dict[str, Any]) -> dict[str, Any]:
        row = {k: res.get(k) for k in ("hypervisor", "domain", "outcome", "reason", "worker", "host", "uuid",
                                       "state", "disks", "fingerprint")}
        doc = res.get("doc")
        if doc is not None:
            dest = options.output / res["hypervisor"] / res["domain"]
            try:
                resultmod.write(doc, dest)
                write_reports(doc, dest, [f for f in options.formats if f != "json"], options.template)
            except (OSError, ValueError) as exc:
                row["reason"] = f"its reports could not all be written: {exc}"
            if options.history:
                from scanner import history

                try:
                    row["history_id"] = history.store(doc, options.history)
                except history.HistoryError as exc:
                    row["outcome"], row["reason"] = "error", f"scanned, but not stored: {exc}"
            os_release = doc["target"]["os"]
            row.update(os=os_release.get("PRETTY_NAME") or os_release.get("ID"), verdict=doc["policy"]["verdict"],
                       packages=doc["summary"]["packages"], elves=doc["summary"]["elves"],
                       findings=doc["summary"]["findings"],
                       link=f"{res['hypervisor']}/{res['domain']}/"
                            + ("report.html" if "html" in options.formats else "result.json"))
        elif res.get("outcome") == "unchanged":
            row["history_id"] = (last.get(_history_target(res["hypervisor"], res["domain"])) or {}).get("id")
        moved_from = (last.get(f"uuid:{res.get('uuid')}") or {}).get("hypervisor") if res.get("uuid") else None
        if moved_from and moved_from != res["hypervisor"]:
            row["moved_from"] = moved_from
        return row

    result = run(hypervisors, jobs, sink, scheduler=options.scheduler, workers=options.workers,
                 threads=options.threads, progress=progress, lost_after=options.lost_after)
    result.rows = unreachable + result.rows
    document = fleet_document(hypervisors, result)
    write_fleet_files(document, options.output, options.template, pdf="pdf" in options.formats)
    return result, document


def fleet_document(hypervisors: list[Hypervisor], result: FleetRun) -> dict[str, Any]:
    """``fleet.json``: the guests, the totals per hypervisor, the moved guests, the verdict."""
    totals = []
    for hv in hypervisors:
        mine = [r for r in result.rows if r["hypervisor"] == hv.name]
        outcomes = Counter(r["outcome"] for r in mine)
        failing: Counter[str] = Counter()
        for r in mine:
            failing.update(r.get("findings") or {})
        totals.append({"hypervisor": hv.name, "uri": hv.uri, "groups": list(hv.groups), "guests": len(mine),
                       "outcomes": dict(outcomes), "failing_guests": sum(1 for r in mine if r.get("verdict") == "fail"),
                       "findings": dict(failing)})
    return {"kind": "flightcheck/fleet/1", "verdict": result.verdict, "dashboard": result.dashboard,
            "hypervisors": totals, "moved": [r for r in result.rows if r.get("moved_from")],
            "guests": result.rows}


def write_fleet_files(document: dict[str, Any], output: Path, template: Path | None, *,
                      pdf: bool = False) -> list[Path]:
    """``fleet.json``, ``fleet.html`` and, with ``pdf``, ``fleet.pdf`` (the same page)."""
    from scanner.reports.fleet import render_fleet_run

    output.mkdir(parents=True, exist_ok=True)
    (output / "fleet.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    page = render_fleet_run(document, template)
    (output / "fleet.html").write_text(page, encoding="utf-8")
    written = [output / "fleet.json", output / "fleet.html"]
    if pdf:
        from weasyprint import HTML

        HTML(string=page, base_url=str(output)).write_pdf(str(output / "fleet.pdf"))
        written.append(output / "fleet.pdf")
    return written
