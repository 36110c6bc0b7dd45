#!/usr/bin/env python3
"""Benchmark flightcheck against the tools it replaces, on this machine, in one run.

1. all of /usr: flightcheck's census + link resolution + package ownership vs
   ``scanelf -RyB`` (pax-utils, C), both warm (each run once untimed first); and the same
   flightcheck scan with and without the package databases (``--no-packages``) and
   license analysis (``--no-licenses``);
2. the same N executables: flightcheck vs ``lddtree`` (pax-utils' Python script, run with
   this virtualenv's pyelftools);
3. the old loop on a small sample: ``ldd EXE`` then ``dpkg -S`` for every library, vs
   flightcheck on the same executables;
4. /usr/bin made into an ext4 qcow2 image (mkfs.ext4 -d, qemu-img), scanned with the
   dissect backend, vs the same tree scanned as a folder;
5. the census cache: a rescan of /usr with a warm ``--cache`` (every file unchanged) vs
   the cold scan that filled the cache, and vs a scan without ``--cache``; and what
   filling the cache costs over that scan; the full pipeline every time, best of 3,
   the three kinds of run taken in turn;
6. a repository's license inventory: the old loop (``rpm -qp --qf %{LICENSE}`` on each
   package file) vs ``flightcheck repo`` on the same folder of .rpm files (the fixture
   repository, built by fixtures/build_repo.py if needed), and on its repodata.

It prints each time and the ratios. Figures are for this machine and this run only.
flightcheck's modules are compiled to bytecode first (as an installed package's are), so
no run pays for compiling them.
Usage: bench/run.py [--executables 400] [--loop-sample 50] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_PY = sys.executable
FLIGHTCHECK = [VENV_PY, "-m", "scanner"]


def timed(cmd: list[str] | str, **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t


def dynamic_executables(n: int) -> list[str]:
    """n dynamically linked executables of /usr/bin and /usr/sbin (by ELF header and
    PT_INTERP), chosen with a fixed seed."""
    found = []
    for d in ("/usr/bin", "/usr/sbin"):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                with open(p, "rb") as fh:
                    head = fh.read(4096)
            except OSError:
                continue
            if head[:4] == b"\x7fELF" and b"ld-linux" in head:
                found.append(p)
    random.Random(400).shuffle(found)
    return sorted(found[:n])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--executables", type=int, default=400)
    ap.add_argument("--loop-sample", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    for tool in ("scanelf", "lddtree", "ldd", "dpkg"):
        if not shutil.which(tool):
            print(f"bench: {tool} is missing (make setup installs pax-utils)", file=sys.stderr)
            return 2
    # bytecode once, as pip does when it installs a package (an editable install in an
    # environment with PYTHONDONTWRITEBYTECODE would compile every module on every run)
    subprocess.run([VENV_PY, "-m", "compileall", "-q", str(Path(__file__).resolve().parent.parent / "scanner")],
                   stdout=subprocess.DEVNULL, check=False)
    out = tempfile.mkdtemp(prefix="flightcheck-bench-")
    fc_usr = FLIGHTCHECK + ["scan", "/", "--path", "/usr", "-o", out, "-q", "--no-progress", "-j", str(args.jobs)]
    rows: list[tuple[str, float, float, str]] = []

    # 1. all of /usr, warm
    timed(["scanelf", "-RyB", "/usr"])
    timed(fc_usr)
    t_scanelf = timed(["scanelf", "-RyB", "/usr"])
    t_fc_usr = timed(fc_usr)
    t_fc_usr_nopkg = timed(fc_usr + ["--no-packages"])
    t_fc_usr_nolic = timed(fc_usr + ["--no-licenses"])
    import json

    doc = json.loads(Path(out, "result.json").read_text())
    rows.append((f"all of /usr ({doc['summary']['elves']} ELF files): flightcheck vs scanelf -RyB",
                 t_fc_usr, t_scanelf, "target: flightcheck within 5x of scanelf"))
    rows.append(("all of /usr: flightcheck with package ownership (--no-licenses) vs without (--no-packages)",
                 t_fc_usr_nolic, t_fc_usr_nopkg, "target: ownership costs at most 20% more (ratio <= 1.20)"))
    rows.append(("all of /usr: the full scan vs --no-licenses", t_fc_usr, t_fc_usr_nolic,
                 "what license analysis, closures and checks add"))

    # 2. the same executables, flightcheck vs lddtree.py
    exes = dynamic_executables(args.executables)
    # lddtree maps no packages: compare like with like
    fc_exes = FLIGHTCHECK + ["scan", "/", "-o", out, "-q", "--no-progress", "--no-packages", "-j", str(args.jobs)]
    for e in exes:
        fc_exes += ["--path", e]
    lddtree = [VENV_PY, shutil.which("lddtree") or "lddtree", *exes]
    t_lddtree = timed(lddtree)
    t_fc_exes = timed(fc_exes)
    rows.append((f"{len(exes)} executables: lddtree.py vs flightcheck --no-packages", t_lddtree, t_fc_exes,
                 "target: flightcheck at least 5x faster"))

    # 3. the old loop: ldd, then dpkg -S per library
    sample = exes[: args.loop_sample]
    loop = (
        'for exe in "$@"; do ldd "$exe" | awk \'/=> \\//{print $3}\' | '
        'while read -r lib; do dpkg -S "$lib" >/dev/null 2>&1; done; done'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    t_loop = timed(["bash", "-c", loop, "loop", *sample], env=env)
    fc_sample = FLIGHTCHECK + ["scan", "/", "-o", out, "-q", "--no-progress", "-j", str(args.jobs)]
    for e in sample:
        fc_sample += ["--path", e]
    t_fc_sample = timed(fc_sample)
    rows.append((f"{len(sample)} executables: ldd + dpkg -S loop vs flightcheck", t_loop, t_fc_sample,
                 "both map every library to its package"))

    # 4. a disk image against the same tree as a folder (dissect backend)
    if shutil.which("mkfs.ext4") and shutil.which("qemu-img"):
        img_dir = tempfile.mkdtemp(prefix="flightcheck-bench-img-")
        raw, qcow = os.path.join(img_dir, "usrbin.raw"), os.path.join(img_dir, "usrbin.qcow2")
        size_mb = int(sum(os.path.getsize(os.path.join("/usr/bin", f)) for f in os.listdir("/usr/bin")
                          if os.path.isfile(os.path.join("/usr/bin", f))) / 1e6 * 1.6) + 64
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", "/usr/bin", raw, f"{size_mb}M"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", raw, qcow], check=True)
        os.unlink(raw)
        os.sync()  # the new image is on disk: no write-back of it runs under the timed scans
        common = ["-o", out, "-q", "--no-progress", "--no-packages", "-j", str(args.jobs)]
        timed(FLIGHTCHECK + ["scan", "--image", qcow, *common])
        # best of three each, alternating: both runs are about a second, where one
        # scheduler hiccup on a 2-core machine moves a single ratio by 0.3
        t_img = t_dir = float("inf")
        for _ in range(3):
            t_img = min(t_img, timed(FLIGHTCHECK + ["scan", "--image", qcow, *common]))
            t_dir = min(t_dir, timed(FLIGHTCHECK + ["scan", "/usr/bin", *common]))
        rows.append(("/usr/bin as a qcow2 image vs as a folder (best of 3)", t_img, t_dir,
                     "target: the image costs at most 1.5x the folder"))
        shutil.rmtree(img_dir, ignore_errors=True)

    # 5. the census cache: a rescan of the unchanged tree vs the cold scan that filled the
    # cache, and vs a scan without one; best of 3 each, taken in turn (on a 2-core VM one
    # scheduler hiccup moves a single ratio by several points)
    cache_file = os.path.join(out, "census.sqlite")
    t_warm = t_cold = t_plain = float("inf")
    for _ in range(3):
        for leftover in Path(out).glob("census.sqlite*"):
            leftover.unlink()
        t_cold = min(t_cold, timed(fc_usr + ["--cache", cache_file]))
        t_warm = min(t_warm, timed(fc_usr + ["--cache", cache_file]))
        t_plain = min(t_plain, timed(fc_usr))
    rows.append(("all of /usr: rescan with a warm --cache vs the cold scan that filled it (best of 3)", t_warm, t_cold,
                 "target: the rescan costs at most 20% of the cold scan (ratio <= 0.20)"))
    rows.append(("all of /usr: rescan with a warm --cache vs a scan without --cache (best of 3)", t_warm, t_plain,
                 "the same rescan against the plain scan"))
    rows.append(("all of /usr: the cold scan filling --cache vs a scan without --cache (best of 3)", t_cold, t_plain,
                 "what filling the cache costs"))

    # 6. a repository: rpm -qp per package file vs flightcheck repo
    if shutil.which("rpm") and shutil.which("createrepo_c"):
        here = Path(__file__).resolve().parent.parent
        sys.path.insert(0, str(here / "fixtures"))
        import build_repo  # noqa: PLC0415
        import build_rpmroot  # noqa: PLC0415

        cache = here / ".cache" / "fixtures"
        repos = build_repo.build_repo(cache, build_rpmroot.build_rpm_root(cache).parent / "rpms")
        rpms = sorted(str(p) for p in (repos / "norepodata").rglob("*.rpm"))
        loop = 'for f in "$@"; do rpm -qp --nosignature --qf "%{NAME} %{LICENSE}\\n" "$f"; done'
        fc_repo = FLIGHTCHECK + ["repo", "-o", out, "-q", "--fail-on", "never"]
        timed(["bash", "-c", loop, "loop", *rpms])
        t_loop = min(timed(["bash", "-c", loop, "loop", *rpms]) for _ in range(3))
        t_files = min(timed(fc_repo + [str(repos / "norepodata")]) for _ in range(3))
        t_md = min(timed(fc_repo + [str(repos / "repo")]) for _ in range(3))
        rows.append((f"{len(rpms)} package files: rpm -qp loop vs flightcheck repo (headers)", t_loop, t_files,
                     "flightcheck also normalises to SPDX and applies the policy"))
        rows.append(("the same repository: flightcheck repo on package files vs on repodata", t_files, t_md,
                     "repodata needs no package file at all"))

    shutil.rmtree(out, ignore_errors=True)
    print(f"flightcheck bench on {os.uname().nodename}, {os.cpu_count()} cores, jobs={args.jobs}")
    for label, a, b, note in rows:
        print(f"- {label}: {a:.2f} s vs {b:.2f} s, ratio {a / b:.2f}  ({note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
