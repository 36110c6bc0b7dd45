"""No hostile target may make a scan read the host, change the target, or run unbounded
(issue 15: "No host path read", "The target unchanged", "Memory and time").

Each hostile root and image is scanned by the real CLI in a child process
(``tests/hostile_harness.py``) under ``RLIMIT_AS`` 2 GiB and a 60 s limit, with an audit
hook (``sys.addaudithook``) recording every path the child's Python code opens, lists,
changes or executes, in the scan itself and in its forked census workers. A path is
allowed when it is:

- inside the target (the root folder; for an image, the image file and its own folder,
  where backing files may legitimately live);
- the interpreter's and the virtualenv's files (``sys.prefix``, ``sys.base_prefix``,
  ``/usr/lib/python3.11``, Debian's ``/usr/lib/python3/dist-packages`` for the rpm
  bindings): imports;
- flightcheck's own ``scanner/``, ``rules/``, ``reports/``: its code, rule pack, templates;
- the scan's own output folder and private ``TMPDIR`` (the rpm reader copies the target's
  database there, because librpm writes into any folder it opens);
- ``/proc/self/mountinfo`` (the directory target keeps to the root's own file systems);
- programs: only the host's ``/usr/bin/python3*``, which the PyPI ``rpm`` shim runs to
  find Debian's bindings. Never anything of the target.

Anything else is a host read and fails the test, naming the path: the host's
``/etc/os-release``, ``/etc/ld.so.cache``, ``/etc/passwd`` or ``/proc/self/environ``
reached through a link, an include, a backing file or a vmdk extent. Also failing: a
device, FIFO or socket of the target opened at all (O_NONBLOCK does not stop a driver's
open side effects), a target file opened for writing or changed, any program started.

What the audit hook cannot see: opens made by C code (librpm and sqlite reading the
database copy, libc's locale files, the host's dynamic loader loading the interpreter's
extension modules and ``/etc/ld.so.cache`` for them), ``stat``/``readlink`` (metadata
only), and ``mmap`` of an open descriptor. :func:`test_strace_sees_no_host_reads` covers
those for three cases with ``strace -f -y`` (Debian package ``strace``), with its own,
longer list of C-level allowances below. Both tests assume the host's files are not
inside the target (true for the fixture cache).

The target unchanged: every file and link under each target (and each image file) is
recorded before and after the scans: type, mode, size, mtime in nanoseconds and a
SHA-256 of its data (sparse files hashed region by region), and no file may appear.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import CACHE, load_builder
from hostile_harness import (
    CASE_SECONDS,
    MEMORY_LIMIT,
    TREE,
    Batch,
    Case,
    Outcome,
    classify_events,
    contract_problems,
    run_cases,
    state_diff,
    strace_opens,
    tree_state,
)


@pytest.fixture(scope="module")
def corpus(rpmroot: Path) -> dict[str, Any]:
    return load_builder("build_hostile_corpus").build_hostile_corpus(CACHE, rpmroot)


def _image_case(name: str, image: str, *extra: str) -> Case:
    return Case(name, ("scan", "--image", image, "-j", "1", *extra), (image, str(Path(image).parent)))


def _root_case(name: str, root: str, *extra: str) -> Case:
    return Case(name, ("scan", root, *extra), (root,))


def _cases(corpus: dict[str, Any], hostile_root: Path, system_roots: dict[str, Path]) -> dict[str, tuple[Case, bool]]:
    """Every case with whether exit 2 (the target unreadable as a whole) is acceptable."""
    entry = Path(corpus["entry"])
    named = corpus["named"]
    first = {fam: next(m for m in corpus["mutants"] if m["family"] == fam)
             for fam in ("rpm", "dpkg", "grub", "qcow2", "gpt")}
    cases: dict[str, tuple[Case, bool]] = {
        "escape-root": (_root_case("escape-root", named["roots"]["escape-root"], "-j", "2"), False),
        "globbomb-root": (_root_case("globbomb-root", named["roots"]["globbomb-root"], "-j", "1"), False),
        "bombs-root": (_root_case("bombs-root", named["roots"]["bombs-root"], "-j", "2"), False),
        "elf-mutants": (_root_case("elf-mutants", str(entry / "elf/root"), "-j", "2"), False),
        "rpm-librpm": (_root_case("rpm-librpm", first["rpm"]["target"], "--rpm-reader", "librpm"), False),
        "rpm-python": (_root_case("rpm-python", first["rpm"]["target"], "--rpm-reader", "python"), False),
        "dpkg": (_root_case("dpkg", first["dpkg"]["target"], "-j", "1"), False),
        "dep5": (_root_case("dep5", str(entry / "dep5/root"), "-j", "1"), False),
        "grub": (_root_case("grub", first["grub"]["target"], "-j", "1"), False),
        "build-hostile-root": (_root_case("build-hostile-root", str(hostile_root), "-j", "1"), False),
        "qcow2-seed": (_image_case("qcow2-seed", str(entry / "qcow2/seed.qcow2")), False),
        "qcow2-mutant": (_image_case("qcow2-mutant", first["qcow2"]["target"]), True),
        "gpt-mutant": (_image_case("gpt-mutant", first["gpt"]["target"]), True),
    }
    for name in ("hostile-longline", "hostile-braces", "hostile-configfile-loop"):
        cases[name] = (_root_case(name, str(system_roots[name]), "-j", "1"), False)
    for name, image in named["images"].items():  # backing files and extents naming host files
        cases[name] = (_image_case(name, image), True)
    return cases


@pytest.fixture(scope="module")
def audited(corpus: dict[str, Any], hostile_root: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[dict[str, tuple[Case, bool]], Batch, dict[str, list[str]]]:
    """All cases scanned once under the audit hook; the targets' state before and after."""
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    cases = _cases(corpus, hostile_root, roots)
    targets = sorted({t for c, _ in cases.values() for t in c.target})
    before = tree_state(targets)
    batch = run_cases([c for c, _ in cases.values()], tmp_path_factory.mktemp("no-host-reads"), audit=True,
                      case_seconds=CASE_SECONDS, extra_env={"HOSTILE_PLANTED_SECRET": PLANTED_SECRET})
    after = tree_state(targets)
    changes: dict[str, list[str]] = {}
    for diff in state_diff(before, after):
        owner = next((n for n, (c, _) in cases.items() if any(t in diff for t in c.target)), "?")
        changes.setdefault(owner, []).append(diff)
    return cases, batch, changes


#: in the scanning process's environment: /proc/self/environ read as guest data would show it
PLANTED_SECRET = "planted-secret-6f1c0e"

CASE_NAMES = ["escape-root", "globbomb-root", "bombs-root", "elf-mutants", "rpm-librpm", "rpm-python", "dpkg",
              "dep5", "grub", "build-hostile-root", "qcow2-seed", "qcow2-mutant", "gpt-mutant", "hostile-longline",
              "hostile-braces", "hostile-configfile-loop", "backing-abs", "backing-up", "backing-proc", "backing-dev",
              "backing-fifo", "extent-abs", "extent-up", "extent-proc"]


def _outcome(batch: Batch, name: str) -> Outcome:
    return next(o for o in batch.outcomes if o.case.name == name)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_case_stays_in_target(name: str, audited: Any) -> None:
    """One hostile case: no host file read, no device or FIFO opened, nothing written or
    executed, the target unchanged, under 2 GiB and 60 s, and the CLI's contract kept."""
    cases, batch, changes = audited
    case, exit_2_ok = cases[name]
    o = _outcome(batch, name)
    problems = classify_events(batch, case.target, case=name)
    report = [f"{kind}: {item}" for kind, items in problems.items() for item in items]
    report += [f"target changed: {c}" for c in changes.get(name, [])]
    if o.code is None:
        report.append(f"did not finish under RLIMIT_AS {MEMORY_LIMIT >> 30} GiB / {CASE_SECONDS:.0f} s: {o.crash}")
    report += contract_problems(o, exit_2_ok=exit_2_ok)
    assert not report, f"{o.describe()}\n" + "\n".join(report)
    assert o.seconds < CASE_SECONDS


@pytest.mark.parametrize("name", [n for n in CASE_NAMES if n.startswith(("backing-", "extent-"))])
def test_refused_backing_file_is_named(name: str, audited: Any) -> None:
    """A backing file or extent outside the image's folder is refused with one clear
    line naming the refused path (issue 15, item 1), and the scan exits 2."""
    _, batch, _ = audited
    o = _outcome(batch, name)
    lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
    assert o.code == 2, o.describe()
    assert len(lines) == 1 and lines[0].startswith("flightcheck: error:"), o.describe()
    named = {"backing-abs": "/etc/passwd", "backing-up": "etc/passwd", "backing-proc": "/proc/self/environ",
             "backing-dev": "/dev/zero", "backing-fifo": "fifo.raw", "extent-abs": "/etc/passwd",
             "extent-up": "etc/passwd", "extent-proc": "/proc/self/environ"}[name]
    # a scanner that refuses vmdk descriptor files altogether never gets to the extent: the
    # line then says so, naming the image
    whole_format_refused = name.startswith("extent-") and "descriptor" in lines[0] and "not supported" in lines[0]
    assert named in lines[0] or whole_format_refused, f"the refused path {named!r} is not named: {lines[0]}"


def test_no_host_data_in_results(audited: Any) -> None:
    """Nothing of the host reaches a result: not its os-release, its passwd or shadow, nor
    the scanner's own environment (the secret planted here)."""
    _, batch, _ = audited
    host_markers = [PLANTED_SECRET, "root:x:0:0:"]  # the environment; the host's /etc/passwd
    try:  # the host's name (the fixtures' os-release may well match the host's: not a marker)
        name = Path("/etc/hostname").read_text(encoding="utf-8").strip()
        host_markers += [name] if len(name) >= 8 else []
    except OSError:
        pass
    leaks = []
    for o in batch.outcomes:
        result = o.out_dir / "result.json"
        if not result.exists():
            continue
        text = result.read_text(encoding="utf-8", errors="replace")
        leaks += [f"{o.case.name}: {m!r}" for m in host_markers if m and m in text]
    assert not leaks, "host data in result.json:\n" + "\n".join(leaks)


# C-level opens strace sees and the audit hook cannot: each allowed with why.
STRACE_ALLOWANCES: tuple[tuple[str, str], ...] = (
    ("/etc/ld.so.cache", ("the host's dynamic loader loading the interpreter's and librpm's shared libraries; "
                         "the audit-hook test proves flightcheck's own code never opens it")),
    ("/lib/x86_64-linux-gnu/", "shared libraries of the interpreter, its extensions and librpm"),
    ("/usr/lib/x86_64-linux-gnu/", "the same (gconv modules included)"),
    ("/usr/lib/locale/", "libc's locale data"),
    ("/usr/share/locale/locale.alias", "libc's locale aliases"),
    ("/etc/localtime", "libc's time zone, for the timestamps in result.json"),
    ("/usr/lib/ssl/openssl.cnf", "OpenSSL's configuration, read when hashlib loads libcrypto"),
    ("/proc/sys/crypto/fips_enabled", "libcrypto/libgcrypt asking whether FIPS mode is on"),
    ("/proc/sys/vm/overcommit_memory", "glibc's malloc deciding how to return memory"),
    ("/proc/self/", "the process's own mount table (directory target) and file descriptors"),
    ("/sys/devices/system/cpu/", "counting CPUs for the census worker pool"),
    ("/dev/shm/sem.", "multiprocessing's semaphores for the census worker pool"),
    ("/dev/null", "subprocess plumbing of the rpm shim's interpreter probe"),
    ("/usr/bin/pybuilddir.txt", "the interpreter locating its own prefix at start-up"),
    ("/usr/bin/python3", "the interpreter's start-up probes (._pth, pyvenv.cfg) and the rpm shim's probe"),
    ("/usr/pyvenv.cfg", "the interpreter's start-up probe for a venv above its binary"),
    ("/usr/local/lib/python3.11/dist-packages", "Debian's site folder, searched by every interpreter start"),
    ("/usr/lib/rpm/", ("librpm's own configuration (rpmrc, macros, fileattrs) of the host, loaded when the "
                      "bindings start; the database it reads is the private copy of the target's")),
    ("/etc/rpm", "the host's rpm macros and platform, read by librpm in the same start-up"),
    ("/etc/gcrypt/hwf.deny", "libgcrypt's start-up, pulled in by librpm"),
)


def _covers(allowance: str, path: str) -> bool:
    """An allowance covers itself, what is below it, and (ending in '/', '.' or a name
    prefix like ``/usr/bin/python3``) anything spelled on from it."""
    return path == allowance or path.startswith(allowance.rstrip("/") + "/") or (
        allowance.endswith(("/", ".", "python3")) and path.startswith(allowance))


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (Debian package strace)")
@pytest.mark.parametrize("name", ["escape-root", "rpm-librpm", "backing-abs"])
def test_strace_sees_no_host_reads(name: str, corpus: dict[str, Any], hostile_root: Path, tmp_path: Path) -> None:
    """The same cases through the real console entry point under ``strace -f -y -e
    trace=open,openat,openat2``: C libraries included (librpm reading the database,
    dissect's and sqlite's native code), no path outside the target and the allowances."""
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    case, _ = _cases(corpus, hostile_root, roots)[name]
    code, paths = strace_opens(case.argv, tmp_path)
    assert code in (0, 1, 2)
    from hostile_harness import HOST_FILE_ALLOWANCES, interpreter_allowances

    allowed = [a for a, _ in (*interpreter_allowances(), *HOST_FILE_ALLOWANCES, *STRACE_ALLOWANCES)]
    allowed += [str(tmp_path), str(TREE), *case.target, *(os.path.realpath(t) for t in case.target)]
    foreign = sorted(p for p in paths if not any(_covers(a, p) for a in allowed))
    assert not foreign, f"flightcheck {' '.join(case.argv)} opened host paths:\n" + "\n".join(foreign)
