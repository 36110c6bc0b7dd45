"""scanner.licensing.expression: the one parser of SPDX license expressions, checked
against license-expression (the library the normaliser canonicalises with) on a corpus:
every expression the normaliser makes of the shipped name tables and of random
combinations of them, and random expressions of SPDX ids."""

from __future__ import annotations

import random
import tomllib
from typing import Any

import pytest
from boolean.boolean import AND
from license_expression import ExpressionError, Licensing, LicenseSymbol, LicenseWithExceptionSymbol

from scanner.licensing.expression import ExpressionSyntaxError, Node, canonical, parse
from scanner.licensing.normalize import normalize
from scanner.licensing.tables import load_tables
from scanner.resources import content_dir

PLAIN = Licensing()


def flat(node: Node) -> Any:
    """A tree with nested operators of one kind merged (A AND (B AND C) is A AND B AND C),
    as a comparable value."""
    if isinstance(node, str):
        return node
    op, args = node
    out: list[Any] = []
    for a in args:
        f = flat(a)
        out.extend(f[1] if isinstance(f, tuple) and f[0] == op else [f])
    return (op, tuple(out))


def oracle(expr: Any) -> Node:
    """license-expression's parse as a :data:`Node` (a WITH stands for its license)."""
    if isinstance(expr, LicenseWithExceptionSymbol):
        return str(expr.license_symbol.key)
    if isinstance(expr, LicenseSymbol):
        return str(expr.key)
    return ("AND" if isinstance(expr, AND) else "OR", tuple(oracle(a) for a in expr.args))


def corpus() -> list[str]:
    """The SPDX expressions the normaliser makes of the name tables and their combinations."""
    tables = load_tables()
    folder = content_dir("rules") / "licenses"
    names = list(tomllib.loads((folder / "names.toml").read_text()).get("names", {}))
    rnd = random.Random(16)
    raws = names + [f" {rnd.choice(('and', 'or', '&', '|', ','))} ".join(rnd.sample(names, rnd.randint(2, 4)))
                    for _ in range(1500)]
    out = {normalize(r, tables).spdx for r in raws}
    ids = ["MIT", "GPL-2.0-only", "Apache-2.0", "LicenseRef-Vendor", "BSD-3-Clause", "GPL-3.0-or-later WITH "
           "GCC-exception-3.1", "LGPL-2.1-or-later"]

    def random_expr(depth: int) -> str:
        if depth == 0 or rnd.random() < 0.3:
            return rnd.choice(ids)
        parts = [random_expr(depth - 1) for _ in range(rnd.randint(2, 3))]
        text = f" {rnd.choice(('AND', 'OR', 'and', 'or'))} ".join(parts)
        return f"({text})" if rnd.random() < 0.5 else text

    out.update(random_expr(4) for _ in range(1500))
    return sorted(out - {"NOASSERTION"})


def test_parse_agrees_with_license_expression() -> None:
    exprs = corpus()
    assert len(exprs) > 1000
    for e in exprs:
        assert flat(parse(e)) == flat(oracle(PLAIN.parse(e))), e


def test_precedence_with_then_and_then_or() -> None:
    assert parse("A OR B AND C WITH X") == ("OR", ("A", ("AND", ("B", "C"))))
    assert parse("(A OR B) AND C") == ("AND", (("OR", ("A", "B")), "C"))
    assert parse("((MIT))") == "MIT"
    assert parse("mit and gpl-2.0-only or x") == ("OR", (("AND", ("mit", "gpl-2.0-only")), "x"))


@pytest.mark.parametrize("bad", ["MIT AND", "(MIT", "MIT)", "AND MIT", "MIT WITH", "MIT OR OR GPL-2.0-only", "",
                                 "MIT WITH (X)", "WITH MIT", "A WITH B WITH C"])
def test_malformed_is_refused(bad: str) -> None:
    with pytest.raises(ExpressionSyntaxError):
        parse(bad)
    if bad:  # license-expression refuses them as well (it reads "" as no expression)
        with pytest.raises(ExpressionError):
            PLAIN.parse(bad, validate=True, strict=True)


def test_syntax_error_is_a_value_error() -> None:
    assert issubclass(ExpressionSyntaxError, ValueError)


def test_canonical_keeps_license_refs_and_rewrites_deprecated_ids() -> None:
    assert canonical("GPL-2.0+ AND LicenseRef-Fedora-Public-Domain") == \
        "GPL-2.0-or-later AND LicenseRef-Fedora-Public-Domain"
    assert canonical("mit or (apache-2.0)") == "MIT OR Apache-2.0"
