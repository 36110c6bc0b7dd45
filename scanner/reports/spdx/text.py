"""Strings of a result as SPDX values: free text and one-line values that spdx-tools'
writers and the tag-value lexer read back as written, and SPDX ids made of letters,
digits, ``.`` and ``-`` plus a hash (unique by construction)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from spdx_tools.spdx.parser.tagvalue.lexer import SPDXLexer

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
LICENSE_REF = re.compile(r"^LicenseRef-[A-Za-z0-9.-]+$")
# What the tag-value lexer reads as something other than a plain line when it follows
# "Tag:" (spdx_tools.spdx.parser.tagvalue.lexer): text blocks, actors, checksums, dates.
_TV_PREFIX = re.compile(
    r"^(<text>|(Tool|Organization|Person):|"
    r"(ADLER32|BLAKE2b-256|BLAKE2b-384|BLAKE2b-512|BLAKE3|MD2|MD4|MD5|MD6|SHA1|SHA224|SHA256|"
    r"SHA384|SHA512|SHA3-256|SHA3-384|SHA3-512):|\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
)
_TV_RESERVED = frozenset(SPDXLexer.reserved)


def _escape(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


def _surrogate(m: re.Match[str]) -> str:
    o = ord(m.group())
    return f"\\x{o - 0xdc00:02x}" if 0xDC80 <= o <= 0xDCFF else f"\\u{o:04x}"


def decoded(s: str) -> str:
    """``s`` as valid UTF-8 text: undecodable bytes (``surrogateescape``) become ``\\xNN``
    as in the result document, any other lone surrogate ``\\uXXXX``."""
    return _SURROGATE.sub(_surrogate, s)


def _guard(s: str) -> str:
    """Escape the first character of a one-line value the tag-value lexer would not read
    back as a plain line."""
    body = s.strip()
    if body and (body in _TV_RESERVED or _TV_PREFIX.match(body)):
        i = len(s) - len(s.lstrip())
        return f"{s[:i]}\\x{ord(s[i]):02x}{s[i + 1:]}"
    return s


def text(s: str | None) -> str | None:
    """Free text for a multi-line field (comments, license text)."""
    if s is None:
        return None
    s = decoded(s).replace("\r\n", "\n")
    s = _CONTROL.sub(_escape, s).replace("</text>", "\\x3c/text>")
    return _guard(s) if "\n" not in s else s


def line(s: str | None) -> str | None:
    """A one-line value (names, versions, file names)."""
    if s is None:
        return None
    s = _CONTROL_OR_NEWLINE.sub(_escape, decoded(s).replace("</text>", "\\x3c/text>"))
    return _guard(s)


def digest(s: str, n: int) -> str:
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def slug(s: str, limit: int = 48) -> str:
    return _ID_UNSAFE.sub("-", decoded(s)).strip("-.")[:limit].strip("-.")


class Ids:
    """SPDX ids (``SPDXRef-`` + letters, digits, ``.`` and ``-``), unique in one document."""

    def __init__(self, reserved: Iterable[str]) -> None:
        self.used: set[str] = set(reserved)

    def make(self, prefix: str, readable: str, key: str) -> str:
        readable_part = slug(readable)
        for n in (10, 16, 64):
            spdx_id = (f"{prefix}-{readable_part}-{digest(key, n)}" if readable_part else
                       f"{prefix}-{digest(key, n)}")
            if spdx_id not in self.used:
                self.used.add(spdx_id)
                return spdx_id
        i = 2
        while f"{spdx_id}-{i}" in self.used:
            i += 1
        self.used.add(f"{spdx_id}-{i}")
        return f"{spdx_id}-{i}"
