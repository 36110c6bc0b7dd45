"""Stage 5, checks: rules from ``rules/*.toml`` evaluated against the records of the earlier
stages, producing findings; the policy (``rules/policy.toml``, then ``--policy FILE``) and
the waivers (``--waivers FILE``) are data too.

Rules are content: a rule names a registered check (a small function here), its
severity, title, rationale, fix and references. A check yields ``(subject, message,
evidence)`` for each thing that fails; the engine adds the rule's metadata, applies
waivers and decides the verdict against ``--fail-on``.

Fail closed: a finding in state ``error`` (the check could not judge, because what it
reads could not be read) counts as failing at its rule's severity, exactly as ``fail``
does (:data:`FAILING_STATES`), and no waiver turns it into ``waived``: a waiver accepts a
known failure, an error is an unknown. A hostile target can make a file unreadable; it
must not be able to make a verdict better that way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from scanner.resources import content_dir

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FAIL_ON = ("low", "medium", "high", "critical", "never")


class PolicyError(Exception):
    """A rule, policy or waiver file is malformed."""


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


Check = Callable[["CheckContext", Rule], Iterator["tuple[str, str, dict[str, Any]] | Outcome"]]
REGISTRY: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register a check function under the name rules refer to."""

    def deco(fn: Check) -> Check:
        REGISTRY[name] = fn
        return fn

    return deco


@dataclass(frozen=True)
class CheckContext:
    """Everything checks may read: the records of the earlier stages (plain data)."""

    elves: list[dict[str, Any]]
    packages: list[dict[str, Any]]
    unresolved: list[dict[str, Any]]
    policy: Policy
    fs: Any = None  # the target (a RootFS), for checks that read its configuration
    cache: dict[str, Any] = field(default_factory=dict)  # what several checks read, read once
    # the scan-level error records ({path, stage, message}: what the stages could not
    # read), so that the gate sees them (scanner/checks/scanerrors.py)
    errors: list[dict[str, Any]] = field(default_factory=list)


# ---- loading ----------------------------------------------------------------------------------
def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from exc


def rule_pack_version(folder: Path | None = None) -> str:
    """The rule pack's identity: the tool version and a digest of every rule, policy and
    license-table file, so a report says exactly which content judged the target."""
    from scanner import __version__

    folder = folder or content_dir("rules")
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.toml")):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def load_rules(folder: Path | None = None) -> list[Rule]:
    """Every rule of the shipped rule pack (``rules/*.toml`` with ``[[rule]]`` tables)."""
    folder = folder or content_dir("rules")
    rules: list[Rule] = []
    for path in sorted(folder.glob("*.toml")):
        data = _load_toml(path)
        family = data.get("family", path.stem)
        for r in data.get("rule", []):
            try:
                rule = Rule(id=r["id"], check=r["check"], title=r["title"], severity=r["severity"], family=family,
                            rationale=r.get("rationale", ""), fix=r.get("fix", ""),
                            references=r.get("references", {}), params=r.get("params", {}))
            except KeyError as exc:
                raise PolicyError(f"{path}: a rule lacks {exc}") from exc
            if rule.severity not in SEVERITIES:
                raise PolicyError(f"{path}: rule {rule.id}: unknown severity {rule.severity!r}")
            rules.append(rule)
    return rules


def load_policy(user: Path | None = None) -> Policy:
    """The default policy, with a user policy file's lists and overrides on top."""
    base = _load_toml(content_dir("rules") / "policy.toml")
    sources = ["rules/policy.toml"]
    layers = [base]
    if user is not None:
        layers.append(_load_toml(user))
        sources.append(str(user))
    merged: dict[str, Any] = {"licenses": {}, "rules": {}}
    names: dict[str, Any] = {}
    exceptions: dict[str, Any] = {}
    for layer in layers:
        lic = layer.get("licenses", {})
        for key in ("deny", "review", "allow", "network_copyleft"):
            if key in lic:
                if not isinstance(lic[key], list) or not all(isinstance(x, str) for x in lic[key]):
                    raise PolicyError(f"[licenses] {key} must be a list of SPDX id globs")
                merged["licenses"][key] = tuple(lic[key])
        for rid, over in layer.get("rules", {}).items():
            if over.get("severity") not in (None, *SEVERITIES):
                raise PolicyError(f"[rules.{rid}] unknown severity {over.get('severity')!r}")
            merged["rules"].setdefault(rid, {}).update(over)
        for table, into in (("names", names), ("exceptions", exceptions)):
            entries = lic.get(table, {})
            if not isinstance(entries, dict):
                raise PolicyError(f"[licenses.{table}] must be a table of license names")
            for name, e in entries.items():
                if not isinstance(e, dict) or not isinstance(e.get("spdx"), str):
                    raise PolicyError(f'[licenses.{table}."{name}"] needs spdx = "an SPDX expression"')
            into.update(entries)
    lic = merged["licenses"]
    return Policy(deny=lic.get("deny", ()), review=lic.get("review", ()), allow=lic.get("allow", ()),
                  network_copyleft=lic.get("network_copyleft", ("AGPL-*", "SSPL-*")), rules=merged["rules"],
                  names=names, exceptions=exceptions, sources=tuple(sources))


def load_waivers(path: Path) -> list[Waiver]:
    data = _load_toml(path)
    out = []
    for i, w in enumerate(data.get("waiver", []), 1):
        try:
            expires = w.get("expires")
            if isinstance(expires, str):
                expires = dt.date.fromisoformat(expires)
            if expires is not None and not isinstance(expires, dt.date):
                raise ValueError("expires must be a date (YYYY-MM-DD)")
            if isinstance(expires, dt.datetime):
                expires = expires.date()
            out.append(Waiver(rule=str(w["rule"]), subject=str(w["subject"]), reason=str(w["reason"]),
                              expires=expires, source=f"{path}#{i}"))
        except (KeyError, ValueError) as exc:
            raise PolicyError(f"{path}: waiver {i}: {exc}") from exc
    return out


# ---- evaluation -------------------------------------------------------------------------------
def effective_rules(rules: list[Rule], policy: Policy) -> list[Rule]:
    out = []
    for r in rules:
        over = policy.rules.get(r.id, {})
        out.append(Rule(**{**r.__dict__, "severity": over.get("severity", r.severity),
                           "enabled": over.get("enabled", True),
                           "params": {**r.params, **over.get("params", {})}}))
    return out


def evaluate(ctx: CheckContext, rules: list[Rule], waivers: list[Waiver],
             today: dt.date | None = None) -> list[Finding]:
    """Run every enabled rule; apply waivers to failing findings (never to errors: a
    waiver that would match an error is named in its evidence, unapplied); report
    expired waivers."""
    from scanner.checks import (  # noqa: F401  (register)
        boot as _boot, ipv6 as _ipv6, licenses as _licenses, scanerrors as _scanerrors,
    )

    today = today or dt.date.today()
    findings: list[Finding] = []
    expired_seen: set[str] = set()
    for rule in rules:
        if not rule.enabled:
            continue
        fn = REGISTRY.get(rule.check)
        if fn is None:
            raise PolicyError(f"rule {rule.id} names an unknown check {rule.check!r}")
        try:
            produced = list(fn(ctx, rule))
        except Exception as exc:  # noqa: BLE001 - one broken check is an error result, not a crash
            produced = [Outcome("error", rule.id, f"the check could not run: {type(exc).__name__}: {exc}")]
        for item in produced:
            if isinstance(item, Outcome):
                state, subject, message, evidence = item.state, item.subject, item.message, item.evidence
            else:
                (subject, message, evidence), state = item, "fail"
            waiver_info = None
            for w in waivers if state in FAILING_STATES else ():
                if not w.matches(rule.id, subject):
                    continue
                if w.expired(today):
                    expired_seen.add(w.source)
                    continue
                if state == "error":
                    # the waiver accepted a known failure; what this error hides is unknown
                    evidence = {**evidence, "waiver_not_applied": {
                        "source": w.source, "why": "a waiver accepts a known failure; an error means the rule "
                                                   "could not judge the target, so it stays failing"}}
                    break
                state = "waived"
                waiver_info = {"reason": w.reason, "expires": w.expires.isoformat() if w.expires else "",
                               "source": w.source}
                break
            findings.append(Finding(rule.id, rule.severity, state, subject, message, evidence, rule.title,
                                    rule.references, waiver_info))
    for w in waivers:
        if w.expired(today):
            findings.append(Finding(
                "FC-WVR-001", "low", "fail", f"waiver:{w.rule}:{w.subject}",
                f"The waiver for rule {w.rule} on {w.subject!r} expired on {w.expires}; the findings it covered "
                f"count again." + ("" if w.source in expired_seen else " It no longer matches any finding."),
                {"reason": w.reason, "expires": str(w.expires), "source": w.source},
                "A waiver has expired"))
    return findings


def verdict(findings: list[Finding], fail_on: str) -> str:
    """``fail`` when a failing finding (state ``fail`` or ``error``) is at or above
    ``fail_on``; else ``pass``. An error counts because a rule that could not judge the
    target must not let it pass: nothing unreadable improves a verdict."""
    if fail_on == "never":
        return "pass"
    threshold = SEV_RANK[fail_on]
    return "fail" if any(f.state in FAILING_STATES and SEV_RANK[f.severity] >= threshold for f in findings) else "pass"
