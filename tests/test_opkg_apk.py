"""apk and opkg databases (issue 17, item 3): real databases from public systems
(``fixtures/data/apk``, ``fixtures/data/opkg``: where each came from is in their READMEs),
placed in roots built here with the files they list (some of them real ELF files compiled
here), read through :mod:`scanner.inventory.apk` and :mod:`scanner.inventory.opkg` over a
:class:`~scanner.target.DirectoryRoot`.

Every count is taken from the file independently of the readers (``grep -c``), every name,
version and license is the one the file writes, and ownership is checked for every file the
lists name. The hostile variants (a file cut short, binary garbage, ``../`` paths, a missing or
over-long list, a FIFO where a file should be) each give error records, and the rest of the
database is read.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner import limits
from scanner.inventory import apk, opkg
from scanner.inventory.packages import OwnershipIndex, PackageDatabase
from scanner.target import DirectoryRoot

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "data"
APK_DB = DATA / "apk" / "installed"
OPENWRT = DATA / "opkg" / "openwrt-23.05"
YOCTO = DATA / "opkg" / "yocto-angstrom"
ALPINE = {"ID": "alpine", "VERSION_ID": "3.14.2"}
OPENWRT_OS = {"ID": "openwrt", "VERSION_ID": "23.05.2"}
ANGSTROM = {"ID": "angstrom", "VERSION_ID": "v2013.06"}
APK_ELF = {"/lib/ld-musl-armhf.so.1": "exe", "/bin/busybox": "exe", "/sbin/apk": "exe",
           "/lib/libz.so.1.2.11": "so", "/usr/lib/libstdc++.so.6.0.28": "so", "/usr/bin/scanelf": "exe"}
OPKG_ELF = {"/bin/busybox": "exe", "/usr/lib/libpci.so.3.10.0": "so", "/usr/lib/libkmod.so.2.4.1": "so",
            "/usr/bin/beep": "exe", "/usr/libexec/sort-coreutils": "exe", "/usr/sbin/ksmbd.mountd": "exe",
            "/lib/modules/5.15.137/vhost_net.ko": "ko"}


# ---- helpers -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def elves(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real ELF files compiled here: a static musl program, a shared object and a relocatable
    object (what a kernel module is)."""
    d = tmp_path_factory.mktemp("elf")
    (d / "m.c").write_text("int answer(void) { return 42; }\nint main(void) { return answer() - 42; }\n")
    cc = shutil.which("musl-gcc")
    out = {}
    for kind, args in (("exe", [cc or "gcc", "-static", "-Os"] if cc else ["gcc", "-Os"]),
                       ("so", ["gcc", "-shared", "-fPIC"]), ("ko", ["gcc", "-c"])):
        subprocess.run([*args, "-o", str(d / kind), str(d / "m.c")], check=True)
        out[kind] = (d / kind).read_bytes()
        assert out[kind][:4] == b"\x7fELF"
    return out


def grep_count(pattern: str, path: Path) -> int:
    """``grep -c PATTERN PATH``: the count taken by another program than the readers."""
    r = subprocess.run(["grep", "-c", pattern, str(path)], capture_output=True, text=True, check=False)
    return int(r.stdout.strip())


def make_file(root: Path, path: str, content: bytes) -> None:
    """``path`` (absolute, inside the target) created under ``root`` with ``content``."""
    host = root / path.lstrip("/")
    host.parent.mkdir(parents=True, exist_ok=True)
    host.write_bytes(content)


def apk_listing(data: bytes) -> Iterator[tuple[str, str]]:
    """``(package, path)`` of every ``R`` line, written here from the format's description
    (``F`` folder, ``R`` file in it), not by the reader under test."""
    name, folder = "", ""
    for line in data.decode().split("\n"):
        if line.startswith("P:"):
            name, folder = line[2:], ""
        elif line.startswith("F:"):
            folder = line[2:]
        elif line.startswith("R:"):
            yield name, f"/{folder}/{line[2:]}" if folder else f"/{line[2:]}"


def apk_root(root: Path, data: bytes, elves: dict[str, bytes]) -> Path:
    """An Alpine root: os-release, the database, and every file it lists (the ones in
    APK_ELF real ELF files, the rest text)."""
    make_file(root, "/etc/os-release", b'ID=alpine\nVERSION_ID=3.14.2\n')
    make_file(root, "/lib/apk/db/installed", data)
    for _, path in apk_listing(data):
        make_file(root, path, elves[APK_ELF[path]] if path in APK_ELF else path.encode() + b"\n")
    return root


def opkg_root(root: Path, src: Path, admin: str, elves: dict[str, bytes]) -> Path:
    """An OpenWrt or Yocto root: the status file and ``info/`` copied to ``admin`` (their
    folder in the target), and every file the lists name (folders for entries ending in
    ``/``; the ones in OPKG_ELF real ELF files)."""
    shutil.copytree(src, root / admin.lstrip("/"))
    for lst in (src / "info").glob("*.list"):
        for line in lst.read_text().splitlines():
            path = line.split("\t")[0]
            if path.endswith("/"):
                (root / path.strip("/")).mkdir(parents=True, exist_ok=True)
            else:
                make_file(root, path, elves[OPKG_ELF[path]] if path in OPKG_ELF else path.encode() + b"\n")
    return root


def messages(db: PackageDatabase, path: str | None = None) -> list[str]:
    return [e.message for e in db.errors if path is None or e.path == path]


@pytest.fixture
def no_hang() -> Iterator[None]:
    """A FIFO opened for reading waits for a writer for ever: fail in 20 s instead."""
    def stop(*_: object) -> None:
        raise TimeoutError("the reader blocked (opened a FIFO?)")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ---- apk ---------------------------------------------------------------------------------------
def test_apk_real_database(tmp_path: Path, elves: dict[str, bytes]) -> None:
    """Alpine 3.14's database, whole: every package, as the file writes it, and every file it
    lists owned by the package that lists it first."""
    data = APK_DB.read_bytes()
    root = apk_root(tmp_path / "root", data, elves)
    fs = DirectoryRoot(root)
    db = apk.read_database(fs, ALPINE)
    assert db is not None
    assert (db.manager, db.path, db.backend, db.reader) == ("apk", "/lib/apk/db/installed", "apk-installed", "python")
    assert db.errors == ()
    assert len(db.packages) == grep_count("^P:", APK_DB) == 26
    pk = {p.name: p for p in db.packages}
    assert (pk["musl"].version, pk["musl"].arch, pk["musl"].license_raw) == ("1.2.2-r3", "armv7", "MIT")
    assert pk["musl"].vendor == "Timo Teräs <timo.teras@iki.fi>"
    assert pk["musl"].id == "apk/musl-1.2.2-r3.armv7"
    assert pk["musl"].purl == "pkg:apk/alpine/musl@1.2.2-r3?arch=armv7&distro=alpine-3.14.2"
    assert pk["musl"].files == ("/lib/ld-musl-armhf.so.1", "/lib/libc.musl-armv7.so.1")
    assert (pk["musl-utils"].license_raw, pk["musl-utils"].source) == ("MIT BSD GPL2+", "musl")
    assert pk["libretls"].license_raw == "ISC AND (BSD-3-Clause OR MIT)"
    assert pk["ca-certificates-bundle"].license_raw == "MPL-2.0 AND MIT"
    assert (pk["busybox"].version, pk["busybox"].license_raw) == ("1.33.1-r3", "GPL-2.0-only")
    assert (pk["libgcc"].version, pk["libgcc"].license_raw) == ("10.3.1_git20210424-r2",
                                                                "GPL-2.0-or-later LGPL-2.1-or-later")
    assert (pk["icu-libs"].license_raw, pk["boost1.75-log"].license_raw) == ("MIT ICU Unicode-TOU", "custom")
    assert (pk["libssl1.1"].source, pk["libcrypto1.1"].version) == ("openssl", "1.1.1k-r0")
    assert pk["libc-utils"].files == ()  # a meta package: no R lines

    listing = list(apk_listing(data))
    assert sum(len(p.files) for p in db.packages) == len(listing)
    index = OwnershipIndex(fs, [db])
    first: dict[str, str] = {}
    for name, path in listing:
        first.setdefault(path, pk[name].id)
    for path, owner in first.items():
        assert index.owner(path) == owner, path
    assert index.owner("/lib/ld-musl-armhf.so.1") == "apk/musl-1.2.2-r3.armv7"
    assert index.owner("/bin/busybox") == "apk/busybox-1.33.1-r3.armv7"
    assert index.owner("/usr/lib/libstdc++.so.6.0.28") == "apk/libstdc++-10.3.1_git20210424-r2.armv7"
    assert index.owner("/etc/os-release") is None


def test_apk_newer_layout_and_one_database_under_two_names(tmp_path: Path, elves: dict[str, bytes]) -> None:
    """``/usr/lib/apk/db/installed`` is read when ``/lib/apk`` is not there; with ``/lib`` a
    link to ``usr/lib`` the two names are one database, read once, no record."""
    root = tmp_path / "root"
    make_file(root, "/usr/lib/apk/db/installed", APK_DB.read_bytes())
    db = apk.read_database(DirectoryRoot(root), ALPINE)
    assert db is not None and db.path == "/usr/lib/apk/db/installed" and len(db.packages) == 26
    (root / "lib").symlink_to("usr/lib")
    db = apk.read_database(DirectoryRoot(root), ALPINE)
    assert db is not None and db.path == "/lib/apk/db/installed" and len(db.packages) == 26 and db.errors == ()
    (tmp_path / "empty").mkdir()
    assert apk.read_database(DirectoryRoot(tmp_path / "empty"), ALPINE) is None


def test_apk_truncated(tmp_path: Path, elves: dict[str, bytes]) -> None:
    """The database cut in the middle of a paragraph (inside ``openrc``'s file list): said,
    every package before the cut listed, the one cut listed with the files before the cut."""
    data = APK_DB.read_bytes()
    cut = data.index(b"R:swclock")  # openrc's, 14th paragraph
    root = apk_root(tmp_path / "root", data[:cut + 5], elves)
    db = apk.read_database(DirectoryRoot(root), ALPINE)
    assert db is not None
    assert any("cut short" in m for m in messages(db, "/lib/apk/db/installed"))
    names = [p.name for p in db.packages]
    assert len(names) == data[:cut].count(b"\nP:") == 16
    assert names[-1] == "openrc" and "/sbin/openrc" not in db.packages[-1].files


def test_apk_garbage_paths_and_caps(tmp_path: Path, elves: dict[str, bytes]) -> None:
    """Binary garbage between two paragraphs, a ``../`` folder, an absolute one, a file name
    with a slash, a version over its cap, a name that is not one and a version that is not
    UTF-8: each an error record; every real package is still listed, with its real files."""
    data = APK_DB.read_bytes()
    garbage = random.Random(17).randbytes(4096).replace(b"\n\n", b"\n")
    evil = (b"P:evil\nV:1.0-r0\nA:armv7\nF:lib\nR:ok.so\nF:../../etc\nR:passwd\nF:/etc\nR:shadow\n"
            b"F:usr\nR:../etc/group\n\nP:longversion\nV:" + b"1" * 300 + b"\n\nP:b\xffad\nV:1-r0\n\n"
            b"P:latin\nV:1.0\xff-r0\nA:armv7\n\n")
    musl_end = data.index(b"\n\n") + 2
    data = data[:musl_end] + garbage + b"\n\n" + evil + data[musl_end:]
    root = apk_root(tmp_path / "root", APK_DB.read_bytes(), elves)
    (root / "lib/apk/db/installed").write_bytes(data)
    make_file(root, "/lib/ok.so", elves["so"])
    db = apk.read_database(DirectoryRoot(root), ALPINE)
    assert db is not None
    pk = {p.name: p for p in db.packages}
    real = {line[2:] for line in APK_DB.read_text().split("\n") if line.startswith("P:")}
    assert set(pk) == real | {"evil", "latin"} and len(real) == 26
    assert pk["evil"].files == ("/lib/ok.so",)
    assert pk["latin"].purl == "pkg:apk/alpine/latin@1.0%FF-r0?arch=armv7&distro=alpine-3.14.2"
    msgs = messages(db, "/lib/apk/db/installed")
    assert any("'/../../etc' is not a path inside the target" in m for m in msgs), msgs
    assert any("'//etc' is not a path inside the target" in m for m in msgs)
    assert any("R:'../etc/group'" in m for m in msgs)
    assert any("MAX_PACKAGE_VERSION_CHARS" in m and "longversion" in m for m in msgs)
    assert any("package latin: version '1.0\\xff-r0' is not an apk version" in m for m in msgs)
    assert any("is not an 'X:value' line" in m for m in msgs)
    assert any(m.endswith("skipped") and "paragraphs read" in m for m in msgs)
    index = OwnershipIndex(DirectoryRoot(root), [db])
    assert index.owner("/etc/passwd") == index.owner("/etc/shadow") == pk["alpine-baselayout"].id  # never evil's


def test_apk_fifo_and_cap(tmp_path: Path, no_hang: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO where the database should be is never opened: one record, no packages. A
    database over its cap is read up to it, whole paragraphs only, and the cap is named."""
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    os.mkfifo(root / "lib/apk/db/installed")
    db = apk.read_database(DirectoryRoot(root), ALPINE)
    assert db is not None and db.packages == ()
    assert messages(db) == ["not a regular file; not read"]
    (root / "lib/apk/db/installed").unlink()
    shutil.copy(APK_DB, root / "lib/apk/db/installed")
    monkeypatch.setattr(limits, "MAX_APK_INSTALLED_BYTES", 10_000)
    db = apk.read_database(DirectoryRoot(root), ALPINE)
    assert db is not None
    assert len(db.packages) == APK_DB.read_bytes()[:10_000].count(b"\n\n")
    assert any("limit MAX_APK_INSTALLED_BYTES (10,000) reached" in m for m in messages(db))


# ---- opkg --------------------------------------------------------------------------------------
def test_opkg_openwrt(tmp_path: Path, elves: dict[str, bytes]) -> None:
    """OpenWrt 23.05: every paragraph a package, the License from each ``.control``, the files
    from each ``.list``, owned by their package; the three packages whose ``.list`` the real
    root lacks are listed, without files, each with a record."""
    root = opkg_root(tmp_path / "root", OPENWRT, "/usr/lib/opkg", elves)
    fs = DirectoryRoot(root)
    db = opkg.read_database(fs, OPENWRT_OS)
    assert db is not None
    assert (db.manager, db.path, db.backend, db.reader) == ("opkg", "/usr/lib/opkg/status", "opkg-status", "python")
    assert len(db.packages) == grep_count("^Package:", OPENWRT / "status") == 11
    assert sorted((e.path, e.message) for e in db.errors) == [
        (f"/usr/lib/opkg/info/{n}.list", "missing: the package's files are listed as nobody's")
        for n in ("libc", "libopenssl3", "opkg")]
    pk = {p.name: p for p in db.packages}
    assert (pk["opkg"].version, pk["opkg"].license_raw, pk["opkg"].arch) == ("2022-02-24-d038e5b6-2", "GPL-2.0",
                                                                            "x86_64")
    assert pk["opkg"].id == "opkg/opkg_2022-02-24-d038e5b6-2_x86_64"
    assert pk["opkg"].purl == "pkg:opkg/openwrt/opkg@2022-02-24-d038e5b6-2?arch=x86_64&distro=openwrt-23.05.2"
    assert (pk["libc"].version, pk["libc"].license_raw) == ("1.2.4-4", "GPL-3.0-with-GCC-exception")
    assert (pk["libopenssl3"].license_raw, pk["libopenssl3"].source) == ("Apache-2.0", "libopenssl")
    assert pk["bnx2-firmware"].license_raw is None  # its .control has no License field
    assert (pk["ksmbd-server"].license_raw, pk["libkmod"].license_raw) == ("GPL-2.0-or-later", "LGPL-2.1-or-later")
    assert (pk["busybox"].version, pk["busybox"].vendor) == ("1.36.1-1", "Felix Fietkau <nbd@nbd.name>")
    assert len(pk["busybox"].files) == grep_count("^/", OPENWRT / "info/busybox.list") == 127
    index = OwnershipIndex(fs, [db])
    for lst in (OPENWRT / "info").glob("*.list"):
        owner = pk[lst.stem].id
        for path in lst.read_text().splitlines():
            assert index.owner(path) == owner, path
    for path in OPKG_ELF:
        assert (root / path.lstrip("/")).read_bytes()[:4] == b"\x7fELF" and index.owner(path) is not None
    assert index.owner("/usr/lib/libpci.so.3.10.0") == "opkg/libpci_3.10.0-1_x86_64"
    assert index.owner("/lib/modules/5.15.137/vhost_net.ko") == "opkg/kmod-vhost-net_5.15.137-1_x86_64"


def test_opkg_yocto(tmp_path: Path, elves: dict[str, bytes]) -> None:
    """A Yocto (Angstrom) root: ``/var/lib/opkg``, an epoch, License from ``.control``, a list
    naming folders with a trailing slash."""
    root = opkg_root(tmp_path / "root", YOCTO, "/var/lib/opkg", elves)
    fs = DirectoryRoot(root)
    db = opkg.read_database(fs, ANGSTROM)
    assert db is not None and db.path == "/var/lib/opkg/status"
    assert len(db.packages) == grep_count("^Package:", YOCTO / "status") == 12
    pk = {p.name: p for p in db.packages}
    assert (pk["opkg"].version, pk["opkg"].epoch, pk["opkg"].license_raw) == ("1:0.1.8+svnr649-r13.0.0", 1, "GPLv2+")
    assert pk["opkg"].purl == ("pkg:opkg/angstrom/opkg@1:0.1.8%2Bsvnr649-r13.0.0"
                               "?arch=armv7ahf-vfp-neon&distro=angstrom-v2013.06")
    assert (pk["busybox-syslog"].license_raw, pk["shadow-securetty"].arch) == ("GPLv2 & bzip2", "beaglebone")
    assert pk["libc6"].license_raw is None
    assert len(pk["busybox-syslog"].files) == 10 and "/lib/systemd" in pk["busybox-syslog"].files
    index = OwnershipIndex(fs, [db])
    assert index.owner("/etc/init.d/syslog.busybox") == "opkg/busybox-syslog_1.20.2-r8.0_armv7ahf-vfp-neon"
    missing = sorted(m.path for m in db.errors)
    assert missing == sorted(f"/var/lib/opkg/info/{n}.list" for n in pk if n != "busybox-syslog")


def test_opkg_hostile(tmp_path: Path, elves: dict[str, bytes], no_hang: None,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenWrt database with: binary garbage and a malformed paragraph, packages not
    installed, a status that is not three words, ``../`` and relative lines and a path over
    PATH_MAX in busybox's list, a FIFO for libpci's list and for libkmod's control, beep's list
    missing, the status file cut short. Each is an error record naming it; the rest is read."""
    root = opkg_root(tmp_path / "root", OPENWRT, "/usr/lib/opkg", elves)
    info = root / "usr/lib/opkg/info"
    status = (OPENWRT / "status").read_bytes()
    extra = (random.Random(5).randbytes(2048).replace(b"\n\n", b"\n") + b"\n\n"
             b"Package: gone\nVersion: 1\nStatus: deinstall ok config-files\nArchitecture: x86_64\n\n"
             b"Package: never\nVersion: 1\nStatus: install ok not-installed\nArchitecture: x86_64\n\n"
             b"Package: half\nVersion: 1\nStatus: install ok\nArchitecture: x86_64\n\n"
             b"Package: broken\nthis line is no field\nVersion: 1\n\n")
    (root / "usr/lib/opkg/status").write_bytes(extra + status[:-2])  # cut: no final newline
    with (info / "busybox.list").open("a") as fh:
        fh.write("../../etc/passwd\nusr/bin/relative\n/usr/bin/../../etc/shadow\n" + "/" + "a" * 5000 + "\n"
                 "/usr/bin/tabbed\t0755\n")
    make_file(root, "/usr/bin/tabbed", b"x")
    (info / "libpci.list").unlink()
    os.mkfifo(info / "libpci.list")
    (info / "libkmod.control").unlink()
    os.mkfifo(info / "libkmod.control")
    (info / "beep.list").unlink()
    db = opkg.read_database(DirectoryRoot(root), OPENWRT_OS)
    assert db is not None
    pk = {p.name: p for p in db.packages}
    assert set(pk) == {line[9:] for line in (OPENWRT / "status").read_text().splitlines() if line.startswith("Package: ")}
    assert len(pk["busybox"].files) == 128 and "/usr/bin/tabbed" in pk["busybox"].files
    assert pk["libpci"].files == () and pk["beep"].files == () and pk["libkmod"].license_raw is None
    assert pk["libkmod"].files == ("/usr/lib/libkmod.so.2.4.1", "/usr/lib/libkmod.so.2")
    busybox = messages(db, "/usr/lib/opkg/info/busybox.list")
    assert busybox[0].startswith("limit MAX_PACKAGE_PATH_CHARS (4,096) reached: 1 longer file paths left out")
    assert [m.split(":")[0] for m in busybox[1:]] == ["line 128", "line 129", "line 130"]
    assert all("is not a path inside the target; ignored" in m for m in busybox[1:])
    assert messages(db, "/usr/lib/opkg/info/libpci.list") == [
        "not a regular file; not read, the package's files are listed as nobody's"]
    assert messages(db, "/usr/lib/opkg/info/libkmod.control") == ["not a regular file; not read"]
    assert messages(db, "/usr/lib/opkg/info/beep.list") == ["missing: the package's files are listed as nobody's"]
    st = messages(db, "/usr/lib/opkg/status")
    assert any("cut short" in m for m in st)
    assert any("package half: Status 'install ok' is not 'want flag state'; skipped" == m for m in st)
    assert any("'this line is no field' is not a 'Field: value' line" in m for m in st)
    read = grep_count("^Package:", OPENWRT / "status") + 4  # and the garbage's paragraphs
    reconciled = [m for m in st if "paragraphs read" in m]
    assert len(reconciled) == 1 and ", 11 packages listed, 2 not installed," in reconciled[0]
    assert int(reconciled[0].split()[0].replace(",", "")) >= read

    # a list over the package's cap is read up to it, and the cap named
    monkeypatch.setattr(limits, "MAX_PACKAGE_FILES_CHARS", 300)
    db = opkg.read_database(DirectoryRoot(root), OPENWRT_OS)
    assert db is not None
    assert len({p.name for p in db.packages}) == 11
    assert any("MAX_PACKAGE_FILES_CHARS" in m for m in messages(db, "/usr/lib/opkg/info/busybox.list"))
    assert 0 < len({p.name: p for p in db.packages}["busybox"].files) < 127

    # the status file a FIFO: never opened, one record
    (root / "usr/lib/opkg/status").unlink()
    os.mkfifo(root / "usr/lib/opkg/status")
    db = opkg.read_database(DirectoryRoot(root), OPENWRT_OS)
    assert db is not None and db.packages == () and messages(db) == ["not a regular file; not read"]
