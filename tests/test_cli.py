"""The flightcheck command: exit codes, one-line errors, the summary, result.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scanner import result as resultmod


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True)


def test_scan_writes_a_valid_result_and_a_summary(rpmroot: Path, tmp_path: Path) -> None:
    r = run("scan", str(rpmroot), "-o", str(tmp_path / "out"), "--jobs", "2")
    assert r.returncode == 1, r.stderr  # the fixture's proprietary app links a GPL library
    assert "verdict: FAIL" in r.stdout
    doc = json.loads((tmp_path / "out/result.json").read_text())
    resultmod.validate(doc)
    assert doc["scan"]["options"]["jobs"] == 2
    for label in ("files examined", "ELF files", "executables", "libraries", "unresolved sonames", "errors", "time"):
        assert label in r.stdout
    assert "libmissing.so.1" in r.stdout  # unresolved sonames are named


def test_parallel_and_serial_scans_agree(rpmroot: Path, tmp_path: Path) -> None:
    a = run("scan", str(rpmroot), "-o", str(tmp_path / "a"), "-j", "1", "-q")
    b = run("scan", str(rpmroot), "-o", str(tmp_path / "b"), "-j", "2", "-q")
    assert a.returncode == b.returncode == 1
    da = json.loads((tmp_path / "a/result.json").read_text())
    db = json.loads((tmp_path / "b/result.json").read_text())
    assert da["elves"] == db["elves"] and da["errors"] == db["errors"]


def test_missing_root_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = run("scan", str(tmp_path / "nope"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "cannot read root" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_debug_prints_the_trace(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    r = run("scan", str(tmp_path / "afile"), "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr and "not a directory" in r.stderr


def test_exclude(rpmroot: Path, tmp_path: Path) -> None:
    r = run("scan", str(rpmroot), "-o", str(tmp_path), "-q", "--exclude", "/opt/*")
    assert r.returncode == 0  # without /opt, the proprietary app is not there to fail the gate
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["elves"] and not any(e["path"].startswith("/opt/") for e in doc["elves"])


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("flightcheck, version")
    h = run("scan", "--help").stdout
    for opt in ("--output", "--jobs", "--cross-mounts", "--exclude", "--debug", "--policy", "--waivers",
                "--fail-on", "--format", "--rpm-reader", "--no-packages", "--path"):
        assert opt in h


def test_no_licenses_keeps_ownership(rpmroot: Path, tmp_path: Path) -> None:
    r = run("scan", str(rpmroot), "-o", str(tmp_path), "-q", "--no-licenses")
    doc = json.loads((tmp_path / "result.json").read_text())
    assert r.returncode == 0  # nothing license-related can fail
    assert doc["summary"]["packages"] == 12 and doc["summary"]["unowned_elves"] == 1
    assert all(p["license_spdx"] is None for p in doc["packages"])
    assert not [f for f in doc["findings"] if f["rule"].startswith("FC-LIC")]
