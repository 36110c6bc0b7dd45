"""License strings as package databases write them, turned into SPDX expressions.

Input: Fedora/RHEL "Callaway" short names (``GPLv2+``, ``ASL 2.0``, ``GPL+ or Artistic``),
SUSE's SPDX with lower-case operators and deprecated ids, Yocto's ``&``/``|`` and names
(``CLOSED``), Debian DEP-5 short names, and plain SPDX. The name tables are data, in
``rules/licenses/names.toml`` and ``exceptions.toml``; this module only reads the names:
the grammar is :class:`scanner.licensing.expression.Parser`, shared with the checks.

The grammar is SPDX's, made lenient: operators ``and``/``or``/``with`` in any case, ``&``
and ``|`` (Yocto), ``,`` and ``;`` read as ``and``; ``AND`` binds tighter than ``OR``. A
license name may span several words and even contain ``or``/``with`` (``GPL+ or Artistic``,
``GPLv3+ with exceptions``): at each operand the longest run of words that is a known name
wins. Whatever is not known becomes a ``LicenseRef-`` with the raw words kept, and the
outcome says so. The expression is canonicalised by license-expression (which also
rewrites deprecated SPDX ids: ``GPL-2.0+`` -> ``GPL-2.0-or-later``).

Outcome ``status``: ``exact`` (every part mapped with certainty), ``guess`` (an umbrella
name such as ``BSD`` mapped to a representative id), ``unknown`` (some part is a
LicenseRef made from unmapped text, or the string could not be parsed: also one nested
deeper than ``MAX_LICENSE_NESTING``, never a cleaner outcome), ``none`` (no license declared).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from license_expression import ExpressionError

from scanner import limits
from scanner.licensing.expression import ExpressionSyntaxError, Parser, canonical, spdx_licensing
from scanner.licensing.tables import LicenseTables, NameEntry
from scanner.limits import LimitExceeded

MAX_RAW = 4096  # longer strings are junk, not license expressions
_WORD = re.compile(r"\(|\)|&&?|\|\|?|,|;|[^\s()&|,;]+")
_OPS = {"and": "AND", "&": "AND", "&&": "AND", ",": "AND", ";": "AND", "or": "OR", "|": "OR", "||": "OR"}
_MAX_NAME_WORDS = 8
_JOINED_WITH = re.compile(r"(.+?)-with-(.+)", re.I)


@dataclass(frozen=True)
class LicenseOutcome:
    """One raw license string and what it means in SPDX."""

    raw: str | None
    spdx: str  # an SPDX expression, or NOASSERTION when nothing was declared
    status: str  # exact | guess | unknown | none
    refs: dict[str, str] = field(default_factory=dict)  # LicenseRef-id -> the raw text it stands for
    notes: tuple[str, ...] = ()  # what was guessed or not understood, for people
    proprietary: bool = False
    public_domain: bool = False


@lru_cache(maxsize=1)
def _spdx_ids() -> dict[str, tuple[str, bool]]:
    """lower-case SPDX id or alias -> (canonical id, is_exception)."""
    out: dict[str, tuple[str, bool]] = {}
    for key, sym in spdx_licensing().known_symbols.items():
        if key.startswith("LicenseRef-scancode"):
            continue
        out[key.lower()] = (sym.key, bool(getattr(sym, "is_exception", False)))
        for alias in getattr(sym, "aliases", ()) or ():
            if " " not in alias:
                out.setdefault(alias.lower(), (sym.key, bool(getattr(sym, "is_exception", False))))
    return out


def license_ref(text: str, prefix: str = "LicenseRef-") -> str:
    """A valid SPDX LicenseRef id for free text: its letters, digits, ``.`` and ``-``; a
    short hash keeps it unique when the text was changed or shortened to fit."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.")
    clean = slug == text and 0 < len(slug) <= 48
    if clean:
        return prefix + slug
    digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{prefix}{slug[:40].strip('-.') or 'text'}-{digest}"


@dataclass
class _State:
    tables: LicenseTables
    refs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    guess: bool = False
    unknown: bool = False
    proprietary: bool = False
    public_domain: bool = False


def _lookup(words: list[str], tables: LicenseTables, exception: bool) -> NameEntry | None:
    text = " ".join(words)
    entry = tables.exception(text) if exception else tables.name(text)
    if entry is not None:
        return entry
    if len(words) == 1:
        if text.startswith("LicenseRef-") and re.fullmatch(r"LicenseRef-[A-Za-z0-9.-]+", text):
            return NameEntry(spdx=text)
        hit = _spdx_ids().get(text.lower())
        if hit is not None and hit[1] == exception:
            return NameEntry(spdx=hit[0])
    return None


class _Names:
    """The operands of a package database's license string (:class:`Parser`'s lenient
    side): a license name is the longest run of words that is a known name, else the
    words up to the next operator, kept as a LicenseRef; the parts are joined as SPDX
    text, which :func:`canonical` then renders."""

    def __init__(self, state: _State) -> None:
        self.st = state

    def with_exception(self, lic: str, exc: str) -> str:
        if exc.startswith("LicenseRef-") or " " in lic:
            # SPDX 2.3 allows no LicenseRef after WITH, nor WITH after a compound:
            # the exception's text is kept alongside instead (as Fedora writes it), and said so
            why = ("SPDX has no id for this exception and SPDX 2.3 allows only listed exception ids after WITH"
                   if exc.startswith("LicenseRef-") else "SPDX 2.3 allows WITH only after a single license")
            self.st.notes.append(f"{lic} with {exc}: written {lic} AND {exc} ({why})")
            return f"{lic} AND {exc}"
        return f"{lic} WITH {exc}"

    def all_of(self, parts: list[str]) -> str:
        return " AND ".join(f"({p})" if " OR " in p else p for p in parts)

    def any_of(self, parts: list[str]) -> str:
        return " OR ".join(parts)

    def group(self, inner: str) -> str:
        return f"({inner})"

    def operand(self, parser: Parser[str], exception: bool) -> str:
        """The longest run of words that is a known name; else the words up to the next
        operator, as a LicenseRef."""
        run: list[str] = []
        j = parser.i
        while j < len(parser.toks) and len(run) < _MAX_NAME_WORDS:
            t = parser.toks[j]
            if t in ("(", ")") or t in ("&", "&&", "|", "||", ",", ";"):
                break
            run.append(t)
            j += 1
        if not run:
            raise ExpressionSyntaxError("a license name is missing")
        for k in range(len(run), 0, -1):
            entry = _lookup(run[:k], self.st.tables, exception)
            if entry is not None:
                parser.i += k
                return self.use(entry, " ".join(run[:k]))
        joined = None if exception else self.joined_with(run[0])
        if joined is not None:
            parser.i += 1
            return joined
        # unknown: take words up to the first operator word
        k = next((n for n, w in enumerate(run) if w.lower() in ("and", "or", "with")), len(run)) or 1
        words = " ".join(run[:k])
        parser.i += k
        ref = license_ref(words, "LicenseRef-" + ("exception-" if exception else ""))
        self.st.refs[ref] = words
        self.st.unknown = True
        self.st.notes.append(f"{words!r} is not a license name flightcheck knows")
        return ref

    def joined_with(self, word: str) -> str | None:
        """One word that is a license and an exception joined by ``-with-`` (Ubuntu's
        ``GPL-3+-WITH-BISON-EXCEPTION``), when both halves are known names."""
        m = _JOINED_WITH.fullmatch(word)
        if m is None:
            return None
        lic = _lookup([m.group(1)], self.st.tables, False)
        exc_name = m.group(2)
        exc = (_lookup([exc_name], self.st.tables, True)
               or _lookup(exc_name.replace("-", " ").split(), self.st.tables, True))
        if lic is None or exc is None:
            return None
        return self.with_exception(self.use(lic, m.group(1)), self.use(exc, exc_name))

    def use(self, entry: NameEntry, words: str) -> str:
        if entry.note and entry.note not in self.st.notes:
            self.st.notes.append(entry.note)
        if entry.guess:
            self.st.guess = True
            alts = f" (also used for {', '.join(entry.alternatives)})" if entry.alternatives else ""
            self.st.notes.append(f"{words!r} is an umbrella name; read as {entry.spdx}{alts}")
        if entry.proprietary:
            self.st.proprietary = True
        if entry.public_domain:
            self.st.public_domain = True
        for ref in re.findall(r"LicenseRef-[A-Za-z0-9.-]+", entry.spdx):
            self.st.refs.setdefault(ref, words)
        return f"({entry.spdx})" if re.search(r"\s(AND|OR)\s", entry.spdx) else entry.spdx


def _dep5_commas(tokens: list[str]) -> list[str]:
    """Debian's DEP-5 lowers the precedence of an operator written after a comma:
    ``A or B, and C`` means ``(A or B) and C``. Rewrite those into parentheses, inside
    every parenthesised group; other commas are left (read as AND)."""
    i = 0

    def group(end_at_paren: bool) -> list[str]:
        nonlocal i
        segments: list[list[str]] = [[]]
        ops: list[str] = []
        closed = not end_at_paren
        while i < len(tokens):
            t = tokens[i]
            if t == "(":
                i += 1
                inner = group(True)
                segments[-1] += ["(", *inner, ")"]
                continue
            if t == ")" and end_at_paren:
                i += 1
                closed = True
                break
            if t == "," and i + 1 < len(tokens) and tokens[i + 1].lower() in ("and", "or"):
                ops.append(tokens[i + 1])
                segments.append([])
                i += 2
                continue
            segments[-1].append(t)
            i += 1
        if not closed:
            raise ExpressionSyntaxError("unbalanced parentheses")
        if not ops:
            return segments[0]
        res: list[str] = ["(", *segments[0], ")"]
        for op, seg in zip(ops, segments[1:]):
            res += [op, "(", *seg, ")"]
        return res

    return group(False)


def _nesting(tokens: list[str]) -> int:
    """How deep the parentheses of a token list nest. The parsers here and license-expression's
    recurse once per level: a string nested deeper than ``MAX_LICENSE_NESTING`` is not
    parsed at all (1,500 levels were a RecursionError), and its outcome is ``unknown``."""
    depth = deepest = 0
    for t in tokens:
        if t == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif t == ")":
            depth -= 1
    return deepest


def normalize(raw: str | None, tables: LicenseTables) -> LicenseOutcome:
    """The SPDX meaning of one raw license string."""
    if raw is None or not raw.strip():
        return LicenseOutcome(raw, "NOASSERTION", "none", notes=("no license declared",))
    # (a LICENSE tag may be 200 MB: white space is collapsed only where that can matter)
    text = " ".join(raw.split()) if len(raw) <= 16 * MAX_RAW else raw[:MAX_RAW + 1]
    st = _State(tables)
    expr: str | None = None
    tokens = _WORD.findall(text) if len(text) <= MAX_RAW else []
    if len(text) > MAX_RAW or "<" in text and ">" in text:
        st.notes.append("not a license expression (too long or markup); kept as text")
    elif _nesting(tokens) > limits.MAX_LICENSE_NESTING:
        st.notes.append("could not be read: " + str(LimitExceeded(
            "MAX_LICENSE_NESTING", limits.MAX_LICENSE_NESTING, f"parentheses {_nesting(tokens):,} deep")))
    else:
        try:
            expr = Parser(_dep5_commas(tokens), _Names(st), _OPS).parse()
        except ExpressionSyntaxError as exc:
            st.notes[:] = [f"cannot parse as a license expression: {exc}"]
    if expr is None:
        ref = license_ref(text[:200])
        return LicenseOutcome(raw, ref, "unknown", {ref: raw}, tuple(st.notes))
    try:
        spdx = canonical(expr)
    except ExpressionError as exc:  # pragma: no cover - the parser builds valid syntax
        ref = license_ref(text[:200])
        return LicenseOutcome(raw, ref, "unknown", {ref: raw}, (f"license-expression: {exc}",))
    status = "unknown" if st.unknown else "guess" if st.guess else "exact"
    return LicenseOutcome(raw, spdx, status, st.refs, tuple(st.notes), st.proprietary, st.public_domain)


_ANY_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")


def one_spelling(outcomes: list[LicenseOutcome], preferred: frozenset[str] = frozenset()) -> list[LicenseOutcome]:
    """The same outcomes with every LicenseRef id spelt one way across all of them: SPDX
    compares license ids without regard to case, so ``LicenseRef-distributable`` and
    ``LicenseRef-Distributable`` in one document are one id. The spelling kept is the
    name tables' (``preferred``) when they have one, else the one most outcomes use (the
    first in sorted order among equals)."""
    spellings: dict[str, dict[str, int]] = {}
    for o in outcomes:
        for ref in set((*o.refs, *_ANY_REF.findall(o.spdx))):
            counts = spellings.setdefault(ref.casefold(), {})
            counts[ref] = counts.get(ref, 0) + 1
    chosen = {}
    for counts in spellings.values():
        if len(counts) > 1:
            best = sorted(set(counts) & preferred) or sorted(counts, key=lambda r: (-counts[r], r))
            chosen.update({s: best[0] for s in counts if s != best[0]})
    if not chosen:
        return outcomes
    out = []
    for o in outcomes:
        if not any(r in chosen for r in (*o.refs, *_ANY_REF.findall(o.spdx))):
            out.append(o)
            continue
        refs: dict[str, str] = {}
        for ref, raw in o.refs.items():
            refs.setdefault(chosen.get(ref, ref), raw)
        spdx = _ANY_REF.sub(lambda m: chosen.get(m.group(0), m.group(0)), o.spdx)
        out.append(LicenseOutcome(o.raw, spdx, o.status, refs, o.notes, o.proprietary, o.public_domain))
    return out
