"""Domains of a real libvirtd (qemu:///system, started by the suite: tests/libvirt_harness.py),
defined from XML whose disks are copies of the fixture images: a qcow2 file, a qcow2 overlay
on a raw backing file, a volume of a storage pool, and a running firmware-only guest under
TCG. virsh is the oracle for what libvirt says; the image scanned directly is the oracle for
what a domain scan finds."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CACHE, load_builder

import libvirt_harness as harness

pytest.importorskip("libvirt", reason="needs libvirt-python (make installs it with Debian's libvirt-dev)")

from scanner.target.libvirt import connect, list_domains  # noqa: E402


@pytest.fixture(scope="module")
def lab(rpmroot: Path) -> Iterator[harness.Lab]:
    why = harness.missing()
    if why:
        pytest.skip(why)
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    images = load_builder("build_images").build_images(CACHE, rpmroot, roots["rhel7-secure"] / "boot")
    with harness.system_libvirtd(), harness.lab(images) as defined:
        yield defined


def flightcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=600)


def test_listing_matches_virsh(lab: harness.Lab) -> None:
    ours = {d.name: d for d in list_domains(connect(harness.SYSTEM_URI)) if d.name.startswith(lab.prefix)}
    listed = set(harness.virsh("list", "--all", "--name").split())
    assert set(ours) == {n for n in listed if n.startswith(lab.prefix)} == set(lab.images)
    running = set(harness.virsh("list", "--name").split())
    for name, dom in ours.items():
        assert dom.active == (name in running), name
        assert dom.state == harness.virsh("domstate", name).strip(), name
        # domblklist --details: type, device, target, source
        rows = [line.split() for line in harness.virsh("domblklist", name, "--details").splitlines()[2:] if line.strip()]
        # a volume is listed by name; the storage API's vol-path is where its file is
        listed_disks = [(r[2], harness.virsh("vol-path", "--pool", lab.pool, r[3]).strip() if r[0] == "volume"
                         else r[3]) for r in rows]
        assert listed_disks == [(d.target, d.source) for d in dom.disks], name
        assert [d.source for d in dom.disks] == [str(lab.images[name])]
    overlay = ours[lab.name("overlay")].disks[0]
    assert overlay.format == "qcow2"


def _essence(doc: dict[str, Any]) -> dict[str, Any]:
    """What a scan found, without how the target was reached."""
    return {
        "elves": sorted((e["path"], e["sha256"], e["owner"]) for e in doc["elves"]),
        "packages": sorted(p["id"] for p in doc["packages"]),
        "findings": sorted((f["rule"], f["subject"], f["state"]) for f in doc["findings"]
                           if f["rule"] != "FC-IP6-010"),  # the libvirt-network rule judges domains only
    }


@pytest.mark.parametrize("short", ["plain", "overlay", "pooled"])
def test_a_defined_guest_scans_as_its_image(lab: harness.Lab, short: str, tmp_path: Path) -> None:
    name = lab.name(short)
    by_domain = flightcheck("scan", "--domain", name, "--connect", harness.SYSTEM_URI, "-o", str(tmp_path / "d"),
                            "-q", "--no-progress")
    assert by_domain.returncode in (0, 1), by_domain.stderr
    by_image = flightcheck("scan", "--image", str(lab.images[name]), "-o", str(tmp_path / "i"), "-q", "--no-progress")
    assert by_image.returncode in (0, 1), by_image.stderr
    doc = json.loads((tmp_path / "d" / name / "result.json").read_text())
    image = json.loads((tmp_path / "i/result.json").read_text())
    assert doc["target"]["kind"] == "domain" and doc["target"]["domain"]["name"] == name
    assert doc["target"]["domain"]["state"] == "shut off"
    assert _essence(doc) == _essence(image)
    assert doc["summary"]["elves"] > 0 and doc["summary"]["packages"] > 0


def test_the_running_guest_is_refused_without_allow_running(lab: harness.Lab, tmp_path: Path) -> None:
    name = lab.name("running")
    assert harness.virsh("domstate", name).strip() == "running"
    refused = flightcheck("scan", "--domain", name, "--connect", harness.SYSTEM_URI, "-o", str(tmp_path / "a"), "-q")
    assert refused.returncode == 2 and "--allow-running" in refused.stderr
    assert not (tmp_path / "a" / name / "result.json").exists()
    allowed = flightcheck("scan", "--domain", name, "--connect", harness.SYSTEM_URI, "-o", str(tmp_path / "b"), "-q",
                          "--allow-running")
    assert allowed.returncode in (0, 1) and "may be inconsistent" in allowed.stderr
    doc = json.loads((tmp_path / "b" / name / "result.json").read_text())
    assert doc["target"]["domain"]["state"] == "running" and doc["summary"]["elves"] > 0
    assert harness.virsh("domstate", name).strip() == "running"  # the scan changed nothing


def test_all_domains_of_the_real_daemon(lab: harness.Lab, tmp_path: Path) -> None:
    """--all-domains over the daemon: each of this lab's shut-off guests scanned, the
    running one skipped with its reason (other domains of the host are scanned too, and
    not asserted on)."""
    r = flightcheck("scan", "--all-domains", "--connect", harness.SYSTEM_URI, "-o", str(tmp_path), "-q")
    assert r.returncode in (0, 1), r.stderr
    fleet = {d["domain"]: d for d in json.loads((tmp_path / "fleet.json").read_text())["domains"]}
    for short in ("plain", "overlay", "pooled"):
        assert fleet[lab.name(short)]["outcome"] == "scanned"
    assert fleet[lab.name("running")]["outcome"] == "skipped" and "running" in fleet[lab.name("running")]["reason"]
