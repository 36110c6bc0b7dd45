"""IPv6 readiness checks (rules in ``rules/ipv6.toml``). Hardening guides count IPv6
*disabled* as passing; readiness inverts that: every place that disables IPv6 is a finding,
and programs still calling IPv4-only resolver functions are named."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from scanner.checks import CheckContext, Outcome, Rule, check
from scanner.checks.boot import system_of
from scanner.inventory.sysconf import DEFAULTS, ENTRIES, LOADER, ConfigFiles, Line, SystemConfig, Unreadable

Out = Iterator[Outcome]

#: IPv4-only functions and what to use instead (reference: compliance-rules.md)
IPV4_ONLY = {
    "gethostbyname": "getaddrinfo (AF_UNSPEC)", "gethostbyname_r": "getaddrinfo (AF_UNSPEC)",
    "gethostbyname2": "getaddrinfo (AF_UNSPEC)", "gethostbyaddr": "getnameinfo", "gethostbyaddr_r": "getnameinfo",
    "inet_addr": "inet_pton, or getaddrinfo with AI_NUMERICHOST",
    "inet_aton": "inet_pton, or getaddrinfo with AI_NUMERICHOST",
    "inet_ntoa": "inet_ntop, or getnameinfo with NI_NUMERICHOST",
    **{f: "an address-family independent equivalent (see its man page)" for f in (
        "inet_makeaddr", "inet_netof", "inet_network", "inet_lnaof", "inet_neta", "inet_net_ntop",
        "inet_net_pton", "inet_nsap_addr", "inet_nsap_ntoa", "rcmd", "rexec", "rresvport")},
}
FAMILY_DEPENDENT = ("inet_pton", "inet_ntop")


def _unread(unreadable: Sequence[Unreadable]) -> str:
    return "; ".join(str(u) for u in unreadable)


def _with_unread(evidence: dict[str, Any], unreadable: Sequence[Unreadable]) -> dict[str, Any]:
    return {**evidence, "unreadable": [u.evidence() for u in unreadable]} if unreadable else evidence


@check("ipv6-kernel-arg")
def ipv6_kernel_arg(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    cfg = sysc.boot
    if cfg.kind == "unknown":
        yield Outcome("error", "boot", f"Whether the target has a boot loader could not be found out: "
                      f"{_unread(cfg.all_unreadable)}", _with_unread({}, cfg.all_unreadable))
        return
    if cfg.kind == "none":
        yield Outcome("notapplicable", "boot", "The target has no boot loader configuration.")
        return
    hits = [e.where for e in cfg.entries if "ipv6.disable=1" in e.args]
    hits += [line for key, (_value, line) in cfg.defaults.values.items() if key.startswith("GRUB_CMDLINE") and
             "ipv6.disable=1" in cfg.defaults.sure_words(key)]
    if hits:
        yield Outcome("fail", "boot", "ipv6.disable=1 is on the kernel command line: the kernel has no IPv6.",
                      _with_unread({"lines": [h.evidence() for h in hits]}, cfg.all_unreadable))
        return
    problems = cfg.problems(LOADER, ENTRIES, DEFAULTS)
    if problems:
        yield Outcome("error", "boot", "Whether a boot entry disables IPv6 cannot be judged: the boot configuration "
                      f"could not be read completely ({_unread(problems)}).", _with_unread({}, cfg.all_unreadable))
    else:
        yield Outcome("pass", "boot", "No boot entry disables IPv6 in the kernel.",
                      _with_unread({}, cfg.all_unreadable))


_DISABLE_KEY = re.compile(r"net\.ipv6\.conf\.[^.]+\.disable_ipv6")


@check("ipv6-sysctl")
def ipv6_sysctl(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    settings = sysc.sysctl
    keys = [k for k in settings.values if _DISABLE_KEY.fullmatch(k)]
    # a value counts only when no unread content after it can have changed it
    off = [settings.values[k][1] for k in keys if settings.values[k][0] == "1" and settings.certain(k)]
    lines = {"lines": [settings.values[k][1].evidence() for k in keys]}
    if off:
        yield Outcome("fail", "sysctl", "IPv6 is disabled by sysctl after every sysctl.d file is applied in "
                      "systemd's order: " + "; ".join(f"{ln.text} ({ln.path}:{ln.number})" for ln in off),
                      _with_unread({"lines": [ln.evidence() for ln in off]}, settings.unreadable))
    elif not settings.complete:
        yield Outcome("error", "sysctl", "Whether sysctl disables IPv6 cannot be judged: sysctl configuration could "
                      f"not be read completely ({_unread(settings.unreadable)}).",
                      _with_unread(lines, settings.unreadable))
    else:
        yield Outcome("pass", "sysctl", "No effective sysctl setting disables IPv6.", lines)


@check("ipv6-hardening")
def ipv6_hardening(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    settings = sysc.sysctl
    wanted = [re.compile(w.replace(".", r"\.").replace("*", "[^.]+")) for w in rule.params.get("zero", [])]
    found = [line for k, (_v, line) in settings.values.items() if any(w.fullmatch(k) for w in wanted)]
    bad = [ln for ln in found if sysctl_value(ln) not in ("0",)]
    unknown = f" Not read: {_unread(settings.unreadable)}." if settings.unreadable else ""
    yield Outcome("informational", "sysctl", "IPv6 hardening settings: " + (
        "; ".join(ln.text for ln in found) or "none set (kernel defaults apply)") +
        (f". Not 0: {'; '.join(ln.text for ln in bad)}" if bad else "") + unknown,
        _with_unread({"lines": [ln.evidence() for ln in found]}, settings.unreadable))


def sysctl_value(line: Line) -> str:
    """The value of a sysctl evidence line (``key = value``)."""
    return line.text.split("=", 1)[1].strip()


def _files(ctx: CheckContext, which: Callable[[SystemConfig], ConfigFiles]) -> ConfigFiles | Outcome:
    sysc = system_of(ctx)
    return sysc if isinstance(sysc, Outcome) else which(sysc)


@check("ipv6-modprobe")
def ipv6_modprobe(ctx: CheckContext, rule: Rule) -> Out:
    found = _files(ctx, lambda s: s.modprobe)
    if isinstance(found, Outcome):
        yield found
        return
    files, unreadable = list(found.files), found.unreadable
    hits = []
    for ln in found.lines:
        w = ln.text.split("#", 1)[0].split()
        if len(w) >= 2 and w[1] == "ipv6" and (
                w[0] == "blacklist" or w[0] == "install" and w[2:3] and w[2] in ("/bin/true", "/bin/false",
                                                                                 "/usr/bin/true", "/usr/bin/false")
                or w[0] == "options" and "disable=1" in w[2:]):
            hits.append(ln)
    if hits:
        yield Outcome("fail", "modprobe", "The ipv6 module is disabled or blocked: " + "; ".join(
            f"{h.text.strip()} ({h.path}:{h.number})" for h in hits),
            _with_unread({"lines": [h.evidence() for h in hits]}, unreadable))
    elif unreadable:
        yield Outcome("error", "modprobe", "Whether modprobe configuration disables IPv6 cannot be judged: "
                      f"{_unread(unreadable)}.", _with_unread({"files": files}, unreadable))
    else:
        yield Outcome("pass", "modprobe", "No modprobe configuration disables IPv6.", {"files": files})


@check("ipv6-initscripts")
def ipv6_initscripts(ctx: CheckContext, rule: Rule) -> Out:
    found = _files(ctx, lambda s: s.initscripts)
    if isinstance(found, Outcome):
        yield found
        return
    if not found.files and not found.listing:
        yield Outcome("notapplicable", "initscripts", "No initscripts network configuration.")
        return
    files, unreadable = list(found.files), found.unreadable
    hits = [ln for ln in found.lines
            if re.match(r"^\s*(NETWORKING_IPV6|IPV6INIT)\s*=\s*[\"']?(no|false|0)[\"']?\s*$", ln.text, re.I)]
    if hits:
        yield Outcome("fail", "initscripts", "IPv6 is switched off in initscripts: " + "; ".join(
            f"{h.text.strip()} ({h.path})" for h in hits), _with_unread({"lines": [h.evidence() for h in hits]}, unreadable))
    elif unreadable:
        yield Outcome("error", "initscripts", "Whether initscripts switch IPv6 off cannot be judged: "
                      f"{_unread(unreadable)}.", _with_unread({"files": files}, unreadable))
    else:
        yield Outcome("pass", "initscripts", "initscripts do not switch IPv6 off.", {"files": files})


@check("ipv6-networkmanager")
def ipv6_networkmanager(ctx: CheckContext, rule: Rule) -> Out:
    found = _files(ctx, lambda s: s.networkmanager)
    if isinstance(found, Outcome):
        yield found
        return
    if not found.files and not found.listing:
        yield Outcome("notapplicable", "NetworkManager", "No NetworkManager keyfiles.")
        return
    files, unreadable = list(found.files), found.unreadable
    disabled: list[Line] = []
    ignored: list[Line] = []
    for text in found.texts:
        section = ""
        for ln in text.lines:
            s = ln.text.strip()
            if s.startswith("["):
                section = s
            elif section == "[ipv6]" and s.replace(" ", "").startswith("method="):
                method = s.split("=", 1)[1].strip()
                (disabled if method == "disabled" else ignored if method == "ignore" else []).append(ln)
    if disabled:
        yield Outcome("fail", "NetworkManager", "Connections with IPv6 disabled: " + ", ".join(ln.path for ln in disabled),
                      _with_unread({"lines": [ln.evidence() for ln in disabled + ignored]}, unreadable))
    elif unreadable:
        yield Outcome("error", "NetworkManager", "Whether a NetworkManager connection disables IPv6 cannot be judged: "
                      f"{_unread(unreadable)}.", _with_unread({"files": files}, unreadable))
    elif ignored:
        yield Outcome("informational", "NetworkManager", "Connections where NetworkManager leaves IPv6 alone "
                      "(method=ignore): " + ", ".join(ln.path for ln in ignored), {"lines": [ln.evidence() for ln in ignored]})
    else:
        yield Outcome("pass", "NetworkManager", "No NetworkManager connection disables IPv6.", {"files": files})


@check("ipv6-loopback-name")
def ipv6_loopback_name(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    hosts = sysc.hosts
    if hosts is None:
        yield Outcome("notapplicable", "/etc/hosts", "The target has no /etc/hosts.")
        return
    unreadable = [u for u in (hosts.unreadable,) if u is not None]
    hit = [ln for ln in hosts.lines if ln.text.split("#", 1)[0].split()[:1] == ["::1"]]
    if hit:  # a line read names it: whatever follows cannot take that back
        yield Outcome("pass", "/etc/hosts", "/etc/hosts names the IPv6 loopback (::1).",
                      _with_unread({"lines": [hit[0].evidence()]}, unreadable))
    elif unreadable:
        yield Outcome("error", "/etc/hosts", f"Whether /etc/hosts names ::1 cannot be judged: {_unread(unreadable)}.",
                      _with_unread({"path": "/etc/hosts"}, unreadable))
    else:
        yield Outcome("fail", "/etc/hosts", "/etc/hosts has no ::1 entry: localhost resolves to IPv4 only.",
                      {"path": "/etc/hosts"})


@check("ipv6-libvirt-networks")
def ipv6_libvirt_networks(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    found = sysc.libvirt_networks
    for u in found.unlisted:
        yield Outcome("error", u.path, f"The libvirt networks cannot be listed: {u.reason}", {"unreadable": [u.evidence()]})
    if not found.files and not found.unlisted:
        yield Outcome("notapplicable", "libvirt", "No libvirt networks are defined.")
        return
    for net in found.networks:
        path = net.path
        if net.problem:
            yield Outcome("error", path, f"{path}: {net.problem}", {"unreadable": [Unreadable(path, net.problem).evidence()]})
        elif net.xml_error is not None:
            yield Outcome("error", path, f"{path}: not valid XML ({net.xml_error})")
        elif net.ipv6 is not None:
            yield Outcome("pass", path, f"libvirt network {net.name or path!r} has IPv6 ({net.ipv6[0]}/{net.ipv6[1]}).")
        else:
            yield Outcome("fail", path, f"libvirt network {net.name or path!r} has no <ip family='ipv6'>: its guests "
                          "get IPv4 only.", {"path": path})


_IPV4_NAMES = frozenset(IPV4_ONLY)
_FAMILY_NAMES = frozenset(FAMILY_DEPENDENT)


@check("ipv4-only-apis")
def ipv4_only_apis(ctx: CheckContext, rule: Rule) -> Out:
    for e in ctx.elves:
        if e["type"] not in ("executable", "pie"):
            continue
        imports = e.get("imports", ())
        # in import order (the message and evidence list them so); the set tests first
        used = [f for f in imports if f in IPV4_ONLY] if not _IPV4_NAMES.isdisjoint(imports) else []
        if used:
            yield Outcome("fail", e["path"], f"{e['path']} calls IPv4-only functions: " + "; ".join(
                f"{f} (use {IPV4_ONLY[f]})" for f in used) + ".",
                {"path": e["path"], "functions": used, "package": e.get("owner")})
        elif not _FAMILY_NAMES.isdisjoint(imports):
            fam = [f for f in imports if f in FAMILY_DEPENDENT]
            yield Outcome("informational", e["path"], f"{e['path']} uses {', '.join(fam)}: fine for IPv6 when "
                          "given AF_INET6, worth a look.", {"path": e["path"], "functions": fam})


#: libvirt forward modes that put the guest straight on a host interface: no <ip> of libvirt's own
_HOST_LAN_MODES = ("bridge", "passthrough", "private", "vepa", "hostdev")


@check("ipv6-domain-networks")
def ipv6_domain_networks(ctx: CheckContext, rule: Rule) -> Out:
    """A libvirt guest's interfaces as the hypervisor connects them (``ctx.domain``: the
    target's ``TargetIdentity.domain``, read through the libvirt API when the guest is
    scanned with ``--domain``/``--all-domains``): one result per network, bridge or device
    the guest is on."""
    dom = ctx.domain
    if not isinstance(dom, dict):
        yield Outcome("notapplicable", "domain", "The target is not a libvirt domain scanned through the hypervisor.")
        return
    name = dom.get("name") or "?"
    ifaces = [i for i in dom.get("interfaces") or () if isinstance(i, dict)]
    if not ifaces:
        yield Outcome("notapplicable", "domain", f"Domain {name} has no network interfaces.")
        return
    groups: dict[str, list[dict[str, Any]]] = {}  # one result per network or host link, naming every interface on it
    for nic in ifaces:
        kind = nic.get("type") or "?"
        source = nic.get("source")
        groups.setdefault(f"{kind}:{source}" if source else kind, []).append(nic)
    for subject, nics in groups.items():
        nic = nics[0]
        kind, net, problem = nic.get("type") or "?", nic.get("network"), nic.get("problem")
        macs = [n.get("mac") for n in nics]
        who = f"Domain {name}'s interface{'s' if len(nics) > 1 else ''} {', '.join(m or '?' for m in macs)}"
        on = f"{who} {'are' if len(nics) > 1 else 'is'} on"
        evidence: dict[str, Any] = {"domain": name, "interfaces": nics}
        if kind == "network" and problem:
            yield Outcome("error", subject, f"{who}: {problem}.", evidence)
        elif kind == "network" and isinstance(net, dict):
            forward = net.get("forward") or "?"
            inactive = " (the network is not active)" if net.get("active") is False else ""
            v6 = [ip for ip in net.get("ipv6") or () if ip.get("address")]
            if forward in _HOST_LAN_MODES:
                yield Outcome("informational", subject, f"{on} libvirt network {net.get('name')} (forward mode "
                              f"{forward}){inactive}: it joins a host interface, so IPv6 depends on the LAN behind it, "
                              "not on libvirt.", evidence)
            elif v6:
                addrs = ", ".join(str(ip.get("address")) + (f"/{ip['prefix']}" if ip.get("prefix") is not None else "")
                                  for ip in v6)
                yield Outcome("pass", subject, f"{on} libvirt network {net.get('name')}, which has IPv6 "
                              f"({addrs}){inactive}.", evidence)
            else:
                yield Outcome("fail", subject, f"{on} libvirt network {net.get('name')} ({forward}){inactive}, "
                              "which has no <ip family='ipv6'>: the hypervisor neither advertises nor routes an IPv6 "
                              "prefix to it (link-local only), however the guest is configured; "
                              f"{'it gets IPv4 only' if net.get('ipv4') else 'the network has no addresses at all'}.",
                              evidence)
        elif kind in ("bridge", "direct"):
            yield Outcome("informational", subject, f"{on} host {'bridge' if kind == 'bridge' else 'device'} "
                          f"{nic.get('source') or '?'}: IPv6 depends on the host's LAN, not on libvirt.", evidence)
        elif kind == "user":
            yield Outcome("informational", subject, f"{on} user-mode networking (slirp): QEMU offers IPv6 there "
                          "unless it is turned off; nothing to check on the hypervisor.", evidence)
        else:
            yield Outcome("informational", subject, f"{who} of type {kind} {'are' if len(nics) > 1 else 'is'} not "
                          "on a libvirt network: IPv6 depends on what it connects to.", evidence)
