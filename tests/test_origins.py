"""Origins of ELF files no system package database owns (scanner/inventory/origins/), on a
root built here (fixtures/build_origins.py): a real virtualenv with wheels made here, a Go
program, a Rust program with cargo-auditable data, a C program stamped with systemd's
package note, and files nothing explains. The oracles are the tools that made them: pip's
own ``pip show -f``, ``go version -m``, ``readelf -n``."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import CACHE, by_path, load_builder, scan_root

from scanner import result as resultmod


@pytest.fixture(scope="module")
def origins() -> Path:
    builder = load_builder("build_origins")
    missing = builder.tools_missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} to build the origins root (make setup installs them)")
    return Path(builder.build_origins_root(CACHE))


@pytest.fixture(scope="module")
def doc(origins: Path) -> dict[str, Any]:
    result = scan_root(origins / "root")
    resultmod.validate(result)
    return result


def _packages(doc: dict[str, Any], manager: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["packages"] if p["manager"] == manager}


def _pip_show(text: str) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (version, location, files) from ``pip show -f`` output."""
    out: dict[str, tuple[str, str, list[str]]] = {}
    for block in text.split("\n---\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", block, re.M))
        files = [line.strip() for line in block.split("Files:\n", 1)[-1].splitlines() if line.startswith("  ")]
        out[fields["Name"]] = (fields["Version"], fields["Location"], files)
    return out


def test_wheels_own_exactly_the_files_pip_lists(origins: Path, doc: dict[str, Any]) -> None:
    shown = _pip_show((origins / "pip-show.txt").read_text())
    assert set(shown) == {"fcspeed", "fclegacy"}
    elves = by_path(doc)
    python = _packages(doc, "python")
    for name, (version, location, files) in shown.items():
        pkg = python[name]
        assert pkg["version"] == version and pkg["purl"] == f"pkg:pypi/{name.lower()}@{version}"
        # the virtualenv was made in the fixture's build folder: its guest path starts at /opt
        guest = "/opt/" + location.split("/root/opt/", 1)[1]
        listed = {f"{guest}/{f}" for f in files if f.endswith(".so")}
        assert listed, name  # each wheel has an extension module
        owned = {path for path, e in elves.items() if e["owner"] == pkg["id"]}
        assert owned == listed
        for path in owned:
            assert elves[path]["license"] == pkg["license_spdx"]
    # the license as each declares it: an SPDX expression (core metadata 2.4), a shipped text
    assert (python["fcspeed"]["license_spdx"], python["fcspeed"]["license_source"]) == \
        ("MIT OR Apache-2.0", "python-license-expression")
    # its classifier "BSD License" names no BSD variant; the license text it ships does
    assert (python["fclegacy"]["license_spdx"], python["fclegacy"]["license_source"]) == \
        ("BSD-2-Clause", "python-license-file")
    assert python["fclegacy"]["license_status"] == "guess"  # read from free text: said so, never exact
    # the library auditwheel-style bundling put beside the extension is the wheel's too
    assert elves["/opt/app/venv/lib/python3.11/site-packages/fclegacy.libs/libfcdep-1a2b3c.so"]["owner"] == \
        python["fclegacy"]["id"]
    site = [db for db in doc["databases"] if db["manager"] == "python"]
    assert [db["path"] for db in site] == ["/opt/app/venv/lib/python3.11/site-packages"]
    # pip and setuptools, installed by venv itself, are distributions of the site too
    assert {"pip", "setuptools"} <= set(python)


def test_go_modules_are_what_go_version_m_lists(origins: Path, doc: dict[str, Any]) -> None:
    exe = origins / "root/opt/go/bin/hello"
    listed = subprocess.run(["go", "version", "-m", str(exe)], capture_output=True, text=True, check=True).stdout
    rows = [line.strip().split("\t") for line in listed.splitlines()]
    mods = [row[1:3] for row in rows if row[0] in ("mod", "dep")]
    assert mods and mods[0][0] == "example.com/hello"
    golang = _packages(doc, "golang")
    assert {(p["name"], p["version"]) for p in golang.values()} == {(m[0], m[1]) for m in mods}
    main, dep = golang["example.com/hello"], golang["example.com/greet"]
    assert by_path(doc)["/opt/go/bin/hello"]["owner"] == main["id"] and main["files"] == 1
    assert dep["files"] == 0 and dep["purl"] == "pkg:golang/example.com/greet@v1.2.3"
    assert dep["source"].startswith("../greet")  # the replace directive, kept
    (db,) = [d for d in doc["databases"] if d["manager"] == "golang"]
    assert db == {"manager": "golang", "path": "/opt/go/bin/hello", "backend": "go-buildinfo", "reader": "python",
                  "packages": 2}


def test_cargo_auditable_data_names_the_crates(doc: dict[str, Any]) -> None:
    cargo = _packages(doc, "cargo")
    assert set(cargo) == {"hello-rs", "itoa"}
    assert by_path(doc)["/opt/rust/bin/hello-rs"]["owner"] == cargo["hello-rs"]["id"]
    assert cargo["itoa"]["purl"] == "pkg:cargo/itoa@1.0.9" and cargo["itoa"]["source"] == "crates.io"
    assert cargo["itoa"]["files"] == 0


def test_package_note_is_read_as_readelf_shows_it(origins: Path, doc: dict[str, Any]) -> None:
    exe = origins / "root/opt/stamped/bin/stamped"
    notes = subprocess.run(["readelf", "-n", str(exe)], capture_output=True, text=True, check=True).stdout
    assert '"name":"stamped"' in notes  # the linker wrote it
    (pkg,) = _packages(doc, "elf-note").values()
    assert (pkg["name"], pkg["version"], pkg["arch"]) == ("stamped", "2.1-3.fc40", "x86_64")
    assert pkg["purl"] == "pkg:rpm/stamped@2.1-3.fc40?arch=x86_64"
    assert by_path(doc)["/opt/stamped/bin/stamped"]["owner"] == pkg["id"]


def test_what_nothing_explains_is_grouped_in_trees(doc: dict[str, Any]) -> None:
    trees = {t["top"]: t["files"] for t in doc["unowned_trees"]}
    assert trees == {"/root/.pyenv": 2, "/opt/vendor": 1, "/usr/local": 1}
    assert doc["summary"]["unowned_elves"] == 4 and doc["summary"]["unowned_trees"] == 3
    inv = {f["subject"]: f for f in doc["findings"] if f["rule"] == "FC-INV-001"}
    assert set(inv) == {"/root/.pyenv/versions/9.9.9/bin/python9", "/root/.pyenv/versions/9.9.9/lib/libpython9.so",
                        "/opt/vendor/lib/libvendor.so", "/usr/local/bin/unexplained"}
    assert inv["/opt/vendor/lib/libvendor.so"]["evidence"]["tree"] == "/opt/vendor"
    assert "unowned tree /root/.pyenv" in inv["/root/.pyenv/versions/9.9.9/bin/python9"]["message"]


def _patch(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1, old
    path.write_bytes(data.replace(old, new.ljust(len(old), b" ")[: len(old)]))


def test_hostile_origins_are_error_records(origins: Path, tmp_path: Path) -> None:
    """Broken notes, build info, crate data and distribution metadata: each an error record
    naming the file, the rest read, nothing read outside the root."""
    root = tmp_path / "root"
    shutil.copytree(origins / "root", root, symlinks=True)
    _patch(root / "opt/stamped/bin/stamped", b'{"type":"rpm"', b'{"type":\xff\xfe')  # not JSON
    go = root / "opt/go/bin/hello"
    data = go.read_bytes()
    at = data.index(b"\xff Go buildinf:") + 32
    go.write_bytes(data[:at] + b"\xff" * 10 + data[at + 10:])  # a length past the section
    bomb = tmp_path / "bomb"
    bomb.write_bytes(zlib.compress(b"\0" * (64 << 20), 9))  # inflates past MAX_ORIGIN_SECTION_BYTES
    rust = root / "opt/rust/bin/hello-rs"
    subprocess.run(["objcopy", "--update-section", f".dep-v0={bomb}", str(rust)], check=True)
    site = root / "opt/app/venv/lib/python3.11/site-packages"
    meta = next(site.glob("fcspeed-*.dist-info")) / "METADATA"
    meta.unlink()
    meta.symlink_to("/etc/passwd")  # absolute: inside the root it leads nowhere
    mk = next(site.glob("fclegacy-*.dist-info")) / "METADATA"
    mk.write_bytes(b"Name: fclegacy\nVersion: 0.9\nLicense: " + b"x" * (5 << 20))  # over the cap

    record = next(site.glob("pip-*.dist-info")) / "RECORD"  # a field past csv's limit, and paths too long
    record.write_text(record.read_text() + "x" * 5000 + ",,\n" + "y" * 200_000 + ",,\n")

    doc = scan_root(root)
    resultmod.validate(doc)
    errors = {e["path"]: e["message"] for e in doc["errors"] if e["stage"] == "inventory"}
    assert "1 paths left out" in errors[str(record).removeprefix(str(root))]
    assert "stops parsing" in errors[str(record).removeprefix(str(root))]
    assert "/opt/stamped/bin/stamped" in errors
    assert "/opt/go/bin/hello" in errors
    assert "MAX_ORIGIN_SECTION_BYTES" in errors["/opt/rust/bin/hello-rs"]
    assert any(p.endswith("fcspeed-1.0.dist-info") for p in errors)
    assert any(p.endswith("fclegacy-0.9.dist-info") and "MAX_PYTHON_METADATA_BYTES" in m
               for p, m in errors.items())
    assert not any("root:" in (p.get("license_raw") or "") for p in doc["packages"])  # /etc/passwd not read
    python = _packages(doc, "python")
    assert {"pip", "setuptools"} <= set(python) and "fcspeed" not in python  # the rest of the site is read
    assert python["pip"]["files"] > 900  # what its RECORD listed before the broken lines
    # what could not be explained is unowned, never owned by a guess
    elves = by_path(doc)
    for path in ("/opt/stamped/bin/stamped", "/opt/go/bin/hello", "/opt/rust/bin/hello-rs"):
        assert elves[path]["owner"] is None and elves[path]["tree"]
    (err,) = [f for f in doc["findings"] if f["rule"] == "FC-ERR-001" and f["subject"] == "inventory"]
    assert err["state"] == "error"  # the unread origins reach the gate, failing at the rule's severity


def test_declared_license_precedence() -> None:
    """License-Expression, then the shipped license text, then License, then classifiers
    (through the table: the SPDX id where the classifier names one version, else the
    umbrella name)."""
    from scanner.inventory.origins.python import Declared, declared_license

    bsd2 = (Path(__file__).parent.parent / "fixtures/origins/python/LICENSE.fclegacy").read_text()
    gpl = ["License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)"]
    assert declared_license("MIT", "BSD", gpl, [bsd2]) == Declared("MIT", "python-license-expression")
    assert declared_license(None, "BSD", gpl, [bsd2]) == Declared("BSD-2-clause", "python-license-file")
    assert declared_license(None, "BSD", gpl, ["no license text here"]) == Declared("BSD", "python-license")
    assert declared_license(None, "UNKNOWN", gpl, []) == Declared("GPL-2.0-or-later", "python-classifier")
    assert declared_license(None, "x" * 300, ["License :: OSI Approved :: BSD License"], []) == \
        Declared("BSD", "python-classifier")
    assert declared_license(None, None, [], []) == Declared(None, "none")

