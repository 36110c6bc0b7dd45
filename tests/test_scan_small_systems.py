"""Full scans of small systems (issue 17, item 3): an Alpine root read through its real apk
database, an OpenWrt root and a Yocto (Angstrom) root through their real opkg databases
(``fixtures/data/apk``, ``fixtures/data/opkg``), each with real ELF files, scanned by
:func:`scanner.scan.scan` (and one by ``flightcheck scan``) as any other target: the packages
are in the result with their purls and licenses in SPDX, the ELF files are owned by their
packages, the document validates against the schema and the HTML and SPDX reports render.

The Alpine root is a real musl system: the real musl loader of this machine (Debian's musl)
at ``/lib/ld-musl-x86_64.so.1``, programs and libraries compiled here with ``musl-gcc`` and
linked against it; the database is the real armv7 one with its two musl file names spelled for
x86_64 (``ld-musl-armhf.so.1`` -> ``ld-musl-x86_64.so.1``, ``libc.musl-armv7.so.1`` ->
``libc.musl-x86_64.so.1``), so the loader it lists is the one the programs name.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from pagereader import package_names
from test_opkg_apk import APK_DB, OPENWRT, OPKG_ELF, YOCTO, apk_listing, grep_count, make_file, opkg_root

from scanner.result import validate
from scanner.reports import write_reports
from scanner.scan import ScanOptions, scan
from scanner.target import DirectoryRoot

MUSL_LDSO = Path("/lib/ld-musl-x86_64.so.1")
LIB = "int zlib_answer(void) { return 42; }\n"
APP = "int zlib_answer(void);\nint main(void) { return zlib_answer() - 42; }\n"
#: the ELF files of the Alpine root and the package that lists each
ALPINE_ELF = {"/lib/ld-musl-x86_64.so.1": "musl", "/bin/busybox": "busybox", "/sbin/apk": "apk-tools",
              "/lib/libz.so.1.2.11": "zlib", "/usr/bin/scanelf": "scanelf",
              "/usr/lib/libstdc++.so.6.0.28": "libstdc++"}


def cc(out: Path, src: str, *args: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    c = out.with_suffix(".c")
    c.write_text(src)
    subprocess.run(["musl-gcc", "-Os", "-o", str(out), str(c), *args], check=True)
    c.unlink()


@pytest.fixture(scope="module")
def alpine_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("musl-gcc") or not MUSL_LDSO.exists():
        pytest.skip("needs Debian's musl, musl-dev and musl-tools (make setup installs them)")
    root = tmp_path_factory.mktemp("alpine") / "root"
    data = APK_DB.read_bytes().replace(b"ld-musl-armhf.so.1", b"ld-musl-x86_64.so.1") \
                              .replace(b"libc.musl-armv7.so.1", b"libc.musl-x86_64.so.1")
    make_file(root, "/etc/os-release", b"ID=alpine\nVERSION_ID=3.14.2\n")
    make_file(root, "/lib/apk/db/installed", data)
    built = tmp_path_factory.mktemp("alpine-elf")
    cc(built / "libz.so", LIB, "-shared", "-fPIC", "-Wl,-soname,libz.so.1")
    cc(built / "libstdc++.so", LIB, "-shared", "-fPIC", "-Wl,-soname,libstdc++.so.6")
    cc(built / "app", APP, f"-L{built}", "-l:libz.so")
    elf = {"/lib/libz.so.1.2.11": built / "libz.so", "/usr/lib/libstdc++.so.6.0.28": built / "libstdc++.so",
           "/bin/busybox": built / "app", "/sbin/apk": built / "app", "/usr/bin/scanelf": built / "app"}
    links = {"/lib/libz.so.1": "libz.so.1.2.11", "/lib/libc.musl-x86_64.so.1": "ld-musl-x86_64.so.1",
             "/usr/lib/libstdc++.so.6": "libstdc++.so.6.0.28"}
    for _, path in apk_listing(data):
        host = root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        if path in links:
            host.symlink_to(links[path])
        elif path == str(MUSL_LDSO):
            shutil.copy2(MUSL_LDSO.resolve(), host)
        elif path in elf:
            shutil.copy2(elf[path], host)
        else:
            host.write_bytes(path.encode() + b"\n")
    return root


def reports_render(doc: dict[str, Any], out: Path) -> None:
    """The HTML and SPDX (JSON) reports written; the SPDX one read back by spdx-tools and valid."""
    written = write_reports(doc, out, ["html", "spdx-json"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(written) == 2 and doc["packages"][0]["name"] in html
    back = parse_file(str(out / "result.spdx.json"))
    assert validate_full_spdx_document(back) == []
    assert {p.name for p in back.packages} >= {p["name"] for p in doc["packages"]}


def test_alpine_root_full_scan(alpine_root: Path, tmp_path: Path) -> None:
    doc = scan(DirectoryRoot(alpine_root), ScanOptions(jobs=1))
    validate(doc)
    installed = alpine_root / "lib/apk/db/installed"
    assert doc["databases"] == [{"manager": "apk", "path": "/lib/apk/db/installed", "backend": "apk-installed",
                                 "reader": "python", "packages": grep_count("^P:", installed)}]
    pk = {p["name"]: p for p in doc["packages"]}
    assert len(pk) == 26
    musl = pk["musl"]
    assert (musl["id"], musl["purl"]) == ("apk/musl-1.2.2-r3.armv7",
                                          "pkg:apk/alpine/musl@1.2.2-r3?arch=armv7&distro=alpine-3.14.2")
    assert (musl["license_raw"], musl["license_spdx"], musl["license_status"], musl["license_source"]) == \
        ("MIT", "MIT", "exact", "apk")  # Alpine names licenses by SPDX id: MIT is MIT (issue 18; on Fedora a guess)
    assert (pk["zlib"]["license_spdx"], pk["zlib"]["license_status"]) == ("Zlib", "exact")
    assert (pk["busybox"]["license_spdx"], pk["apk-tools"]["license_spdx"]) == ("GPL-2.0-only", "GPL-2.0-only")
    assert pk["libretls"]["license_spdx"] == "ISC AND (BSD-3-Clause OR MIT)"
    # Alpine's own non-SPDX values stay unknown, never a cleaner outcome
    custom = [p for p in doc["packages"] if p["license_raw"] == "custom"]
    assert len(custom) == 7 and all(p["license_status"] == "unknown" for p in custom)
    assert all(p["license_source"] == "apk" for p in doc["packages"])
    elves = {e["path"]: e for e in doc["elves"]}
    assert set(elves) == set(ALPINE_ELF)
    for path, name in ALPINE_ELF.items():
        assert elves[path]["owner"] == pk[name]["id"], path
    assert doc["summary"]["unowned_elves"] == 0
    # the programs load through the real musl loader the musl package installed
    busybox = elves["/bin/busybox"]
    assert busybox["interpreter"] == "/lib/ld-musl-x86_64.so.1"
    assert busybox["closure"]["libz.so.1"] == "/lib/libz.so.1.2.11"
    lic = {r["soname"]: r for r in busybox["linked_licenses"]}
    assert (lic["libz.so.1"]["package"], lic["libz.so.1"]["license"]) == (pk["zlib"]["id"], "Zlib")
    assert doc["unresolved"] == []
    reports_render(doc, tmp_path / "reports")


@pytest.fixture(scope="module")
def built_elves(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("opkg-elf")
    (d / "m.c").write_text("int answer(void) { return 42; }\nint main(void) { return answer() - 42; }\n")
    out = {}
    for kind, args in (("exe", ["gcc", "-Os"]), ("so", ["gcc", "-shared", "-fPIC"]), ("ko", ["gcc", "-c"])):
        subprocess.run([*args, "-o", str(d / kind), str(d / "m.c")], check=True)
        out[kind] = (d / kind).read_bytes()
    return out


def test_openwrt_root_full_scan_by_the_cli(tmp_path: Path, built_elves: dict[str, bytes]) -> None:
    """``flightcheck scan DIR`` of an OpenWrt root: the packages of its real status, the License
    of each ``.control`` (SPDX as OpenWrt writes it), every ELF file owned."""
    root = opkg_root(tmp_path / "root", OPENWRT, "/usr/lib/opkg", built_elves)
    make_file(root, "/etc/os-release", b'NAME="OpenWrt"\nID="openwrt"\nVERSION_ID="23.05.2"\n')
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", str(root), "-o", str(out), "-q", "-j", "1",
                        "--format", "json,html,spdx-json"], capture_output=True, text=True, check=False)
    assert r.returncode in (0, 1), r.stderr  # 1: findings failed the gate, not an error
    doc = json.loads((out / "result.json").read_text())
    validate(doc)
    assert doc["databases"] == [{"manager": "opkg", "path": "/usr/lib/opkg/status", "backend": "opkg-status",
                                 "reader": "python", "packages": grep_count("^Package:", OPENWRT / "status")}]
    pk = {p["name"]: p for p in doc["packages"]}
    assert pk["opkg"]["purl"] == "pkg:opkg/openwrt/opkg@2022-02-24-d038e5b6-2?arch=x86_64&distro=openwrt-23.05.2"
    assert (pk["libc"]["license_spdx"], pk["libc"]["license_source"]) == ("GPL-3.0-only WITH GCC-exception-3.1",
                                                                          "opkg")
    assert (pk["busybox"]["license_raw"], pk["busybox"]["license_spdx"]) == ("GPL-2.0", "GPL-2.0-only")
    assert (pk["libkmod"]["license_spdx"], pk["libkmod"]["license_status"]) == ("LGPL-2.1-or-later", "exact")
    assert (pk["bnx2-firmware"]["license_spdx"], pk["bnx2-firmware"]["license_source"]) == ("NOASSERTION", "none")
    elves = {e["path"]: e for e in doc["elves"]}
    assert set(elves) == set(OPKG_ELF)
    owners = {p: e["owner"] for p, e in elves.items()}
    assert owners["/usr/lib/libpci.so.3.10.0"] == pk["libpci"]["id"]
    assert owners["/lib/modules/5.15.137/vhost_net.ko"] == pk["kmod-vhost-net"]["id"]
    assert owners["/bin/busybox"] == pk["busybox"]["id"]
    assert None not in owners.values() and doc["summary"]["unowned_elves"] == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "kmod-vhost-net" in package_names(html)  # the packages table's data (drawn by the page's script)
    assert validate_full_spdx_document(parse_file(str(out / "result.spdx.json"))) == []


def test_yocto_root_full_scan(tmp_path: Path, built_elves: dict[str, bytes]) -> None:
    """A Yocto (Angstrom) root: ``/var/lib/opkg``, OpenEmbedded's License values (SPDX-style
    names joined by ``&``/``|``: ``GPLv2 & bzip2``) normalised to SPDX expressions."""
    root = opkg_root(tmp_path / "root", YOCTO, "/var/lib/opkg", built_elves)
    make_file(root, "/etc/os-release", b"ID=angstrom\nVERSION_ID=v2013.06\n")
    make_file(root, "/bin/busybox.nosuid", built_elves["exe"])  # unlisted: a file no package owns
    doc = scan(DirectoryRoot(root), ScanOptions(jobs=1))
    validate(doc)
    assert [(d["manager"], d["path"], d["packages"]) for d in doc["databases"]] == \
        [("opkg", "/var/lib/opkg/status", grep_count("^Package:", YOCTO / "status"))]
    pk = {p["name"]: p for p in doc["packages"]}
    assert (pk["busybox-syslog"]["license_raw"], pk["busybox-syslog"]["license_spdx"],
            pk["busybox-syslog"]["license_status"]) == ("GPLv2 & bzip2", "GPL-2.0-only AND bzip2-1.0.6", "exact")
    assert (pk["opkg"]["license_spdx"], pk["opkg"]["epoch"]) == ("GPL-2.0-or-later", 1)
    assert pk["opkg"]["purl"].startswith("pkg:opkg/angstrom/opkg@1:0.1.8")
    assert {e["path"]: e["owner"] for e in doc["elves"]} == {"/bin/busybox.nosuid": None}
    assert doc["summary"]["unowned_elves"] == 1
    reports_render(doc, tmp_path / "reports")


def test_apk_and_opkg_reads_remembered_until_a_file_changes(tmp_path: Path, alpine_root: Path,
                                                            built_elves: dict[str, bytes]) -> None:
    """The scan cache keeps each read under the database's identity (opkg: also the files of
    ``info/``): an unchanged database is read from it, records equal; a changed ``.list`` or
    ``.control`` is read again."""
    from scanner.inventory.cache import ScanCache
    from scanner.inventory.readers import read_package_databases

    root = opkg_root(tmp_path / "openwrt", OPENWRT, "/usr/lib/opkg", built_elves)
    for fs, os_release, kind in ((DirectoryRoot(alpine_root), {"ID": "alpine"}, "apk"),
                                 (DirectoryRoot(root), {"ID": "openwrt"}, "opkg")):
        cache_file = tmp_path / f"{kind}.sqlite"
        cold = ScanCache(cache_file, "DirectoryRoot:t")
        first = read_package_databases(fs, os_release, "python", cold.memo)
        cold.commit()
        cold.close()
        assert [d.manager for d in first] == [kind] and first[0].packages
        warm = ScanCache(cache_file, "DirectoryRoot:t")
        assert read_package_databases(fs, os_release, "python", warm.memo) == first
        assert warm.memo.hits == {kind: 1}
    (root / "usr/lib/opkg/info/beep.list").write_text("/usr/bin/beep\n/usr/bin/beep2\n")
    warm = ScanCache(tmp_path / "opkg.sqlite", "DirectoryRoot:t")
    again = read_package_databases(DirectoryRoot(root), {"ID": "openwrt"}, "python", warm.memo)
    assert warm.memo.hits == {}
    assert {p.name: p.files for p in again[0].packages}["beep"] == ("/usr/bin/beep", "/usr/bin/beep2")


def test_relocated_apk_database_and_a_bounded_sample(tmp_path: Path, alpine_root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The real apk database with every folder below ``opt/alpine`` (as if installed with
    ``apk --root /opt/alpine`` and copied without it): the prefix is found, every file is owned
    as in the unmoved root; the lookups it costs stay within ``(1 + candidates) * sample``
    (each lookup an ``exists`` and, for a missing path, an ``is_symlink``)."""
    from scanner import limits
    from scanner.inventory import apk, relocation
    from scanner.inventory.packages import OwnershipIndex

    root = tmp_path / "root"
    shutil.copytree(alpine_root, root, symlinks=True)
    db_file = root / "lib/apk/db/installed"
    db_file.write_bytes(db_file.read_bytes().replace(b"\nF:", b"\nF:opt/alpine/"))

    class Counting(DirectoryRoot):
        lookups = 0

        def exists(self, path: str) -> bool:
            Counting.lookups += 1
            return super().exists(path)

    fs = Counting(root)
    db = apk.read_database(fs, {"ID": "alpine"})
    assert db is not None and all(f.startswith("/opt/alpine/") for p in db.packages for f in p.files if f != "/")
    monkeypatch.setattr(limits, "MAX_RELOCATION_SAMPLE", 50)
    Counting.lookups = 0
    reloc = relocation.detect(fs, db)
    assert reloc is not None and reloc.prefix == "/opt/alpine" and 40 <= reloc.sample <= 50 and reloc.present == 0
    assert reloc.found == reloc.under == reloc.sample
    assert Counting.lookups <= (1 + limits.MAX_RELOCATION_CANDIDATES) * 50
    [moved] = relocation.strip_prefixes(fs, [db])
    original = apk.read_database(DirectoryRoot(alpine_root), {"ID": "alpine"})
    assert original is not None and moved.packages == original.packages
    ids = {p.name: p.id for p in original.packages}
    index = OwnershipIndex(fs, [moved])
    for path, name in ALPINE_ELF.items():
        assert index.owner(path) == ids[name], path
    assert OwnershipIndex(fs, [db]).owner("/bin/busybox") is None  # as listed, nobody's


def test_hostile_databases_in_a_full_scan(tmp_path: Path, built_elves: dict[str, bytes]) -> None:
    """A FIFO where apk's database should be and binary garbage in opkg's status, in one root:
    the scan goes on (never blocks on the FIFO), each database is in the result with its error
    records, and the document validates."""
    import os
    import signal

    root = opkg_root(tmp_path / "root", OPENWRT, "/usr/lib/opkg", built_elves)
    status = root / "usr/lib/opkg/status"
    status.write_bytes(b"\x00\xff\xfe garbage\n\n" + status.read_bytes() + b"Package: cut")
    (root / "lib/apk/db").mkdir(parents=True)
    os.mkfifo(root / "lib/apk/db/installed")

    def stop(*_: object) -> None:
        raise TimeoutError("the scan blocked (opened a FIFO?)")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    try:
        doc = scan(DirectoryRoot(root), ScanOptions(jobs=1))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    validate(doc)
    dbs = {d["manager"]: d for d in doc["databases"]}
    assert (dbs["apk"]["path"], dbs["apk"]["packages"]) == ("/lib/apk/db/installed", 0)
    assert dbs["opkg"]["packages"] == grep_count("^Package:", OPENWRT / "status")
    errors = [(e["path"], e["message"]) for e in doc["errors"]]
    assert ("/lib/apk/db/installed", "not a regular file; not read") in errors
    assert any(p == "/usr/lib/opkg/status" and "is not a 'Field: value' line" in m for p, m in errors)
    assert any(p == "/usr/lib/opkg/status" and "cut short" in m for p, m in errors)
    assert doc["summary"]["unowned_elves"] == 0


def test_the_same_name_on_yocto_and_fedora(tmp_path: Path, built_elves: dict[str, bytes],
                                           rpmroot_result: dict[str, Any]) -> None:
    """Issue 18: "MIT" is SPDX's MIT on a Yocto root (its LICENSE values are SPDX-style) and
    one of a dozen licenses under Fedora's legacy umbrella name on an rpm root like Fedora."""
    root = opkg_root(tmp_path / "root", YOCTO, "/var/lib/opkg", built_elves)
    make_file(root, "/etc/os-release", b"ID=angstrom\nVERSION_ID=v2013.06\n")
    status = root / "var/lib/opkg/status"
    status.write_text(status.read_text().rstrip("\n") + "\n\nPackage: libmitthing\nVersion: 1.0-r0\n"
                      "Architecture: armv7a\nLicense: MIT\nStatus: install ok installed\n")
    doc = scan(DirectoryRoot(root), ScanOptions(jobs=1))
    yocto = {p["name"]: p for p in doc["packages"]}["libmitthing"]
    fedora = {p["name"]: p for p in rpmroot_result["packages"]}["suidapp"]  # License: MIT, on an ID_LIKE=fedora root
    assert (yocto["license_raw"], yocto["license_spdx"], yocto["license_status"]) == ("MIT", "MIT", "exact")
    assert (fedora["license_raw"], fedora["license_spdx"], fedora["license_status"]) == ("MIT", "MIT", "guess")
