"""Debian package licenses from ``/usr/share/doc/<package>/copyright``.

Machine-readable files (DEP-5, copyright-format 1.0: a first paragraph with a ``Format:``
field naming the format) are read with python-debian's deb822 paragraph parser (the fast
one: ``debian.copyright``'s round-trip parser costs about 15 ms a file, seconds on a whole
system): the package's license is the conjunction of the ``License:`` synopses (first
line) of all its ``Files:`` paragraphs, in order, duplicates removed. About a third of Debian's
packages have a free-text file instead: then the best evidence is reported, marked as a
guess: the ``/usr/share/common-licenses/<name>`` files the text points to (Debian policy
asks for exactly these references) and a few unmistakable license titles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from scanner.inventory.memo import Memo, file_key
from scanner.target import RootFS

MAX_COPYRIGHT = 4 << 20
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


def _join(synopses: list[str]) -> str:
    if len(synopses) == 1:
        return synopses[0]
    return " and ".join(f"({s})" if re.search(r"\s(or|and)\s", s, re.I) else s for s in synopses)


def read_copyright(fs: RootFS, package: str, memo: Memo | None = None) -> DebianLicense:
    """The license a package's copyright file states. ``memo`` (the scan cache's memo
    store) keeps the answer per file for the next scan, keyed by the file's identity: an
    unchanged copyright file is not parsed again."""
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
    found = _read_copyright(fs, path)
    if memo is not None and st is not None:
        memo.put("copyright", f"{path}\0{real}", file_key(st), [found.raw, found.source, found.evidence])
    return found


def _from_memo(value: Any) -> DebianLicense:
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], (str, type(None)))
            and isinstance(value[1], str) and isinstance(value[2], str)):
        raise ValueError("not a remembered copyright file")
    return DebianLicense(value[0], value[1], value[2])


def _read_copyright(fs: RootFS, path: str) -> DebianLicense:
    try:
        text = fs.read(path, MAX_COPYRIGHT).decode("utf-8", "replace")
    except FileNotFoundError:
        return DebianLicense(None, "none", f"{path}: not present")
    except OSError as exc:  # a FIFO, a device, a loop of links: there, but not read (unknown, not none)
        return DebianLicense(None, "copyright-text", f"{path}: cannot be read ({exc.strerror or exc})")
    # only the header and the Files paragraphs matter; the stand-alone License paragraphs
    # (full license texts, most of the file) are not handed to the parser at all
    chunks = [c for i, c in enumerate(_PARAGRAPH_BREAK.split(text)) if i == 0 or c.lstrip().startswith("Files:")]
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
            return DebianLicense(_join(synopses), "dep5", f"{path}: machine-readable (DEP-5)")
        return _free_text(text, path, "DEP-5 header but no Files paragraph with a License; ")
    return _free_text(text, path, "")


def _free_text(text: str, path: str, why: str) -> DebianLicense:
    found: list[str] = []
    for name in _COMMON.findall(text):
        name = name.rstrip(".")
        if name not in found:
            found.append(name)
    for rx, name in _TITLES:
        if rx.search(text) and not any(f.startswith(name.split("-")[0]) for f in found):
            found.append(name)
    if not found:
        return DebianLicense(None, "copyright-text", f"{path}: {why}not machine-readable, no license named")
    return DebianLicense(" and ".join(found), "copyright-text",
                         f"{path}: {why}not machine-readable; license names found in the text: {', '.join(found)}")
