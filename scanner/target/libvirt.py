"""libvirt domains as targets: every domain, active or shut off, and the disks its XML
names, found through libvirt-python (``--connect URI`` as virsh takes it).

A disk source is a file, a block device, or a storage-pool volume (resolved to its path
through libvirt's storage API); network disks (rbd, iscsi, nbd, gluster...) are reported as
not supported. The disks themselves are read by :class:`~scanner.target.image.ImageRoot`:
read-only, without a lock, without mounting. A running domain is scanned only when asked
(``--allow-running``): its image may be in the middle of a write.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from scanner.target.base import TargetError

STATES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down", 5: "shut off",
          6: "crashed", 7: "suspended"}


@dataclass(frozen=True)
class DomainDisk:
    target: str  # the guest's device name (vda, sda...)
    kind: str  # file | block | volume | network | dir
    source: str | None  # a host path, when there is one
    format: str | None  # qcow2, raw, vmdk... as the domain says
    device: str  # disk | cdrom | floppy
    problem: str | None = None  # why it cannot be read


@dataclass(frozen=True)
class Domain:
    name: str
    uuid: str
    state: str
    active: bool
    disks: tuple[DomainDisk, ...] = field(default=())

    @property
    def readable_disks(self) -> list[str]:
        return [d.source for d in self.disks if d.device == "disk" and d.problem is None and d.source]


def connect(uri: str | None) -> Any:
    """A read-only connection (libvirt's default URI when ``uri`` is None, as virsh)."""
    try:
        import libvirt
    except ImportError as exc:
        raise TargetError("libvirt domains need libvirt-python: pip install 'flightcheck[libvirt]'") from exc
    libvirt.registerErrorHandler(lambda *_: None, None)  # errors come back as exceptions, not on stderr
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise TargetError(f"cannot connect to libvirt{' at ' + uri if uri else ''}: {exc.get_error_message()}") from exc
    if conn is None:
        raise TargetError(f"cannot connect to libvirt{' at ' + uri if uri else ''}")
    return conn


def _disk(conn: Any, el: ET.Element) -> DomainDisk:
    kind = el.get("type", "file")
    device = el.get("device", "disk")
    target = (el.find("target").get("dev") if el.find("target") is not None else "?") or "?"
    fmt = el.find("driver").get("type") if el.find("driver") is not None else None
    src = el.find("source")
    if kind == "network":
        proto = src.get("protocol") if src is not None else "?"
        return DomainDisk(target, kind, None, fmt, device, f"network disk ({proto}) is not supported")
    if src is None:
        return DomainDisk(target, kind, None, fmt, device, "no source (an empty drive)")
    if kind == "file":
        return DomainDisk(target, kind, src.get("file"), fmt, device)
    if kind == "block":
        return DomainDisk(target, kind, src.get("dev"), fmt, device)
    if kind == "volume":
        pool, vol = src.get("pool"), src.get("volume")
        try:
            path = conn.storagePoolLookupByName(pool).storageVolLookupByName(vol).path()
        except Exception as exc:  # noqa: BLE001 - libvirt.libvirtError
            return DomainDisk(target, kind, None, fmt, device, f"volume {pool}/{vol} cannot be resolved: {exc}")
        return DomainDisk(target, kind, path, fmt, device)
    return DomainDisk(target, kind, None, fmt, device, f"{kind} disks are not supported")


def list_domains(conn: Any) -> list[Domain]:
    """Every domain, active and inactive (``virsh list --all`` and ``domblklist``)."""
    out = []
    for dom in conn.listAllDomains(0):
        state = STATES.get(dom.state()[0], "unknown")
        root = ET.fromstring(dom.XMLDesc(0))
        disks = tuple(_disk(conn, el) for el in root.iter("disk"))
        out.append(Domain(dom.name(), dom.UUIDString(), state, bool(dom.isActive()), disks))
    return sorted(out, key=lambda d: d.name)


def domain_images(domain: Domain, *, allow_running: bool) -> list[str]:
    """The disk images to read for one domain, or a TargetError saying why not."""
    if domain.active and not allow_running:
        raise TargetError(f"domain {domain.name} is {domain.state}: its disks may change while they are read; "
                          "shut it off, or scan anyway with --allow-running")
    paths = domain.readable_disks
    if not paths:
        problems = "; ".join(f"{d.target}: {d.problem}" for d in domain.disks if d.problem) or "no disks"
        raise TargetError(f"domain {domain.name} has no disk flightcheck can read ({problems})")
    return paths
