"""apk's version order, as apk-tools compares versions (``apk version -t A B``; src/version.c of
apk-tools 2.x), written here from its rules:

A version is ``digits{.digits}[letter]{_suffix[digits]}[-rN]`` (Gentoo's grammar). It is read
as a row of tokens, each a value: a number; after a ``.``, leading zeros count as a token of
their own (``1.05`` < ``1.5``: ``.05`` is read as "one zero" then ``5``, and a zero run orders
below any number); a letter (its character); a suffix (``_alpha`` < ``_beta`` < ``_pre`` <
``_rc`` < no suffix < ``_cvs`` < ``_svn`` < ``_git`` < ``_hg`` < ``_p``) and its number; the
package release ``-rN``. Two versions are compared token by token; at the first difference
the larger value wins. When one runs out first, the longer one is the newer unless what
follows is a pre-release suffix (``1.1_rc1`` < ``1.1`` < ``1.1.1`` and ``1.1`` < ``1.1-r1``);
past the first token that is not the grammar's, the rest is not compared (and the kinds of the
next tokens decide, as apk-tools does).

Followed as written, quirks included: after ``.0`` the zero run is a token of its own and the
kind of the token after it decides, so ``1.0_rc1`` orders after ``1.0`` (while ``1.1_rc1``
orders before ``1.1``), as apk-tools 2.x's ``version.c`` reads it (not checked against a running
``apk``: it does not install on Debian).

One difference: apk-tools keeps a number in a C ``int``; here numbers are exact (a 14-digit
``_pre20191002222144`` overflows the C type; apk-tools' own test vectors expect the exact
order; ``tests/test_versions.py`` runs all of them).
"""

from __future__ import annotations

from scanner import limits

# token kinds, in apk-tools' order (the order matters: a token may only be followed by one of
# a later kind, with three exceptions, see _next)
INVALID, DIGIT_OR_ZERO, DIGIT, LETTER, SUFFIX, SUFFIX_NO, REVISION_NO, END = -1, 0, 1, 2, 3, 4, 5, 6
_PRE = ("alpha", "beta", "pre", "rc")
_POST = ("cvs", "svn", "git", "hg", "p")
_ALLOWED_BACK = {(DIGIT_OR_ZERO, DIGIT), (SUFFIX, SUFFIX_NO), (DIGIT, LETTER)}


def _next(kind: int, s: str, i: int) -> tuple[int, int]:
    """The kind of the token at ``s[i]`` after one of ``kind``, and where it starts (past its
    separator)."""
    c = s[i] if i < len(s) else ""
    if not c or c == "\0":
        n = END
    elif kind in (DIGIT, DIGIT_OR_ZERO) and "a" <= c <= "z":
        n = LETTER
    elif kind == LETTER and c.isascii() and c.isdigit():
        n = DIGIT
    elif kind == SUFFIX and c.isascii() and c.isdigit():
        n = SUFFIX_NO
    else:
        if c == ".":
            n = DIGIT_OR_ZERO
        elif c == "_":
            n = SUFFIX
        elif c == "-" and s[i + 1:i + 2] == "r":
            n, i = REVISION_NO, i + 1
        else:
            n = INVALID
        i += 1
    if n < kind and (n, kind) not in _ALLOWED_BACK:
        n = INVALID
    return n, i


def _token(kind: int, s: str, i: int) -> tuple[int, int, int]:
    """``(value, kind of the next token, where it starts)`` of the token of ``kind`` at ``s[i]``."""
    if i >= len(s):
        return 0, END, i
    j, value, then = i, 0, INVALID
    if kind == DIGIT_OR_ZERO and s[i] == "0":
        while j < len(s) and s[j] == "0":
            j += 1
        value, then = -(j - i), DIGIT
    elif kind in (DIGIT_OR_ZERO, DIGIT, SUFFIX_NO, REVISION_NO):
        while j < len(s) and "0" <= s[j] <= "9":
            value = value * 10 + ord(s[j]) - 48
            j += 1
    elif kind == LETTER:
        value, j = ord(s[i]), i + 1
    elif kind == SUFFIX:
        pre = next((n for n, w in enumerate(_PRE) if s.startswith(w, i)), None)
        post = None if pre is not None else next((n for n, w in enumerate(_POST) if s.startswith(w, i)), None)
        if pre is not None:
            value, j = pre - len(_PRE), i + len(_PRE[pre])
        elif post is not None:
            value, j = post, i + len(_POST[post])
        else:
            return -1, INVALID, i
    else:
        return -1, INVALID, i
    if j >= len(s):
        return value, END, j
    if then != INVALID:
        return value, then, j
    nxt, j = _next(kind, s, j)
    return value, nxt, j


def apk_version_compare(a: str, b: str) -> int:
    """-1, 0 or 1: how apk orders version ``a`` against ``b``. Versions longer than
    ``MAX_PACKAGE_VERSION_CHARS`` (no reader lists one; a result document read by ``diff``
    may hold anything) are ordered as plain strings: their numbers are never built."""
    if max(len(a), len(b)) > limits.MAX_PACKAGE_VERSION_CHARS:
        return (a > b) - (a < b)
    at = bt = DIGIT
    av = bv = ia = ib = 0
    while at == bt and at not in (END, INVALID) and av == bv:
        av, at, ia = _token(at, a, ia)
        bv, bt, ib = _token(bt, b, ib)
    if av != bv:
        return -1 if av < bv else 1
    if at == bt:
        return 0
    # one ran out (or stopped) first: the longer one is newer, unless a pre-release follows
    if at == SUFFIX and _token(SUFFIX, a, ia)[0] < 0:
        return -1
    if bt == SUFFIX and _token(SUFFIX, b, ib)[0] < 0:
        return 1
    return (at < bt) - (at > bt)
