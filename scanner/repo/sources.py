"""Where a repository's bytes come from: a local folder, or an HTTP(S) URL.

Both are confined to the repository: a local path never leaves the folder (symlinks
included) and only regular files are opened (never a FIFO or a device), and an HTTP request
never leaves the URL prefix given on the command line: links on index pages to other hosts,
other schemes (``javascript:``, ``file:``, ``data:``) or parent folders (``../../``) are
skipped and reported, and a redirect that leads outside the prefix is refused rather than
followed. Every request is counted, so the result can say what a run cost (and the tests
can check that rpm headers were fetched with range requests).
"""

from __future__ import annotations

import io
import os
import posixpath
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from http.client import HTTPMessage
from types import TracebackType
from typing import IO, TYPE_CHECKING, Protocol, Self

from scanner import __version__
from scanner.target.base import require_regular

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

TIMEOUT = 60  # seconds, per request
MAX_INDEX_BYTES = 16 << 20  # an index page larger than this is not an index page
MAX_INDEX_PAGES = 10_000
MAX_INDEX_DEPTH = 6


class Stream(Protocol):
    """A byte stream as the repository readers use one: a local file, an HTTP response, a
    decompressor, or the counting and hashing wrappers around them."""

    def read(self, size: int = ..., /) -> bytes: ...

    def readinto(self, buffer: WriteableBuffer, /) -> int | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
                 /) -> object: ...


class RepoError(Exception):
    """The repository, or one of its files, cannot be read; one line for people."""


@dataclass
class Traffic:
    """What a run asked of its source."""

    requests: int = 0
    range_requests: int = 0
    full_requests: int = 0  # a range was asked for and the whole file came back
    bytes: int = 0
    skipped_links: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, **deltas: int) -> None:
        """Add to the counters (headers are fetched from several threads)."""
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "range_requests": self.range_requests,
                "full_requests": self.full_requests, "bytes": self.bytes,
                "skipped_links": self.skipped_links[:100]}


class Source:
    """The interface: relative paths inside the repository (``repodata/repomd.xml``)."""

    label: str
    kind: str  # folder | http

    def __init__(self) -> None:
        self.traffic = Traffic()

    def open(self, rel: str) -> Stream:
        """A stream of one file (FileNotFoundError when it is not there)."""
        raise NotImplementedError

    def head(self, rel: str, need: int) -> tuple[bytes, Stream | None]:
        """The first ``need`` bytes of a file (fewer at its end), and, when the rest can
        only come on the same stream (no range support), that stream to read on."""
        raise NotImplementedError

    def more(self, rel: str, have: bytes, need: int, stream: Stream | None) -> bytes:
        """``have`` grown to ``need`` bytes (the rest of a header)."""
        raise NotImplementedError

    def packages(self) -> Iterator[str]:
        """Relative paths of every ``.rpm`` file (no repodata: folder listing or index pages)."""
        raise NotImplementedError


def _read_up_to(stream: Stream, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


# ---- a local folder -----------------------------------------------------------------------------
class FolderSource(Source):
    kind = "folder"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise RepoError(f"{root}: not a folder")
        self.label = str(self.root)

    def _path(self, rel: str) -> Path:
        clean = posixpath.normpath(rel)
        if rel.startswith("/") or clean == ".." or clean.startswith("../") or "\0" in rel:
            raise RepoError(f"{rel}: leads outside the repository folder")
        real = (self.root / clean).resolve()
        if real != self.root and self.root not in real.parents:
            raise RepoError(f"{rel}: leads outside the repository folder")
        return real

    def _open_regular(self, rel: str) -> io.BufferedReader:
        """Open a file of the repository folder only if it is a regular file: its type checked
        before opening (a device's driver sees the open itself) and after (``fstat`` of what
        was opened, without following a link), never blocking (a FIFO named
        ``repomd.xml`` would wait for a writer for ever). FileNotFoundError when it is not
        there; RepoError, naming the path, for everything else that stops it."""
        path = self._path(rel)
        try:
            require_regular(os.lstat(path), rel)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise RepoError(f"{rel}: {exc.strerror or exc}; not read") from None
        try:
            require_regular(os.fstat(fd), rel)
        except OSError as exc:
            os.close(fd)
            raise RepoError(f"{rel}: {exc.strerror or exc} (changed while it was opened); not read") from None
        return os.fdopen(fd, "rb")

    def open(self, rel: str) -> Stream:
        fh = self._open_regular(rel)
        self.traffic.count(requests=1)
        return _Counting(fh, self.traffic)

    def head(self, rel: str, need: int) -> tuple[bytes, Stream | None]:
        with self.open(rel) as fh:  # counted by the stream
            data = _read_up_to(fh, need)
        return data, None

    def more(self, rel: str, have: bytes, need: int, stream: Stream | None) -> bytes:
        with self._open_regular(rel) as fh:
            fh.seek(len(have))
            data = have + _read_up_to(fh, need - len(have))
        self.traffic.count(bytes=len(data) - len(have))
        return data

    def packages(self) -> Iterator[str]:
        for folder, dirs, files in os.walk(self.root):  # never follows links to folders
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".rpm") and not name.endswith(".src.rpm"):
                    path = Path(folder) / name
                    try:
                        self._path(str(path.relative_to(self.root)))
                    except RepoError as exc:
                        self.traffic.skipped_links.append(str(exc))
                        continue
                    yield path.relative_to(self.root).as_posix()


# ---- HTTP(S) ------------------------------------------------------------------------------------
class _Confined(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only inside the repository's prefix."""

    def __init__(self, source: "HttpSource") -> None:
        self.source = source

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: HTTPMessage,
                         newurl: str) -> urllib.request.Request | None:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if not self.source.inside(target):
            raise RepoError(f"{req.full_url} redirects to {target}, outside the repository")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Links(HTMLParser):
    """The ``href`` of every ``<a>`` of a page (a real HTML parser, not a pattern)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.links.append(value.strip())


class HttpSource(Source):
    kind = "http"

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RepoError(f"{url}: not an http(s) URL")
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self._scheme, self._netloc, self._prefix = parts.scheme, parts.netloc.lower(), posixpath.normpath(path)
        if not self._prefix.endswith("/"):
            self._prefix += "/"
        self.label = self.base
        self._opener = urllib.request.build_opener(_Confined(self))

    def inside(self, url: str) -> bool:
        """Whether ``url`` lies inside the repository's prefix (same scheme and host,
        path below the prefix once ``..`` and percent-escapes are resolved)."""
        p = urllib.parse.urlsplit(url)
        if p.scheme != self._scheme or p.netloc.lower() != self._netloc or p.username or p.password:
            return False
        path = urllib.parse.unquote(p.path)
        if "\\" in path or "\0" in path:
            return False
        norm = posixpath.normpath(path) + ("/" if path.endswith("/") else "")
        return norm.startswith(self._prefix) or norm + "/" == self._prefix

    def url(self, rel: str) -> str:
        return urllib.parse.urljoin(self.base, urllib.parse.quote(rel))

    def _get(self, url: str, byte_range: tuple[int, int] | None = None) -> _Counting:
        if not self.inside(url):
            raise RepoError(f"{url}: outside the repository {self.base}")
        req = urllib.request.Request(url, headers={"User-Agent": f"flightcheck/{__version__}",
                                                   "Accept-Encoding": "identity"})
        if byte_range:
            req.add_header("Range", f"bytes={byte_range[0]}-{byte_range[1] - 1}")
        self.traffic.count(requests=1)
        try:
            resp = self._opener.open(req, timeout=TIMEOUT)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FileNotFoundError(2, "not found (HTTP 404)", url) from None
            raise RepoError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise RepoError(f"{url}: {exc.reason}") from None
        except (OSError, ValueError) as exc:
            raise RepoError(f"{url}: {exc}") from None
        if byte_range:
            if resp.status == 206:
                self.traffic.count(range_requests=1)
            else:
                self.traffic.count(full_requests=1)
        return _Counting(resp, self.traffic)

    def open(self, rel: str) -> Stream:
        return self._get(self.url(rel))

    def head(self, rel: str, need: int) -> tuple[bytes, Stream | None]:
        resp = self._get(self.url(rel), (0, need))
        data = _read_up_to(resp, need)
        if getattr(resp, "status", 206) == 206:
            resp.close()
            return data, None
        return data, resp  # the server sent the whole file: read on as far as needed

    def more(self, rel: str, have: bytes, need: int, stream: Stream | None) -> bytes:
        if stream is not None:
            return have + _read_up_to(stream, need - len(have))
        resp = self._get(self.url(rel), (len(have), need))
        if getattr(resp, "status", 206) != 206:  # ranges refused this time: skip what we have
            _read_up_to(resp, len(have))
        data = have + _read_up_to(resp, need - len(have))
        resp.close()
        return data

    def index_links(self, url: str) -> list[str]:
        with self._get(url) as resp:
            page = resp.read(MAX_INDEX_BYTES + 1)
        if len(page) > MAX_INDEX_BYTES:
            raise RepoError(f"{url}: index page larger than {MAX_INDEX_BYTES >> 20} MiB")
        parser = _Links()
        parser.feed(page.decode("utf-8", "replace"))
        parser.close()
        return parser.links

    def packages(self) -> Iterator[str]:
        """Every ``.rpm`` link of the index page and, recursively, of the index pages of
        its subfolders; only inside the prefix."""
        seen_pages: set[str] = set()
        seen_rpms: set[str] = set()
        todo = [(self.base, 0)]
        while todo:
            page, depth = todo.pop(0)
            if page in seen_pages or len(seen_pages) >= MAX_INDEX_PAGES:
                continue
            seen_pages.add(page)
            try:
                links = self.index_links(page)
            except FileNotFoundError:
                if page == self.base:
                    raise RepoError(f"{self.base}: no repodata/repomd.xml and no index page") from None
                continue
            for href in links:
                target = urllib.parse.urljoin(page, href)
                parts = urllib.parse.urlsplit(target)
                if parts.scheme not in ("http", "https"):
                    self.traffic.skipped_links.append(f"{href}: not an http(s) link")
                    continue
                if parts.query:
                    continue  # autoindex sort links (?C=N;O=D)
                clean = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
                is_rpm = parts.path.endswith(".rpm")
                is_dir = parts.path.endswith("/")
                if not (is_rpm or is_dir):
                    continue
                if not self.inside(clean):
                    same_server = parts.scheme == self._scheme and parts.netloc.lower() == self._netloc
                    if is_rpm or not same_server:  # a parent-folder link is normal on an index page
                        self.traffic.skipped_links.append(f"{href}: outside the repository {self.base}")
                    continue
                if is_dir:
                    if depth < MAX_INDEX_DEPTH and len(clean) > len(page) and clean.startswith(page):
                        todo.append((clean, depth + 1))
                    continue
                if parts.path.endswith(".src.rpm"):
                    continue
                base_path = urllib.parse.unquote(urllib.parse.urlsplit(self.base).path)
                rel = urllib.parse.unquote(parts.path)[len(base_path):]
                if rel not in seen_rpms:
                    seen_rpms.add(rel)
                    yield rel


class _Counting(io.RawIOBase):
    """A response that counts the bytes read from it."""

    def __init__(self, resp: Stream, traffic: Traffic) -> None:
        super().__init__()
        self._r, self._t = resp, traffic
        self.status = getattr(resp, "status", 200)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        n = self._r.readinto(buffer) or 0
        self._t.count(bytes=n)
        return n

    def read(self, size: int = -1, /) -> bytes:
        """What :class:`io.RawIOBase` reads (never None: the streams below block)."""
        return super().read(size) or b""

    def close(self) -> None:
        try:
            self._r.close()
        finally:
            super().close()


def open_source(spec: str) -> Source:
    """A source from its command-line spelling: an http(s) URL or a folder."""
    if "://" in spec:
        return HttpSource(spec)
    return FolderSource(spec)
