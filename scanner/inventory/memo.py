"""Remembering results between scans, apart from the code that computes them.

A reader (an rpm or dpkg database, a Debian copyright file, the license normaliser) never
knows the cache: its caller asks a :class:`Memo` for what was stored under a name and a
*key*, and stores what the reader returned. The key is a fingerprint of everything the
value depends on: the identity of the files it was read from (:func:`file_key`: size,
mtime, ctime, inode, mode, owner) and anything else (the os-release fields in the purls,
the reader asked for). The memo store adds the *code fingerprint* (:func:`code_fingerprint`:
the scanner's version and a digest of the readers' source), so a build whose readers
changed never answers from what an older one stored.

:func:`remembered` is that wrapping, once: what every caller uses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

Key = str

#: the code whose answers the cache keeps (paths under ``scanner/``, globs allowed): the ELF
#: parser, the package readers and their records, the Debian copyright reader, and the
#: census cache's own record codec
READER_CODE = ("inventory/elf*.py", "inventory/rpm*.py", "inventory/bdb.py", "inventory/dpkg.py", "inventory/apk.py",
               "inventory/opkg.py", "inventory/textdb.py", "inventory/packages.py", "inventory/purl.py",
               "inventory/readers.py", "inventory/cachecodec.py", "licensing/debian.py",
               "licensing/notice.py", "licensing/dep5text.py")

_PACKAGE = Path(__file__).resolve().parent.parent  # scanner/


def file_key(st: os.stat_result) -> Key:
    """A file's identity as one string: size, mtime, ctime, inode, mode, uid, gid."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_mode}:{st.st_uid}:{st.st_gid}"


@lru_cache(maxsize=None)
def code_fingerprint(*modules: str) -> str:
    """A digest of the source of ``modules`` (paths under ``scanner/``; a glob takes every
    match, in name order), read as files (importing them is not needed): a development build
    that changes one does not reuse what the previous one made. A pattern that matches
    nothing counts as ``unknown``."""
    h = hashlib.sha256()
    for pattern in modules:
        paths = sorted(_PACKAGE.glob(pattern))
        if not paths:
            h.update(f"unknown:{pattern}".encode())
        for path in paths:
            try:
                h.update(path.read_bytes())
            except OSError:
                h.update(b"unknown")
    return h.hexdigest()[:16]


class Memo(Protocol):
    """Values kept between scans, by kind (``rpm``, ``dpkg``, ``copyright``, ``licenses``),
    name (a database's path...) and key (a fingerprint of what the value depends on); the
    store itself keeps them only for the code that wrote them (:func:`code_fingerprint`)."""

    def get(self, kind: str, name: str, key: Key, use: Callable[[Any], T]) -> T | None:
        """What ``use`` makes of the JSON value stored under ``(kind, name)`` with this
        ``key``; None when there is none, another key, or ``use`` raises ValueError or
        TypeError (a value that is not what flightcheck wrote)."""
        ...

    def put(self, kind: str, name: str, key: Key, value: Any) -> None:
        """Keep the JSON value ``value`` under ``(kind, name)`` with ``key``."""
        ...

    def get_content(self, kind: str, digest: str, use: Callable[[Any], T]) -> T | None:
        """What ``use`` makes of the value kept for a content ``digest`` (a hash of the
        bytes it was computed from) by any target of the store; None as for :meth:`get`."""
        ...

    def put_content(self, kind: str, digest: str, value: Any) -> None:
        """Keep a value computed from content alone, for every target of the store."""
        ...


def remembered(memo: Memo | None, kind: str, name: str, key: Callable[[], Key | None], compute: Callable[[], T], *,
               encode: Callable[[T], Any], decode: Callable[[Any], T],
               keep: Callable[[T], bool] = lambda _v: True) -> T:
    """``compute()``, or what ``memo`` kept of it under ``(kind, name)`` with the key
    ``key()``. Without a memo, or when there is no key (None, or an OSError: a file that
    cannot be looked at), it is computed; a value ``keep`` refuses (one that depends on the
    moment, such as a file that could not be read) is not kept."""
    if memo is None:
        return compute()
    try:
        k = key()
    except OSError:
        k = None
    if k is None:
        return compute()
    hit = memo.get(kind, name, k, decode)
    if hit is not None:
        return hit
    value = compute()
    if keep(value):
        memo.put(kind, name, k, encode(value))
    return value
