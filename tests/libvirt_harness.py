"""A real libvirtd for the tests: the system daemon (``qemu:///system``) and its virtlogd,
started by the suite when they are not running and stopped afterwards, and domains defined
from XML whose disks are copies of the fixture images.

Nothing is installed here: the Makefile installs libvirt-daemon-system, dnsmasq-base and
qemu-system-x86. The daemons need root (the suite runs as root in CI); without it, or
without the binaries, the tests that need them skip and say why.

Every object the harness defines is named ``fc-test-<run>-...`` and is destroyed and
undefined at the end, whether or not the daemon was already running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_URI = "qemu:///system"


def missing() -> str | None:
    """Why a real libvirtd cannot be had here, or None."""
    if os.geteuid() != 0:
        return "needs root to run the system libvirtd (CI runs the suite as root)"
    for tool in ("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "qemu-img"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return f"needs {tool} (make installs libvirt-daemon-system, dnsmasq-base and qemu-system-x86)"
    return None


def virsh(*args: str, check: bool = True) -> str:
    done = subprocess.run(["virsh", "-c", SYSTEM_URI, *args], capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _answers() -> bool:
    try:
        return subprocess.run(["virsh", "-c", SYSTEM_URI, "version"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _pids(name: str) -> set[int]:
    done = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return {int(p) for p in done.stdout.split()}


@contextmanager
def system_libvirtd() -> Iterator[bool]:
    """The system libvirtd, started (with virtlogd) when it is not answering; yields whether
    this harness started it, and stops what it started on the way out."""
    started: list[int] = []
    if not _pids("virtlogd"):  # a running libvirtd without it cannot start a guest
        Path("/var/run/libvirt").mkdir(parents=True, exist_ok=True)
        subprocess.run([shutil.which("virtlogd") or "/usr/sbin/virtlogd", "-d"], check=True, timeout=30)
        time.sleep(0.3)
        started += sorted(_pids("virtlogd"))
    if not _answers():
        Path("/var/run/libvirt").mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 45
        while not _answers():
            # (re)start whichever daemon is not running: a daemon stopped just before may
            # still hold its pid file, and then a new one exits at once
            for daemon in ("virtlogd", "libvirtd"):
                if not _pids(daemon):
                    subprocess.run([shutil.which(daemon) or f"/usr/sbin/{daemon}", "-d"], check=True, timeout=30)
                    time.sleep(0.5)
                    started += sorted(_pids(daemon) - set(started))
            if time.monotonic() > deadline:
                raise RuntimeError("libvirtd started but does not answer on qemu:///system")
            time.sleep(0.5)
    try:
        yield bool(started)
    finally:
        for pid in reversed(started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20  # gone before anyone starts them again
        while any(Path(f"/proc/{pid}").exists() for pid in started) and time.monotonic() < deadline:
            time.sleep(0.2)


@dataclass
class Lab:
    """The domains one test session defined, and where their disks are."""

    prefix: str
    folder: Path
    images: dict[str, Path] = field(default_factory=dict)  # domain name -> the image its disk is (a copy)
    pool: str = ""

    def name(self, short: str) -> str:
        return f"{self.prefix}-{short}"


def _domain_xml(name: str, disk: str, *, running: bool = False) -> str:
    """A TCG guest (no KVM needed): firmware only, nothing bootable; ``disk`` is a <disk>."""
    return f"""<domain type='qemu'>
  <name>{name}</name><uuid>{uuid.uuid4()}</uuid>
  <memory unit='MiB'>{64 if running else 128}</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{shutil.which("qemu-system-x86_64")}</emulator>
    {disk}
    <serial type='pty'/><console type='pty'/>
  </devices>
</domain>"""


def _file_disk(path: Path, fmt: str, *, readonly: bool = False) -> str:
    ro = "<readonly/>" if readonly else ""
    return (f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='{path}'/>"
            f"<target dev='vda' bus='virtio'/>{ro}</disk>")


@contextmanager
def lab(images: dict[str, Path]) -> Iterator[Lab]:
    """Domains on the system libvirtd: ``plain`` (a qcow2 file), ``overlay`` (a qcow2 overlay
    whose backing file is the raw image), ``pooled`` (a volume of a dir storage pool),
    ``running`` (a started firmware-only guest with a read-only qcow2 disk), all shut off but
    the last. ``images``: the fixture images (fixtures/build_images.py)."""
    run = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix=f"fc-libvirt-{run}-", dir="/var/tmp"))
    folder.chmod(0o755)  # qemu runs as libvirt-qemu and must reach the disks
    out = Lab(prefix=f"fc-test-{run}", folder=folder)
    try:
        shutil.copy(images["gpt-ext4.qcow2"], folder / "plain.qcow2")
        shutil.copy(images["gpt-ext4.raw"], folder / "base.raw")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(folder / "base.raw"), "-F", "raw",
                        str(folder / "overlay.qcow2")], check=True)
        pool_dir = folder / "pool"
        pool_dir.mkdir()
        shutil.copy(images["gpt-ext4.raw"], pool_dir / "vol.raw")
        shutil.copy(images["gpt-ext4.qcow2"], folder / "running.qcow2")
        for p in folder.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        out.pool = out.name("pool")
        pool_xml = folder / "pool.xml"
        pool_xml.write_text(f"<pool type='dir'><name>{out.pool}</name><target><path>{pool_dir}</path></target></pool>")
        virsh("pool-define", str(pool_xml))
        virsh("pool-start", out.pool)
        virsh("pool-refresh", out.pool)
        disks = {
            "plain": (_file_disk(folder / "plain.qcow2", "qcow2"), folder / "plain.qcow2"),
            "overlay": (_file_disk(folder / "overlay.qcow2", "qcow2"), folder / "overlay.qcow2"),
            "pooled": (f"<disk type='volume' device='disk'><driver name='qemu' type='raw'/>"
                       f"<source pool='{out.pool}' volume='vol.raw'/><target dev='vda' bus='virtio'/></disk>",
                       pool_dir / "vol.raw"),
            "running": (_file_disk(folder / "running.qcow2", "qcow2", readonly=True), folder / "running.qcow2"),
        }
        for short, (disk, image) in disks.items():
            xml = folder / f"{short}.xml"
            xml.write_text(_domain_xml(out.name(short), disk, running=short == "running"))
            virsh("define", str(xml))
            out.images[out.name(short)] = image
        virsh("start", out.name("running"))
        yield out
    finally:
        for name in list(out.images):
            virsh("destroy", name, check=False)
            virsh("undefine", name, check=False)
        if out.pool:
            virsh("pool-destroy", out.pool, check=False)
            virsh("pool-undefine", out.pool, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def session_libvirtd(image: Path) -> Iterator[tuple[str, str]]:
    """An unprivileged user's own libvirtd (``nobody``'s session daemon, with its home,
    runtime and cache folders in a temporary folder): a second hypervisor, independent of the
    system one, holding one shut-off guest on a copy of ``image``. Yields the URI that
    reaches that daemon's socket (``qemu+unix:///session?socket=...``) and the guest's name.
    The daemon is stopped and the folder removed afterwards."""
    import pwd

    user = pwd.getpwnam("nobody")
    home = Path(tempfile.mkdtemp(prefix="fc-session-", dir="/var/tmp"))
    run = home / "run"
    run.mkdir(mode=0o700)
    shutil.copy(image, home / "guest.qcow2")
    for p in (home, run, home / "guest.qcow2"):
        os.chown(p, user.pw_uid, user.pw_gid)
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(run), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_CACHE_HOME": str(home / "cache"), "PATH": os.environ["PATH"]}
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    subprocess.run([runuser, "-u", "nobody", "--", "env", *(f"{k}={v}" for k, v in env.items()),
                    shutil.which("libvirtd") or "/usr/sbin/libvirtd", "--daemon"], check=True, timeout=30)
    uri = f"qemu+unix:///session?socket={run}/libvirt/libvirt-sock"
    name = f"fc-session-{uuid.uuid4().hex[:6]}"
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["virsh", "-c", uri, "version"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the session libvirtd does not answer")
            time.sleep(0.3)
        xml = home / "guest.xml"
        xml.write_text(_domain_xml(name, _file_disk(home / "guest.qcow2", "qcow2")))
        subprocess.run(["virsh", "-c", uri, "define", str(xml)], check=True, capture_output=True, timeout=60)
        yield uri, name
    finally:
        pid_file = run / "libvirt" / "libvirtd.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.5)
        shutil.rmtree(home, ignore_errors=True)
