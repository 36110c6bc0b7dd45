"""The system configuration as a typed record (``scanner.inventory.sysconf``): read once by
inventory, then the boot and IPv6 checks judge ``CheckContext.system`` and
``CheckContext.domain`` only, never the target.

* a :class:`SystemConfig` read from a fixture root drives the checks to the very findings a
  scan gives, with the root gone by the time they run and no target object anywhere in
  the context;
* hostile configuration files (over the cap, binary, link loops, links pointing outside the
  root, a folder where a file belongs, no read permission) are ``Unreadable`` records and
  ``error`` outcomes, never exceptions; no host file is opened (an audit hook in a child
  process logs every open) and no file is opened twice;
* the libvirt-network rule reads ``ctx.domain``; a context without a system record gives
  error outcomes, not a crash.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from conftest import CACHE, REPO, load_builder, scan_root

from scanner import limits
from scanner.checks import CheckContext, Finding, Policy, evaluate, load_rules, rules_for
from scanner.inventory.sysconf import ConfigText, SystemConfig, Unreadable, read_system_config
from scanner.target import DirectoryRoot, RootFS
from scanner.target.libvirt import DomainInterface, HypervisorNetwork, NetworkIP

#: the rules that judge the system configuration (FC-IP6-008 judges ELF imports, FC-IP6-010 the domain)
SYSTEM_RULES = ("FC-BOOT-", "FC-IP6-")
NOT_SYSTEM = ("FC-IP6-008", "FC-IP6-010")


@pytest.fixture(scope="session")
def systemroots() -> dict[str, Path]:
    return load_builder("build_systemroots").build_system_roots(CACHE)


def system_rules() -> list:
    return [r for r in rules_for(load_rules(), "directory") if r.id.startswith(SYSTEM_RULES)]


def judge(ctx: CheckContext) -> list[Finding]:
    return evaluate(ctx, system_rules(), [])


#: what a check decides (the rest is the rule's metadata, added by the engine)
DECIDED = ("id", "rule", "severity", "state", "subject", "message", "evidence")


def comparable(findings: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: f[k] for k in DECIDED}, sort_keys=True) for f in findings
                  if f["rule"].startswith(SYSTEM_RULES) and f["rule"] not in NOT_SYSTEM)


def as_dicts(findings: list[Finding]) -> list[dict[str, Any]]:
    """Findings as the result document holds them (JSON round trip: tuples become lists)."""
    return [json.loads(json.dumps({"id": f.id, "rule": f.rule, "severity": f.severity, "state": f.state,
                                   "subject": f.subject, "message": f.message, "evidence": f.evidence}))
            for f in findings]


def walk(value: Any) -> Iterator[Any]:
    """Every value reachable from a record: dataclass fields, mappings, sequences."""
    yield value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name))
    elif isinstance(value, (dict, MappingProxyType)):
        for k, v in value.items():
            yield from walk(k)
            yield from walk(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from walk(v)


# ---- (a) the record drives the checks, no target anywhere ----------------------------------------
@pytest.mark.parametrize("name", ["rhel5-secure", "rhel5-insecure", "rhel7-secure", "rhel7-trap", "rhel9-bls",
                                  "debian12", "container", "hostile-braces"])
def test_a_system_record_drives_the_checks_without_the_target(name: str, systemroots: dict[str, Path],
                                                              tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(systemroots[name], root, symlinks=True)
    expected = comparable(scan_root(root)["findings"])
    system = read_system_config(DirectoryRoot(root))
    shutil.rmtree(root)  # the checks below cannot read the target: it is gone
    ctx = CheckContext([], [], [], Policy(), system=system)
    assert "fs" not in {f.name for f in dataclasses.fields(CheckContext)}
    assert not any(isinstance(v, (RootFS, os.PathLike)) for v in walk(ctx))
    with pytest.raises(dataclasses.FrozenInstanceError):
        system.boot = system.boot  # type: ignore[misc]
    got = judge(ctx)
    assert comparable(as_dicts(got)) == expected
    assert {f.state for f in got} - {"notapplicable"}, "the rules judged something"


def test_the_record_holds_what_the_rules_read(systemroots: dict[str, Path]) -> None:
    trap = read_system_config(DirectoryRoot(systemroots["rhel7-trap"]))
    assert trap.boot.kind in ("grub2", "bls") and trap.boot.files[0].startswith("/boot/")
    assert trap.systemd is not None and trap.systemd.emergency is not None
    assert any("sulogin" not in ln.text for ln in trap.systemd.emergency.execs)
    assert trap.systemd.debug_shell_links  # the trap enables the debug shell
    assert trap.sysctl.values and all(isinstance(m, Unreadable) or m.path in trap.boot.files
                                      for m in trap.boot_modes)
    rhel5 = read_system_config(DirectoryRoot(systemroots["rhel5-insecure"]))
    assert rhel5.systemd is None and rhel5.boot.kind == "grub-legacy"
    assert isinstance(rhel5.sysconfig_init, ConfigText) and rhel5.initscripts.files
    container = read_system_config(DirectoryRoot(systemroots["container"]))
    assert container.boot.kind == "none" and container.boot_modes == ()


# ---- (b) hostile configuration files --------------------------------------------------------------
#: the child: reads the record (as nobody when asked and run as root), logging every open
#: and listing it makes, then judges the rules on the record alone
CHILD = r"""
import json, os, sys
from scanner.checks import CheckContext, Policy, evaluate, load_rules, rules_for
from scanner.inventory.sysconf import read_system_config
from scanner.target import DirectoryRoot
root = sys.argv[1]
rules = [r for r in rules_for(load_rules(), "directory") if r.id.startswith(("FC-BOOT-", "FC-IP6-"))]
fs = DirectoryRoot(root)
if os.geteuid() == 0 and sys.argv[2] == "nobody":
    os.setgid(65534)
    os.setuid(65534)
opened = []
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        opened.append((event, os.fsdecode(args[0]), args[2] if event == "open" and len(args) > 2 else None))
sys.addaudithook(hook)
system = read_system_config(fs)
seen = list(opened)
findings = evaluate(CheckContext([], [], [], Policy(), system=system), rules, [])
print(json.dumps({"opened": seen, "after": [o for o in opened[len(seen):] if o[1].startswith(root)],
                  "findings": [[f.rule, f.state, f.message] for f in findings]}))
"""

#: host files the hostile links point at: none may be opened
HOST_TARGETS = ("/etc/hostname", "/etc/os-release", "/etc/passwd", "/proc/self/environ")


def hostile_root(root: Path) -> None:
    def write(rel: str, data: str | bytes, mode: int = 0o644) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        p.chmod(mode)

    def link(rel: str, to: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(to, root / rel)

    write("boot/grub2/grub.cfg", "menuentry 'Linux' {\n  linux /vmlinuz ro audit=1\n}\n", 0o000)  # no permission
    write("boot/grub2/user.cfg", "GRUB2_PASSWORD=x\n", 0o600)
    link("etc/default/grub", "grub.loop")  # a loop of two links
    link("etc/default/grub.loop", "grub")
    write("etc/sysctl.d/90-big.conf", "#" * (limits.MAX_CONFIG_BYTES + 10) + "\n")  # over the cap
    write("etc/modprobe.d/junk.conf", b"\x7fELF\x02\x01\x01\0" + bytes(range(256)))  # binary
    link("etc/hosts", "/etc/hostname")  # an absolute link: resolves inside the root, where nothing is
    link("etc/inittab", "../../../../../../../../../../etc/os-release")  # climbs out: clamped at the root
    (root / "etc/sysconfig/init").mkdir(parents=True)  # a folder where a file belongs
    link("etc/sysconfig/network", "/proc/self/environ")
    link("etc/NetworkManager/system-connections/eth0.nmconnection", "eth0.nmconnection")  # links to itself
    write("etc/libvirt/qemu/networks/default.xml", "<network><name>default</name>")  # unterminated XML
    link("etc/libvirt/qemu/networks/passwd.xml", "/etc/passwd")
    (root / "etc/passwd").unlink(missing_ok=True)
    root.chmod(0o755)
    for d in ("boot", "boot/grub2", "etc"):
        (root / d).chmod(0o755)


def run_child(root: Path, who: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(root), who], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return json.loads(r.stdout)


def test_hostile_configuration_files_are_records_and_errors_not_exceptions() -> None:
    base = Path(tempfile.mkdtemp(prefix="flightcheck-sysconf-"))  # world-readable: read as nobody
    try:
        base.chmod(0o755)
        root = base / "root"
        root.mkdir()
        hostile_root(root)
        got = run_child(root, "nobody")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    # no host file is read: every open and listing is inside the root, and none twice
    paths = [p for _, p, _ in got["opened"]]
    assert [p for p in paths if p == str(root) or p.startswith(f"{root}/")] == paths, paths
    assert not set(HOST_TARGETS) & set(paths)
    # each file is opened once (an open with O_NOATIME refused for a file nobody does not own
    # is retried without it: the same read, with other flags)
    opens = Counter((p, flags) for e, p, flags in got["opened"] if e == "open")
    assert opens and max(opens.values()) == 1, opens
    assert got["after"] == []  # the checks opened and listed nothing of the target
    by: dict[str, list[tuple[str, str]]] = {}
    for rule, state, message in got["findings"]:
        by.setdefault(rule, []).append((state, message))

    def one(rule: str, state: str, *words: str) -> None:
        assert any(s == state and all(w in m for w in words) for s, m in by[rule]), (rule, by[rule])

    one("FC-BOOT-001", "error", "/boot/grub2/grub.cfg: cannot read: Permission denied")
    one("FC-BOOT-004", "error", "/boot/grub2/grub.cfg")
    one("FC-BOOT-006", "error", "/etc/default/grub", "symbolic links")  # the loop: a gap in the defaults
    one("FC-IP6-001", "error", "/etc/default/grub")
    one("FC-IP6-002", "error", "/etc/sysctl.d/90-big.conf: limit MAX_CONFIG_BYTES")
    one("FC-IP6-003", "error", "/etc/modprobe.d/junk.conf", "binary data")
    one("FC-IP6-004", "error", "/etc/sysconfig/network: cannot read")
    one("FC-IP6-005", "error", "eth0.nmconnection", "symbolic links")
    one("FC-IP6-006", "error", "/etc/hosts: cannot read")
    one("FC-BOOT-007", "error", "/etc/sysconfig/init", "is a directory")
    one("FC-BOOT-010", "error", "/etc/sysconfig/init")
    one("FC-IP6-007", "error", "default.xml: not valid XML")
    one("FC-IP6-007", "error", "passwd.xml: cannot read")
    assert all(s != "pass" for rule in ("FC-BOOT-001", "FC-IP6-002", "FC-IP6-003", "FC-IP6-006")
               for s, _ in by[rule])


def test_hostile_records_in_process(tmp_path: Path) -> None:
    """The same root read in this process: each problem is an Unreadable record where the
    rules look for it, with the reason; nothing raises."""
    root = tmp_path / "root"
    root.mkdir()
    hostile_root(root)
    system = read_system_config(DirectoryRoot(root))
    assert system.hosts is not None and system.hosts.lines == () and "cannot read" in (system.hosts.problem or "")
    assert system.sysconfig_init is not None and "is a directory" in (system.sysconfig_init.problem or "")
    assert system.inittab is not None and system.inittab.problem  # the target has no /etc/os-release
    assert [u.path for u in system.sysctl.unreadable] == ["/etc/sysctl.d/90-big.conf"]
    assert [u.path for u in system.modprobe.unreadable] == ["/etc/modprobe.d/junk.conf"]
    assert "symbolic links" in str(system.networkmanager.unreadable[0])
    assert {n.path: bool(n.problem or n.xml_error) for n in system.libvirt_networks.networks} == {
        "/etc/libvirt/qemu/networks/default.xml": True, "/etc/libvirt/qemu/networks/passwd.xml": True}
    assert any(u.path == "/etc/default/grub" for u in system.boot.defaults.unreadable)


# ---- (c) the domain rule reads ctx.domain; no system record: errors ---------------------------------
def domain_facts() -> dict[str, Any]:
    dual = HypervisorNetwork("dual", True, "virbr1", "nat", (NetworkIP("ipv4", "192.168.1.1", 24, ()),
                                                             NetworkIP("ipv6", "fd00::1", 64, ())))
    legacy = HypervisorNetwork("legacy", False, "virbr2", "isolated", (NetworkIP("ipv4", "10.0.0.1", 8, ()),))
    nics = [DomainInterface("network", "dual", "52:54:00:00:00:01", "virtio", dual),
            DomainInterface("network", "legacy", "52:54:00:00:00:02", "virtio", legacy),
            DomainInterface("bridge", "br0", "52:54:00:00:00:03", "virtio")]
    return {"name": "web", "interfaces": [n.facts() for n in nics]}


def test_the_domain_network_rule_reads_ctx_domain() -> None:
    rules = [r for r in system_rules() if r.id == "FC-IP6-010"]
    got = {f.subject: f for f in evaluate(CheckContext([], [], [], Policy(), domain=domain_facts()), rules, [])}
    assert got["network:dual"].state == "pass" and "fd00::1/64" in got["network:dual"].message
    assert got["network:legacy"].state == "fail" and "52:54:00:00:00:02" in got["network:legacy"].message
    assert "(the network is not active)" in got["network:legacy"].message
    assert got["bridge:br0"].state == "informational"
    (none,) = evaluate(CheckContext([], [], [], Policy()), rules, [])
    assert none.state == "notapplicable"


def test_a_context_without_a_system_record_gives_errors_not_a_crash() -> None:
    findings = judge(CheckContext([], [], [], Policy()))
    by = {f.rule: f for f in findings}
    for rule in {r.id for r in system_rules()} - set(NOT_SYSTEM):
        assert by[rule].state == "error", rule
        assert "system configuration was not read" in by[rule].message
        assert "could not run" not in by[rule].message  # an outcome of the check, not a crash caught
    assert by["FC-IP6-010"].state == "notapplicable"


def test_the_scan_reads_the_record_once_and_passes_it_on(systemroots: dict[str, Path]) -> None:
    """A scan's system findings are those of the record read from the same root."""
    root = systemroots["rhel7-trap"]
    system = read_system_config(DirectoryRoot(root))
    assert isinstance(system, SystemConfig)
    assert comparable(scan_root(root)["findings"]) == comparable(as_dicts(judge(
        CheckContext([], [], [], Policy(), system=system))))


@pytest.mark.parametrize("name", ["rhel7-trap", "rhel9-bls", "rhel5-insecure"])
def test_each_configuration_file_is_read_once(name: str, systemroots: dict[str, Path]) -> None:
    """Several rules read the boot configuration, sysctl and /etc/sysconfig/init: the
    record reads each file once for all of them, and the checks read none."""
    root = systemroots[name].resolve()
    got = run_child(root, "self")
    opens = Counter((p, flags) for e, p, flags in got["opened"] if e == "open")
    assert any(p.endswith(("grub.cfg", "grub.conf")) for p, _ in opens), opens
    assert max(opens.values()) == 1, [k for k, n in opens.items() if n > 1]
    assert all(p.startswith(f"{root}/") for _, p, _ in got["opened"])
    assert got["after"] == []
