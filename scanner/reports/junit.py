"""JUnit XML for CI systems (junitparser): one test suite per rule family, one test case
per rule and subject. A failing finding is a failure, an error an error, a waived or not
applicable one is skipped with the reason, a pass or informational result passes, and a
rule that produced nothing is one passing test case.

Subjects and messages may hold a target's names, and XML 1.0 cannot carry most control
characters (a JUnit file holding one cannot be parsed, by junitparser's own pretty-printer
or by the CI reading it). Every string of the document is written in its visible spelling
(:func:`scanner.textsafe.visible`: the same one the terminal shows), and before writing,
every attribute and text of the tree is passed through :func:`scanner.textsafe.xml`, so
nothing XML forbids is ever written, whatever field it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from scanner.textsafe import visible, visible_tree, xml


def to_junit(doc: dict[str, Any]) -> JUnitXml:
    findings = visible_tree(doc.get("findings", []))
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_rule.setdefault(f["rule"], []).append(f)
    # cases are gathered per suite and added at once: junitparser recounts a suite's
    # statistics on every add_testcase, quadratic in its size (20,000 packages took minutes)
    suites: dict[str, tuple[TestSuite, list[TestCase]]] = {}
    rules = {visible(r["id"]): visible_tree(r) for r in doc.get("rules", [])}
    for f_rule in by_rule:
        rules.setdefault(f_rule, {"id": f_rule, "family": "flightcheck", "title": f_rule, "enabled": True})
    for rid, rule in rules.items():
        if not rule.get("enabled", True):
            continue
        family = rule["family"]
        cases = suites.setdefault(family, (TestSuite(f"flightcheck.{family}"), []))[1]
        found = by_rule.get(rid, [])
        if not found:
            cases.append(TestCase(f"{rid}: no findings", classname=f"flightcheck.{rid}"))
            continue
        for f in found:
            case = TestCase(f"{rid}: {f['subject']}", classname=f"flightcheck.{rid}")
            if f["state"] == "waived":
                case.result = [Skipped(f"waived: {f['waiver']['reason']}")]
            elif f["state"] == "notapplicable":
                case.result = [Skipped(f"not applicable: {f['message']}")]
            elif f["state"] == "error":
                case.result = [Error(f["message"], "error")]
            elif f["state"] in ("pass", "informational"):
                case.system_out = f["message"]
            else:
                failure = Failure(f["message"], f"{f['severity']}")
                failure.text = f"rule: {rid} ({rule.get('title', '')})\nseverity: {f['severity']}\nsubject: {f['subject']}"
                case.result = [failure]
            cases.append(case)
    xml_doc = JUnitXml("flightcheck")
    for suite, cases in suites.values():
        suite.add_testcases(cases)
        xml_doc.add_testsuite(suite)
    _xml_safe(xml_doc)
    return xml_doc


def _xml_safe(xml_doc: JUnitXml) -> None:
    """Replace, in place, whatever XML 1.0 forbids in any attribute or text of the tree."""
    for elem in xml_doc._elem.iter():
        for key, value in elem.attrib.items():
            elem.set(key, xml(value))
        if elem.text:
            elem.text = xml(elem.text)
        if elem.tail:
            elem.tail = xml(elem.tail)


def write(doc: dict[str, Any], dest: Path) -> None:
    to_junit(doc).write(str(dest), pretty=True)
