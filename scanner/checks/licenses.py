"""The license, ownership and linkage checks (rules in ``rules/licenses.toml``)."""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from scanner.checks import CheckContext, Rule, check
from scanner.licensing.categories import STRONG_COPYLEFT
from scanner.licensing.expression import Node, parse as parse_expression

Found = Iterator[tuple[str, str, dict[str, Any]]]


def _matches(node: Node, globs: tuple[str, ...], allow: tuple[str, ...]) -> list[str] | None:
    """The ids of ``node`` that hit ``globs`` (and are not allowed) in every way the
    expression can be satisfied: AND hits if any part does, OR only if all choices do."""
    if isinstance(node, str):
        return [node] if _hit(node, globs, allow) else None
    op, args = node
    parts = [_matches(a, globs, allow) for a in args]
    if op == "AND":
        hits = [k for p in parts if p for k in p]
        return hits or None
    return [k for p in parts for k in (p or [])] if all(parts) else None


@lru_cache(maxsize=65536)
def _hit(key: str, globs: tuple[str, ...], allow: tuple[str, ...]) -> bool:
    """Whether a license id hits ``globs`` and is not allowed (once per id, not per use)."""
    return not any(fnmatchcase(key, a) for a in allow) and any(fnmatchcase(key, g) for g in globs)


@lru_cache(maxsize=8192)
def _parsed(spdx: str) -> Node:
    """An SPDX expression parsed once per scan, not once per package and rule. The
    expression is the normaliser's output, already valid SPDX, and is read as written (the
    policy's globs match the ids the result shows): :func:`scanner.licensing.expression.parse`.
    Raises ValueError on anything else."""
    return parse_expression(spdx)


def _license_hits(ctx: CheckContext, globs: tuple[str, ...]) -> Found:
    if not globs:
        return
    for p in ctx.packages:
        spdx = p.get("license_spdx")
        if not spdx or spdx == "NOASSERTION":
            continue
        hits = _matches(_parsed(spdx), globs, ctx.policy.allow)
        if hits:
            yield p["id"], hits, spdx  # type: ignore[misc]


@check("license-denied")
def license_denied(ctx: CheckContext, rule: Rule) -> Found:
    for pid, hits, spdx in _license_hits(ctx, ctx.policy.deny):
        yield pid, (f"Package {pid} is licensed {spdx}; the policy denies {', '.join(sorted(set(hits)))}. "
                    f"It may not ship unless legal review grants a waiver."), {"license": spdx, "denied": sorted(set(hits))}


@check("license-review")
def license_review(ctx: CheckContext, rule: Rule) -> Found:
    for pid, hits, spdx in _license_hits(ctx, ctx.policy.review):
        yield pid, (f"Package {pid} is licensed {spdx}, which the policy asks legal to review "
                    f"({', '.join(sorted(set(hits)))})."), {"license": spdx, "review": sorted(set(hits))}


@check("copyleft-linked-by-proprietary")
def copyleft_linked(ctx: CheckContext, rule: Rule) -> Found:
    """A proprietary or unowned executable that links a strong-copyleft library: the
    combination a distributor may not be able to ship under the executable's terms."""
    system = tuple(rule.params.get("system_libraries", ()))
    for e in ctx.elves:
        if e["type"] not in ("executable", "pie") or e["static"]:
            continue
        own = e.get("license_category")
        if e.get("owner") is not None and own != "proprietary":
            continue
        bad = [row for row in e.get("linked_licenses", []) if row["category"] in STRONG_COPYLEFT
               and not any(fnmatchcase(row["soname"], g) for g in system)]
        if not bad:
            continue
        whose = "an unowned" if e.get("owner") is None else "a proprietary"
        libs = "; ".join(f"{r['path']} ({r['package']}, {r['license']})" for r in bad)
        yield e["path"], (f"{e['path']} is {whose} executable ({e.get('license') or 'no package license'}) and "
                          f"dynamically links strong-copyleft code: {libs}. Distributing them together may "
                          f"require releasing the executable under the library's terms."), {
            "path": e["path"], "package": e.get("owner"), "license": e.get("license"),
            "libraries": bad}


def _with_status(ctx: CheckContext, status: str) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """Packages whose license outcome is ``status``, with their notes and evidence."""
    for p in ctx.packages:
        if p.get("license_status") == status:
            yield p, "; ".join(p.get("license_notes") or []), {
                "license_raw": p.get("license_raw"), "license": p.get("license_spdx"),
                "source": p.get("license_source")}


@check("license-unknown")
def license_unknown(ctx: CheckContext, rule: Rule) -> Found:
    for p, notes, evidence in _with_status(ctx, "unknown"):
        yield p["id"], (f"The license of {p['id']} could not be identified: {notes or p.get('license_raw')}. "
                        f"Its raw text is kept as {p.get('license_spdx')}."), evidence


@check("license-guessed")
def license_guessed(ctx: CheckContext, rule: Rule) -> Found:
    for p, notes, evidence in _with_status(ctx, "guess"):
        yield p["id"], (f"The license of {p['id']} ({p.get('license_raw')!r}) was read as "
                        f"{p.get('license_spdx')}, which is a guess: {notes}."), evidence


@check("license-none")
def license_none(ctx: CheckContext, rule: Rule) -> Found:
    for p in ctx.packages:
        if p.get("license_status") == "none":
            yield p["id"], f"Package {p['id']} declares no license.", {"source": p.get("license_source")}


@check("unowned-elf")
def unowned_elf(ctx: CheckContext, rule: Rule) -> Found:
    """Each ELF file nothing explains (no package database, no Python distribution, no
    origin the file declares), with the tree of unowned files it belongs to as evidence."""
    skip = tuple(rule.params.get("ignore", ()))
    for e in ctx.elves:
        if e.get("owner") is None and e["type"] != "debuginfo" and not any(fnmatchcase(e["path"], g) for g in skip):
            tree = e.get("tree")
            where = f" It is in the unowned tree {tree}." if tree else ""
            yield e["path"], (f"{e['path']} ({e['type']}) belongs to no installed package: its origin, "
                              f"license and updates are unknown.{where}"), {
                "path": e["path"], "sha256": e["sha256"], **({"tree": tree} if tree else {})}


@check("unresolved-soname")
def unresolved_soname(ctx: CheckContext, rule: Rule) -> Found:
    for u in ctx.unresolved:
        users = u["needed_by"]
        yield u["soname"], (f"{u['soname']} is needed by {len(users)} file(s) (e.g. {users[0]}) but the "
                            f"target's loader would not find it."), {"needed_by": users}
