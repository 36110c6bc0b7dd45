"""Strings from the target made safe for each place they are shown.

A scanned system is untrusted, and every name it holds (a path, a soname, an os-release
field, a package version) may carry bytes meant for whoever reads the output: an escape
sequence that clears the terminal and prints a fake verdict, an OSC-8 hyperlink, a newline
that starts a line of its own, a bidi override that reverses what is read, rich markup
(``[/]``) that makes rich raise, or a character XML 1.0 forbids, which makes a JUnit file
unreadable. One policy serves every output, so a path is spelled the same everywhere:

* **visible spelling** (:func:`visible`): every character Python does not count as
  printable (C0 and C1 controls, DEL, surrogates, format characters such as bidi overrides,
  zero-width and tag characters, line and paragraph separators, spaces other than U+0020,
  unassigned code points) becomes its escape as :func:`repr` writes it: ``\\n``, ``\\t``,
  ``\\r``, ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``. Backslashes are left alone, so the
  ``\\xNN`` that :func:`scanner.result.text` writes for an undecodable byte reads the same
  as an escaped control character: both are "the byte NN". (The price: a name that holds
  a literal backslash-x sequence looks like one that holds the byte; the spelling is
  readable, not reversible. result.json keeps the exact string.)
* **terminal** (:func:`markup`): the visible spelling, then rich's markup escape, for
  text handed to a rich console with markup on. Plain output (``click.echo``) takes
  :func:`visible` alone.
* **XML 1.0** (:func:`xml`): only the characters XML 1.0 forbids (C0 controls other than
  tab, newline and carriage return; lone surrogates; U+FFFE and U+FFFF) get their visible
  escape; for composed multi-line text whose target parts are already visible.
* **JSON text** (:func:`json_dumps`): JSON with every non-printable character written as a
  ``\\uNNNN`` escape, so the text is valid UTF-8 (a lone surrogate cannot be encoded) and
  a terminal or a viewer that shows it raw shows no control character, while a JSON
  reader gets the exact string back.

Written by hand: rich escapes markup but not control characters, and neither the standard
library nor a well-kept package offers the visible spelling as a function of its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: characters XML 1.0 does not allow in a document (section 2.2, production [2])
_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(c: str) -> str:
    """One character's escape, as :func:`repr` writes it; but a surrogate escape (an
    undecodable byte of a file name, as ``os.fsdecode`` keeps it) is the byte, ``\\xNN``,
    the spelling :func:`scanner.result.text` gives it in result.json."""
    named = _NAMED.get(c)
    if named is not None:
        return named
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:
        return f"\\x{n - 0xDC00:02x}"
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def visible(s: str) -> str:
    """``s`` with every non-printable character replaced by its visible escape.
    ``str.isprintable`` reads a flag for an ASCII string and is the fast path for
    the common name, which comes back as it is."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else _escape(c) for c in s)


def markup(value: object) -> str:
    """``value`` as text for a rich console with markup on: visible, with rich's markup
    characters escaped so that ``[/]`` or ``[link=...]`` is shown, not interpreted."""
    from rich.markup import escape  # rich loads only when something is printed

    return escape(visible(str(value)))


def xml(s: str) -> str:
    """``s`` with the characters XML 1.0 forbids replaced by their visible escape; tab,
    newline and carriage return are kept (for text whose target parts are already
    :func:`visible`)."""
    return _XML_FORBIDDEN.sub(lambda m: _escape(m.group()), s)


def visible_tree(value: Any) -> Any:
    """A JSON-like value with :func:`visible` applied to every string in it, keys too."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {visible(k) if isinstance(k, str) else k: visible_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [visible_tree(v) for v in value]
    return value


def _json_escape(c: str) -> str:
    """A character as JSON's ``\\uNNNN`` escape (a surrogate pair above U+FFFF)."""
    n = ord(c)
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


#: what json.dumps(ensure_ascii=False) may leave raw: anything but printable ASCII and the
#: newline its indentation writes (C0 controls, quote and backslash it escapes itself;
#: outside strings the text is ASCII, so only characters inside strings are matched)
_JSON_NON_ASCII = re.compile("[^\n\x20-\x7e]")


def json_dumps(value: Any, indent: int | None = 1) -> str:
    """``value`` as JSON text, readable (non-ASCII letters kept) but with every
    non-printable character escaped, so the text encodes as UTF-8 and shows no control,
    bidi or zero-width character raw."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _JSON_NON_ASCII.sub(lambda m: m.group() if m.group().isprintable() else _json_escape(m.group()), text)
