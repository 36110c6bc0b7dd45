"""Findings grouped by rule, then by unowned tree, package or subject
(scanner/reports/groups.py), and JUnit's one test case per rule and group."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from junitparser import Failure, JUnitXml

from scanner.reports.groups import group_findings
from scanner.reports.junit import write as write_junit


def big_doc(trees: dict[str, int], packages: int) -> dict[str, Any]:
    """A result with many unowned files in a few trees and one guessed license per package."""
    elves, findings = [], []
    for top, n in trees.items():
        for i in range(n):
            path = f"{top}/lib/python/mod{i}.so"
            elves.append({"path": path, "owner": None, "tree": top})
            findings.append({"rule": "FC-INV-001", "severity": "medium", "state": "fail", "subject": path,
                             "title": "unowned", "message": f"{path} belongs to no package", "evidence":
                             {"path": path, "tree": top}, "waiver": None})
    pkgs = [{"id": f"deb/p{i}_1_amd64", "name": f"p{i}"} for i in range(packages)]
    findings += [{"rule": "FC-LIC-005", "severity": "low", "state": "fail", "subject": p["id"], "title": "guess",
                  "message": "a guess", "evidence": {}, "waiver": None} for p in pkgs]
    findings.append({"rule": "FC-BOOT-001", "severity": "high", "state": "error", "subject": "boot",
                     "title": "password", "message": "cannot be read", "evidence": {}, "waiver": None})
    rules = [{"id": r, "family": f, "title": r, "enabled": True}
             for r, f in (("FC-INV-001", "inventory"), ("FC-LIC-005", "licenses"), ("FC-BOOT-001", "boot"))]
    return {"elves": elves, "packages": pkgs, "findings": findings, "rules": rules}


def test_unowned_files_are_one_group_per_tree(tmp_path: Path) -> None:
    doc = big_doc({"/root/.pyenv": 836, "/root/.rustup": 400, "/opt/tf": 7}, packages=20)
    groups = {r.rule: r for r in group_findings(doc)}
    # the worst first: the high error, then the medium tree groups, then the low guesses
    assert [r.rule for r in group_findings(doc)] == ["FC-BOOT-001", "FC-INV-001", "FC-LIC-005"]
    inv = groups["FC-INV-001"]
    assert [(g.label, g.failing) for g in inv.groups] == [("836 files under /root/.pyenv", 836),
                                                         ("400 files under /root/.rustup", 400),
                                                         ("7 files under /opt/tf", 7)]
    assert len(groups["FC-LIC-005"].groups) == 20  # one package each
    write_junit(doc, tmp_path / "junit.xml")
    cases = [c for suite in JUnitXml.fromfile(str(tmp_path / "junit.xml")) for c in suite]
    assert len(cases) == 3 + 20 + 1
    tree_case = next(c for c in cases if c.name == "FC-INV-001: 836 files under /root/.pyenv")
    (failure,) = [r for r in tree_case.result if isinstance(r, Failure)]
    assert failure.text.count("\n  fail: /root/.pyenv/") == 200 and "636 more in result.json" in failure.text


def test_thirty_thousand_findings_group_in_linear_time(tmp_path: Path) -> None:
    doc = big_doc({f"/srv/app{i}": 100 for i in range(250)}, packages=5000)
    t0 = time.monotonic()
    grouped = group_findings(doc)
    write_junit(doc, tmp_path / "junit.xml")
    assert time.monotonic() - t0 < 20
    assert sum(r.findings for r in grouped) == len(doc["findings"]) == 30_001
