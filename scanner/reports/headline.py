"""The one headline every report leads with: the verdict, the sentence that explains it, and
a score that cannot contradict it.

The score is a reading aid on a scale split by the verdict:

* a target that **fails** scores 0 to 49: 49 minus the weight of its gating findings (the
  failing findings, ``fail`` or ``error``, at or above ``--fail-on``), at least 0;
* a target that **passes** scores 50 to 100: 100 minus half the weight of its failing
  findings below ``--fail-on``, at least 50.

Weights per failing finding: critical 25, high 10, medium 3, low 1, info 0. So a passing
target never scores below a failing one, and among targets with the same verdict fewer and
milder failures score higher. With ``--fail-on never`` nothing gates: every target passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from scanner.findings import FAILING_STATES, SEV_RANK, SEVERITIES

WEIGHTS = {"critical": 25, "high": 10, "medium": 3, "low": 1, "info": 0}


def _failing(doc: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The gating failing findings, the failing ones below the gate, and ``fail_on``."""
    fail_on = str(doc.get("policy", {}).get("fail_on", "high"))
    threshold = SEV_RANK.get(fail_on, len(SEVERITIES))  # never: above every severity
    failing = [f for f in doc.get("findings", []) if f["state"] in FAILING_STATES]
    gating = [f for f in failing if fail_on != "never" and SEV_RANK[f["severity"]] >= threshold]
    return gating, [f for f in failing if f not in gating], fail_on


def score(doc: Mapping[str, Any]) -> int:
    gating, below, _ = _failing(doc)
    if gating:
        return max(0, 49 - sum(WEIGHTS[f["severity"]] for f in gating))
    return max(50, 100 - sum(WEIGHTS[f["severity"]] for f in below) // 2)


def _counted(findings: list[dict[str, Any]], key: str, order: Mapping[str, int] | None = None) -> str:
    counts = Counter(str(f[key]) for f in findings)
    ranked = sorted(counts.items(), key=lambda kv: (-(order or {}).get(kv[0], 0), -kv[1], kv[0]))
    shown = ", ".join(f"{n} {k}" for k, n in ranked[:4])
    return shown + (f" and {len(ranked) - 4} more" if len(ranked) > 4 else "")


def reason(doc: Mapping[str, Any]) -> str:
    """Why the verdict is what it is, in one sentence."""
    gating, below, fail_on = _failing(doc)
    waived = sum(1 for f in doc.get("findings", []) if f["state"] == "waived")
    tail = f"; {waived} waived" if waived else ""
    if gating:
        errors = sum(1 for f in gating if f["state"] == "error")
        unjudged = f", {errors} of them from rules that could not judge the target" if errors else ""
        return (f"Fails: {len(gating)} failing finding{'s' * (len(gating) != 1)} at or above {fail_on} "
                f"({_counted(gating, 'rule')}){unjudged}{tail}.")
    gate = "nothing gates (--fail-on never)" if fail_on == "never" else f"no failing finding at or above {fail_on}"
    where = "in all" if fail_on == "never" else "below it"
    rest = f"; {len(below)} failing {where} ({_counted(below, 'severity', SEV_RANK)})" if below else ""
    return f"Passes: {gate}{rest}{tail}."
