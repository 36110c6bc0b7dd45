"""The text of a DEP-5 ``License:`` paragraph against its short name.

Debian's short names carry the version and the "or later" (``GPL-2`` is version 2 only,
``GPL-2+`` version 2 or later), but the text under the name is what the package grants:
when the paragraph for ``GPL-2`` says "either version 2 of the License, or (at your option)
any later version", the name is read ``GPL-2+``; when the paragraph for ``GPL-3+ with Bison
exception`` carries Bison's 2.2 exception, the exception is read ``Bison-exception-2.2``.
A text never takes the "or later" away (a paragraph that only points to
``/usr/share/common-licenses`` grants nothing), and only GNU names are checked: the
standard texts under other names (a "BSD-variant", "MIT-like") are variants, kept as they
are named."""

from __future__ import annotations

import re

from scanner.licensing.notice import read_notice

_GNU = re.compile(r"(?P<fam>[LA]?GPL|GFDL)-?(?P<ver>[0-9](?:\.[0-9])?)(?P<plus>\+)?(?P<exc>\s+with\s+.+)?", re.I)
_OPERATOR = re.compile(r"(\s+(?:and|or)\s+|,|\(|\))", re.I)
_LICENSE_FIELD = re.compile(r"^License:[ \t]*(?P<name>[^\n]*)\n(?P<body>(?:[ \t][^\n]*(?:\n|$))*)", re.M)
MAX_BODY = 64 * 1024  # characters of one License paragraph read


def _version(v: str) -> str:
    return v[:-2] if v.endswith(".0") else v


def _decide(name: str, body: str) -> tuple[str, str] | None:
    """The name as its text reads it, and the sentence that decided; None when the text
    says nothing more than the name."""
    m = _GNU.fullmatch(name.strip())
    if m is None:
        return None
    fam, ver = m.group("fam").upper(), _version(m.group("ver"))
    found = [f for f in read_notice(body[:MAX_BODY]).found
             if (g := _GNU.fullmatch(f.name)) is not None and g.group("fam").upper() == fam
             and _version(g.group("ver")) == ver]
    if not found:
        return None
    later = m.group("plus") is not None or any(_GNU.fullmatch(f.name).group("plus") for f in found)  # type: ignore[union-attr]
    exc = m.group("exc") or ""
    named = [f for f in found if " with " in f.name]
    if exc and named:
        exc = " with " + named[0].name.split(" with ", 1)[1]
    read = f"{fam}-{m.group('ver')}{'+' if later else ''}{exc}"
    if read == name.strip():
        return None
    why = next((f for f in found if f.name.endswith("+") or " with " in f.name), found[0])
    return read, why.evidence


def texts_decide(synopses: list[str], paragraphs: list[str]) -> tuple[list[str], str]:
    """The synopses with each GNU short name read against the text of its License
    paragraph, and what changed (for the evidence)."""
    names = {n.strip().casefold(): n.strip() for s in synopses for n in _OPERATOR.split(s)
             if n.strip() and _GNU.fullmatch(n.strip())}
    if not names:
        return synopses, ""
    bodies: dict[str, str] = {}
    for chunk in paragraphs:
        for m in _LICENSE_FIELD.finditer(chunk.lstrip()):
            key = m.group("name").strip().casefold()
            if key in names and m.group("body").strip():
                bodies[key] = bodies.get(key, "") + "\n\n" + m.group("body")
    changed: dict[str, str] = {}
    notes = []
    for key, body in bodies.items():
        decided = _decide(names[key], body)
        if decided is not None:
            changed[key] = decided[0]
            notes.append(f"{names[key]} read as {decided[0]} from its License text (\"{decided[1]}\")")
    if not changed:
        return synopses, ""
    out = []
    for s in synopses:
        parts = _OPERATOR.split(s)
        new = "".join(changed.get(p.strip().casefold(), p) if p.strip() else p for p in parts)
        if new not in out:
            out.append(new)
    return out, "; " + "; ".join(notes)
