"""``flightcheck history report TARGET``: one target over time, from a real SQLite history of
three scans of a copy of the fixture rpm root (an unowned program added between the first
and the second scan). pdfinfo and pdftotext read the PDF."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def flightcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=300)


def test_history_report_of_three_scans(rpmroot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(rpmroot, root, symlinks=True)
    db = tmp_path / "history.sqlite"
    for i in range(3):
        if i == 1:  # an unowned program appears: FC-INV-001 grows by one
            shutil.copy(root / "usr/bin/hello", root / "usr/local/bin/newcomer")
        r = flightcheck("scan", str(root), "-o", str(tmp_path / f"o{i}"), "-q", "--history", str(db))
        assert r.returncode in (0, 1), r.stderr
    r = flightcheck("history", "report", str(root), "--history", str(db), "-o", str(tmp_path / "rep"),
                    "--format", "html,pdf")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "rep/history.html").read_text()
    assert page.count("<tr><td>") == 3  # one row per stored scan
    assert page.count("<polyline") == 4 + 7  # four severities, seven license categories
    assert "What changed between the last two scans" in page and "scan 2" in page and "scan 3" in page
    assert not re.search(r"(src|href)=\"https?:", page) and "Content-Security-Policy" in page
    medium = re.findall(r"medium (\d+)</text>", page)
    assert medium, "the severity chart labels its last value"
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(tmp_path / "rep/history.pdf")], capture_output=True, text=True).stdout
        assert int(re.search(r"Pages:\s+(\d+)", info).group(1)) >= 1  # type: ignore[union-attr]
        text = subprocess.run(["pdftotext", str(tmp_path / "rep/history.pdf"), "-"], capture_output=True,
                              text=True).stdout
        assert "flightcheck history" in text
    else:
        pytest.fail("pdfinfo is missing (make installs poppler-utils)")
    missing = flightcheck("history", "report", "/nowhere", "--history", str(db), "-o", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no stored scan" in missing.stderr
