"""rpm's version ordering: ``rpmvercmp`` and the epoch-version-release comparison.

``rpmvercmp`` is written here (after rpm 4.18's ``rpmio/rpmvercmp.c``) for hosts without the
rpm bindings; :func:`label_compare` uses the bindings' own ``labelCompare`` when they import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

Evr = tuple[str, str, str]
"""``(epoch, version, release)`` as rpm's ``labelCompare`` takes them."""


def _isalpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def rpmvercmp(a: str, b: str) -> int:
    """rpm's version segment comparison (``rpmio/rpmvercmp.c``): -1, 0 or 1.

    Strings are split into runs of ASCII digits and ASCII letters; everything else
    separates. ``~`` sorts before anything (even the end of the string), ``^`` after the
    end but before anything else. Numeric runs beat alphabetic ones, compare as numbers
    (leading zeros dropped, the longer wins), alphabetic runs compare bytewise; when all
    runs are equal, the string with something left wins.
    """
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        while i < la and not (_isalpha(a[i]) or _isdigit(a[i])) and a[i] not in "~^":
            i += 1
        while j < lb and not (_isalpha(b[j]) or _isdigit(b[j])) and b[j] not in "~^":
            j += 1
        ca = a[i] if i < la else ""
        cb = b[j] if j < lb else ""
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (ca and cb):
            break
        kind = _isdigit if _isdigit(ca) else _isalpha
        ei = i
        while ei < la and kind(a[ei]):
            ei += 1
        ej = j
        while ej < lb and kind(b[ej]):
            ej += 1
        one, two = a[i:ei], b[j:ej]
        if not two:  # segments of different types: the numeric one is newer
            return 1 if kind is _isdigit else -1
        if kind is _isdigit:
            one, two = one.lstrip("0"), two.lstrip("0")
            if len(one) != len(two):
                return 1 if len(one) > len(two) else -1
        if one != two:
            return 1 if one > two else -1
        i, j = ei, ej
    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


def label_compare_py(old: Evr, new: Evr) -> int:
    """rpm's ``rpmVersionCompare`` of two ``(epoch, version, release)`` triples: -1, 0 or
    1 (the epoch as a number, then :func:`rpmvercmp` of the versions, then of the releases
    when both have one)."""
    (e1, v1, r1), (e2, v2, r2) = old, new
    n1, n2 = int(e1 or 0), int(e2 or 0)
    if n1 != n2:
        return 1 if n1 > n2 else -1
    rc = rpmvercmp(v1, v2)
    if rc == 0 and r1 and r2:
        rc = rpmvercmp(r1, r2)
    return rc


@functools.cache
def label_compare() -> Callable[[Evr, Evr], int]:
    """The bindings' ``rpm.labelCompare`` when they import and work, else
    :func:`label_compare_py` (also for an epoch librpm refuses)."""
    try:
        import rpm  # Debian's python3-rpm through the PyPI shim

        compare = rpm.labelCompare
        compare(("0", "1", "1"), ("0", "1", "1"))
    except Exception:  # noqa: BLE001 - no usable bindings: the built-in comparison
        return label_compare_py

    def labelcompare(old: Evr, new: Evr) -> int:
        try:
            return int(compare(old, new))
        except (ValueError, TypeError):  # an epoch librpm refuses: compare as rpm would, here
            return label_compare_py(old, new)

    return labelcompare
