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

import dataclasses
import datetime as dt
import hashlib
import importlib
import pkgutil
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.findings import (
    DEFAULT_APPLIES_TO,
    FAIL_ON,
    FAILING_STATES,
    SEV_RANK,
    SEVERITIES,
    STATES,
    TARGET_KINDS,
    Finding,
    Judgement,
    Outcome,
    Policy,
    Rule,
    Waiver,
    verdict,
)
from scanner.resources import content_dir

# the value types live in scanner/findings.py (the result reads them without importing the
# engine); they are re-exported here, where the rules and checks are written
__all__ = [
    "DEFAULT_APPLIES_TO", "FAIL_ON", "FAILING_STATES", "SEV_RANK", "SEVERITIES", "STATES", "TARGET_KINDS",
    "AFTER_FINDINGS", "Check", "CheckContext", "Finding", "Judgement", "Outcome", "Policy", "PolicyError",
    "REGISTRY", "Rule", "Waiver", "check", "discover_checks", "effective_rules", "evaluate", "judge",
    "load_policy", "load_rules", "load_waivers", "rule_pack_version", "rules_for", "verdict",
]

if TYPE_CHECKING:
    from scanner.inventory.sysconf import SystemConfig


class PolicyError(Exception):
    """A rule, policy or waiver file is malformed."""


Check = Callable[["CheckContext", Rule], Iterator["tuple[str, str, dict[str, Any]] | Outcome"]]
REGISTRY: dict[str, Check] = {}
#: checks that judge the waivers against the other rules' outcome (FC-WVR-001): run after
#: every other rule, with ``CheckContext.expired_matched`` filled in, never waived
#: themselves, and left out of a scan given no waivers (they have nothing to judge)
AFTER_FINDINGS: set[str] = set()


def check(name: str, after_findings: bool = False) -> Callable[[Check], Check]:
    """Register a check function under the name rules refer to. ``after_findings``: the
    check judges the other rules' findings (which waivers they used), so it runs last."""

    def deco(fn: Check) -> Check:
        REGISTRY[name] = fn
        if after_findings:
            AFTER_FINDINGS.add(name)
        return fn

    return deco


def discover_checks() -> None:
    """Import every module of this package, so that each registers its checks: a new
    check module is found by being here, not by a list to keep in step."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


@dataclass(frozen=True)
class CheckContext:
    """Everything checks may read: the records of the earlier stages (plain data)."""

    elves: list[dict[str, Any]]
    packages: list[dict[str, Any]]
    unresolved: list[dict[str, Any]]
    policy: Policy
    # the scan-level error records ({path, stage, message}: what the stages could not
    # read), so that the gate sees them (scanner/checks/scanerrors.py)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # the package databases read (the result's ``databases``: counts of records and reads)
    databases: list[dict[str, Any]] = field(default_factory=list)
    # the libvirt domain's facts (``TargetIdentity.domain``), for the IPv6 libvirt-network rule
    domain: dict[str, Any] | None = None
    # the configuration records the boot and IPv6 rules read (boot loaders, sysctl, ...),
    # read by inventory (``scanner.inventory.sysconf``); None for a target that is no system
    system: SystemConfig | None = None
    # the waivers given and the day they are judged on, for FC-WVR-001 (evaluate fills
    # them in), and the sources of expired waivers that still matched a failing finding
    waivers: tuple[Waiver, ...] = ()
    today: dt.date | None = None
    expired_matched: frozenset[str] = frozenset()


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
                            references=r.get("references", {}), params=r.get("params", {}),
                            applies_to=tuple(r.get("applies_to", DEFAULT_APPLIES_TO)))
            except KeyError as exc:
                raise PolicyError(f"{path}: a rule lacks {exc}") from exc
            if rule.severity not in SEVERITIES:
                raise PolicyError(f"{path}: rule {rule.id}: unknown severity {rule.severity!r}")
            if not rule.applies_to or not set(rule.applies_to) <= set(TARGET_KINDS):
                raise PolicyError(f"{path}: rule {rule.id}: applies_to must list target kinds "
                                  f"({', '.join(TARGET_KINDS)}), not {list(rule.applies_to)!r}")
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
def rules_for(rules: list[Rule], kind: str, waivers: list[Waiver] | None = None) -> list[Rule]:
    """The rules that apply to a kind of target (``applies_to``); the rules that judge the
    waivers (:data:`AFTER_FINDINGS`) only when there are waivers to judge."""
    discover_checks()
    return [r for r in rules if kind in r.applies_to and (waivers or r.check not in AFTER_FINDINGS)]


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
    waiver that would match an error is named in its evidence, unapplied). The rules whose
    check judges the others' findings (FC-WVR-001, expired waivers) run last, unwaived."""
    discover_checks()
    today = today or dt.date.today()
    ctx = dataclasses.replace(ctx, waivers=tuple(waivers), today=today)
    findings: list[Finding] = []
    expired_seen: set[str] = set()
    for rule in rules:
        if rule.enabled and _check_of(rule) not in AFTER_FINDINGS:
            findings += _run(ctx, rule, waivers, today, expired_seen)
    after = dataclasses.replace(ctx, expired_matched=frozenset(expired_seen))
    for rule in rules:
        if rule.enabled and rule.check in AFTER_FINDINGS:
            findings += _run(after, rule, [], today, set())
    return findings


def _check_of(rule: Rule) -> str:
    """The rule's check name, known to be registered."""
    if rule.check not in REGISTRY:
        raise PolicyError(f"rule {rule.id} names an unknown check {rule.check!r}")
    return rule.check


def _run(ctx: CheckContext, rule: Rule, waivers: list[Waiver], today: dt.date,
         expired_seen: set[str]) -> list[Finding]:
    """One rule's findings, with the waivers applied (the sources of expired waivers that
    matched a failing finding are added to ``expired_seen``)."""
    fn = REGISTRY[_check_of(rule)]
    try:
        produced = list(fn(ctx, rule))
    except Exception as exc:  # noqa: BLE001 - one broken check is an error result, not a crash
        produced = [Outcome("error", rule.id, f"the check could not run: {type(exc).__name__}: {exc}")]
    findings = []
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
    return findings


def judge(ctx: CheckContext, rules: list[Rule], waivers: list[Waiver], policy: Policy, fail_on: str,
          waivers_source: str | None = None, today: dt.date | None = None) -> Judgement:
    """The checks stage: every rule evaluated (:func:`evaluate`) and the verdict against
    ``fail_on``, as one value the result document is built from."""
    return Judgement(tuple(rules), tuple(evaluate(ctx, rules, waivers, today)), policy.sources, fail_on,
                     waivers_source, rule_pack_version())
