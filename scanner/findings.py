"""The values that pass from the checks stage to the result: rules, waivers, the policy,
findings, and the judgement of one target (:class:`Judgement`: the rules run, their findings
and the verdict against ``--fail-on``).

This module imports nothing of flightcheck: the checks engine (``scanner.checks``) produces
these values and the result document (``scanner.result``) and the reports read them, so
neither of those imports the other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FAIL_ON = ("low", "medium", "high", "critical", "never")
#: the kinds of target a rule may apply to (``applies_to`` in its TOML)
TARGET_KINDS = ("directory", "image", "domain", "repository")
#: a rule without ``applies_to`` judges systems: a repository has no ELF files, /boot or /etc
DEFAULT_APPLIES_TO = ("directory", "image", "domain")


@dataclass(frozen=True)
class Rule:
    id: str
    check: str
    title: str
    severity: str
    family: str
    rationale: str = ""
    fix: str = ""
    references: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    applies_to: tuple[str, ...] = DEFAULT_APPLIES_TO


@dataclass(frozen=True)
class Waiver:
    rule: str
    subject: str  # glob
    reason: str
    expires: dt.date | None
    source: str

    def matches(self, rule: str, subject: str) -> bool:
        return fnmatchcase(rule, self.rule) and fnmatchcase(subject, self.subject)

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and self.expires < today


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    state: str  # fail | waived | pass | notapplicable | error | informational
    subject: str
    message: str
    evidence: dict[str, Any]
    title: str = ""
    references: dict[str, Any] = field(default_factory=dict)
    waiver: dict[str, str] | None = None

    @property
    def id(self) -> str:
        return hashlib.sha1(f"{self.rule}\0{self.subject}".encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass(frozen=True)
class Policy:
    """What the organisation allows: license lists (SPDX id globs), rule overrides, extra
    license names, and where it was read from."""

    deny: tuple[str, ...] = ()
    review: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    network_copyleft: tuple[str, ...] = ("AGPL-*", "SSPL-*")
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: dict[str, Any] = field(default_factory=dict)
    exceptions: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()


STATES = ("fail", "waived", "pass", "notapplicable", "error", "informational")
#: the states that count against the verdict and in every report's failing counts: an
#: ``error`` is a rule that could not be judged, and what could not be judged may be failing
FAILING_STATES = frozenset({"fail", "error"})


@dataclass(frozen=True)
class Outcome:
    """A check's result with an explicit state (a plain ``(subject, message, evidence)``
    tuple means ``fail``). System checks say ``pass`` and ``notapplicable`` too, so an
    auditor sees what was checked, not only what failed."""

    state: str  # fail | pass | notapplicable | error | informational
    subject: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def verdict(findings: Sequence[Finding], fail_on: str) -> str:
    """``fail`` when a failing finding (state ``fail`` or ``error``) is at or above
    ``fail_on``; else ``pass``. An error counts because a rule that could not judge the
    target must not let it pass: nothing unreadable improves a verdict."""
    if fail_on == "never":
        return "pass"
    threshold = SEV_RANK[fail_on]
    return "fail" if any(f.state in FAILING_STATES and SEV_RANK[f.severity] >= threshold for f in findings) else "pass"


@dataclass(frozen=True)
class Judgement:
    """The checks stage's answer for one target: the rules that ran (after the policy's
    overrides), their findings, and the verdict with what decided it."""

    rules: tuple[Rule, ...]
    findings: tuple[Finding, ...]
    policy_sources: tuple[str, ...]
    fail_on: str
    waivers: str | None  # the waiver file given, if any
    rule_pack: str  # :func:`scanner.checks.rule_pack_version`: which content judged the target

    @property
    def verdict(self) -> str:
        return verdict(self.findings, self.fail_on)

    def failing(self) -> dict[str, int]:
        """The failing findings (``fail`` and ``error``) per severity: the count every
        report reads, so every report agrees with the gate."""
        failing = Counter(f.severity for f in self.findings if f.state in FAILING_STATES)
        return {s: failing[s] for s in SEVERITIES}

    def states(self) -> dict[str, int]:
        states = Counter(f.state for f in self.findings)
        return {s: states[s] for s in STATES}
