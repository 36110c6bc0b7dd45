"""License categories, from the ScanCode license index that license-expression ships.

ScanCode's categories map onto flightcheck's: Permissive -> ``permissive``, Public Domain
-> ``public-domain``, Copyleft Limited -> ``weak-copyleft``, Copyleft -> ``copyleft``
(``network-copyleft`` for the ids the policy lists, AGPL and SSPL by default), Proprietary
Free / Commercial / Source-available / Free Restricted -> ``proprietary``, anything else
(and LicenseRefs made from unknown text) -> ``unknown``.

A license ``WITH`` an exception is one step weaker when it is copyleft: the exceptions
written on libraries (GCC runtime, Classpath, LLVM, linking exceptions) exist to let
other code link them. ``AND`` takes the strictest part, ``OR`` the most permissive.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache

from license_expression import (
    LicenseExpression,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    get_license_index,
)
from boolean.boolean import AND, OR

from scanner.licensing.expression import spdx_licensing

ORDER = ("public-domain", "permissive", "weak-copyleft", "copyleft", "network-copyleft", "proprietary", "unknown")
RANK = {c: i for i, c in enumerate(ORDER)}
STRONG_COPYLEFT = frozenset({"copyleft", "network-copyleft"})
_SCANCODE = {
    "Permissive": "permissive", "Public Domain": "public-domain", "Copyleft Limited": "weak-copyleft",
    "Copyleft": "copyleft", "Proprietary Free": "proprietary", "Commercial": "proprietary",
    "Source-available": "proprietary", "Free Restricted": "proprietary",
}
DEFAULT_NETWORK_COPYLEFT = ("AGPL-*", "SSPL-*")


@lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    out: dict[str, str] = {}
    for d in get_license_index():
        cat = _SCANCODE.get(d.get("category") or "", "unknown")
        for key in (d.get("spdx_license_key"), *(d.get("other_spdx_license_keys") or ())):
            if key:
                out.setdefault(key.lower(), cat)
    return out


def category_of_id(spdx_id: str, *, proprietary_refs: frozenset[str] = frozenset(),
                   public_domain_refs: frozenset[str] = frozenset(),
                   network_copyleft: tuple[str, ...] = DEFAULT_NETWORK_COPYLEFT) -> str:
    if spdx_id in proprietary_refs:
        return "proprietary"
    if spdx_id in public_domain_refs:
        return "public-domain"
    cat = _index().get(spdx_id.lower(), "unknown")
    if cat == "copyleft" and any(fnmatchcase(spdx_id, g) for g in network_copyleft):
        return "network-copyleft"
    return cat


def category(expression: str, **kw: object) -> str:
    """The category of an SPDX expression (``NOASSERTION`` is unknown)."""
    if not expression or expression == "NOASSERTION":
        return "unknown"
    parsed = spdx_licensing().parse(expression)
    return _walk(parsed, kw) if parsed is not None else "unknown"


def _walk(node: LicenseExpression, kw: dict[str, object]) -> str:
    if isinstance(node, LicenseWithExceptionSymbol):
        base = category_of_id(node.license_symbol.key, **kw)  # type: ignore[arg-type]
        return {"copyleft": "weak-copyleft", "network-copyleft": "copyleft"}.get(base, base)
    if isinstance(node, LicenseSymbol):
        return category_of_id(node.key, **kw)  # type: ignore[arg-type]
    parts = [_walk(a, kw) for a in node.args]
    if isinstance(node, AND):
        return max(parts, key=RANK.__getitem__)
    if isinstance(node, OR):
        known = [p for p in parts if p != "unknown"]
        return min(known, key=RANK.__getitem__) if known else "unknown"
    return "unknown"
