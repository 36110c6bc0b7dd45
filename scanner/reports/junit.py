"""JUnit XML for CI systems (junitparser): one test suite per rule family, one test case
per rule and group of findings (:mod:`scanner.reports.groups`: a tree of unowned files, a
package, or one subject), so a host with 2,343 unowned files has a case per tree, not per
file. A group's result is its most failing member's: an error is an error, a failing
finding a failure (its text lists the members), a waived or not applicable one is skipped
with the reason, a pass or informational result passes, and a rule that produced nothing
is one passing test case.

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

from scanner.reports.groups import Group, group_findings
from scanner.textsafe import visible, visible_tree, xml

#: members listed in one test case's text (the rest are counted)
MAX_MEMBERS = 200


def to_junit(doc: dict[str, Any]) -> JUnitXml:
    # the grouping is computed on the visible spelling, as every name below is shown
    groups = {r.rule: r for r in group_findings(visible_tree(doc))}
    # cases are gathered per suite and added at once: junitparser recounts a suite's
    # statistics on every add_testcase, quadratic in its size (20,000 packages took minutes)
    suites: dict[str, tuple[TestSuite, list[TestCase]]] = {}
    rules = {visible(r["id"]): visible_tree(r) for r in doc.get("rules", [])}
    for f_rule in groups:
        rules.setdefault(f_rule, {"id": f_rule, "family": "flightcheck", "title": f_rule, "enabled": True})
    for rid, rule in rules.items():
        if not rule.get("enabled", True):
            continue
        family = rule["family"]
        cases = suites.setdefault(family, (TestSuite(f"flightcheck.{family}"), []))[1]
        found = groups.get(rid)
        if found is None:
            cases.append(TestCase(f"{rid}: no findings", classname=f"flightcheck.{rid}"))
            continue
        cases += [_case(rid, rule, g) for g in found.groups]
    xml_doc = JUnitXml("flightcheck")
    for suite, cases in suites.values():
        suite.add_testcases(cases)
        xml_doc.add_testsuite(suite)
    _xml_safe(xml_doc)
    return xml_doc


def _case(rid: str, rule: dict[str, Any], group: Group) -> TestCase:
    """One test case per rule and group (a tree of unowned files, a package, a subject):
    its result is its most failing member's, and its text lists the members."""
    case = TestCase(f"{rid}: {group.label}", classname=f"flightcheck.{rid}")
    first = group.findings[0]
    lead = [f for f in group.findings if f["state"] == group.state][0]
    members = "".join(f"\n  {f['state']}: {f['subject']}" for f in group.findings[:MAX_MEMBERS])
    if len(group.findings) > MAX_MEMBERS:
        members += f"\n  ... {len(group.findings) - MAX_MEMBERS} more in result.json"
    if group.state == "waived":
        case.result = [Skipped(f"waived: {first['waiver']['reason']}" if len(group.findings) == 1 and first["waiver"]
                               else f"waived: {len(group.findings)} findings")]
    elif group.state == "notapplicable":
        case.result = [Skipped(f"not applicable: {first['message']}")]
    elif group.state == "error":
        case.result = [Error(lead["message"], "error")]
    elif group.state in ("pass", "informational"):
        case.system_out = first["message"] if len(group.findings) == 1 else f"{group.label}:{members}"
    else:
        failure = Failure(lead["message"] if len(group.findings) == 1 else f"{group.label}: {lead['message']}",
                          group.severity)
        failure.text = (f"rule: {rid} ({rule.get('title', '')})\nseverity: {group.severity}\n"
                        + (f"subject: {first['subject']}" if len(group.findings) == 1 else f"members:{members}"))
        case.result = [failure]
    return case


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
