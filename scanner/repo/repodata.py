"""A YUM/DNF repository's own metadata: ``repodata/repomd.xml`` and the ``primary`` and
``filelists`` documents it points to, streamed.

The documents are read as they arrive: decompressed on the fly (gzip, xz, zstd, bzip2,
told by their magic bytes, not their names), parsed with ``iterparse`` and each
``<package>`` element dropped once read, so memory follows the number of packages kept
(a few hundred bytes each), not the size of the XML (gigabytes for a large distribution).
The compressed bytes are hashed on the way and checked against the checksum repomd.xml
gives, so a truncated or swapped file is an error, not a silently shorter inventory.
XML is parsed with defusedxml and no DTD at all: no entities, no external references.

The metadata is as untrusted as the packages: every cap of :mod:`scanner.limits` named
``MAX_REPO_*`` bounds what a document may cost (bytes decompressed, in all and as a ratio,
between two tags, per package; nesting; elements; packages). Hitting one makes the metadata
unreadable (RepoError naming the cap), and :func:`scanner.repo.inventory` reads the
``.rpm`` files instead.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import defusedxml.ElementTree as DET

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.repo.sources import RepoError, Source, Stream

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

NS_REPO = "{http://linux.duke.edu/metadata/repo}"
NS_COMMON = "{http://linux.duke.edu/metadata/common}"
NS_RPM = "{http://linux.duke.edu/metadata/rpm}"
NS_FILELISTS = "{http://linux.duke.edu/metadata/filelists}"
REPOMD = "repodata/repomd.xml"
MAX_REPOMD = 4 << 20


@dataclass(frozen=True)
class DataFile:
    """One ``<data>`` entry of repomd.xml."""

    type: str
    location: str
    checksum_type: str | None
    checksum: str | None
    size: int | None


@dataclass(frozen=True)
class Repomd:
    revision: str | None
    data: dict[str, DataFile]


@dataclass(frozen=True)
class RepoPackage:
    """What primary.xml says of one package."""

    pkgid: str | None
    name: str
    epoch: int | None
    version: str
    release: str | None
    arch: str | None
    license: str | None
    vendor: str | None
    sourcerpm: str | None
    location: str | None


def read_repomd(source: Source) -> Repomd:
    """Parse repomd.xml (FileNotFoundError when the repository has none)."""
    with source.open(REPOMD) as fh:
        raw = fh.read(MAX_REPOMD + 1)
    if len(raw) > MAX_REPOMD:
        raise RepoError(f"{REPOMD}: larger than {MAX_REPOMD >> 20} MiB")
    try:
        root = DET.fromstring(raw, forbid_dtd=True)
    except Exception as exc:  # noqa: BLE001 - ParseError, defusedxml's forbidden constructs
        raise RepoError(f"{REPOMD}: not valid XML ({exc})") from None
    if root.tag != f"{NS_REPO}repomd":
        raise RepoError(f"{REPOMD}: not a repomd document (root element {root.tag})")
    data: dict[str, DataFile] = {}
    for el in root.findall(f"{NS_REPO}data"):
        kind = el.get("type") or ""
        loc = el.find(f"{NS_REPO}location")
        href = loc.get("href") if loc is not None else None
        if not href:
            continue
        ck = el.find(f"{NS_REPO}checksum")
        size = el.findtext(f"{NS_REPO}size")
        data[kind] = DataFile(kind, href, ck.get("type") if ck is not None else None,
                              (ck.text or "").strip() if ck is not None else None,
                              int(size) if size and size.isdigit() else None)
    return Repomd(root.findtext(f"{NS_REPO}revision"), data)


class _Hashing(io.RawIOBase):
    """Compressed bytes as they stream past, hashed (and counted) for the check at the end."""

    def __init__(self, raw: Stream, algorithm: str | None) -> None:
        super().__init__()
        self._raw = raw
        try:
            self.hash = hashlib.new("sha1" if algorithm == "sha" else algorithm) if algorithm else None
        except (ValueError, TypeError):
            self.hash = None
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.size += n
            if self.hash is not None:
                self.hash.update(memoryview(buffer)[:n])
        return n or 0

    def read(self, size: int = -1, /) -> bytes:
        """What :class:`io.RawIOBase` reads (never None: the stream below blocks)."""
        return super().read(size) or b""

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"))


def _decompressed(stream: io.BufferedReader[_Hashing]) -> tuple[Stream, str]:
    head = stream.peek(8)[:8]
    for magic, kind in _MAGIC:  # noqa: B007 - the loop breaks with the kind found, used below
        if head.startswith(magic):
            break
    else:
        return stream, "none"
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb"), kind
    if kind == "xz":
        return lzma.LZMAFile(stream), kind
    if kind == "bzip2":
        return bz2.BZ2File(stream), kind
    try:
        import zstandard
    except ImportError:
        raise RepoError("the metadata is zstd-compressed and the zstandard module is missing") from None
    return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True), kind


class _Capped:
    """The decompressed document as the XML parser reads it, within named caps: in all
    (``MAX_REPO_METADATA_BYTES``), as a multiple of the compressed bytes read so far
    (``MAX_REPO_INFLATE_RATIO``: 4 MB of gzip can be 4 GB of XML), and between two ``<``
    (``MAX_REPO_XML_TOKEN_BYTES``: the parser holds a whole tag, ElementTree a whole text,
    in memory until it ends). Checked with ``bytes.find`` per chunk: no per-byte Python."""

    #: compressed bytes under which the ratio is not judged (a tiny document's header alone)
    RATIO_FLOOR = 64 << 10

    def __init__(self, stream: Stream, compressed: _Hashing, compression: str, location: str) -> None:
        self._stream, self._compressed, self._location = stream, compressed, location
        self._inflated = compression != "none"
        self.size = 0  # decompressed bytes handed to the parser
        self._run = 0  # bytes since the last "<"

    def read(self, n: int = -1) -> bytes:
        chunk = self._stream.read(n if 0 < n <= 1 << 16 else 1 << 16)
        self.size += len(chunk)
        if self.size > limits.MAX_REPO_METADATA_BYTES:
            raise LimitExceeded("MAX_REPO_METADATA_BYTES", limits.MAX_REPO_METADATA_BYTES, self._location)
        if self._inflated and self.size > limits.MAX_REPO_INFLATE_RATIO * max(self._compressed.size, self.RATIO_FLOOR):
            raise LimitExceeded("MAX_REPO_INFLATE_RATIO", limits.MAX_REPO_INFLATE_RATIO,
                                f"{self._location}: {self.size:,} bytes from {self._compressed.size:,}")
        first = chunk.find(b"<")
        self._run += len(chunk) if first < 0 else first
        if self._run > limits.MAX_REPO_XML_TOKEN_BYTES:  # (a chunk is shorter than the cap: only runs across chunks)
            raise LimitExceeded("MAX_REPO_XML_TOKEN_BYTES", limits.MAX_REPO_XML_TOKEN_BYTES,
                                f"{self._location}: {self._run:,} bytes without a tag")
        if first >= 0:
            self._run = len(chunk) - chunk.rfind(b"<") - 1
        return chunk


class _Document:
    """One metadata file, opened: decompressed within caps, hashed, and checked when done."""

    def __init__(self, source: Source, data: DataFile) -> None:
        self.data = data
        try:
            raw = source.open(data.location)
        except FileNotFoundError:
            raise RepoError(f"repomd.xml names {data.type} at {data.location}, which is not there") from None
        self._hashing = _Hashing(raw, data.checksum_type)
        buffered = io.BufferedReader(self._hashing, 1 << 16)
        stream, self.compression = _decompressed(buffered)
        self.stream = _Capped(stream, self._hashing, self.compression, data.location)

    def finish(self) -> None:
        """Drain what is left and compare the checksum with repomd.xml's."""
        while self._hashing.read(1 << 16):
            pass
        h = self._hashing.hash
        if h is not None and self.data.checksum and h.hexdigest() != self.data.checksum.lower():
            raise RepoError(f"{self.data.location}: checksum mismatch ({self.data.checksum_type} "
                            f"{h.hexdigest()[:16]}... is not repomd.xml's {self.data.checksum[:16]}...)")

    def close(self) -> None:
        self._hashing.close()


def _int(text: str | None) -> int | None:
    """An epoch: ASCII digits only (``int()`` also reads ``²`` and other scripts' digits),
    at most ten of them (rpm's epoch is 32 bits)."""
    if text is None or not (0 < len(text) <= 10 and text.isascii() and text.isdigit()):
        return None
    return int(text)


def _iterparse(doc: _Document, tag: str) -> Iterator[Any]:
    """``tag`` elements of a streamed document, each dropped from the tree once yielded,
    and everything else too once it ends (memory stays flat whatever the document holds).
    Bounded, besides the byte caps of :class:`_Capped`: nesting (``MAX_REPO_XML_DEPTH``),
    the elements of one ``tag`` element and those outside them all together
    (``MAX_REPO_PACKAGE_ELEMENTS``), the bytes of one ``tag`` element
    (``MAX_REPO_PACKAGE_BYTES``) and how many there are (``MAX_REPO_PACKAGES``). No DTD is
    accepted at all (metadata has none; entity expansion is how 1 KB becomes 1 GB), and
    defusedxml refuses entities and external references besides."""
    where = doc.data.location
    try:
        context = DET.iterparse(doc.stream, events=("start", "end"), forbid_dtd=True)
        root: Any = None
        depth = items = 0
        outside = inside = 0  # elements outside every item, and in the current one
        started: int | None = None  # decompressed bytes read when the current item began
        for event, el in context:
            if event == "start":
                depth += 1
                if depth > limits.MAX_REPO_XML_DEPTH:
                    raise LimitExceeded("MAX_REPO_XML_DEPTH", limits.MAX_REPO_XML_DEPTH, where)
                if root is None:
                    root = el
                elif started is not None:
                    inside += 1
                    if inside > limits.MAX_REPO_PACKAGE_ELEMENTS:
                        raise LimitExceeded("MAX_REPO_PACKAGE_ELEMENTS", limits.MAX_REPO_PACKAGE_ELEMENTS,
                                            f"{where}: in package {items + 1:,}")
                    if doc.stream.size - started > limits.MAX_REPO_PACKAGE_BYTES:
                        raise LimitExceeded("MAX_REPO_PACKAGE_BYTES", limits.MAX_REPO_PACKAGE_BYTES,
                                            f"{where}: package {items + 1:,}")
                elif el.tag == tag and depth == 2:
                    started, inside = doc.stream.size, 0
                else:
                    outside += 1
                    if outside > limits.MAX_REPO_PACKAGE_ELEMENTS:
                        raise LimitExceeded("MAX_REPO_PACKAGE_ELEMENTS", limits.MAX_REPO_PACKAGE_ELEMENTS,
                                            f"{where}: outside packages")
                continue
            depth -= 1
            if depth == 1:  # a child of the root ends: an item, or anything else
                if started is not None:
                    if doc.stream.size - started > limits.MAX_REPO_PACKAGE_BYTES:
                        raise LimitExceeded("MAX_REPO_PACKAGE_BYTES", limits.MAX_REPO_PACKAGE_BYTES,
                                            f"{where}: package {items + 1:,}")
                    items += 1
                    if items > limits.MAX_REPO_PACKAGES:
                        raise LimitExceeded("MAX_REPO_PACKAGES", limits.MAX_REPO_PACKAGES, where)
                    started = None
                    yield el
                root.clear()  # the element and everything before it
    except (RepoError, LimitExceeded):
        raise
    except (EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise RepoError(f"{where}: cannot be decompressed ({exc or 'it ends too early'})") from None
    except Exception as exc:  # noqa: BLE001 - ParseError, zstd errors, defusedxml refusals
        if type(exc).__name__ == "ZstdError":
            raise RepoError(f"{where}: cannot be decompressed ({exc})") from None
        raise RepoError(f"{where}: not valid XML ({exc})") from None


def _elements(source: Source, repomd: Repomd, kind: str, tag: str) -> Iterator[Any]:
    """The ``tag`` elements of the ``kind`` document repomd.xml names, streamed; its
    checksum is checked once the document has been read to the end."""
    data = repomd.data.get(kind)
    if data is None:
        raise RepoError(f"repomd.xml has no {kind} metadata")
    doc = _Document(source, data)
    try:
        yield from _iterparse(doc, tag)
        doc.finish()
    except LimitExceeded as exc:
        raise RepoError(str(exc)) from None  # the metadata cannot be read: the .rpm files may be
    finally:
        doc.close()


def _rpm_text(fmt: Any, tag: str) -> str | None:
    """The stripped text of ``<rpm:TAG>`` in a package's ``<format>``, None when empty."""
    value = fmt.findtext(f"{NS_RPM}{tag}") if fmt is not None else None
    return (value.strip() or None) if value is not None else None


def primary_packages(source: Source, repomd: Repomd) -> Iterator[RepoPackage]:
    """Every package of primary.xml, in document order."""
    for el in _elements(source, repomd, "primary", f"{NS_COMMON}package"):
        if el.get("type", "rpm") != "rpm":
            continue
        name = el.findtext(f"{NS_COMMON}name")
        if not name:
            continue
        ver = el.find(f"{NS_COMMON}version")
        fmt = el.find(f"{NS_COMMON}format")
        ck = el.find(f"{NS_COMMON}checksum")
        loc = el.find(f"{NS_COMMON}location")

        epoch = _int(ver.get("epoch")) if ver is not None else None
        yield RepoPackage(
            pkgid=(ck.text or "").strip() or None if ck is not None else None,
            name=name.strip(),
            epoch=epoch or None,
            version=(ver.get("ver") or "") if ver is not None else "",
            release=ver.get("rel") if ver is not None else None,
            arch=el.findtext(f"{NS_COMMON}arch"),
            license=_rpm_text(fmt, "license"),
            vendor=_rpm_text(fmt, "vendor"),
            sourcerpm=_rpm_text(fmt, "sourcerpm"),
            location=loc.get("href") if loc is not None else None,
        )


def filelists(source: Source, repomd: Repomd) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(pkgid, files)`` for every package of filelists.xml."""
    for el in _elements(source, repomd, "filelists", f"{NS_FILELISTS}package"):
        files = tuple(f.text or "" for f in el.findall(f"{NS_FILELISTS}file"))
        yield el.get("pkgid") or "", files
