"""libvirt domains through libvirt's real test:/// driver: a node XML with a running domain
(a qcow2 overlay, a network disk, an empty cdrom) and a shut-off one whose disk is a
storage-pool volume. The disks are the real images of fixtures/build_images.py. Two libvirt
networks, one with IPv6 and one IPv4-only, carry the domains' interfaces (rule FC-IP6-010)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.target import TargetError
from scanner.target.libvirt import connect, domain_images, list_domains, parse_network

from conftest import CACHE, load_builder

pytest.importorskip("libvirt", reason="needs libvirt-python (make installs it with Debian's libvirt-dev)")


@pytest.fixture(scope="session")
def node(rpmroot: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    imgs = load_builder("build_images").build_images(CACHE, rpmroot, roots["rhel7-secure"] / "boot")
    folder = imgs["gpt-ext4.raw"].parent
    xml = f"""<node>
  <domain type='test'>
    <name>web</name><uuid>11111111-2222-3333-4444-555555555501</uuid><memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{imgs["overlay.qcow2"]}'/><target dev='vda'/></disk>
      <disk type='network' device='disk'><source protocol='rbd' name='pool/img'><host name='ceph.invalid'/></source><target dev='vdb'/></disk>
      <disk type='file' device='cdrom'><target dev='sda'/></disk>
      <interface type='network'><source network='dual'/><mac address='52:54:00:f1:00:01'/><model type='virtio'/></interface>
      <interface type='bridge'><source bridge='br0'/><mac address='52:54:00:f1:00:02'/></interface>
    </devices>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>db</name><uuid>11111111-2222-3333-4444-555555555502</uuid><memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='images' volume='gpt-ext4.raw'/><target dev='vda'/></disk>
      <interface type='network'><source network='legacy'/><mac address='52:54:00:f1:00:03'/></interface>
      <interface type='network'><source network='gone'/><mac address='52:54:00:f1:00:04'/></interface>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>nas</name><uuid>11111111-2222-3333-4444-555555555503</uuid><memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='network' device='disk'><source protocol='iscsi' name='iqn.2026-01.invalid:t/1'><host name='san.invalid'/></source><target dev='vda'/></disk>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
  <pool type='dir'>
    <name>images</name><uuid>11111111-2222-3333-4444-5555555555ff</uuid>
    <target><path>{folder}</path></target>
    <volume type='file'><name>gpt-ext4.raw</name><capacity>1</capacity><target><path>{imgs["gpt-ext4.raw"]}</path></target></volume>
  </pool>
  <network>
    <name>dual</name><uuid>11111111-2222-3333-4444-5555555555a1</uuid>
    <forward mode='nat'/><bridge name='virbr1'/>
    <ip address='192.168.120.1' netmask='255.255.255.0'><dhcp><range start='192.168.120.2' end='192.168.120.254'/></dhcp></ip>
    <ip family='ipv6' address='fd00:f1::1' prefix='64'/>
  </network>
  <network>
    <name>legacy</name><uuid>11111111-2222-3333-4444-5555555555a2</uuid>
    <bridge name='virbr2'/>
    <ip address='192.168.121.1' prefix='24'/>
  </network>
</node>
"""
    path = tmp_path_factory.mktemp("libvirt") / "node.xml"
    path.write_text(xml)
    return f"test://{path}"


def run(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)} if columns else None  # rich wraps tables to the width
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, env=env)


def test_list_domains_active_and_inactive(node: str) -> None:
    found = {d.name: d for d in list_domains(connect(node))}
    assert set(found) == {"web", "db", "nas"}
    assert found["web"].state == "running" and found["web"].active
    assert found["db"].state == "shut off" and not found["db"].active
    web = {d.target: d for d in found["web"].disks}
    assert web["vda"].source.endswith("overlay.qcow2") and web["vda"].format == "qcow2"
    assert "network disk (rbd) is not supported" in web["vdb"].problem
    assert web["sda"].device == "cdrom"
    (db,) = found["db"].disks
    assert db.kind == "volume" and db.source.endswith("gpt-ext4.raw")  # resolved through the storage API
    r = run("domains", "--connect", node)
    assert r.returncode == 0 and "shut off" in r.stdout and "rbd" in r.stdout


def test_running_domain_needs_allow_running(node: str, tmp_path: Path) -> None:
    web = next(d for d in list_domains(connect(node)) if d.name == "web")
    with pytest.raises(TargetError, match="--allow-running"):
        domain_images(web, allow_running=False)
    assert domain_images(web, allow_running=True) == [web.disks[0].source]
    refused = run("scan", "--domain", "web", "-c", node, "-o", str(tmp_path / "a"), "-q")
    assert refused.returncode == 2 and "--allow-running" in refused.stderr
    allowed = run("scan", "--domain", "web", "-c", node, "-o", str(tmp_path / "b"), "-q", "--allow-running")
    assert allowed.returncode == 1 and "may be inconsistent" in allowed.stderr  # the fixture fails the gate
    doc = json.loads((tmp_path / "b/web/result.json").read_text())
    assert doc["target"]["kind"] == "domain" and doc["summary"]["elves"] == 20


def test_all_domains_fleet(node: str, tmp_path: Path) -> None:
    r = run("scan", "--all-domains", "-c", node, "-o", str(tmp_path), "-q")
    assert r.returncode == 1
    fleet = {d["domain"]: d for d in json.loads((tmp_path / "fleet.json").read_text())["domains"]}
    assert fleet["db"]["outcome"] == "scanned" and fleet["db"]["verdict"] == "fail"
    assert fleet["web"]["outcome"] == "skipped" and "running" in fleet["web"]["reason"]
    assert fleet["nas"]["outcome"] == "skipped" and "iscsi" in fleet["nas"]["reason"]
    assert (tmp_path / "db/result.json").is_file() and not (tmp_path / "web").exists()
    assert json.loads((tmp_path / "fleet.json").read_text())["verdict"] == "fail"
    assert fleet["db"]["packages"] == 12 and fleet["db"]["elves"] == 20 and fleet["db"]["findings"]["high"] == 1
    html = (tmp_path / "fleet.html").read_text()
    assert "db/result.json" in html and "iscsi" in html and "running" in html


def test_fleet_html_links_each_guest_report(node: str, tmp_path: Path) -> None:
    r = run("scan", "--domain", "db", "-c", node, "-o", str(tmp_path), "-q", "--format", "html")
    assert r.returncode == 1
    html = (tmp_path / "fleet.html").read_text()
    assert 'href="db/report.html"' in html and (tmp_path / "db/report.html").is_file()


def test_bad_connection_and_unknown_domain(node: str, tmp_path: Path) -> None:
    r = run("domains", "--connect", "test:///nonexistent/node.xml")
    assert r.returncode == 2 and "cannot connect to libvirt" in r.stderr and "Traceback" not in r.stderr
    r = run("scan", "--domain", "nope", "-c", node, "-o", str(tmp_path))
    assert r.returncode == 2 and "no domain nope" in r.stderr


# ---- the hypervisor's networks (FC-IP6-010) ---------------------------------------------------
def findings(doc: dict, rule: str = "FC-IP6-010") -> dict[str, dict]:
    return {f["subject"]: f for f in doc["findings"] if f["rule"] == rule}


def test_interfaces_and_their_networks(node: str) -> None:
    found = {d.name: d for d in list_domains(connect(node))}
    dual, br0 = found["web"].interfaces
    assert (dual.kind, dual.source, dual.mac, dual.model, dual.problem) == (
        "network", "dual", "52:54:00:f1:00:01", "virtio", None)
    net = dual.network
    assert (net.name, net.active, net.bridge, net.forward, net.has_ipv6) == ("dual", True, "virbr1", "nat", True)
    assert [(ip.address, ip.prefix, ip.dhcp_ranges) for ip in net.ipv4] == [
        ("192.168.120.1", 24, ("192.168.120.2-192.168.120.254",))]  # prefix from the netmask
    assert [(ip.address, ip.prefix) for ip in net.ipv6] == [("fd00:f1::1", 64)]
    assert (br0.kind, br0.source, br0.network, br0.problem) == ("bridge", "br0", None, None)
    legacy, gone = found["db"].interfaces
    assert legacy.network.forward == "isolated" and not legacy.network.has_ipv6 and legacy.network.ipv6 == []
    # a network the hypervisor does not have: a problem on the interface, not an exception
    assert gone.network is None and "gone" in gone.problem and "not found" in gone.problem.lower()
    assert found["nas"].interfaces == ()
    r = run("domains", "--connect", node, columns=200)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "dual (192.168.120.1/24, fd00:f1::1/64)" in r.stdout and "network/nat" in r.stdout
    assert "legacy (192.168.121.1/24; no IPv6)" in r.stdout and "network/isolated" in r.stdout
    assert "52:54:00:f1:00:02" in r.stdout and "br0" in r.stdout and "(network gone cannot be looked up" in r.stdout


def test_domain_scans_carry_network_facts_and_judge_ipv6(node: str, tmp_path: Path) -> None:
    from scanner import result as resultmod

    r = run("scan", "--domain", "web", "--domain", "db", "-c", node, "-o", str(tmp_path), "-q", "--allow-running")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    web = json.loads((tmp_path / "web/result.json").read_text())
    db = json.loads((tmp_path / "db/result.json").read_text())
    for doc in (web, db):
        resultmod.validate(doc)
    dom = web["target"]["domain"]
    assert (dom["name"], dom["uuid"], dom["state"]) == ("web", "11111111-2222-3333-4444-555555555501", "running")
    nic = dom["interfaces"][0]
    assert nic["type"] == "network" and nic["mac"] == "52:54:00:f1:00:01" and nic["problem"] is None
    assert nic["network"]["ipv6"] == [{"family": "ipv6", "address": "fd00:f1::1", "prefix": 64, "dhcp_ranges": []}]
    assert nic["network"]["forward"] == "nat" and nic["network"]["bridge"] == "virbr1"
    assert dom["interfaces"][1]["type"] == "bridge" and dom["interfaces"][1]["network"] is None
    assert db["target"]["domain"]["state"] == "shut off"
    assert db["target"]["domain"]["interfaces"][0]["network"]["ipv6"] == []

    got = findings(web)
    assert set(got) == {"network:dual", "bridge:br0"}
    assert got["network:dual"]["state"] == "pass" and "fd00:f1::1/64" in got["network:dual"]["message"]
    assert got["bridge:br0"]["state"] == "informational" and "host's LAN" in got["bridge:br0"]["message"]
    got = findings(db)
    assert got["network:legacy"]["state"] == "fail" and got["network:legacy"]["severity"] == "medium"
    assert "52:54:00:f1:00:03" in got["network:legacy"]["message"] and "IPv4 only" in got["network:legacy"]["message"]
    assert "no <ip family='ipv6'>" in got["network:legacy"]["message"]
    assert got["network:gone"]["state"] == "error" and "gone" in got["network:gone"]["message"]
    rule = next(x for x in db["rules"] if x["id"] == "FC-IP6-010")
    assert "virsh net-edit" in rule["fix"] and rule["references"]


HOSTILE_NETWORKS = """
  <network><name>bare</name></network>
  <network><name>noprefix</name><ip family='ipv6' address='fd00:f2::1'/></network>
  <network><name>oddmask</name><ip address='10.0.0.1' netmask='255.0.255.0'/></network>
  <network><name>hostbridge</name><forward mode='bridge'/><bridge name='br0'/></network>
"""


def test_hostile_networks_and_targets_that_are_not_domains(node: str, tmp_path: Path) -> None:
    from scanner import result as resultmod

    disk = next(d for d in list_domains(connect(node)) if d.name == "web").disks[0].source
    xml = f"""<node>
  <domain type='test'>
    <name>odd</name><memory>1048576</memory><os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/><target dev='vda'/></disk>
      <interface type='network'><source network='bare'/></interface>
      <interface type='network'><source network='noprefix'/></interface>
      <interface type='network'><source network='oddmask'/></interface>
      <interface type='network'><source network='hostbridge'/></interface>
      <interface type='ethernet'/>
      <interface type='user'/>
    </devices>
  </domain>
  <domain type='test'>
    <name>nonic</name><memory>1048576</memory><os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/><target dev='vda'/></disk></devices>
  </domain>
  {HOSTILE_NETWORKS}
</node>"""
    path = tmp_path / "hostile.xml"
    path.write_text(xml)
    uri = f"test://{path}"
    odd = next(d for d in list_domains(connect(uri)) if d.name == "odd")
    nets = {i.source: i.network for i in odd.interfaces if i.network}
    assert nets["bare"].bridge is None and nets["bare"].ips == () and not nets["bare"].has_ipv6
    assert nets["noprefix"].has_ipv6 and nets["noprefix"].ipv6[0].prefix is None
    assert nets["oddmask"].ipv4[0].prefix is None and nets["hostbridge"].forward == "bridge"
    assert run("domains", "-c", uri).returncode == 0

    r = run("scan", "--all-domains", "-c", uri, "-o", str(tmp_path / "out"), "-q", "--allow-running")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    doc = json.loads((tmp_path / "out/odd/result.json").read_text())
    resultmod.validate(doc)
    got = {s: f["state"] for s, f in findings(doc).items()}
    assert got == {"network:bare": "fail", "network:noprefix": "pass", "network:oddmask": "fail",
                   "network:hostbridge": "informational", "ethernet": "informational", "user": "informational"}
    assert "fd00:f2::1" in findings(doc)["network:noprefix"]["message"]
    # a domain without interfaces, and an image that is not a domain: not applicable
    nonic = json.loads((tmp_path / "out/nonic/result.json").read_text())
    assert [f["state"] for f in findings(nonic).values()] == ["notapplicable"]
    r = run("scan", "--image", disk, "-o", str(tmp_path / "img"), "-q")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr
    img = json.loads((tmp_path / "img/result.json").read_text())
    assert "domain" not in img["target"] and [f["state"] for f in findings(img).values()] == ["notapplicable"]


def test_network_xml_the_api_would_refuse_is_still_read() -> None:
    net = parse_network("<network><ip/><ip family='ipv6'/><ip family='ipv6' address='fd00::1' prefix='x'/>"
                        "<ip address='fe80::1'><dhcp><range/></dhcp></ip><forward/><bridge/></network>")
    assert net.name == "?" and net.active is None and net.bridge is None and net.forward == "nat"
    assert [(ip.family, ip.address, ip.prefix) for ip in net.ips] == [
        ("ipv4", None, None), ("ipv6", None, None), ("ipv6", "fd00::1", None), ("ipv6", "fe80::1", None)]
    assert net.ips[3].dhcp_ranges == ("?-?",) and net.has_ipv6
    assert not parse_network("<network><ip family='ipv6'/></network>").has_ipv6  # no address: no IPv6
    with pytest.raises(TargetError, match="network XML"):
        parse_network("<network>")


@pytest.fixture()
def loop_device(node: str) -> Iterator[str]:
    """gpt-ext4.raw attached read-only to a loop device: a real block device. Needs root
    and the loop driver; the test says so when it skips."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("losetup") or not os.path.exists("/dev/loop-control"):
        pytest.skip("a block-device disk needs root and loop devices (losetup) to make one; this machine has neither")
    img = CACHE / "images" / "gpt-ext4.raw"
    r = subprocess.run(["losetup", "--find", "--show", "--read-only", "--partscan", str(img)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"losetup cannot attach a loop device here: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_block_device_disk(loop_device: str, tmp_path: Path) -> None:
    """<disk type='block'><source dev='/dev/loopN'/>: the domain's disk is a block device,
    read like an image file (read-only, never mounted), with the same answers."""
    xml = f"""<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>blk</name><uuid>11111111-2222-3333-4444-555555555511</uuid><memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='{loop_device}'/><target dev='vda'/></disk>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
</node>
"""
    path = tmp_path / "node.xml"
    path.write_text(xml)
    (dom,) = list_domains(connect(f"test://{path}"))
    (disk,) = dom.disks
    assert disk.kind == "block" and disk.source == loop_device and disk.problem is None
    before = hashlib.sha256((CACHE / "images" / "gpt-ext4.raw").read_bytes()).hexdigest()
    r = run("scan", "--domain", "blk", "-c", f"test://{path}", "-o", str(tmp_path / "o"), "-q")
    assert r.returncode == 1, r.stderr  # the fixture fails the gate (a GPL closure in proprietary code)
    doc = json.loads((tmp_path / "o/blk/result.json").read_text())
    assert doc["target"]["kind"] == "domain" and doc["target"]["image"]["images"] == [loop_device]
    assert doc["summary"]["elves"] == 20 and doc["databases"][0]["packages"] == 12
    assert sorted(m["path"] for m in doc["target"]["image"]["mounts"]) == ["/", "/boot"]
    assert hashlib.sha256((CACHE / "images" / "gpt-ext4.raw").read_bytes()).hexdigest() == before
