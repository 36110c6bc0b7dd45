"""Inventory checks that judge the package databases themselves (rule ``FC-INV-002`` in
``rules/inventory.toml``): a database read in part makes every file its unread packages
installed look unowned, so the part not read is a finding of its own, with the numbers.

It reads only the ``databases`` records of the result (records stored, read, failed, and
parts of the storage that could not be counted); it never reaches into the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scanner.checks import CheckContext, Outcome, Rule, check


def _partial(db: dict[str, Any]) -> str | None:
    """Why ``db`` was read in part (None: it was read whole, or nothing was counted)."""
    records, read, failed, parts = db.get("records"), db.get("read"), db.get("failed") or 0, db.get("unread_parts") or 0
    why = []
    if isinstance(records, int) and isinstance(read, int) and (read < records or failed):
        why.append(f"{read:,} of the {records:,} records it stores were read ({failed:,} failed)")
    if parts:
        why.append(f"{parts:,} part(s) of its storage could not be counted")
    return "; ".join(why) or None


_EVIDENCE = ("manager", "backend", "reader", "records", "read", "failed", "unread_parts", "reader_reason")


@check("database-partial")
def database_partial(ctx: CheckContext, rule: Rule) -> Iterator[Outcome]:
    """``fail`` for each package database read in part; ``error`` for one whose records
    could not be counted; ``pass`` for each whose every counted record was read;
    ``notapplicable`` when no database counts its records."""
    counted = 0
    for db in ctx.databases:
        if "records" not in db and "read" not in db and not db.get("unread_parts"):
            continue  # a reader that counts nothing (dpkg, repositories)
        counted += 1
        path = str(db.get("path", ""))
        evidence: dict[str, Any] = {k: db[k] for k in _EVIDENCE if k in db}
        if "records" not in db:  # it counts, but could not count this one: never a pass
            yield Outcome("error", path, f"The records of the {db.get('manager', '')} database {path} could not be "
                          f"counted ({db.get('read', 0):,} read): it may have been read in part.", evidence)
            continue
        why = _partial(db)
        if why:
            yield Outcome("fail", path, f"The {db.get('manager', '')} database {path} was read in part: {why}. The "
                          f"files of the packages not read show as unowned.", evidence)
        else:
            yield Outcome("pass", path, f"Every one of the {db.get('records', 0):,} records of {path} was read.",
                          evidence)
    if not counted:
        yield Outcome("notapplicable", "databases", "No package database counted its records.", {})
