"""The headline (scanner/reports/headline.py): the score cannot contradict the verdict, and
the verdict's reason is one sentence. Table-driven, then every combination of a small space."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from scanner.findings import FAIL_ON, Finding, verdict
from scanner.reports import headline


def doc(fail_on: str, *findings: tuple[str, str, str]) -> dict[str, Any]:
    """A result's judged part: findings as (rule, severity, state)."""
    rows = [{"rule": r, "severity": sev, "state": st, "subject": f"s{i}"} for i, (r, sev, st) in enumerate(findings)]
    v = verdict([Finding(r["rule"], r["severity"], r["state"], r["subject"], "", {}) for r in rows], fail_on)
    return {"findings": rows, "policy": {"fail_on": fail_on, "verdict": v}}


@pytest.mark.parametrize("fail_on, findings, score, verdict_, says", [
    ("high", [], 100, "pass", "Passes: no failing finding at or above high."),
    ("high", [("FC-INV-001", "medium", "fail")] * 4, 94, "pass", "4 failing below it (4 medium)"),
    ("high", [("FC-LIC-003", "high", "fail")], 39, "fail", "Fails: 1 failing finding at or above high (1 FC-LIC-003)."),
    ("high", [("FC-BOOT-001", "high", "error")], 39, "fail", "1 of them from rules that could not judge the target"),
    ("high", [("FC-LIC-001", "critical", "fail")] * 3, 0, "fail", "3 failing findings"),
    ("low", [("FC-INV-001", "low", "fail")], 48, "fail", "at or above low"),
    ("never", [("FC-LIC-001", "critical", "fail")], 88, "pass", "nothing gates (--fail-on never); 1 failing in all"),
    ("high", [("FC-LIC-005", "low", "waived")], 100, "pass", "; 1 waived."),
    ("medium", [("FC-INV-001", "medium", "pass"), ("FC-INV-001", "low", "notapplicable")], 100, "pass", "Passes"),
    ("high", [("FC-INV-001", "medium", "fail")] * 200, 50, "pass", "200 failing below it"),
])
def test_table(fail_on: str, findings: list[tuple[str, str, str]], score: int, verdict_: str, says: str) -> None:
    d = doc(fail_on, *findings)
    assert d["policy"]["verdict"] == verdict_
    assert headline.score(d) == score
    assert says in headline.reason(d)
    assert headline.reason(d).count(".") == 1 or "--fail-on" in headline.reason(d)  # one sentence


def test_score_never_contradicts_the_verdict() -> None:
    """Every fail_on and every multiset of up to 3 findings over severities and states, plus
    random larger sets: fail scores 0-49, pass 50-100."""
    kinds = [(sev, st) for sev in ("info", "low", "medium", "high", "critical")
             for st in ("fail", "error", "waived", "pass")]
    cases = [list(c) for n in range(4) for c in itertools.combinations_with_replacement(kinds, n)]
    rng = random.Random(19)
    cases += [rng.choices(kinds, k=rng.randint(4, 300)) for _ in range(300)]
    for fail_on in FAIL_ON:
        for case in cases:
            d = doc(fail_on, *[("FC-X", sev, st) for sev, st in case])
            s = headline.score(d)
            assert (0 <= s <= 49) if d["policy"]["verdict"] == "fail" else (50 <= s <= 100), (fail_on, case, s)
            assert headline.reason(d).startswith("Fails" if d["policy"]["verdict"] == "fail" else "Passes")
