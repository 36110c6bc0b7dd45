"""``flightcheck fleet scan`` on a real Dask cluster: a ``dask scheduler`` and three ``dask
worker`` processes on 127.0.0.1 (two carry the resource of hypervisor ``sys``, one of
``tst``), over two hypervisors: the real system libvirtd (tests/libvirt_harness.py, guests on
the fixture images) and libvirt's test:/// driver (a node XML with one shut-off guest on the
fixture raw image). Results go to a real PostgreSQL history (tests/test_history.py's server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CACHE, load_builder
from test_history import new_database, postgres  # noqa: F401 - a fixture

import libvirt_harness as harness
from scanner import history
from scanner import result as resultmod
from scanner.fleet import FleetOptions, Hypervisor, fleet_scan, from_uris, load_inventory
from scanner.fleet.inventory import FleetError
from scanner.fleet.work import GuestJob
from scanner.scan import ScanOptions

pytest.importorskip("libvirt", reason="needs libvirt-python (make installs it with Debian's libvirt-dev)")
pytest.importorskip("distributed", reason="needs dask distributed (a dependency: make setup installs it)")

DASK = Path(sys.executable).with_name("dask")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def images(rpmroot: Path) -> dict[str, Path]:
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    return dict(load_builder("build_images").build_images(CACHE, rpmroot, roots["rhel7-secure"] / "boot"))


@pytest.fixture(scope="module")
def lab(images: dict[str, Path]) -> Iterator[harness.Lab]:
    why = harness.missing()
    if why:
        pytest.skip(why)
    with harness.system_libvirtd(), harness.lab(images) as defined:
        yield defined


@pytest.fixture(scope="module")
def node(images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    xml = f"""<node><domain type='test'>
  <name>tst-db</name><uuid>11111111-2222-3333-4444-5555555555d1</uuid><memory>1048576</memory>
  <os><type>hvm</type></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>
    <source file='{images["gpt-ext4.raw"]}'/><target dev='vda'/></disk></devices>
  <test:runstate xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>5</test:runstate>
</domain></node>"""
    path = tmp_path_factory.mktemp("fleet-node") / "node.xml"
    path.write_text(xml)
    return f"test://{path}"


class Cluster:
    def __init__(self) -> None:
        self.port = _port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"fc-dask-{self.port}-{name}.log", "wb")  # noqa: SIM115
        self.procs[name] = subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def worker(self, name: str, resource: str) -> None:
        # --no-nanny: a killed worker stays dead (a nanny would restart it), and the worker
        # process may fork the census processes of its scans
        self.start(name, "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
                   "--no-dashboard", "--host", "127.0.0.1", "--resources", f"{resource}=1")

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def addresses(self) -> dict[str, str]:
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            return {w["name"]: addr for addr, w in c.scheduler_info(n_workers=-1)["workers"].items()}

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.addresses()) < n:
            assert time.monotonic() < deadline, "the dask workers did not register"
            time.sleep(0.5)

    def stop(self) -> None:
        for p in self.procs.values():
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    c.start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(c.port), "--no-dashboard")
    try:
        for name, res in (("sys-1", "hypervisor-sys"), ("sys-2", "hypervisor-sys"), ("tst-1", "hypervisor-tst")):
            c.worker(name, res)
        c.wait_for(3)
        yield c
    finally:
        c.stop()


def _pg_db(server: str) -> str:
    return new_database(server, "fleet")


def _hypervisors(lab: harness.Lab, node: str) -> list[Hypervisor]:
    return [Hypervisor("sys", harness.SYSTEM_URI, include=(f"{lab.prefix}-*",)), Hypervisor("tst", node)]


def _options(tmp_path: Path, db: str, scheduler: str | None, resume: bool = False,
             lost_after: float = 20.0) -> FleetOptions:
    return FleetOptions(output=tmp_path, history=db, resume=resume, scheduler=scheduler, lost_after=lost_after,
                        job=GuestJob("", "", "", options=ScanOptions(jobs=1)))


def test_every_guest_on_the_worker_of_its_hypervisor(lab: harness.Lab, node: str, cluster: Cluster,
                                                     postgres: str, tmp_path: Path) -> None:  # noqa: F811
    db = _pg_db(postgres)
    result, doc = fleet_scan(_hypervisors(lab, node), _options(tmp_path, db, cluster.address))
    addresses = cluster.addresses()
    rows = {(r["hypervisor"], r["domain"]): r for r in result.rows}
    sys_guests = {("sys", lab.name(s)) for s in ("plain", "overlay", "pooled", "running")}
    assert set(rows) == sys_guests | {("tst", "tst-db")}
    for (hv, _dom), row in rows.items():
        want = {addresses["sys-1"], addresses["sys-2"]} if hv == "sys" else {addresses["tst-1"]}
        if row["outcome"] in ("scanned", "skipped"):
            assert row["worker"] in want, row  # the task ran on a worker of its hypervisor
    assert rows[("sys", lab.name("running"))]["outcome"] == "skipped"
    assert all(rows[g]["outcome"] == "scanned" for g in sys_guests - {("sys", lab.name("running"))})
    assert rows[("tst", "tst-db")]["outcome"] == "scanned"
    # every scanned guest is in the PostgreSQL history, under HYPERVISOR/DOMAIN
    stored = {r.target for r in history.list_scans(db)}
    assert stored == {f"{hv}/{d}" for (hv, d), r in rows.items() if r["outcome"] == "scanned"}
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    assert {h["hypervisor"]: h["guests"] for h in fleet["hypervisors"]} == {"sys": 4, "tst": 1}
    guest = json.loads((tmp_path / "sys" / lab.name("plain") / "result.json").read_text())
    resultmod.validate(guest)
    assert guest["target"]["domain"]["hypervisor"]["name"] == "sys" and guest["target"]["domain"]["disks_fingerprint"]
    assert "tst-db" in (tmp_path / "fleet.html").read_text() and doc["verdict"] in ("pass", "fail")


def test_resume_skips_unchanged_guests(lab: harness.Lab, node: str, cluster: Cluster, postgres: str,  # noqa: F811
                                       tmp_path: Path) -> None:
    db = _pg_db(postgres)
    fleet_scan(_hypervisors(lab, node), _options(tmp_path / "1", db, cluster.address))
    changed = lab.images[lab.name("plain")]
    os.utime(changed, ns=(time.time_ns(), time.time_ns()))  # as a guest's writes would move it
    result, _ = fleet_scan(_hypervisors(lab, node), _options(tmp_path / "2", db, cluster.address, resume=True))
    outcomes = {r["domain"]: r["outcome"] for r in result.rows}
    assert outcomes[lab.name("plain")] == "scanned"
    assert outcomes[lab.name("overlay")] == outcomes[lab.name("pooled")] == outcomes["tst-db"] == "unchanged"
    assert len(history.list_scans(db)) == 4 + 1  # 4 scanned the first time, 1 again


def test_a_worker_killed_mid_run(lab: harness.Lab, node: str, cluster: Cluster, postgres: str,  # noqa: F811
                                 tmp_path: Path) -> None:
    """Kill a worker of ``sys`` while it scans (its guest is retried on the other ``sys``
    worker) and the only worker of ``tst`` (its guest becomes an error row naming it)."""
    from distributed import Client

    db = _pg_db(postgres)
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.update(run=fleet_scan(
        _hypervisors(lab, node), _options(tmp_path, db, cluster.address, lost_after=5.0))[0]))
    t.start()
    killed: set[str] = set()
    with Client(cluster.address, timeout="30s") as c:
        deadline = time.monotonic() + 120
        while len(killed) < 2 and t.is_alive() and time.monotonic() < deadline:
            names = {addr: w["name"] for addr, w in c.scheduler_info(n_workers=-1)["workers"].items()}
            for addr, tasks in c.processing().items():
                name = names.get(addr)
                if tasks and name in ("sys-1", "tst-1") and name not in killed:
                    cluster.kill(name)
                    killed.add(name)
            time.sleep(0.05)
    t.join(300)
    run = out["run"]
    assert killed == {"sys-1", "tst-1"}  # both were caught with a guest in hand
    rows = {(r["hypervisor"], r["domain"]): r for r in run.rows}
    assert len(rows) == 5  # every guest has a row
    tst = rows[("tst", "tst-db")]
    assert tst["outcome"] == "error" and "hypervisor tst lost" in tst["reason"]
    sys_scanned = [r for (hv, _), r in rows.items() if hv == "sys" and r["outcome"] == "scanned"]
    assert len(sys_scanned) == 3  # plain, overlay, pooled: what sys-1 held was retried on sys-2
    survivor = cluster.addresses()["sys-2"]
    assert all(r["worker"] == survivor for r in sys_scanned)
    assert run.verdict == "fail"  # a guest that could not be scanned fails the fleet
    assert {r.target for r in history.list_scans(db)} == {f"sys/{r['domain']}" for r in sys_scanned}


def test_local_cluster_by_default(node: str, tmp_path: Path) -> None:
    """Without --scheduler: a LocalCluster on this machine holds every hypervisor's resource."""
    result, doc = fleet_scan([Hypervisor("tst", node)],
                             FleetOptions(output=tmp_path, job=GuestJob("", "", "", options=ScanOptions(jobs=1))))
    (row,) = result.rows
    assert row["outcome"] == "scanned" and row["worker"].startswith("tcp://127.0.0.1:")
    r = subprocess.run([sys.executable, "-m", "scanner", "fleet", "scan", "--connect", node, "-o",
                        str(tmp_path / "cli"), "-q"], capture_output=True, text=True, timeout=600)
    assert r.returncode in (0, 1), r.stderr
    assert json.loads((tmp_path / "cli/fleet.json").read_text())["guests"][0]["outcome"] == "scanned"


def test_inventory_and_unreachable_hypervisors(node: str, tmp_path: Path) -> None:
    inv = tmp_path / "fleet.toml"
    inv.write_text(f'[[hypervisor]]\nname = "tst"\nuri = "{node}"\ninclude = ["tst-*"]\ngroups = ["lab"]\n\n'
                   '[[hypervisor]]\nname = "gone"\nuri = "test:///nonexistent/node.xml"\n')
    hvs = load_inventory(inv)
    assert [h.name for h in hvs] == ["tst", "gone"] and hvs[0].groups == ("lab",)
    result, doc = fleet_scan(hvs, FleetOptions(output=tmp_path / "o", job=GuestJob("", "", "",
                                                                                 options=ScanOptions(jobs=1))))
    rows = {r["hypervisor"]: r for r in result.rows}
    assert rows["gone"]["outcome"] == "error" and "cannot be listed" in rows["gone"]["reason"]
    assert rows["tst"]["outcome"] == "scanned" and result.verdict == "fail"
    for bad, why in (('[[hypervisor]]\nname = "a b"\nuri = "x"\n', "must be letters"),
                     ('[[hypervisor]]\nname = "x"\n', "needs uri"),
                     ('[[hypervisor]]\nuri = "qemu:///system"\n[[hypervisor]]\nuri = "qemu:///session"\n', "unique"),
                     ("hypervisor = 3\n", "no [[hypervisor]]"), ("[[x\n", "not valid TOML")):
        inv.write_text(bad)
        with pytest.raises(FleetError, match=re.escape(why)):
            load_inventory(inv)
    assert [h.name for h in from_uris(["qemu:///system", "qemu:///session"])] == ["local", "local-2"]


@pytest.fixture()
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    """A real sshd on 127.0.0.1 (its own host key, config and authorized key, in tmp_path),
    and an ``ssh`` first on PATH that adds ``-F /dev/null`` and a throwaway known-hosts file,
    so libvirt's ssh transport reaches it without touching this machine's ssh setup."""
    sshd_bin = Path("/usr/sbin/sshd")
    if not sshd_bin.exists() or harness.missing() is not None:
        pytest.skip("needs root and OpenSSH's sshd (make installs openssh-server)")
    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = _port()
    (d / "sshd_config").write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
                                   f"PidFile {d / 'sshd.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
                                   "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                                   "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run([str(sshd_bin), "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")], check=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F /dev/null -o UserKnownHostsFile={d}/known_hosts '
                       f'-o StrictHostKeyChecking=no -o BatchMode=yes "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    try:
        deadline = time.monotonic() + 10
        while not (d / "sshd.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield port, d / "client_key"
    finally:
        os.kill(int((d / "sshd.pid").read_text()), signal.SIGTERM)


def test_a_hypervisor_over_qemu_ssh(lab: harness.Lab, sshd: tuple[int, Path], tmp_path: Path) -> None:
    """The same daemon reached through a real sshd (qemu+ssh://): listed and scanned through
    the ssh transport, exactly as over the local socket."""
    port, key = sshd
    uri = f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={key}&no_tty=1"
    from scanner.target.libvirt import connect, list_domains

    over_ssh = {d.name: d for d in list_domains(connect(uri)) if d.name.startswith(lab.prefix)}
    local = {d.name: d for d in list_domains(connect(harness.SYSTEM_URI)) if d.name.startswith(lab.prefix)}
    assert over_ssh == local and set(over_ssh) == set(lab.images)
    result, _ = fleet_scan([Hypervisor("over-ssh", uri, include=(f"{lab.prefix}-*",))],
                           FleetOptions(output=tmp_path, job=GuestJob("", "", "", options=ScanOptions(jobs=1))))
    outcomes = {r["domain"]: r["outcome"] for r in result.rows}
    assert outcomes == {lab.name("plain"): "scanned", lab.name("overlay"): "scanned",
                        lab.name("pooled"): "scanned", lab.name("running"): "skipped"}
    doc = json.loads((tmp_path / "over-ssh" / lab.name("plain") / "result.json").read_text())
    assert doc["target"]["domain"]["hypervisor"]["uri"] == uri and doc["summary"]["elves"] > 0


def test_two_independent_hypervisors(lab: harness.Lab, images: dict[str, Path], tmp_path: Path) -> None:
    """The system libvirtd and an unprivileged user's session libvirtd: each lists only its
    own guests, and one fleet scan covers both."""
    from scanner.target.libvirt import connect, list_domains

    with harness.session_libvirtd(images["gpt-ext4.qcow2"]) as (uri, guest):
        session = {d.name for d in list_domains(connect(uri))}
        system = {d.name for d in list_domains(connect(harness.SYSTEM_URI))}
        assert session == {guest} and guest not in system
        hvs = [Hypervisor("sys", harness.SYSTEM_URI, include=(f"{lab.prefix}-*",)), Hypervisor("session", uri)]
        result, doc = fleet_scan(hvs, FleetOptions(output=tmp_path, job=GuestJob("", "", "",
                                                                                 options=ScanOptions(jobs=1))))
    rows = {(r["hypervisor"], r["domain"]): r["outcome"] for r in result.rows}
    assert rows[("session", guest)] == "scanned" and rows[("sys", lab.name("plain"))] == "scanned"
    assert {h["hypervisor"]: h["guests"] for h in doc["hypervisors"]} == {"sys": 4, "session": 1}


def test_moved_guests_and_the_fleet_pdf(node: str, tmp_path: Path) -> None:
    """A guest stored under one hypervisor and found under another (the same uuid) is
    reported as moved; --format pdf writes fleet.pdf beside fleet.html."""
    db = str(tmp_path / "h.sqlite")
    job = GuestJob("", "", "", options=ScanOptions(jobs=1))
    fleet_scan([Hypervisor("kvm-a", node)], FleetOptions(output=tmp_path / "1", history=db, job=job))
    result, doc = fleet_scan([Hypervisor("kvm-b", node)],
                             FleetOptions(output=tmp_path / "2", history=db, job=job, formats=("json", "pdf")))
    (moved,) = doc["moved"]
    assert (moved["domain"], moved["moved_from"], moved["hypervisor"]) == ("tst-db", "kvm-a", "kvm-b")
    assert "moved since their last stored scan" in (tmp_path / "2/fleet.html").read_text()
    text = subprocess.run(["pdftotext", str(tmp_path / "2/fleet.pdf"), "-"], capture_output=True, text=True).stdout
    assert "kvm-b" in text and "tst-db" in text
