"""Reading a license notice: the grants, their version clauses, the exceptions and the
standard license texts of a free-text copyright file (or of the text of a DEP-5
``License:`` paragraph), instead of the ``/usr/share/common-licenses/X`` pointer beside it.

A focused reader: regular expressions over the text with its white space and comment
markers collapsed, sentence by sentence. What it finds is a list of :class:`Found` names,
each in the short form the name tables know (``GPL-2+``, ``LGPL-2.1``, ``BSD-3-clause``,
``GPL-3+ with Bison-exception-2.2``), with the sentence that decided it (the evidence).

* A GNU grant (GPL, LGPL, AGPL, GFDL) is a sentence that names the license and grants
  something (``you can redistribute it``, ``under the terms of``, ``licensed under``...);
  its version clause decides the id: ``version 2 of the License, or (at your option) any
  later version`` and ``version 2 or later`` are ``-or-later``; ``version 2`` alone (or
  ``version 2 only``) is ``-only``; no version at all is the umbrella name (a guess).
  Sentences that only point at a text (``can be found in``, ``a copy of``, ``for more
  details``) grant nothing.
* An exception (Bison, GCC runtime, OpenSSL, Autoconf, Libtool, Classpath) is joined to
  the nearest GNU grant before it.
* A standard text (BSD with its clauses counted, MIT/Expat and X11, ISC, zlib, Apache 1.1
  and 2.0, MPL, the PSF agreement and the Python license stack, CC0 and CC BY(-SA),
  public-domain dedications) is found by the sentences that only it has.

Bounded: at most ``MAX_NOTICE`` characters of a file are read (the rest is said so), and
every pattern is linear (no nested repetition)."""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass

MAX_NOTICE = 512 * 1024  # characters of one file read for grants (Debian's largest are ~300 kB)
MAX_EVIDENCE = 240


@dataclass(frozen=True)
class Found:
    name: str  # a short name the tables know: GPL-2+, BSD-3-clause, GPL-3+ with Bison-exception-2.2
    evidence: str  # the sentence (or the standard text's first words) that decided it
    at: int  # where in the flattened text


@dataclass(frozen=True)
class Notice:
    found: tuple[Found, ...]
    truncated: bool  # the file was longer than MAX_NOTICE; its end was not read


_FLAT_WS = re.compile(r"\s+")
_MARKERS = re.compile(r" (?:[*#|]+|/\*+|\*+/|--+) (?=\S)")
_PARAGRAPH = re.compile(r"\n[ \t*#|]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:['\")]*) (?=[A-Z(*\[\"'`])|¶")

_FAMILY = re.compile(
    r"(?P<fam>GNU (?:Lesser|Library|Affero) General Public Licen[cs]e|GNU Free Documentation Licen[cs]e"
    r"|Free Documentation Licen[cs]e|(?:GNU )?(?:Lesser|Library) General Public Licen[cs]e|Affero General Public Licen[cs]e"
    r"|(?:GNU )?General Public Licen[cs]e|GNU [LA]?GPL|\b[LA]?GPL\b(?!-compat)|\bGFDL\b)"
    r"(?: \(\"?(?:[LA]?GPL|GFDL)\"?\))?"
    r"(?P<short>(?: ?v| ?-| version )?(?P<sver>[123](?:\.[0-9])?)(?![0-9])"
    r"(?P<splus>\+|-or-later| \(?or later\)?| or any later version)?)?",
    re.I)
_VERSION = re.compile(
    r"(?:either |under |only )?(?:version|v\.?) ?(?P<ver>[123](?:\.[0-9])?)(?![0-9])(?: of the Licen[cs]e)?(?: only)?"
    r"(?P<later>,? ?(?:\(at your option\),? ?)?(?:or|and/or),? ?(?:\(at your option\),? ?)?(?:any )?"
    r"(?:later|newer|higher|greater)"
    r"| ?\+| \(?or later\)?)?",
    re.I)
_VERSION_BEFORE = re.compile(r"version (?P<ver>[123](?:\.[0-9])?)(?: \(or later\)| or later)? of the $", re.I)
_GRANT = re.compile(
    r"redistribute|under the terms|licen[cs]ed under|released under|distributed under|licen[cs]ed as|covered by"
    r"|available under|you can use|is free software|may be used under|is licen[cs]ed|permission is granted|under the GPL"
    r"|^Licen[cs]e:|subject to the", re.I)
_STRONG_GRANT = re.compile(r"redistribute it|under the terms of|(?:is|are) (?:licen[cs]ed|released|distributed) under"
                           r"|^licen[cs]ed under", re.I)
_POINTER = re.compile(r"can be found|common-licenses|a copy of|for more details|copy of the GNU|should have received"
                      r"|WITHOUT ANY WARRANTY|see the GNU|complete text|full text|included in the section", re.I)

#: exceptions: (pattern, the name the exception table knows)
_EXCEPTIONS = (
    (re.compile(r"larger work that contains part or all of the Bison parser skeleton", re.I), "Bison-exception-2.2"),
    (re.compile(r"copied by Bison into a Bison output file, you may use that output file without restriction", re.I),
     "Bison-exception-1.24"),
    (re.compile(r"GCC Runtime Library Exception,? version 3\.1|version 3\.1 of the GCC Runtime Library Exception", re.I),
     "GCC-exception-3.1"),
    (re.compile(r"link this library with (?:other files|files compiled with (?:a )?GNU compiler)[^.]{0,200}?does not by "
                r"itself cause the resulting executable to be covered", re.I), "GCC-exception-2.0"),
    (re.compile(r"Autoconf Configure Script Exception", re.I), "Autoconf-exception-3.0"),
    (re.compile(r"the respective Autoconf Macro's copyright owner gives unlimited permission", re.I),
     "Autoconf-exception-macro"),
    (re.compile(r"(?<!Macro's copyright owner )gives unlimited permission to copy, distribute and modify the configure "
                r"scripts that are the output of Autoconf(?! when processing the Macro)", re.I), "Autoconf-exception-2.0"),
    (re.compile(r"may be distributed as part of a program that contains a configuration script generated by Autoconf, "
                r"under the same distribution terms as the rest of that program", re.I), "Autoconf-exception-generic-3.0"),
    (re.compile(r"contains a configuration script generated by Autoconf, you may include it under the same distribution "
                r"terms that you use for the rest of that program\.? This Exception is an additional permission under "
                r"section 7", re.I), "Autoconf-exception-generic-3.0"),
    (re.compile(r"contains a configuration script generated by Autoconf, you may include it under the same distribution "
                r"terms that you use for the rest of that program(?!\.? This Exception is an additional permission)", re.I),
     "Autoconf-exception-generic"),
    (re.compile(r"part of a program or library that is built using GNU Libtool", re.I), "Libtool-exception"),
    (re.compile(r"Linking this library statically or dynamically with other modules is making a combined work", re.I),
     "Classpath-exception-2.0"),
    (re.compile(r"(?:special exception|additional permission|permission to link|exception)[^.]{0,300}?\bOpenSSL\b"
                r"|\b(?:link|linking|combine|combining)[^.]{0,160}?\bOpenSSL\b[^.]{0,200}?"
                r"(?:exception|permission|grant)", re.I), "OpenSSL exception"),
)

#: which licenses an exception is written for (GPL only when not named); how far from its grant
_EXCEPTION_FAMILIES = {"GCC-exception-2.0": ("GPL", "LGPL"), "OpenSSL exception": ("GPL", "LGPL", "AGPL"),
                       "Libtool-exception": ("GPL", "LGPL")}
_NEAR = 1500

#: standard texts: (pattern, name); BSD is counted apart
_TEXTS = (
    (re.compile(r"Permission is hereby granted, free of charge, to any person obtaining a copy", re.I), "Expat"),
    (re.compile(r"Permission to use, copy, modify, and(?:/or)? distribute this software for any purpose with or without "
                r"fee is hereby granted, provided that the above copyright notice and this permission notice appear in all "
                r"copies", re.I), "ISC"),
    (re.compile(r"Permission is granted to anyone to use this software for any purpose, including commercial "
                r"applications, and to alter it and redistribute it freely", re.I), "Zlib"),
    (re.compile(r"Apache Licen[cs]e,? Version 2\.0|Apache-2\.0\b", re.I), "Apache-2.0"),
    (re.compile(r"Apache Software Licen[cs]e,? Version 1\.1|\bApache-1\.1\b", re.I), "Apache-1.1"),
    (re.compile(r"Mozilla Public Licen[cs]e,? (?:v\.? ?|version )?2\.0|\bMPL-2\.0\b", re.I), "MPL-2.0"),
    (re.compile(r"Mozilla Public Licen[cs]e,? (?:v\.? ?|version )?1\.1|\bMPL-1\.1\b", re.I), "MPL-1.1"),
    (re.compile(r"CC0 1\.0 Universal|Creative Commons Zero|\bCC0-1\.0\b", re.I), "CC0-1.0"),
    (re.compile(r"Creative Commons Attribution-ShareAlike (?P<v>[1-4]\.0)", re.I), "CC-BY-SA-{v}"),
    (re.compile(r"Creative Commons Attribution (?P<v>[1-4]\.0)", re.I), "CC-BY-{v}"),
    (re.compile(r"(?:placed|released|dedicated|put) (?:in|into) the public domain", re.I), "public-domain"),
)
_PSF = re.compile(r"PYTHON SOFTWARE FOUNDATION LICEN[CS]E VERSION 2|PSF LICEN[CS]E AGREEMENT FOR PYTHON")
_PYTHON_STACK = re.compile(r"BEOPEN\.COM LICEN[CS]E AGREEMENT|CNRI (?:OPEN SOURCE )?LICEN[CS]E AGREEMENT", re.I)
_BSD = re.compile(r"Redistribution and use in source and binary forms, with or without modification, are permitted "
                  r"provided that", re.I)
_BSD_END = re.compile(r"SUCH DAMAGE\.?|Redistribution and use in source", re.I)
_BSD_ADVERTISING = re.compile(r"All advertising materials mentioning features or use of this software must display", re.I)
_BSD_ENDORSE = re.compile(r"Neither the names? of.{0,300}?(?:may|must|shall) be used to endorse"
                          r"|(?:The names? of).{0,200}?(?:may|must|shall) not be used to endorse"
                          r"|may not be used to endorse or promote", re.I)


def flatten(text: str) -> str:
    """The text as one line: paragraphs marked ``¶``, white space and comment markers
    collapsed, so a sentence reads the same however it was wrapped."""
    paragraphs = _PARAGRAPH.split(text)
    flat = (_MARKERS.sub(" ", " " + _FLAT_WS.sub(" ", p)).strip() for p in paragraphs)
    return " ¶ ".join(p for p in flat if p)


def _sentences(flat: str) -> list[tuple[int, str]]:
    out, start = [], 0
    for m in _SENTENCE_END.finditer(flat):
        out.append((start, flat[start:m.start()]))
        start = m.end()
    out.append((start, flat[start:]))
    return [(at, s.strip(" ¶")) for at, s in out if s.strip(" ¶")]


def _family(fam: str, version: str | None) -> str:
    f = fam.lower()
    if "documentation" in f or f.endswith("gfdl"):
        base = "GFDL"
    elif "affero" in f or f.endswith("agpl"):
        base = "AGPL"
    elif "lesser" in f or "library" in f or f.endswith("lgpl"):
        base = "LGPL"
    else:
        base = "GPL"
    return f"{base}-{version}" if version else base


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_EVIDENCE else text[:MAX_EVIDENCE - 1] + "…"


def _grants(at: int, sentence: str) -> list[Found]:
    """The GNU grants of one sentence."""
    if not _GRANT.search(sentence) or (_POINTER.search(sentence) and "later version" not in sentence.lower()):
        return []
    out = []
    matches = list(_FAMILY.finditer(sentence))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else min(len(sentence), m.end() + 260)
        window = sentence[m.end():end]
        if m.group("sver"):
            ver, later = m.group("sver"), bool(m.group("splus"))
        elif (v := _VERSION.search(window)) is not None and v.start() <= 160:
            ver, later = v.group("ver"), bool(v.group("later"))
        elif (b := _VERSION_BEFORE.search(sentence[max(0, m.start() - 40):m.start()])) is not None:
            ver, later = b.group("ver"), "later" in b.group(0).lower()
        else:
            ver, later = None, False
        if ver is None and (not _STRONG_GRANT.search(sentence) or "compatib" in sentence.lower()):
            continue  # "distributing Python under the GPL": no version, no grant
        name = _family(m.group("fam"), ver)
        if ver is not None and later:
            name += "+"
        out.append(Found(name, _short(sentence), at + m.start()))
    return out


def _bsd(flat: str) -> list[Found]:
    out = []
    for m in _BSD.finditer(flat):
        end = _BSD_END.search(flat, m.end(), min(len(flat), m.end() + 3000))
        block = flat[m.start():end.start() if end else min(len(flat), m.end() + 3000)]
        advertising = _BSD_ADVERTISING.search(block) is not None
        uc = re.search(r"Regents of the University of California", flat[max(0, m.start() - 400):m.start()] + block, re.I)
        name = (("BSD-4-Clause-UC" if uc else "BSD-4-clause") if advertising
                else "BSD-3-clause" if _BSD_ENDORSE.search(block) else "BSD-2-clause")
        out.append(Found(name, _short(block[:MAX_EVIDENCE]), m.start()))
    return out


#: words (lower case) without which a pattern cannot match: most patterns are not run at all
_TEXT_KEYS = {"Expat": ("free of charge",), "ISC": ("with or without fee",), "Zlib": ("permission is granted to anyone",),
              "Apache-2.0": ("apache",), "Apache-1.1": ("apache",), "MPL-2.0": ("mozilla", "mpl-"),
              "MPL-1.1": ("mozilla", "mpl-"), "CC0-1.0": ("cc0", "creative commons"),
              "CC-BY-SA-{v}": ("creative commons",), "CC-BY-{v}": ("creative commons",),
              "public-domain": ("public domain",)}
_EXCEPTION_KEYS = {"Bison-exception-2.2": "bison", "Bison-exception-1.24": "bison", "GCC-exception-3.1": "gcc runtime",
                   "GCC-exception-2.0": "by itself cause", "Libtool-exception": "libtool",
                   "Classpath-exception-2.0": "combined work", "OpenSSL exception": "openssl"}
_GNU_WORDS = ("gpl", "general public", "gfdl", "documentation licen")


_X11_CLAUSE = re.compile(r"[. ¶]{0,8}Except as contained in this notice, the names? of", re.I)


def _x11(flat: str, low: str, at: int) -> bool:
    """The Expat grant at ``at`` is X11's: its disclaimer ends "... DEALINGS IN THE
    SOFTWARE." and the X Consortium's clause on the use of names follows at once."""
    end = low.find("dealings in the software", at, at + 2500)
    if end < 0:
        return False
    end += len("dealings in the software")
    return "x consortium" in low[at:end] or _X11_CLAUSE.match(flat, end) is not None


def _texts(flat: str, low: str) -> list[Found]:
    out = _bsd(flat) if "redistribution and use" in low else []
    for rx, name in _TEXTS:
        if not any(k in low for k in _TEXT_KEYS[name]):
            continue
        for m in rx.finditer(flat):
            n = name.format(**m.groupdict()) if "{" in name else name
            if n == "Expat" and _x11(flat, low, m.start()):
                n = "X11"
            out.append(Found(n, _short(flat[max(0, m.start() - 60):m.end() + 60]), m.start()))
    for m in (_PSF.finditer(flat) if "python software foundation" in low or "psf license" in low else ()):
        n = "Python-2.0" if _PYTHON_STACK.search(flat) else "PSF-2"
        out.append(Found(n, _short(m.group(0)), m.start()))
    return out


def _with_exceptions(flat: str, low: str, grants: list[Found]) -> list[Found]:
    """Each exception joined to the nearest GNU grant before it (else after it)."""
    grants = list(grants)
    if not grants:
        return grants
    for rx, exc in _EXCEPTIONS:
        if _EXCEPTION_KEYS.get(exc, "autoconf") not in low:
            continue
        for m in rx.finditer(flat):
            families = _EXCEPTION_FAMILIES.get(exc, ("GPL",))
            fits = [i for i, g in enumerate(grants)
                    if " with " not in g.name and "-" in g.name and g.name.split("-")[0] in families
                    and abs(g.at - m.start()) <= _NEAR]
            before = [i for i in fits if grants[i].at <= m.start()]
            after = [i for i in fits if grants[i].at > m.start()]
            pick = before[-1] if before else after[0] if after else None
            if pick is None:
                continue
            g = grants[pick]
            grants[pick] = Found(f"{g.name} with {exc}", _short(f"{g.evidence} … {m.group(0)}"), g.at)
    return grants


_RECENT: OrderedDict[bytes, Notice] = OrderedDict()
_RECENT_MAX = 256  # notices remembered, by the digest of their text (not the text: bounded memory)


def read_notice(text: str) -> Notice:
    """Every license the text grants or carries, in the order they appear, each once.
    The last notices read are remembered by their text's digest: one copyright file is
    often shared by every package of a source (krb5's five libraries, gcc's runtimes)."""
    key = hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
    hit = _RECENT.get(key)
    if hit is not None:
        _RECENT.move_to_end(key)
        return hit
    notice = _read_notice(text)
    _RECENT[key] = notice
    if len(_RECENT) > _RECENT_MAX:
        _RECENT.popitem(last=False)
    return notice


def _read_notice(text: str) -> Notice:
    truncated = len(text) > MAX_NOTICE
    flat = flatten(text[:MAX_NOTICE])
    low = flat.lower()
    grants = [g for at, s in _sentences(flat) if any(w in low[at:at + len(s)] for w in _GNU_WORDS)
              for g in _grants(at, s)]
    found = sorted([*_with_exceptions(flat, low, grants), *_texts(flat, low)], key=lambda f: f.at)
    seen: dict[str, Found] = {}
    for f in found:
        seen.setdefault(f.name.casefold(), f)
    names = {f.name for f in seen.values()}
    # an umbrella name (GPL) when the same family is also granted with a version says nothing more
    kept = [f for f in seen.values() if not (f.name in ("GPL", "LGPL", "AGPL", "GFDL")
                                             and any(n.startswith(f.name + "-") for n in names))]
    return Notice(tuple(kept), truncated)
