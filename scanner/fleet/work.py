"""What a Dask worker does for one guest, on the hypervisor that holds its disks: connect to
libvirt there, find the domain, fingerprint its disks, and scan them unless they are
unchanged since the last stored scan (``--resume``). Nothing is copied over the network but
the result document.

:func:`scan_guest` is a plain function of plain arguments, so Dask can ship it to any
worker; it returns a :class:`GuestResult` as a dict (outcome ``scanned``, ``unchanged``,
``skipped`` or ``error``, the worker's address and host, the disks' fingerprint, and for a
scanned guest its result document). A failure of the guest is an ``error`` outcome, never an
exception: only a dying worker makes Dask retry.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scanner.scan import ScanOptions, scan
from scanner.target import TargetError, open_target


@dataclass(frozen=True)
class GuestJob:
    """One guest to scan, with everything the worker needs (plain data: it is pickled)."""

    hypervisor: str
    uri: str
    domain: str
    allow_running: bool = False
    backend: str = "auto"
    backing_dirs: tuple[str, ...] = ()
    options: ScanOptions = field(default_factory=ScanOptions)
    previous_fingerprint: str | None = None  # --resume: the disks' fingerprint at the last stored scan


@dataclass
class GuestResult:
    hypervisor: str
    domain: str
    outcome: str  # scanned | unchanged | skipped | error
    worker: str = ""
    host: str = ""
    uuid: str = ""
    state: str = ""
    disks: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    reason: str = ""
    doc: dict[str, Any] | None = None


def disks_fingerprint(disks: list[str]) -> str:
    """What changes when a guest's disks change: each image's path, size, modification
    time and inode (a qcow2 write moves the mtime; a copy in place changes the inode)."""
    h = hashlib.sha256()
    for path in disks:
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


def _worker() -> tuple[str, str]:
    try:
        from distributed import get_worker

        return get_worker().address, socket.gethostname()
    except (ImportError, ValueError):  # not on a Dask worker (a direct call in tests)
        return "", socket.gethostname()


def scan_guest(job: GuestJob) -> dict[str, Any]:
    """Scan one guest on this machine; the outcome as a dict (see :class:`GuestResult`)."""
    from scanner.target.libvirt import connect, domain_images, find_domain

    worker, host = _worker()
    res = GuestResult(job.hypervisor, job.domain, "error", worker, host)
    try:
        conn = connect(job.uri)
        try:
            dom = find_domain(conn, job.domain)
        finally:
            conn.close()
        if dom is None:
            res.reason = f"no domain {job.domain} on {job.hypervisor} ({job.uri}) any more"
            return asdict(res)
        res.uuid, res.state = dom.uuid, dom.state
        try:
            images = domain_images(dom, allow_running=job.allow_running)  # they carry their backing chains
        except TargetError as exc:
            res.outcome, res.reason = "skipped", str(exc)
            return asdict(res)
        res.disks = [str(d) for d in images]
        res.fingerprint = disks_fingerprint(res.disks)
        if job.previous_fingerprint is not None and job.previous_fingerprint == res.fingerprint:
            res.outcome, res.reason = "unchanged", "its disks have not changed since the last stored scan"
            return asdict(res)
        facts = {**dom.facts(), "hypervisor": {"name": job.hypervisor, "uri": job.uri, "host": host},
                 "disks_fingerprint": res.fingerprint}
        fs = open_target(images=images, backend=job.backend,
                         backing_dirs=[Path(d) for d in job.backing_dirs], domain=facts)
        try:
            res.doc = scan(fs, job.options)
        finally:
            fs.close()
        res.outcome = "scanned"
    except (TargetError, OSError) as exc:
        res.reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - one guest's failure is its error row, not the fleet's
        res.reason = f"the scan failed: {type(exc).__name__}: {exc}"
    return asdict(res)
