"""libvirt domains through libvirt's real test:/// driver: a node XML with a running domain
(a qcow2 overlay, a network disk, an empty cdrom) and a shut-off one whose disk is a
storage-pool volume. The disks are the real images of fixtures/build_images.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.target import TargetError
from scanner.target.libvirt import connect, domain_images, list_domains

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
    </devices>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>db</name><uuid>11111111-2222-3333-4444-555555555502</uuid><memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='images' volume='gpt-ext4.raw'/><target dev='vda'/></disk>
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
</node>
"""
    path = tmp_path_factory.mktemp("libvirt") / "node.xml"
    path.write_text(xml)
    return f"test://{path}"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True)


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
    assert doc["target"]["kind"] == "image" and doc["summary"]["elves"] == 20


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
