"""The waivers file judged itself: FC-WVR-001, a waiver past its expiry date. The engine
runs this check after every other rule (``after_findings``), so it can say whether the
expired waiver still matched a failing finding (which now counts again) or nothing at all.
It reads only the context's waivers and date; it never reaches into the target."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from scanner.checks import CheckContext, Rule, check


@check("waiver-expired", after_findings=True)
def waiver_expired(ctx: CheckContext, rule: Rule) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """One failing finding per expired waiver, in the waivers file's order."""
    today = ctx.today or dt.date.today()
    for w in ctx.waivers:
        if w.expired(today):
            yield (f"waiver:{w.rule}:{w.subject}",
                   f"The waiver for rule {w.rule} on {w.subject!r} expired on {w.expires}; the findings it covered "
                   f"count again." + ("" if w.source in ctx.expired_matched else " It no longer matches any finding."),
                   {"reason": w.reason, "expires": str(w.expires), "source": w.source})
