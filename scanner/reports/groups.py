"""Findings grouped the way an auditor reads them: by rule, then by what they are about (a
tree of unowned files, a package, or the subject itself), the worst first.

A host with 2,343 unowned files has one FC-INV-001 group per tree ("836 files under
/root/.pyenv"), not 2,343 rows. The same grouping is used by the terminal summary, the
HTML and PDF report and JUnit (one test case per rule and group), so every output counts
the same way.

Member keys, in order: the finding's unowned ``tree`` (its evidence); the package that owns
the file it names, or the package it names; else its own subject.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.findings import FAILING_STATES, SEV_RANK

#: the order of states within a group: what fails first
STATE_ORDER = ("error", "fail", "waived", "informational", "pass", "notapplicable")


@dataclass
class Group:
    """Findings of one rule about one thing."""

    kind: str  # tree | package | subject
    key: str
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``836 files under /root/.pyenv``, ``3 findings of package X``, or the subject."""
        n = len(self.findings)
        if n == 1:
            return str(self.findings[0]["subject"])
        if self.kind == "tree":
            return f"{n} files under {self.key}"
        if self.kind == "package":
            return f"{n} findings of package {self.key}"
        return f"{n} findings about {self.key}"

    @property
    def state(self) -> str:
        """The group's state: its most failing member's."""
        rank = {s: i for i, s in enumerate(STATE_ORDER)}
        return min((str(f["state"]) for f in self.findings), key=lambda s: rank.get(s, len(rank)))

    @property
    def severity(self) -> str:
        return max((str(f["severity"]) for f in self.findings), key=SEV_RANK.__getitem__)

    @property
    def failing(self) -> int:
        return sum(1 for f in self.findings if f["state"] in FAILING_STATES)


@dataclass
class RuleGroup:
    """One rule's findings, in groups."""

    rule: str
    title: str
    groups: list[Group]

    @property
    def findings(self) -> int:
        return sum(len(g.findings) for g in self.groups)

    @property
    def failing(self) -> int:
        return sum(g.failing for g in self.groups)

    @property
    def severity(self) -> str:
        return max((g.severity for g in self.groups), key=SEV_RANK.__getitem__)

    @property
    def states(self) -> dict[str, int]:
        return dict(Counter(f["state"] for g in self.groups for f in g.findings))


def _member_key(f: Mapping[str, Any], owners: Mapping[str, str | None], packages: Mapping[str, str]) -> tuple[str, str]:
    tree = (f.get("evidence") or {}).get("tree")
    if isinstance(tree, str) and tree:
        return "tree", tree
    subject = str(f["subject"])
    owner = owners.get(subject)
    if owner:
        return "package", packages.get(owner, owner)
    if subject in packages:
        return "package", packages[subject]
    return "subject", subject


def group_findings(doc: Mapping[str, Any]) -> list[RuleGroup]:
    """Every finding of the document in rule groups: rules with failing findings first (the
    worst severity, then the most failing), then the others; within a rule, failing groups
    first, then the largest."""
    owners = {e["path"]: e.get("owner") for e in doc.get("elves", [])}
    packages = {p["id"]: p["name"] for p in doc.get("packages", [])}
    titles = {r["id"]: r.get("title", "") for r in doc.get("rules", [])}
    by_rule: dict[str, dict[tuple[str, str], Group]] = {}
    for f in doc.get("findings", []):
        kind, key = _member_key(f, owners, packages)
        by_rule.setdefault(f["rule"], {}).setdefault((kind, key), Group(kind, key)).findings.append(f)
    out = []
    for rule, groups in by_rule.items():
        ordered = sorted(groups.values(), key=lambda g: (-g.failing, -SEV_RANK[g.severity], -len(g.findings), g.key))
        out.append(RuleGroup(rule, titles.get(rule, rule), ordered))
    out.sort(key=lambda r: (r.failing == 0, -SEV_RANK[r.severity] if r.failing else 0, -r.failing, r.rule))
    return out
