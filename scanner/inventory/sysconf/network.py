"""The kernel and network configuration the IPv6 rules judge: sysctl (as
``systemd-sysctl`` applies it, ``sysctl.d(5)``), modprobe, initscripts, NetworkManager
keyfiles, ``/etc/hosts`` and the target's own libvirt network definitions. Each reader
reads within a budget of its own and never raises."""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from scanner.inventory.sysconf.text import (
    Assignments,
    AssignmentsReader,
    ConfigFiles,
    ConfigText,
    Line,
    Unreadable,
    glob,
    present_paths,
    read_config,
    read_files,
)
from scanner.target import RootFS
from scanner.target.base import Budget

SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")


def sysctl_settings(fs: RootFS) -> Assignments:
    """Effective sysctl assignments as systemd-sysctl applies them: ``*.conf`` of every
    sysctl.d folder, a name in an earlier folder masking the same name in later ones, all
    applied in file-name order, then ``/etc/sysctl.conf``; later assignments win. A file
    that cannot be read (wholly or from some line on) is a gap: the settings before it
    may have been changed by it."""
    out = AssignmentsReader()
    budget = Budget()
    by_name: dict[str, str] = {}
    listing: list[Unreadable] = []
    for d in SYSCTL_DIRS:
        for path in glob(fs, f"{d}/*.conf", budget, listing):
            by_name.setdefault(posixpath.basename(path), path)
    order = [by_name[n] for n in sorted(by_name)] + present_paths(fs, ["/etc/sysctl.conf"])
    texts: dict[str, ConfigText] = {}  # by the file a path leads to: read once, applied where it comes
    for path in order:
        text = _read_once(fs, path, budget, texts)
        for line in text.lines:
            s = line.text.strip()
            if not s or s[0] in "#;" or "=" not in s:
                continue
            key, _, value = s.lstrip("-").partition("=")
            key = key.strip()
            out.set(key.replace("/", "."), value.strip(), Line(path, line.number, f"{key} = {value.strip()}"))
        if text.problem:
            out.gap(Unreadable(path, text.problem))
    for what in listing:  # the files of a folder that could not be listed may sort last
        out.gap(what)
    return out.done()


def _read_once(fs: RootFS, path: str, budget: Budget, texts: dict[str, ConfigText]) -> ConfigText:
    """``path``'s text, read once per file it leads to (RHEL's ``sysctl.d/99-sysctl.conf``
    is a link to ``/etc/sysctl.conf``, which is applied again last); each application
    names the path it came by."""
    try:
        canon = fs.resolve(path, strict=False)
    except OSError:
        canon = path  # a link loop: read_config says so
    if canon not in texts:
        texts[canon] = read_config(fs, path, budget)
    return texts[canon]


def modprobe_files(fs: RootFS) -> ConfigFiles:
    """``modprobe.d/*.conf`` of /etc, /usr/lib and /lib, then ``/etc/modprobe.conf``."""
    return read_files(fs, ("/etc/modprobe.d/*.conf", "/usr/lib/modprobe.d/*.conf", "/lib/modprobe.d/*.conf"),
                      ("/etc/modprobe.conf",))


def initscripts_files(fs: RootFS) -> ConfigFiles:
    """``/etc/sysconfig/network``, then ``network-scripts/ifcfg-*``."""
    return read_files(fs, ("/etc/sysconfig/network-scripts/ifcfg-*",), ("/etc/sysconfig/network",), fixed_first=True)


def networkmanager_files(fs: RootFS) -> ConfigFiles:
    """NetworkManager's keyfiles (``system-connections/*``)."""
    return read_files(fs, ("/etc/NetworkManager/system-connections/*",))


@dataclass(frozen=True)
class LibvirtNetwork:
    """One network definition of the target's libvirt (``/etc/libvirt/qemu/networks``):
    its name and first ``<ip family='ipv6'>`` (address, prefix as written), or why it
    could not be read (``problem``) or parsed (``xml_error``)."""

    path: str
    name: str | None = None
    ipv6: tuple[str | None, str | None] | None = None  # the first IPv6 <ip>: address, prefix
    problem: str | None = None
    xml_error: str | None = None


@dataclass(frozen=True)
class LibvirtNetworks:
    files: tuple[str, ...] = ()
    unlisted: tuple[Unreadable, ...] = ()  # the folder could not be listed (a cap)
    networks: tuple[LibvirtNetwork, ...] = ()


def libvirt_networks(fs: RootFS) -> LibvirtNetworks:
    budget = Budget()
    unlisted: list[Unreadable] = []
    files = glob(fs, "/etc/libvirt/qemu/networks/*.xml", budget, unlisted)
    return LibvirtNetworks(tuple(files), tuple(unlisted), tuple(_network(fs, p, budget) for p in files))


def _network(fs: RootFS, path: str, budget: Budget) -> LibvirtNetwork:
    text = read_config(fs, path, budget)
    if text.problem:
        return LibvirtNetwork(path, problem=text.problem)
    try:
        root = ET.fromstring("\n".join(ln.text for ln in text.lines))
    except ET.ParseError as exc:
        return LibvirtNetwork(path, xml_error=str(exc))
    v6 = [ip for ip in root.iter("ip") if ip.get("family") == "ipv6"]
    return LibvirtNetwork(path, root.findtext("name") or None,
                          (v6[0].get("address"), v6[0].get("prefix")) if v6 else None)
