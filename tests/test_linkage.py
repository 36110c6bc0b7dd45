"""scanner.linkage: the loader emulation, checked against real loaders.

Oracles: this host's ``ldd``; the fixture root's own (real) ``ld.so`` run under chroot;
``ldconfig -p`` for the cache parser. Test roots are compiled here with gcc and the
aarch64 cross compiler, never mocked.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.inventory.census import census_file
from scanner.inventory.elf import ElfRecord
from scanner.linkage import config as cfgmod
from scanner.linkage.loader import resolve_all
from scanner.target import DirectoryRoot

from conftest import by_path, is_root, scan_root

LDD_LINE = re.compile(r"^\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$")


def parse_ldd(out: str) -> dict[str, str | None]:
    got: dict[str, str | None] = {}
    for line in out.splitlines():
        m = LDD_LINE.match(line)
        if m:
            name, target = m.groups()
            got[name] = None if target == "not found" else target
    return got


# ---- the fixture root ------------------------------------------------------------------
EXPECTED = {
    # default folders of the root's own ld.so (/lib64, /usr/lib64), through a symlink
    "/usr/bin/hello": {"libgreet.so.1": "/usr/lib64/libgreet.so.1.0.0", "libc.so.6": "/usr/lib64/libc.so.6",
                       "ld-linux-x86-64.so.2": "/usr/lib64/ld-linux-x86-64.so.2"},
    # DT_RUNPATH $ORIGIN/../lib
    "/opt/originapp/bin/originapp": {"liborigin.so.1": "/opt/originapp/lib/liborigin.so.1",
                                     "libc.so.6": "/usr/lib64/libc.so.6",
                                     "ld-linux-x86-64.so.2": "/usr/lib64/ld-linux-x86-64.so.2"},
    # only through /etc/ld.so.conf -> include ld.so.conf.d/*.conf -> extra.conf
    "/usr/bin/extra-app": {"libextra.so.1": "/opt/extra/lib/libextra.so.1", "libc.so.6": "/usr/lib64/libc.so.6",
                           "ld-linux-x86-64.so.2": "/usr/lib64/ld-linux-x86-64.so.2"},
    "/usr/bin/broken-app": {"libmissing.so.1": None, "libc.so.6": "/usr/lib64/libc.so.6",
                            "ld-linux-x86-64.so.2": "/usr/lib64/ld-linux-x86-64.so.2"},
    "/usr/bin/static-app": {},
    "/usr/share/noxdata/plugin.bin": {"libgreet.so.1": "/usr/lib64/libgreet.so.1.0.0",
                                      "libc.so.6": "/usr/lib64/libc.so.6",
                                      "ld-linux-x86-64.so.2": "/usr/lib64/ld-linux-x86-64.so.2"},
}


def test_fixture_root_resolves_each_case(rpmroot_result: dict) -> None:
    elves = by_path(rpmroot_result)
    for path, closure in EXPECTED.items():
        assert elves[path]["closure"] == closure, path
    loader = rpmroot_result["target"]["loader"]
    assert loader["cache"] == "ld.so.conf"  # the fixture has no ld.so.cache
    (interp,) = loader["interpreters"]
    assert interp["system_dirs"] == ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    assert interp["system_dirs_from"] == "ld.so" and interp["lib"] == "lib64"
    unresolved = {u["soname"]: u["needed_by"] for u in rpmroot_result["unresolved"]}
    assert unresolved == {"libmissing.so.1": ["/usr/bin/broken-app"],
                          "libdeep.so.1": ["/opt/rpathdemo/bin/runpath-app", "/usr/lib64/libmid.so.1"]}


def test_rpath_is_inherited_but_runpath_is_not(rpmroot_result: dict) -> None:
    """libmid.so.1 (no paths of its own) needs libdeep.so.1, which lives only in
    /opt/rpathdemo/private. The executable's DT_RPATH is searched for its dependencies'
    needs too; its DT_RUNPATH only for its own."""
    elves = by_path(rpmroot_result)
    rpath = elves["/opt/rpathdemo/bin/rpath-app"]["closure"]
    runpath = elves["/opt/rpathdemo/bin/runpath-app"]["closure"]
    assert rpath["libmid.so.1"] == runpath["libmid.so.1"] == "/usr/lib64/libmid.so.1"
    assert rpath["libdeep.so.1"] == "/opt/rpathdemo/private/libdeep.so.1"
    assert runpath["libdeep.so.1"] is None
    # and libmid alone cannot find it either
    assert elves["/usr/lib64/libmid.so.1"]["closure"]["libdeep.so.1"] is None


def _chroot_works() -> str | None:
    if not is_root():
        return "chroot needs root; this test runs as uid %d" % os.geteuid()
    if not shutil.which("chroot") or not shutil.which("ldconfig"):
        return "chroot or ldconfig is not installed"
    return None


def test_fixture_matches_its_own_loader_under_chroot(rpmroot: Path, tmp_path: Path) -> None:
    """The fixture's real ld.so, run inside the root with a cache made by the real
    ldconfig, is the oracle: every closure must equal what it lists."""
    why = _chroot_works()
    if why:
        pytest.skip(why)
    root = tmp_path / "root"
    shutil.copytree(rpmroot, root, symlinks=True)
    subprocess.run(["ldconfig", "-r", str(root)], check=True)
    assert (root / "etc/ld.so.cache").is_file()
    doc = scan_root(root)
    assert doc["target"]["loader"]["cache"] == "ld.so.cache"
    compared = 0
    for e in doc["elves"]:
        if e["type"] not in ("pie", "executable", "shared-library") or e["static"] or "ld-linux" in e["path"]:
            continue
        run = subprocess.run(["chroot", str(root), "/lib64/ld-linux-x86-64.so.2", "--list", e["path"]],
                             capture_output=True, text=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        real = parse_ldd(run.stdout)
        for line in run.stderr.splitlines():  # "error while loading shared libraries: X: cannot open"
            m = re.search(r"error while loading shared libraries: (\S+): cannot open", line)
            if m:
                real[m.group(1)] = None
        for name, target in real.items():
            want = os.path.realpath(root / target.lstrip("/")) if target else None
            got = e["closure"].get(name, "absent")
            got = str(root / got.lstrip("/")) if isinstance(got, str) and got != "absent" else got
            assert got == want, (e["path"], name)
            compared += 1
    assert compared >= 20


# ---- this host, against its real ldd ------------------------------------------------------
def test_host_ldd_oracle(capsys: pytest.CaptureFixture[str]) -> None:
    """For 300+ ELF files of /usr/bin, /usr/sbin and /usr/lib, every soname ldd prints is in
    the closure with the same resolved path."""
    fs = DirectoryRoot("/")
    candidates = []
    for top in ("/usr/bin", "/usr/sbin", "/usr/lib"):
        for dirpath, _dirs, files in os.walk(top):
            if "/debug" in dirpath:
                continue
            candidates.extend(os.path.join(dirpath, f) for f in files)
    random.Random(2).shuffle(candidates)
    records = []
    for p in candidates:
        if os.path.islink(p):
            continue
        recs = census_file(fs, p)
        rec = recs[0] if recs else None
        if (isinstance(rec, ElfRecord) and rec.type in ("executable", "pie", "shared-library")
                and not rec.static and rec.machine == "x86_64"):
            records.append(rec)
        if len(records) >= 320:
            break
    assert len(records) >= 300, "this host has fewer than 300 dynamic ELF files under /usr"
    # the whole root's census is what a scan has; resolve with it
    linkage = resolve_all(fs, records, lambda p: census_file(fs, p))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    agree = total = 0
    mismatches = []
    for rec in records:
        run = subprocess.run(["ldd", rec.path], capture_output=True, text=True, env=env)
        for name, target in parse_ldd(run.stdout).items():
            want = os.path.realpath(target) if target else None
            got = linkage.closures[rec.path].get(name, "absent")
            total += 1
            if got == want:
                agree += 1
            else:
                mismatches.append((rec.path, name, want, got))
    with capsys.disabled():
        print(f"\nldd oracle: {agree}/{total} sonames agree ({100.0 * agree / max(total, 1):.1f}%) "
              f"over {len(records)} ELF files of this host")
    assert total > 600
    assert not mismatches, mismatches[:10]


def test_ld_so_cache_parser_matches_ldconfig_p() -> None:
    data = Path("/etc/ld.so.cache").read_bytes()
    ours = {(e.name, e.path) for e in cfgmod.parse_ld_so_cache(data)}
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    theirs = set()
    for line in out.splitlines()[1:]:
        m = re.match(r"\s*(\S+) \(.*\)(?: OS ABI: [^=]+)? => (\S+)$", line)
        if m:
            theirs.add((m.group(1), m.group(2)))
    assert theirs and ours == theirs


@pytest.mark.parametrize("data", [b"", b"glibc-ld.so.cache1.1", b"glibc-ld.so.cache1.1" + b"\xff" * 40,
                                  b"ld.so-1.7.0\x00\xff\xff\xff\x7f", b"\x00" * 100, os.urandom(4096)])
def test_malformed_cache_is_refused(data: bytes) -> None:
    with pytest.raises(cfgmod.ConfigError):
        cfgmod.parse_ld_so_cache(data)


def test_truncated_host_cache_is_refused() -> None:
    data = Path("/etc/ld.so.cache").read_bytes()
    with pytest.raises(cfgmod.ConfigError):
        cfgmod.parse_ld_so_cache(data[: len(data) // 3])


def test_garbage_cache_falls_back_to_conf_with_an_error(rpmroot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(rpmroot, root, symlinks=True)
    (root / "etc/ld.so.cache").write_bytes(b"glibc-ld.so.cache1.1" + os.urandom(64))
    doc = scan_root(root)
    assert doc["target"]["loader"]["cache"] == "ld.so.conf"
    assert any(e["path"] == "/etc/ld.so.cache" and e["stage"] == "linkage" for e in doc["errors"])
    assert by_path(doc)["/usr/bin/extra-app"]["closure"]["libextra.so.1"] == "/opt/extra/lib/libextra.so.1"


def test_ld_so_conf_includes(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "ld.so.conf.d").mkdir(parents=True)
    (etc / "ld.so.conf").write_text("# comment\n/opt/a/lib\ninclude ld.so.conf.d/*.conf\nhwcap 1 foo\n/opt/b:/opt/c, /opt/d\n")
    (etc / "ld.so.conf.d/2-second.conf").write_text("/opt/second\ninclude /etc/ld.so.conf\n")  # a loop
    (etc / "ld.so.conf.d/1-first.conf").write_text("/opt/first/  \n/opt/a/lib\n")
    (etc / "ld.so.conf.d/ignored.txt").write_text("/opt/never\n")
    errs: list = []
    dirs = cfgmod.parse_ld_so_conf(DirectoryRoot(tmp_path), errors=errs)
    assert dirs == ["/opt/a/lib", "/opt/first", "/opt/second", "/opt/b", "/opt/c", "/opt/d"]


# ---- roots compiled here -------------------------------------------------------------------
def cc(compiler: str, out: Path, src: str, *flags: str) -> None:
    c = out.with_suffix(".c")
    c.write_text(src)
    subprocess.run([compiler, "-O1", "-o", str(out), str(c), *flags], check=True, capture_output=True)
    c.unlink()


LIB_SRC = "int greet(void) { return 42; }\n"
APP_SRC = "int greet(void);\nint main(void) { return greet() - 42; }\n"


def base_root(rpmroot: Path, root: Path) -> None:
    """A minimal RHEL-shaped root: the fixture's ld.so and libc."""
    (root / "usr/lib64").mkdir(parents=True)
    (root / "etc").mkdir()
    os.symlink("usr/lib64", root / "lib64")
    for name in ("libc.so.6", "ld-linux-x86-64.so.2"):
        shutil.copy2(rpmroot / "usr/lib64" / name, root / "usr/lib64" / name)


def test_nodeflib_skips_default_folders(rpmroot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    base_root(rpmroot, root)
    build = tmp_path / "build"
    build.mkdir()
    cc("gcc", root / "usr/lib64/libgreet.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1")
    (root / "usr/bin").mkdir(parents=True)
    cc("gcc", root / "usr/bin/plain", APP_SRC, f"-L{root}/usr/lib64", "-l:libgreet.so.1")
    cc("gcc", root / "usr/bin/nodeflib", APP_SRC, f"-L{root}/usr/lib64", "-l:libgreet.so.1", "-Wl,-z,nodefaultlib")
    cc("gcc", root / "usr/bin/nodeflib-rpath", APP_SRC, f"-L{root}/usr/lib64", "-l:libgreet.so.1",
       "-Wl,-z,nodefaultlib", "-Wl,--disable-new-dtags,-rpath,/usr/lib64")
    elves = by_path(scan_root(root))
    assert "NODEFLIB" in elves["/usr/bin/nodeflib"]["flags_1"]
    assert elves["/usr/bin/plain"]["closure"]["libgreet.so.1"] == "/usr/lib64/libgreet.so.1"
    assert elves["/usr/bin/nodeflib"]["closure"]["libgreet.so.1"] is None
    assert elves["/usr/bin/nodeflib-rpath"]["closure"]["libgreet.so.1"] == "/usr/lib64/libgreet.so.1"
    why = _chroot_works()
    if why is None:  # the real loader agrees
        real = subprocess.run(["chroot", str(root), "/lib64/ld-linux-x86-64.so.2", "--list", "/usr/bin/nodeflib"],
                              capture_output=True, text=True)
        assert "libgreet.so.1: cannot open" in real.stderr


def test_dynamic_string_tokens(rpmroot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    base_root(rpmroot, root)
    for sub in ("opt/t/lib64", "opt/p/x86_64", "opt/o/lib"):
        (root / sub).mkdir(parents=True)
    cc("gcc", root / "opt/t/lib64/liblib.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,liblib.so.1")
    cc("gcc", root / "opt/p/x86_64/libplat.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,libplat.so.1")
    cc("gcc", root / "opt/o/lib/liborig.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,liborig.so.1")
    (root / "opt/o/bin").mkdir()
    link = [f"-L{root}/opt/t/lib64", f"-L{root}/opt/p/x86_64", f"-L{root}/opt/o/lib"]
    cc("gcc", root / "opt/o/bin/app-lib", APP_SRC, *link, "-l:liblib.so.1", "-Wl,--enable-new-dtags,-rpath,/opt/t/$LIB")
    cc("gcc", root / "opt/o/bin/app-plat", APP_SRC, *link, "-l:libplat.so.1", "-Wl,--enable-new-dtags,-rpath,/opt/p/${PLATFORM}")
    cc("gcc", root / "opt/o/bin/app-origin", APP_SRC, *link, "-l:liborig.so.1", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib")
    # set-user-ID: $ORIGIN outside the system folders is not trusted by glibc
    shutil.copy2(root / "opt/o/bin/app-origin", root / "opt/o/bin/app-origin-suid")
    os.chmod(root / "opt/o/bin/app-origin-suid", 0o4755)
    elves = by_path(scan_root(root))
    assert elves["/opt/o/bin/app-lib"]["closure"]["liblib.so.1"] == "/opt/t/lib64/liblib.so.1"
    assert elves["/opt/o/bin/app-plat"]["closure"]["libplat.so.1"] == "/opt/p/x86_64/libplat.so.1"
    assert elves["/opt/o/bin/app-origin"]["closure"]["liborig.so.1"] == "/opt/o/lib/liborig.so.1"
    assert elves["/opt/o/bin/app-origin-suid"]["closure"]["liborig.so.1"] is None


def test_objects_alike_but_for_their_path(rpmroot: Path, tmp_path: Path) -> None:
    """The loader works out a closure once for objects that differ only in their path, and
    only where the path cannot matter: copies linked with $ORIGIN still resolve from
    their own folders, and each copy with a missing interpreter gets its own error."""
    root = tmp_path / "root"
    base_root(rpmroot, root)
    for sub in ("opt/a/lib", "opt/a/bin", "opt/b/bin", "opt/c/bin", "opt/d/bin"):
        (root / sub).mkdir(parents=True)
    cc("gcc", root / "opt/a/lib/liborig.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,liborig.so.1")
    cc("gcc", root / "opt/a/bin/app", APP_SRC, f"-L{root}/opt/a/lib", "-l:liborig.so.1",
       "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib")
    shutil.copy2(root / "opt/a/bin/app", root / "opt/b/bin/app")  # no ../lib next to this one
    cc("gcc", root / "opt/c/bin/lost", APP_SRC, f"-L{root}/opt/a/lib", "-l:liborig.so.1",
       "-Wl,--dynamic-linker,/lib64/ld-nowhere.so.2")
    shutil.copy2(root / "opt/c/bin/lost", root / "opt/d/bin/lost")
    doc = scan_root(root)
    elves = by_path(doc)
    assert elves["/opt/a/bin/app"]["closure"]["liborig.so.1"] == "/opt/a/lib/liborig.so.1"
    assert elves["/opt/b/bin/app"]["closure"]["liborig.so.1"] is None
    assert elves["/opt/c/bin/lost"]["closure"] == elves["/opt/d/bin/lost"]["closure"]
    assert elves["/opt/c/bin/lost"]["closure"] is not elves["/opt/d/bin/lost"]["closure"]
    lost = {e["path"] for e in doc["errors"] if "ld-nowhere" in e["message"]}
    assert lost == {"/opt/c/bin/lost", "/opt/d/bin/lost"}


AARCH64_GCC = "aarch64-linux-gnu-gcc"
AARCH64_LIBC = Path("/usr/aarch64-linux-gnu/lib")


def test_foreign_architecture_root(rpmroot: Path, tmp_path: Path) -> None:
    """An aarch64 Debian-shaped root scanned on x86-64: libraries resolve to aarch64 files,
    and an x86-64 file of the same name earlier in the search order is skipped."""
    if not shutil.which(AARCH64_GCC) or not (AARCH64_LIBC / "ld-linux-aarch64.so.1").exists():
        pytest.skip("needs Debian's gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (make installs them)")
    root = tmp_path / "arm"
    libdir = root / "usr/lib/aarch64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "usr/bin").mkdir()
    (root / "etc").mkdir()
    os.symlink("usr/lib", root / "lib")
    shutil.copy2(AARCH64_LIBC / "libc.so.6", libdir / "libc.so.6")
    shutil.copy2(AARCH64_LIBC / "ld-linux-aarch64.so.1", libdir / "ld-linux-aarch64.so.1")
    os.symlink("aarch64-linux-gnu/ld-linux-aarch64.so.1", root / "usr/lib/ld-linux-aarch64.so.1")  # as Debian ships it
    cc(AARCH64_GCC, libdir / "libgreet.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1")
    (root / "opt/decoy").mkdir(parents=True)
    cc("gcc", root / "opt/decoy/libgreet.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1")
    cc(AARCH64_GCC, root / "usr/bin/hello", APP_SRC, f"-L{libdir}", "-l:libgreet.so.1",
       "-Wl,--disable-new-dtags,-rpath,/opt/decoy")
    doc = scan_root(root)
    elves = by_path(doc)
    hello = elves["/usr/bin/hello"]
    assert hello["machine"] == "aarch64" and hello["interpreter"] == "/lib/ld-linux-aarch64.so.1"
    assert elves["/opt/decoy/libgreet.so.1"]["machine"] == "x86_64"
    assert hello["closure"] == {
        "libgreet.so.1": "/usr/lib/aarch64-linux-gnu/libgreet.so.1",
        "libc.so.6": "/usr/lib/aarch64-linux-gnu/libc.so.6",
        "ld-linux-aarch64.so.1": "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
    }
    interps = {i["path"]: i for i in doc["target"]["loader"]["interpreters"]}
    interp = interps["/lib/ld-linux-aarch64.so.1"]
    assert interp["system_dirs_from"] == "ld.so"
    assert interp["system_dirs"] == ["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib"]
    assert interp["lib"] == "lib/aarch64-linux-gnu" and doc["target"]["machine"] == "aarch64"


# ---- hostile input -------------------------------------------------------------------------
def test_hostile_root_scan_finishes_with_error_records(hostile_root: Path) -> None:
    doc = scan_root(hostile_root, jobs=2)
    errors = {(e["path"], e["stage"]) for e in doc["errors"]}
    assert ("/usr/lib64/libloop.so.1", "linkage") in errors  # the symlink loop
    elves = by_path(doc)
    assert elves["/usr/bin/needs-loop"]["closure"]["libloop.so.1"] is None
    assert "/usr/bin/good" in elves
    # nothing resolved to the host's files
    for e in doc["elves"]:
        for target in e["closure"].values():
            assert target is None or (hostile_root / target.lstrip("/")).exists()


def test_unreadable_file_is_an_error_record(hostile_root: Path) -> None:
    """Mode 000 stops only an unprivileged reader: as root, the scan runs as nobody."""
    out = hostile_root.parent / "out"
    out.mkdir(exist_ok=True)
    out.chmod(0o777)
    cmd = [sys.executable, "-m", "scanner", "scan", str(hostile_root), "-o", str(out), "-q", "-j", "1"]
    if is_root():
        if not shutil.which("setpriv"):
            pytest.skip("running as root and setpriv (util-linux) is missing to drop privileges")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr
    import json

    doc = json.loads((out / "result.json").read_text())
    msgs = [e["message"] for e in doc["errors"] if e["path"] == "/usr/bin/unreadable"]
    assert msgs and "Permission denied" in msgs[0]
    assert "/usr/bin/good" in by_path(doc)


MUSL_LDSO = Path("/lib/ld-musl-x86_64.so.1")


def test_musl_root(tmp_path: Path) -> None:
    """A musl root: musl's own loader, its path file, libc.so implemented by the loader.
    The real musl loader, run under chroot, is the oracle."""
    if not shutil.which("musl-gcc") or not MUSL_LDSO.exists():
        pytest.skip("needs Debian's musl, musl-dev and musl-tools (make installs them)")
    root = tmp_path / "musl"
    for d in ("lib", "etc", "usr/bin", "opt/m/lib", "usr/lib"):
        (root / d).mkdir(parents=True)
    shutil.copy2(MUSL_LDSO.resolve(), root / "lib/ld-musl-x86_64.so.1")
    (root / "etc/ld-musl-x86_64.path").write_text("/opt/m/lib\n/usr/lib\n")
    cc("musl-gcc", root / "opt/m/lib/libgreet.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1")
    cc("musl-gcc", root / "usr/lib/libgreet.so.1", LIB_SRC, "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1")
    cc("musl-gcc", root / "usr/bin/app", APP_SRC, f"-L{root}/opt/m/lib", "-l:libgreet.so.1")
    doc = scan_root(root)
    app = by_path(doc)["/usr/bin/app"]
    assert app["interpreter"] == "/lib/ld-musl-x86_64.so.1"
    # the path file's order wins; libc.so is the loader itself
    assert app["closure"] == {"libgreet.so.1": "/opt/m/lib/libgreet.so.1", "libc.so": "/lib/ld-musl-x86_64.so.1"}
    interps = {i["path"]: i for i in doc["target"]["loader"]["interpreters"]}
    musl = interps["/lib/ld-musl-x86_64.so.1"]
    assert musl["flavour"] == "musl" and musl["system_dirs"] == ["/opt/m/lib", "/usr/lib"]
    if _chroot_works() is None:
        real = subprocess.run(["chroot", str(root), "/lib/ld-musl-x86_64.so.1", "--list", "/usr/bin/app"],
                              capture_output=True, text=True)
        listed = parse_ldd(real.stdout)
        assert listed["libgreet.so.1"] == "/opt/m/lib/libgreet.so.1"
