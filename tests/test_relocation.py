"""Relocated rpm roots (issue 17, item 2): an SDK installed with ``rpm --prefix`` and
``rpm --badreloc --relocate`` below ``/opt/sdk``, then copied without it
(``fixtures/build_relocated.py``), is owned in full, and the result names the prefix removed;
roots whose paths are where their database says, or simply missing, get no prefix.

The oracle for ownership is rpm itself: ``rpm --root INSTALLED -qf /opt/sdk/PATH`` on the SDK as
rpm installed it, for every ELF file of the copy.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CACHE, load_builder, scan_root
from test_opkg_apk import OPENWRT, OPKG_ELF, opkg_root

from scanner.inventory import opkg
from scanner.inventory.relocation import detect
from scanner.result import validate
from scanner.target import DirectoryRoot

PREFIX = "/opt/sdk"


@pytest.fixture(scope="module")
def relocated() -> Path:
    return load_builder("build_relocated").build_relocated(CACHE)  # type: ignore[no-any-return]


def rpm_owner(installed: Path, path: str) -> str:
    """The package rpm itself says owns ``path`` in the SDK as it installed it."""
    r = subprocess.run(["rpm", "--root", str(installed), "--dbpath", "/var/lib/rpm", "-qf", "--qf", "%{NAME}",
                        PREFIX + path], capture_output=True, text=True, check=True)
    return r.stdout


@pytest.mark.parametrize("reader", ["librpm", "python"])
def test_relocated_root_is_owned_in_full(relocated: Path, reader: str) -> None:
    if reader == "librpm":
        pytest.importorskip("rpm", reason="librpm's Python bindings (python3-rpm) are not installed")
    listed = subprocess.run(["rpm", "--root", str(relocated / "root"), "--dbpath", "/var/lib/rpm", "-qa", "--qf",
                             "[%{FILENAMES}\n]"], capture_output=True, text=True, check=True).stdout.split()
    # every path the database lists is below the prefix, which the copy does not have: as listed,
    # not one file would be owned
    assert listed and all(p.startswith(PREFIX + "/") for p in listed) and not (relocated / "root/opt").exists()
    doc = scan_root(relocated / "root", rpm_reader=reader)
    validate(doc)
    [db] = doc["databases"]
    assert (db["manager"], db["packages"], db["prefix_stripped"]) == ("rpm", 4, PREFIX)
    assert db["prefix_note"].startswith(f"the database lists its files below {PREFIX}, which this target does not "
                                        "have: 0 of ")
    elves = {e["path"]: e for e in doc["elves"]}
    assert set(elves) == {"/usr/bin/hello", "/usr/bin/sdk-hello", "/usr/lib64/libsdk.so.1.0",
                          "/usr/lib64/libgreet.so.1.0.0", "/usr/lib64/libc.so.6", "/usr/lib64/ld-linux-x86-64.so.2"}
    names = {p["id"]: p["name"] for p in doc["packages"]}
    for path, e in elves.items():
        assert e["owner"] is not None, path
        assert names[e["owner"]] == rpm_owner(relocated / "installed", path), path
    assert doc["summary"]["unowned_elves"] == 0
    # ownership feeds licensing and linkage as for any root: sdk-hello's library is its own package's
    linked = {r["soname"]: r for r in elves["/usr/bin/sdk-hello"]["linked_licenses"]}
    assert linked["libsdk.so.1"]["package"] == elves["/usr/bin/sdk-hello"]["owner"]
    assert linked["libsdk.so.1"]["license"] == "MIT"


def test_root_as_rpm_installed_it_gets_no_prefix(relocated: Path) -> None:
    doc = scan_root(relocated / "installed")
    [db] = doc["databases"]
    assert "prefix_stripped" not in db and "prefix_note" not in db
    assert {e["path"] for e in doc["elves"] if e["owner"] is None} == set()
    assert all(e["path"].startswith(PREFIX + "/") for e in doc["elves"])


def test_normal_root_gets_no_prefix(rpmroot_result: dict[str, Any]) -> None:
    assert rpmroot_result["databases"] and all("prefix_stripped" not in db for db in rpmroot_result["databases"])


def test_database_whose_files_are_not_there_gets_no_prefix(relocated: Path, tmp_path: Path) -> None:
    """Only the database of the relocated SDK, none of its files: nothing exists with or
    without a prefix, so none is taken (its files are nobody's, as they are)."""
    root = tmp_path / "root"
    shutil.copytree(relocated / "root/var", root / "var", symlinks=True)
    shutil.copytree(relocated / "root/etc", root / "etc", symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(relocated / "root/usr/bin/hello", root / "usr/bin/other")  # an ELF file the database lacks
    doc = scan_root(root)
    [db] = doc["databases"]
    assert "prefix_stripped" not in db
    assert [(e["path"], e["owner"]) for e in doc["elves"]] == [("/usr/bin/other", None)]


def test_root_missing_most_files_gets_no_prefix(tmp_path: Path) -> None:
    """A real OpenWrt database in a root that lacks most of its files (only the ELF files
    left: a stripped image): most paths are missing, but no leading folder removed finds them."""
    elf = subprocess.run(["gcc", "-x", "c", "-o", str(tmp_path / "a"), "-"], input="int main(void){return 0;}",
                         text=True, check=True)
    assert elf.returncode == 0
    exe = (tmp_path / "a").read_bytes()
    root = opkg_root(tmp_path / "root", OPENWRT, "/usr/lib/opkg", {"exe": exe, "so": exe, "ko": exe})
    for f in sorted(root.rglob("*"), reverse=True):
        rel = "/" + str(f.relative_to(root))
        if f.is_file() and rel not in OPKG_ELF and not rel.startswith("/usr/lib/opkg"):
            f.unlink()
    fs = DirectoryRoot(root)
    db = opkg.read_database(fs, {})
    assert db is not None and sum(len(p.files) for p in db.packages) > 100
    assert detect(fs, db) is None


def test_cli_says_the_prefix_was_stripped(relocated: Path, tmp_path: Path) -> None:
    import sys

    r = subprocess.run([sys.executable, "-m", "scanner", "scan", str(relocated / "root"), "-o", str(tmp_path),
                        "-j", "1"], capture_output=True, text=True, check=False, env={"COLUMNS": "300",
                                                                                      "PATH": "/usr/bin:/bin"})
    assert r.returncode in (0, 1), r.stderr
    assert "install prefix /opt/sdk stripped: the database lists its files below /opt/sdk" in r.stdout
