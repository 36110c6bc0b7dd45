"""The scan's own error records as findings (rule ``FC-ERR-001`` in ``rules/scan.toml``).

Every stage turns what it cannot read (a file, a package database, a folder of the walk)
into an error record and goes on. Left in ``result.json`` alone, those records would not
reach the gate: a target could hide a library, a package database or a boot file by
making it unreadable and pass. This check puts them in front of the gate, one finding per
pipeline stage (a host with 3,000 unreadable files gives one finding with a count and the
first paths, not 3,000 findings), at the severity the policy sets for the rule.

Its state is ``error``: it reports what could not be judged, so it counts as failing and
no waiver accepts it. A site that accepts a known unreadable path names it in the
policy (``[rules."FC-ERR-001"] params = { ignore_paths = [...] }``), which is reviewed
and recorded in the result; the ignored records are still counted, per stage, in the
evidence of every outcome of the rule.
The check reads only the records the context carries; it never reaches into the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from scanner.checks import CheckContext, Outcome, Rule, check

#: how many records a finding quotes when the rule does not say
MAX_EXAMPLES = 20


def _ignored(path: str, globs: list[str]) -> bool:
    return any(fnmatchcase(path, g) for g in globs)


@check("scan-errors")
def scan_errors(ctx: CheckContext, rule: Rule) -> Iterator[Outcome]:
    """One ``error`` outcome per stage that could not read part of the target, or one
    ``pass`` when every part the scan reached was read."""
    globs = [str(g) for g in rule.params.get("ignore_paths", [])]
    limit = max(1, int(rule.params.get("max_examples", MAX_EXAMPLES)))
    by_stage: dict[str, list[dict[str, Any]]] = {}
    ignored: dict[str, int] = {}
    for err in ctx.errors:
        stage = str(err.get("stage") or "unknown")
        if globs and _ignored(str(err.get("path", "")), globs):
            ignored[stage] = ignored.get(stage, 0) + 1
            continue
        by_stage.setdefault(stage, []).append(err)
    if not by_stage:
        note = f" ({sum(ignored.values())} record(s) ignored by the policy's ignore_paths)" if ignored else ""
        yield Outcome("pass", "scan", f"Every part of the target the scan reached could be read{note}.",
                      {"ignored": ignored})
        return
    for stage, records in sorted(by_stage.items()):
        first = records[0]
        shown = [{"path": r.get("path", ""), "message": r.get("message", "")} for r in records[:limit]]
        yield Outcome(
            "error", stage,
            f"{len(records)} part(s) of the target could not be read in the {stage} stage; the rules judged the "
            f"target without them. First: {first.get('path', '')}: {first.get('message', '')}",
            {"stage": stage, "count": len(records), "examples": shown, "more": len(records) - len(shown),
             "ignored": ignored})
