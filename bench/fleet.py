#!/usr/bin/env python3
"""The fleet at scale: N guests (default 200) defined on the system libvirtd, each disk a
qcow2 overlay on one of a few base images (so they cost little disk), scanned three ways:

1. ``flightcheck scan --all-domains`` (one guest after another, in one process);
2. ``flightcheck fleet scan`` on a LocalCluster of 1 worker;
3. the same on 2 workers.

It prints guests per minute for each, the ratios, and the peak memory of the largest worker
process (sampled from /proc while the fleet runs). Needs root, libvirtd (started if it is
not running, as the tests do: tests/libvirt_harness.py) and the fixture images
(fixtures/build_images.py). Everything it defines is undefined afterwards. Figures are for
this machine and this run only.

Usage: bench/fleet.py [--guests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "fixtures")]

import libvirt_harness as harness  # noqa: E402

FLIGHTCHECK = [sys.executable, "-m", "scanner"]


def base_images() -> list[Path]:
    import build_images  # noqa: PLC0415
    import build_rpmroot  # noqa: PLC0415
    import build_systemroots  # noqa: PLC0415

    cache = REPO / ".cache" / "fixtures"
    roots = build_systemroots.build_system_roots(cache)
    imgs = build_images.build_images(cache, build_rpmroot.build_rpm_root(cache), roots["rhel7-secure"] / "boot")
    return [imgs["gpt-ext4.qcow2"], imgs["gpt-ext4.raw"], imgs["mbr-xfs.raw"]]


def define(n: int, folder: Path, prefix: str) -> list[str]:
    bases = []
    for i, img in enumerate(base_images()):
        dest = folder / f"base{i}{img.suffix}"
        shutil.copy(img, dest)
        bases.append((dest, "qcow2" if img.suffix == ".qcow2" else "raw"))
    names = []
    for i in range(n):
        base, fmt = bases[i % len(bases)]
        disk = folder / f"g{i:04d}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", fmt, str(disk)], check=True)
        name = f"{prefix}-g{i:04d}"
        xml = folder / f"{name}.xml"
        xml.write_text(f"""<domain type='qemu'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>
<memory unit='MiB'>128</memory><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
<target dev='vda' bus='virtio'/></disk></devices></domain>""")
        harness.virsh("define", str(xml))
        names.append(name)
    for p in folder.rglob("*"):
        p.chmod(0o644)
    return names


def peak_rss(stop: threading.Event, found: list[int]) -> None:
    """The largest resident size of any dask worker or scan process, sampled every 0.2 s."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"distributed" in cmd or b"spawn_main" in cmd or b"multiprocessing" in cmd:
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        found.append(int(line.split()[1]))
        time.sleep(0.2)


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guests", type=int, default=200)
    args = ap.parse_args()
    why = harness.missing()
    if why:
        print(f"bench/fleet: {why}", file=sys.stderr)
        return 2
    prefix = f"fc-bench-{uuid.uuid4().hex[:6]}"
    folder = Path(tempfile.mkdtemp(prefix="fc-bench-fleet-", dir="/var/tmp"))
    folder.chmod(0o755)
    out = Path(tempfile.mkdtemp(prefix="fc-bench-fleet-out-"))
    with harness.system_libvirtd():
        names: list[str] = []
        try:
            names = define(args.guests, folder, prefix)
            inv = folder / "fleet.toml"
            inv.write_text(f'[[hypervisor]]\nname = "local"\nuri = "{harness.SYSTEM_URI}"\ninclude = ["{prefix}-*"]\n')
            rows = []
            seq = [*FLIGHTCHECK, "scan", "--connect", harness.SYSTEM_URI, "-o", str(out / "seq"), "-q", "-j", "1"]
            for name in names:
                seq += ["--domain", name]
            t_seq = timed(seq)
            rows.append(("scan --domain (one after another)", t_seq, None))
            for workers in (1, 2):
                stop, found = threading.Event(), []
                sampler = threading.Thread(target=peak_rss, args=(stop, found))
                sampler.start()
                t = timed([*FLIGHTCHECK, "fleet", "scan", "--inventory", str(inv), "--workers", str(workers),
                           "-o", str(out / f"w{workers}"), "-q"])
                stop.set()
                sampler.join()
                done = json.loads((out / f"w{workers}" / "fleet.json").read_text())["guests"]
                assert sum(1 for g in done if g["outcome"] == "scanned") == len(names), "not every guest scanned"
                rows.append((f"fleet scan, {workers} worker(s)", t, max(found, default=0) / 1024))
        finally:
            for name in names:
                harness.virsh("undefine", name, check=False)
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    print(f"flightcheck fleet bench on {os.uname().nodename}, {os.cpu_count()} cores, {len(names)} guests")
    for label, seconds, rss in rows:
        mem = f", peak worker RSS {rss:.0f} MiB" if rss else ""
        print(f"- {label}: {len(names) / seconds * 60:.1f} guests per minute, "
              f"{t_seq / seconds:.2f}x the sequential pace{mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
