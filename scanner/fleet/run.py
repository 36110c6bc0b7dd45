"""A fleet scan on Dask distributed: every domain of every hypervisor, each scanned by a
worker that runs on its hypervisor (worker resources ``hypervisor-NAME``), each result
written and stored in the history as soon as it arrives.

* **Where**: a guest's task asks for its hypervisor's resource, so only a worker started
  with ``--resources hypervisor-NAME=1`` on that machine runs it; the image is read where it
  is, and only the result document crosses the network. Without ``--scheduler``, a
  ``LocalCluster`` on this machine holds every hypervisor's resource.
* **Nothing lost**: a guest that fails is an ``error`` row and the rest go on; a worker that
  dies mid-scan has its task run again by Dask (at most ``allowed-failures`` times) on a
  worker with the same resource. When no worker with a hypervisor's resource remains for
  ``LOST_AFTER`` seconds, that hypervisor's remaining guests become error rows naming it.
  An unreachable hypervisor is one error row. Every finished result is stored before the
  run goes on.
* **--resume**: the worker fingerprints a guest's disks (path, size, mtime, inode) and skips
  the scan when the fingerprint is the one stored with the guest's last scan.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.fleet.inventory import Hypervisor
from scanner.fleet.work import GuestJob, scan_guest

#: seconds a hypervisor may have no worker before its remaining guests are error rows
LOST_AFTER = 20.0
#: how often the run looks at the workers while it waits (seconds)
POLL = 1.0


@dataclass
class FleetRun:
    """What a fleet run produced: one row per guest or unreachable hypervisor."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    dashboard: str | None = None

    @property
    def verdict(self) -> str:
        failing = any(r.get("verdict") == "fail" or r["outcome"] == "error" for r in self.rows)
        return "fail" if failing else "pass"


Sink = Callable[[dict[str, Any]], dict[str, Any]]  # a finished guest -> its row (writes, stores)


def plan(hypervisors: list[Hypervisor], template: GuestJob,
         previous: Callable[[str, str], str | None]) -> tuple[list[GuestJob], list[dict[str, Any]]]:
    """The guests to scan (listed here, on the machine running the fleet, through each
    hypervisor's URI), and an error row for each hypervisor that cannot be listed.
    ``previous(hypervisor, domain)``: the disks' fingerprint of its last stored scan."""
    from scanner.target import TargetError
    from scanner.target.libvirt import connect, list_domains

    jobs: list[GuestJob] = []
    errors: list[dict[str, Any]] = []
    for hv in hypervisors:
        try:
            domains = list_domains(connect(hv.uri))
        except TargetError as exc:
            errors.append({"hypervisor": hv.name, "domain": None, "outcome": "error",
                           "reason": f"hypervisor {hv.name} cannot be listed: {exc}"})
            continue
        for dom in sorted(domains, key=lambda d: d.name):
            if hv.wants(dom.name):
                jobs.append(replace(template, hypervisor=hv.name, uri=hv.uri, domain=dom.name,
                                    previous_fingerprint=previous(hv.name, dom.name)))
    return jobs, errors


def run(hypervisors: list[Hypervisor], jobs: list[GuestJob], sink: Sink, *, scheduler: str | None = None,
        workers: int = 1, threads: int = 1, progress: Callable[[int, int], None] | None = None,
        lost_after: float = LOST_AFTER) -> FleetRun:
    """Scan ``jobs`` on Dask and pass each finished guest to ``sink`` as it arrives."""
    import dask
    from distributed import Client, LocalCluster, wait

    out = FleetRun()
    resources = {hv.resource: 1 for hv in hypervisors}
    # a worker's scan forks its census processes: the worker process must not be a daemon
    with dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": 3}):
        cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=threads,
                                                      resources={k: max(threads, 1) for k in resources},
                                                      processes=True, dashboard_address=":0")
        client = Client(scheduler or cluster, timeout="60s")
        try:
            out.dashboard = client.dashboard_link
            by_hv = {hv.name: hv for hv in hypervisors}
            pending = {client.submit(scan_guest, job, resources={by_hv[job.hypervisor].resource: 1}, pure=False,
                                     key=f"flightcheck-{job.hypervisor}-{job.domain}-{time.time_ns()}"): job
                       for job in jobs}
            done = 0
            lonely: dict[str, float] = {}
            while pending:
                try:
                    finished, _ = wait(list(pending), timeout=POLL, return_when="FIRST_COMPLETED")
                except TimeoutError:  # nothing finished in POLL seconds: look at the workers
                    finished = set()
                for fut in finished:
                    job = pending.pop(fut)
                    out.rows.append(sink(_outcome(fut, job)))
                    done += 1
                    if progress:
                        progress(done, len(jobs))
                for job in _lost(client, pending, by_hv, lonely, lost_after):
                    out.rows.append(sink({"hypervisor": job.hypervisor, "domain": job.domain, "outcome": "error",
                                          "reason": f"hypervisor {job.hypervisor} lost: no worker with resource "
                                                    f"{by_hv[job.hypervisor].resource} for {lost_after:.0f} s"}))
                    done += 1
                    if progress:
                        progress(done, len(jobs))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return out


def _outcome(fut: Any, job: GuestJob) -> dict[str, Any]:
    if fut.status == "finished":
        result: dict[str, Any] = fut.result()
        return result
    try:
        exc = fut.exception()
    except Exception as err:  # noqa: BLE001 - a cancelled or lost future's own error
        exc = err
    return {"hypervisor": job.hypervisor, "domain": job.domain, "outcome": "error",
            "reason": f"the task failed on every try: {type(exc).__name__}: {exc}"}


def _lost(client: Any, pending: dict[Any, GuestJob], by_hv: dict[str, Hypervisor], lonely: dict[str, float],
          lost_after: float) -> list[GuestJob]:
    """The pending jobs of hypervisors that have had no worker for ``lost_after`` seconds,
    cancelled and taken out of ``pending``."""
    waiting = {job.hypervisor for job in pending.values()}
    if not waiting:
        return []
    workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
    present = {r for w in workers for r, n in (w.get("resources") or {}).items() if n}
    now = time.monotonic()
    gone: list[GuestJob] = []
    for name in waiting:
        if by_hv[name].resource in present:
            lonely.pop(name, None)
            continue
        since = lonely.setdefault(name, now)
        if now - since >= lost_after:
            for fut, job in list(pending.items()):
                if job.hypervisor == name:
                    fut.cancel()
                    gone.append(pending.pop(fut))
    return gone
