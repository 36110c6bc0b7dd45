#!/usr/bin/env python3
"""flightcheck's Debian license reading against ScanCode's license detection, every package.

For each root: the dpkg packages' licenses as flightcheck reads them (``license_packages``,
the same code a scan runs) beside what ScanCode (``fixtures/build_scancode.py``: its own
virtualenv in ``.cache/fixtures/scancode``) detects in the same ``copyright`` file. A package
agrees when every SPDX-listed id flightcheck declares is among ScanCode's; it prints how many
agree, how many read "-only" where ScanCode finds "-or-later" and no "-only", every
disagreement, and the time ScanCode took. ``tests/test_scancode_oracle.py`` runs the same
comparison on a fixed sample.

Roots: the Debian 12 root of ``bench/peers.py`` (``.cache/bench/deb12-standard``) and, with
``--host``, this machine's ``/``. Figures are for this machine and this run only.

Usage: bench/scancode_oracle.py [--host] [--no-debian] [--root PATH ...] [--processes N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(REPO / "fixtures")]

from build_scancode import build_scancode, compare, detect, summary  # noqa: E402

from scanner.inventory.osrelease import read_os_release  # noqa: E402
from scanner.licensing import license_packages, load_tables  # noqa: E402
from scanner.licensing.naming import license_naming  # noqa: E402
from scanner.scan import read_package_databases  # noqa: E402
from scanner.target import DirectoryRoot  # noqa: E402

MAX_COPYRIGHT = 4 << 20


def copyright_files(root: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """flightcheck's SPDX expression and the copyright file of each dpkg package of a root."""
    fs = DirectoryRoot(root)
    osr = read_os_release(fs)
    dbs = [db for db in read_package_databases(fs, osr) if db.manager == "dpkg"]
    # the tables as the scan uses them: by the root's naming convention
    licenses = license_packages(fs, dbs, load_tables().for_naming(license_naming(osr, [db.manager for db in dbs])))
    ours: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for db in dbs:
        for pkg in db.packages:
            try:
                data = fs.read(f"/usr/share/doc/{pkg.name}/copyright", MAX_COPYRIGHT)
            except OSError:
                continue
            ours[pkg.name] = licenses[pkg.id].outcome.spdx
            files[pkg.name] = data
    return ours, files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", action="store_true", help="also this machine's /")
    ap.add_argument("--root", action="append", type=Path, default=[], help="another Debian root")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--no-debian", action="store_true", help="leave the Debian 12 root out")
    args = ap.parse_args()
    roots = [*args.root]
    deb12 = REPO / ".cache" / "bench" / "deb12-standard"
    if args.no_debian:
        pass
    elif (deb12 / "var/lib/dpkg/status").exists():
        roots.insert(0, deb12)
    else:
        print(f"{deb12}: not built (bench/peers.py builds it with mmdebstrap)")
    if args.host:
        roots.append(Path("/"))
    scancode = build_scancode(REPO / ".cache" / "fixtures")
    for root in roots:
        ours, files = copyright_files(root)
        start = time.monotonic()
        theirs = detect(scancode, files, processes=args.processes, timeout=6 * 3600)
        took = time.monotonic() - start
        verdicts = [compare(name, ours[name], theirs[name]) for name in sorted(ours)]
        distinct = len(set(files.values()))
        print(f"\n== {root}: {len(ours)} packages with a copyright file ({distinct} distinct files); "
              f"ScanCode took {took:.0f} s with {args.processes} processes")
        print(summary(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
