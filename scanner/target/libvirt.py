"""libvirt domains as targets: every domain, active or shut off, and the disks its XML
names, found through libvirt-python (``--connect URI`` as virsh takes it).

A disk source is a file, a block device, or a storage-pool volume (resolved to its path
through libvirt's storage API); network disks (rbd, iscsi, nbd, gluster...) are reported as
not supported. Each network interface is read too, and for one on a libvirt network
(``<interface type='network'>``) that network's definition is looked up through the API
(read-only): its state, bridge, forward mode and ``<ip>`` blocks, so the IPv6 rules can say
whether the hypervisor gives the guest IPv6 at all. A network that cannot be looked up is a
problem string on the interface, never an exception. The disks themselves are read by :class:`~scanner.target.image.ImageRoot`:
read-only, without a lock, without mounting. A running domain is scanned only when asked
(``--allow-running``): its image may be in the middle of a write.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from scanner import limits
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
    backing_chain: tuple[str, ...] = ()  # host paths of its <backingStore> chain, top first


class DomainImage(str):
    """A disk image path as a domain names it, carrying the host paths the domain's own
    ``<backingStore>`` chain names: the hypervisor's word, not the image's, so those
    backing files may be followed wherever they are (see
    :class:`~scanner.target.qcow2.BackingPolicy`). A ``str`` everywhere else."""

    backing_chain: tuple[str, ...] = ()

    def __new__(cls, path: str, backing_chain: tuple[str, ...] = ()) -> "DomainImage":
        image = super().__new__(cls, path)
        image.backing_chain = backing_chain
        return image


@dataclass(frozen=True)
class NetworkIP:
    """One ``<ip>`` block of a libvirt network."""

    family: str  # ipv4 | ipv6
    address: str | None
    prefix: int | None  # from prefix=, or from an IPv4 netmask=
    dhcp_ranges: tuple[str, ...] = ()  # "start-end"

    def facts(self) -> dict[str, Any]:
        return {"family": self.family, "address": self.address, "prefix": self.prefix,
                "dhcp_ranges": list(self.dhcp_ranges)}


@dataclass(frozen=True)
class HypervisorNetwork:
    """A libvirt network as the hypervisor defines it (``virsh net-dumpxml``)."""

    name: str
    active: bool | None  # None when it could not be asked
    bridge: str | None
    forward: str  # isolated (no <forward>), nat, route, open, bridge, passthrough, private, vepa, hostdev
    ips: tuple[NetworkIP, ...] = ()

    @property
    def ipv4(self) -> list[NetworkIP]:
        return [ip for ip in self.ips if ip.family == "ipv4"]

    @property
    def ipv6(self) -> list[NetworkIP]:
        return [ip for ip in self.ips if ip.family == "ipv6"]

    @property
    def has_ipv6(self) -> bool:
        """An IPv6 ``<ip>`` with an address: libvirt then routes and advertises that prefix."""
        return any(ip.address for ip in self.ipv6)

    def facts(self) -> dict[str, Any]:
        return {"name": self.name, "active": self.active, "bridge": self.bridge, "forward": self.forward,
                "ipv4": [ip.facts() for ip in self.ipv4], "ipv6": [ip.facts() for ip in self.ipv6]}


@dataclass(frozen=True)
class DomainInterface:
    """One ``<interface>`` of a domain."""

    kind: str  # network | bridge | direct | user | ... (libvirt's type=)
    source: str | None  # the network's name, the host bridge, or the host device (direct)
    mac: str | None
    model: str | None
    network: HypervisorNetwork | None = None  # for kind == network, when it could be looked up
    problem: str | None = None  # why the network could not be looked up

    def facts(self) -> dict[str, Any]:
        return {"type": self.kind, "source": self.source, "mac": self.mac, "model": self.model,
                "network": self.network.facts() if self.network else None, "problem": self.problem}


@dataclass(frozen=True)
class Domain:
    name: str
    uuid: str
    state: str
    active: bool
    disks: tuple[DomainDisk, ...] = field(default=())
    interfaces: tuple[DomainInterface, ...] = field(default=())

    @property
    def readable_disks(self) -> list[str]:
        return [DomainImage(d.source, d.backing_chain) for d in self.disks
                if d.device == "disk" and d.problem is None and d.source]

    def facts(self) -> dict[str, Any]:
        """What the hypervisor says about the domain, as plain data (``target.domain`` of a result)."""
        return {"name": self.name, "uuid": self.uuid, "state": self.state, "active": self.active,
                "interfaces": [i.facts() for i in self.interfaces]}


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
    target = (target_el.get("dev") if (target_el := el.find("target")) is not None else "?") or "?"
    fmt = driver_el.get("type") if (driver_el := el.find("driver")) is not None else None
    src = el.find("source")
    if kind == "network":
        proto = src.get("protocol") if src is not None else "?"
        return DomainDisk(target, kind, None, fmt, device, f"network disk ({proto}) is not supported")
    if src is None:
        return DomainDisk(target, kind, None, fmt, device, "no source (an empty drive)")
    if kind == "file":
        return DomainDisk(target, kind, src.get("file"), fmt, device, backing_chain=_backing_chain(el))
    if kind == "block":
        return DomainDisk(target, kind, src.get("dev"), fmt, device, backing_chain=_backing_chain(el))
    if kind == "volume":
        pool, vol = src.get("pool"), src.get("volume")
        try:
            path = conn.storagePoolLookupByName(pool).storageVolLookupByName(vol).path()
        except Exception as exc:  # noqa: BLE001 - libvirt.libvirtError
            return DomainDisk(target, kind, None, fmt, device, f"volume {pool}/{vol} cannot be resolved: {exc}")
        return DomainDisk(target, kind, path, fmt, device)
    return DomainDisk(target, kind, None, fmt, device, f"{kind} disks are not supported")


def _backing_chain(disk: ET.Element) -> tuple[str, ...]:
    """The host paths of a disk's ``<backingStore>`` chain (files and block devices), top
    first, bounded like any chain (``MAX_BACKING_CHAIN``: deeper ones are cut, and the
    image reader then refuses what the domain did not name)."""
    out: list[str] = []
    store = disk.find("backingStore")
    while store is not None and len(out) < limits.MAX_BACKING_CHAIN:
        src = store.find("source")
        path = src.get("file") or src.get("dev") if src is not None else None
        if path:
            out.append(path)
        store = store.find("backingStore")
    return tuple(out)


def _prefix(ip: ET.Element) -> int | None:
    raw = ip.get("prefix")
    if raw is not None:
        try:
            return int(raw)
        except ValueError:
            return None
    mask = ip.get("netmask")
    if mask:
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
        except ValueError:
            return None
    return None


def parse_network(xml: str, *, active: bool | None = None) -> HypervisorNetwork:
    """A network's XML (``XMLDesc``) as facts; missing elements and attributes are ``None``.
    Raises :class:`TargetError` only when the text is not XML at all."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise TargetError(f"network XML cannot be read: {exc}") from exc
    fwd = root.find("forward")
    forward = "isolated" if fwd is None else (fwd.get("mode") or "nat")  # libvirt's defaults
    bridge = root.find("bridge")
    ips = []
    for ip in root.findall("ip"):
        family = (ip.get("family") or "").lower()
        if family not in ("ipv4", "ipv6"):  # libvirt guesses from the address when family= is absent
            family = "ipv6" if ":" in (ip.get("address") or "") else "ipv4"
        ranges = tuple(f"{r.get('start') or '?'}-{r.get('end') or '?'}" for r in ip.findall("dhcp/range"))
        ips.append(NetworkIP(family, ip.get("address"), _prefix(ip), ranges))
    return HypervisorNetwork(root.findtext("name") or "?", active, bridge.get("name") if bridge is not None else None,
                             forward, tuple(ips))


def _network(conn: Any, name: str, seen: dict[str, HypervisorNetwork | str]) -> HypervisorNetwork | str:
    """A network looked up by name (read-only), or why it cannot be."""
    if name not in seen:
        try:
            net = conn.networkLookupByName(name)
            seen[name] = parse_network(net.XMLDesc(0), active=bool(net.isActive()))
        except TargetError as exc:
            seen[name] = f"network {name}: {exc}"
        except Exception as exc:  # noqa: BLE001 - libvirt.libvirtError
            msg = exc.get_error_message() if hasattr(exc, "get_error_message") else str(exc)
            seen[name] = f"network {name} cannot be looked up: {msg}"
    return seen[name]


def _interface(conn: Any, el: ET.Element, seen: dict[str, HypervisorNetwork | str]) -> DomainInterface:
    kind = el.get("type") or "?"
    src = el.find("source")
    key = {"network": "network", "bridge": "bridge", "direct": "dev"}.get(kind)
    source = src.get(key) if src is not None and key else None
    mac = mac_el.get("address") if (mac_el := el.find("mac")) is not None else None
    model = model_el.get("type") if (model_el := el.find("model")) is not None else None
    if kind != "network":
        return DomainInterface(kind, source, mac, model)
    if not source:
        return DomainInterface(kind, None, mac, model, problem="no source network")
    net = _network(conn, source, seen)
    if isinstance(net, str):
        return DomainInterface(kind, source, mac, model, problem=net)
    return DomainInterface(kind, source, mac, model, network=net)


def list_domains(conn: Any) -> list[Domain]:
    """Every domain, active and inactive (``virsh list --all``, ``domblklist`` and
    ``domiflist``), with the libvirt networks its interfaces are on."""
    networks: dict[str, HypervisorNetwork | str] = {}  # each network looked up once
    return sorted((_domain(conn, dom, networks) for dom in conn.listAllDomains(0)), key=lambda d: d.name)


def find_domain(conn: Any, name: str) -> Domain | None:
    """One domain by name (None when there is none): a fleet worker asks for its guest
    alone, not for the hypervisor's every domain."""
    import libvirt

    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return None
    return _domain(conn, dom, {})


def _domain(conn: Any, dom: Any, networks: dict[str, HypervisorNetwork | str]) -> Domain:
    state = STATES.get(dom.state()[0], "unknown")
    root = ET.fromstring(dom.XMLDesc(0))
    disks = tuple(_disk(conn, el) for el in root.iter("disk"))
    ifaces = tuple(_interface(conn, el, networks) for el in root.findall("devices/interface"))
    return Domain(dom.name(), dom.UUIDString(), state, bool(dom.isActive()), disks, ifaces)


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
