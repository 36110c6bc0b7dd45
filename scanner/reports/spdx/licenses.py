"""The license values of an SPDX document: the result's SPDX expressions as spdx-tools
license values, and the ``LicenseRef-`` ids they use with their text (SPDX 2.3 section
10, other licensing information)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from license_expression import (
    ExpressionError,
    ExpressionParseError,
    LicenseExpression,
    Licensing,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
)
from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.model.extracted_licensing_info import ExtractedLicensingInfo
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.model.spdx_none import SpdxNone

from scanner.reports.spdx.text import LICENSE_REF, decoded, digest, line, slug, text

LicenseValue: TypeAlias = LicenseExpression | SpdxNoAssertion | SpdxNone


# Parses without reading any id as an alias of another: spdx-tools' licensing object would
# turn LicenseRef-Fedora-Public-Domain into LicenseRef-scancode-public-domain, losing the
# text the result has for it.
_PLAIN = Licensing()


class Licenses:
    """Turns the result's SPDX expressions into spdx-tools license values and collects
    every ``LicenseRef-`` they use, with its text.

    ``LicenseRef-`` ids are kept as they are; other ids are written as the SPDX License
    List (as spdx-tools knows it) spells them. An id it does not know becomes a
    ``LicenseRef-`` id standing for it (a ``WITH`` with an unknown exception becomes one
    ``LicenseRef-``), so a license list newer than spdx-tools' never makes the document
    invalid; an expression that does not parse is NOASSERTION, with a note."""

    def __init__(self, refs: Mapping[str, str]) -> None:
        self.refs = dict(refs)
        self.used: dict[str, tuple[str, str | None]] = {}  # id -> (text, comment)
        self._cache: dict[str, tuple[LicenseValue, list[str]]] = {}

    def convert(self, expr: str | None) -> tuple[LicenseValue, list[str]]:
        """The license value for ``expr`` and notes on what was changed."""
        if expr is None or not expr.strip() or expr.strip() == "NOASSERTION":
            return SpdxNoAssertion(), []
        if expr.strip() == "NONE":
            return SpdxNone(), []
        if expr not in self._cache:
            self._cache[expr] = self._convert(expr)
        value, notes = self._cache[expr]
        if isinstance(value, LicenseExpression):
            for sym in _PLAIN.license_symbols(value, unique=True, decompose=True):
                if sym.key.startswith("LicenseRef-") and sym.key not in self.used:
                    self._use(sym.key, self.refs.get(sym.key), None)
        return value, notes

    def _use(self, ref: str, body: str | None, comment: str | None) -> None:
        if body is None:
            body, comment = ref, comment or "flightcheck has no text for this license id"
        self.used[ref] = (body, comment)

    def _ref_for(self, original: str) -> str:
        """A valid LicenseRef id standing for ``original`` (which is not one)."""
        bare = original[len("LicenseRef-"):] if original.startswith("LicenseRef-") else original
        return f"LicenseRef-{slug(bare, 64) or 'unnamed'}-{digest(original, 8)}"

    @staticmethod
    def _listed(key: str, exception: bool) -> str | None:
        """``key`` as the SPDX License List spells it, if it is a listed license (or
        exception)."""
        known = spdx_licensing.known_symbols
        sym = known.get(key) or spdx_licensing.known_symbols_lowercase.get(key.lower())
        if sym is None:  # an alias, such as the deprecated GPL-2.0+
            try:
                alias = spdx_licensing.parse(key)
            except ExpressionError:
                alias = None
            sym = known.get(alias.key) if isinstance(alias, LicenseSymbol) else None
        if sym is None or sym.key.startswith("LicenseRef-") or bool(sym.is_exception) != exception:
            return None
        return str(sym.key)

    def _license(self, key: str, notes: list[str]) -> str:
        """The id to write for license ``key``."""
        if LICENSE_REF.match(key):
            return key
        listed = self._listed(key, exception=False)
        if listed is not None:
            if listed != key:
                notes.append(f"{key} written as {listed}")
            return listed
        new = self._ref_for(key)
        self._use(new, self.refs.get(key, key), f"stands for {key!r}, which is not on the SPDX License List")
        notes.append(f"{key} written as {new}")
        return new

    def _convert(self, expr: str) -> tuple[LicenseValue, list[str]]:
        try:
            parsed = _PLAIN.parse(decoded(expr))
        except ExpressionError as err:
            return SpdxNoAssertion(), [f"license expression {expr!r} does not parse: {err}"]
        if parsed is None:
            return SpdxNoAssertion(), []
        subs: dict[Any, LicenseSymbol] = {}
        notes: list[str] = []
        for sym in _PLAIN.license_symbols(parsed, unique=True, decompose=False):
            if isinstance(sym, LicenseWithExceptionSymbol):
                lic, exc = sym.license_symbol.key, sym.exception_symbol.key
                listed_exc = self._listed(exc, exception=True)
                if listed_exc is not None:
                    new_lic = self._license(lic, notes)
                    if listed_exc != exc:
                        notes.append(f"{exc} written as {listed_exc}")
                    if (new_lic, listed_exc) != (lic, exc):
                        subs[sym] = LicenseWithExceptionSymbol(LicenseSymbol(new_lic),
                                                               LicenseSymbol(listed_exc, is_exception=True))
                else:
                    whole = f"{lic} WITH {exc}"
                    new = self._ref_for(f"{lic}-WITH-{exc}")
                    subs[sym] = LicenseSymbol(new)
                    self._use(new, whole, f"stands for {whole!r}: SPDX 2.3 allows listed exceptions only")
                    notes.append(f"{whole} written as {new}")
            else:
                key = self._license(sym.key, notes)
                if key != sym.key:
                    subs[sym] = LicenseSymbol(key)
        value = parsed.subs(subs) if subs else parsed
        # The checks spdx-tools' validator makes (license_expression_validator).
        bad = [s for s in spdx_licensing.validate(value).invalid_symbols if not LICENSE_REF.match(s)]
        if bad:
            return SpdxNoAssertion(), [f"license expression {expr!r} is not valid SPDX: {', '.join(bad)}"]
        try:
            spdx_licensing.parse(str(value), validate=True, strict=True)
        except ExpressionParseError as err:
            return SpdxNoAssertion(), [f"license expression {expr!r} is not valid SPDX: {err}"]
        except ExpressionError:
            pass  # LicenseRef- ids: declared in the extracted licensing info
        return value, notes

    def extracted(self) -> list[ExtractedLicensingInfo]:
        out = []
        for ref in sorted(self.used):
            body, comment = self.used[ref]
            body_text = text(body) or ""
            if not body_text.strip():
                body_text = ref
            name_line = line(body.strip().splitlines()[0] if body.strip() else ref) or ref
            if len(name_line) > 120:
                name_line = name_line[:117] + "..."
            note = ("The text is the license as the package database states it (a name or a short "
                    "string), not the full license text.")
            out.append(ExtractedLicensingInfo(
                license_id=ref, extracted_text=body_text, license_name=name_line,
                comment=text(f"{comment}. {note}" if comment else note)))
        return out
