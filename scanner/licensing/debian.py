"""Debian package licenses from ``/usr/share/doc/<package>/copyright``.

Machine-readable files (DEP-5, copyright-format 1.0: a first paragraph with a ``Format:``
field naming the format) are read with python-debian's deb822 paragraph parser (the fast
one: ``debian.copyright``'s round-trip parser costs about 15 ms a file, seconds on a whole
system): the package's license is the conjunction of the ``License:`` synopses (first
line) of all its ``Files:`` paragraphs, in order, duplicates removed; where the text of a
``License:`` paragraph grants a GNU license "or (at your option) any later version" that its
short name gives without ``+``, or names the exception its short name leaves vague (``GPL-3+
with Bison exception`` whose text is Bison's 2.2 exception), the text wins and the evidence
says so. About a third of Debian's packages have a free-text file instead: its notice is
read (:mod:`scanner.licensing.notice`: the grants with their version clauses, the exceptions,
the standard license texts; ``read`` is ``notice-text``), and the
``/usr/share/common-licenses/<name>`` files the text points to (Debian policy asks for exactly
these references) are used only for the licenses no sentence of the notice decided
(``read`` is ``pointer-only`` when nothing else was found). Either way it is marked a guess.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from scanner.inventory.memo import Memo, file_key
from scanner.target import RootFS

MAX_COPYRIGHT = 4 << 20
_EVIDENCE_ITEMS = 8  # sentences quoted in a free-text file's evidence
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_COMMON = re.compile(r"/usr/share/common-licenses/([A-Za-z0-9.+_-]+)")
_TITLES = (
    (re.compile(r"GNU (?:LESSER|Lesser|LIBRARY|Library) GENERAL PUBLIC LICENSE"
                r"|GNU (?:Lesser|Library) General Public License", re.I), "LGPL"),
    (re.compile(r"Apache License,? Version 2\.0", re.I), "Apache-2.0"),
    (re.compile(r"Permission is hereby granted, free of charge, to any person obtaining a copy", re.I), "Expat"),
    (re.compile(r"Mozilla Public License,? (?:v\.? ?|version )2\.0", re.I), "MPL-2.0"),
)

@dataclass(frozen=True)
class DebianLicense:
    raw: str | None  # what the copyright file says, as a license string
    source: str  # dep5 | copyright-text | none
    evidence: str  # the file read, and how
    read: str = ""  # free text: notice-text (its sentences decided) | pointer-only (common-licenses names only)


def _join(synopses: list[str]) -> str:
    if len(synopses) == 1:
        return synopses[0]
    return " and ".join(f"({s})" if re.search(r"\s(or|and)\s", s, re.I) else s for s in synopses)


def read_copyright(fs: RootFS, package: str, memo: Memo | None = None) -> DebianLicense:
    """The license a package's copyright file states. ``memo`` (the scan cache's memo
    store) keeps the answer for the next scan twice: keyed by the file's identity (an
    unchanged file is not even read again) and by a digest of its text, shared by every
    target of the cache (the same copyright file on every machine of a release, or of every
    package of one source, is parsed once)."""
    path = f"/usr/share/doc/{package}/copyright"
    st = real = None
    if memo is not None:
        try:
            real = fs.resolve(path)
            st = fs.lstat(real)
        except OSError:
            st = None
        if st is not None:
            hit: DebianLicense | None = memo.get("copyright", f"{path}\0{real}", file_key(st), _from_memo)
            if hit is not None:
                return hit
    try:
        data = fs.read(path, MAX_COPYRIGHT)
    except FileNotFoundError:
        return DebianLicense(None, "none", f"{path}: not present")
    except OSError as exc:  # a FIFO, a device, a loop of links: there, but not read (unknown, not none)
        return DebianLicense(None, "copyright-text", f"{path}: cannot be read ({exc.strerror or exc})")
    digest = hashlib.sha256(data).hexdigest() if memo is not None else ""
    shared = memo.get_content("copyright", digest, _from_memo) if memo is not None else None
    if shared is not None:
        found = DebianLicense(shared.raw, shared.source, shared.evidence.replace(PATH_MARK, path), shared.read)
    else:
        found = _parse_copyright(data.decode("utf-8", "replace"), path)
        if memo is not None:
            memo.put_content("copyright", digest, [found.raw, found.source, found.evidence.replace(path, PATH_MARK),
                                                   found.read])
    if memo is not None and st is not None:
        memo.put("copyright", f"{path}\0{real}", file_key(st), [found.raw, found.source, found.evidence, found.read])
    return found


#: where a shared reading names the file it was read from (each target puts its own path back)
PATH_MARK = "\x00path\x00"


def _from_memo(value: Any) -> DebianLicense:
    if not (isinstance(value, list) and len(value) == 4 and isinstance(value[0], (str, type(None)))
            and all(isinstance(v, str) for v in value[1:])):
        raise ValueError("not a remembered copyright file")
    return DebianLicense(value[0], value[1], value[2], value[3])


def _parse_copyright(text: str, path: str) -> DebianLicense:
    # only the header and the Files paragraphs are handed to the parser; the stand-alone
    # License paragraphs (full license texts, most of the file) are read only where a short
    # name's version or exception is to be checked against its text
    split = _PARAGRAPH_BREAK.split(text)
    chunks = [c for i, c in enumerate(split) if i == 0 or c.lstrip().startswith("Files:")]
    from debian.deb822 import Deb822  # noqa: PLC0415 (imported when a file is read, not on a remembered one)

    try:
        paragraphs = [Deb822(c.splitlines()) for c in chunks]
    except (ValueError, KeyError, UnicodeError) as exc:
        return _free_text(text, path, f"malformed deb822 ({exc}); ")
    fmt = paragraphs[0].get("Format", "") if paragraphs else ""
    if "copyright-format" in fmt or "dep5" in fmt or "dep-5" in fmt:
        synopses: list[str] = []
        for para in paragraphs:
            if "Files" not in para or not para.get("License"):
                continue
            synopsis = para["License"].splitlines()[0].strip()
            if synopsis and synopsis not in synopses:
                synopses.append(synopsis)
        if synopses:
            from scanner.licensing.dep5text import texts_decide  # noqa: PLC0415 (its patterns compiled only when a file is read)

            synopses, read = texts_decide(synopses, split)
            return DebianLicense(_join(synopses), "dep5", f"{path}: machine-readable (DEP-5){read}")
        return _free_text(text, path, "DEP-5 header but no Files paragraph with a License; ")
    return _free_text(text, path, "")


def _free_text(text: str, path: str, why: str) -> DebianLicense:
    from scanner.licensing.notice import MAX_NOTICE, read_notice  # noqa: PLC0415 (compiled only when a file is read)

    notice = read_notice(text)
    found = [f.name for f in notice.found]
    decided = {_family(n) for n in found}
    pointers: list[str] = []
    for name in _COMMON.findall(text[:MAX_NOTICE]):
        name = name.rstrip(".")
        if name not in pointers and _family(name) not in decided:
            pointers.append(name)
    for rx, name in _TITLES:
        if rx.search(text[:MAX_NOTICE]) and _family(name) not in decided and not any(
                _family(p) == _family(name) for p in pointers):
            pointers.append(name)
    names = [*found, *pointers]
    cut = f" (only the first {MAX_NOTICE:,} characters read)" if notice.truncated else ""
    if not names:
        return DebianLicense(None, "copyright-text", f"{path}: {why}not machine-readable, no license named{cut}")
    parts = [f"{f.name}: \"{f.evidence}\"" for f in notice.found[:_EVIDENCE_ITEMS]]
    if len(notice.found) > _EVIDENCE_ITEMS:
        parts.append(f"{len(notice.found) - _EVIDENCE_ITEMS} more")
    if pointers:
        parts.append(f"named only by a common-licenses pointer or a title: {', '.join(pointers)}")
    return DebianLicense(" and ".join(names), "copyright-text",
                         f"{path}: {why}not machine-readable{cut}; read from the notice: " + "; ".join(parts),
                         "notice-text" if found else "pointer-only")


def _family(name: str) -> str:
    m = re.match(r"[A-Za-z]+", name)
    family = m.group(0).upper() if m else name
    return "MIT" if family in ("EXPAT", "X") else family
