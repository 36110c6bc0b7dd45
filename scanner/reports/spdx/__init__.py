"""SPDX 2.3 software bill of materials of one scanned target, built with spdx-tools.

:func:`to_document` turns a result document into an ``spdx_tools`` model;
:func:`write_json` and :func:`write_tagvalue` validate it in full (raising ValueError on
any message) and write it with spdx-tools' writers, as SPDX JSON or tag-value.
:func:`validation_messages` is spdx-tools' ``validate_full_spdx_document`` with its
relationship checks made in linear time (the library's own take half a minute on a /usr
scan). The document follows these SPDX 2.3 sections:

* 6 Document creation information: ``SPDX-2.3``, ``CC0-1.0``, ``SPDXRef-DOCUMENT``, a
  deterministic namespace (UUIDv5 of the target's root and the scan's start time, so
  rendering one result twice gives the same document), creator ``Tool: flightcheck-<v>``,
  created = the scan's start.
* 7 Package information: one package per installed package (``rpm``/``dpkg``), with
  its purl as a PACKAGE-MANAGER external reference (7.21), its declared license as an
  SPDX expression (7.15), supplier = the vendor or maintainer (7.5) and, when it contains
  ELF files of the document, files-analyzed true and a verification code (7.9) over
  their SHA1s. One more package holds the ELF files no package database claims
  (``SPDXRef-Package-unowned-files``), and one package stands for the scanned system
  itself (``SPDXRef-Target``, purpose OPERATING-SYSTEM).
* 8 File information: one file per ELF record of the result: ``./<path>``, SHA1 and
  SHA256, type BINARY (and APPLICATION for executables), licenses NOASSERTION.
* 10 Other licensing information: every ``LicenseRef-`` used, with the text the package
  database has for it (the result's ``license_refs``; the id itself when it has none).
  ``LicenseRef-`` ids are written as the result has them; other ids as the SPDX License
  List known to spdx-tools spells them, and an id not on it becomes a ``LicenseRef-``
  standing for it (noted in the package's license comment), so the document stays valid.
* 11 Relationships: ``SPDXRef-DOCUMENT DESCRIBES SPDXRef-Target``; the target CONTAINS
  every package; a package CONTAINS its files; ``A DYNAMIC_LINK B`` when ELF file A
  loads library B at run time (11.1: "SPDXRef-A dynamically links to SPDXRef-B"; example:
  an application dynamically links to ``zlib.so``). The edges come from each file's link
  closure (what ``ldd`` would list) where the library is a file of the document; those
  that are not the file's own DT_NEEDED entries carry a comment saying ``transitive``.

Strings from the target may hold anything. SPDX ids are built from letters, digits,
``.`` and ``-`` plus a hash (unique by construction); free text keeps its characters but
control characters and undecodable bytes become visible ``\\xNN`` escapes, and the few
values tag-value would misread (``</text>`` in a text block, a value that starts like a
tag value such as ``Tool:`` or ``NOASSERTION``) get their first ``<``/letter escaped the
same way. The same model is written in both formats.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeAlias

from license_expression import (
    ExpressionError,
    ExpressionParseError,
    LicenseExpression,
    Licensing,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
)
from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.model import (
    Actor,
    ActorType,
    Checksum,
    ChecksumAlgorithm,
    CreationInfo,
    Document,
    ExternalPackageRef,
    ExternalPackageRefCategory,
    ExtractedLicensingInfo,
    File,
    FileType,
    Package,
    PackagePurpose,
    Relationship,
    RelationshipType,
    SpdxNoAssertion,
    SpdxNone,
)
from spdx_tools.spdx.parser.tagvalue.lexer import SPDXLexer
from spdx_tools.spdx.spdx_element_utils import calculate_package_verification_code
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.validation.spdx_id_validators import get_list_of_all_spdx_ids, validate_spdx_id
from spdx_tools.spdx.validation.validation_message import SpdxElementType, ValidationContext, ValidationMessage
from spdx_tools.spdx.validation.external_package_ref_validator import (
    CPE22TYPE_REGEX,
    CPE23TYPE_REGEX,
    PURL_REGEX,
)
from spdx_tools.spdx.writer.json import json_writer
from spdx_tools.spdx.writer.tagvalue import tagvalue_writer

SPDX_VERSION = "SPDX-2.3"
DOCUMENT_ID = "SPDXRef-DOCUMENT"
TARGET_ID = "SPDXRef-Target"
UNOWNED_ID = "SPDXRef-Package-unowned-files"
NAMESPACE_BASE = "https://flightcheck.invalid/spdx/"
TRANSITIVE = "transitive: loaded for a library this file links, not one of its own DT_NEEDED entries"

LicenseValue: TypeAlias = LicenseExpression | SpdxNoAssertion | SpdxNone

# --------------------------------------------------------------------------- text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
_LICENSE_REF = re.compile(r"^LicenseRef-[A-Za-z0-9.-]+$")
# What the tag-value lexer reads as something other than a plain line when it follows
# "Tag:" (spdx_tools.spdx.parser.tagvalue.lexer): text blocks, actors, checksums, dates.
_TV_PREFIX = re.compile(
    r"^(<text>|(Tool|Organization|Person):|"
    r"(ADLER32|BLAKE2b-256|BLAKE2b-384|BLAKE2b-512|BLAKE3|MD2|MD4|MD5|MD6|SHA1|SHA224|SHA256|"
    r"SHA384|SHA512|SHA3-256|SHA3-384|SHA3-512):|\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
)
_TV_RESERVED = frozenset(SPDXLexer.reserved)



def _download(target: Mapping[str, Any], p: Mapping[str, Any]) -> Any:
    """Where a repository's package file can be fetched (an http(s) repository only)."""
    repo = target.get("repository") or {}
    loc = p.get("location")
    if repo.get("kind") == "http" and loc and "://" not in str(loc):
        from urllib.parse import quote, urljoin

        from spdx_tools.spdx.validation.uri_validators import validate_download_location

        url = urljoin(str(repo.get("source")), quote(str(loc)))
        # SPDX 2.3 wants a host name with a top-level domain; a bare IP address is refused
        return url if not validate_download_location(url) else SpdxNoAssertion()
    return SpdxNoAssertion()

def _escape(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


def _surrogate(m: re.Match[str]) -> str:
    o = ord(m.group())
    return f"\\x{o - 0xdc00:02x}" if 0xDC80 <= o <= 0xDCFF else f"\\u{o:04x}"


def _decoded(s: str) -> str:
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
    s = _decoded(s).replace("\r\n", "\n")
    s = _CONTROL.sub(_escape, s).replace("</text>", "\\x3c/text>")
    return _guard(s) if "\n" not in s else s


def line(s: str | None) -> str | None:
    """A one-line value (names, versions, file names)."""
    if s is None:
        return None
    s = _CONTROL_OR_NEWLINE.sub(_escape, _decoded(s).replace("</text>", "\\x3c/text>"))
    return _guard(s)


def _digest(s: str, n: int) -> str:
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def _slug(s: str, limit: int = 48) -> str:
    return _ID_UNSAFE.sub("-", _decoded(s)).strip("-.")[:limit].strip("-.")


class _Ids:
    """SPDX ids (``SPDXRef-`` + letters, digits, ``.`` and ``-``), unique in one document."""

    def __init__(self, reserved: Iterable[str]) -> None:
        self.used: set[str] = set(reserved)

    def make(self, prefix: str, readable: str, key: str) -> str:
        slug = _slug(readable)
        for n in (10, 16, 64):
            spdx_id = f"{prefix}-{slug}-{_digest(key, n)}" if slug else f"{prefix}-{_digest(key, n)}"
            if spdx_id not in self.used:
                self.used.add(spdx_id)
                return spdx_id
        i = 2
        while f"{spdx_id}-{i}" in self.used:
            i += 1
        self.used.add(f"{spdx_id}-{i}")
        return f"{spdx_id}-{i}"


# ----------------------------------------------------------------------- licenses


# Parses without reading any id as an alias of another: spdx-tools' licensing object would
# turn LicenseRef-Fedora-Public-Domain into LicenseRef-scancode-public-domain, losing the
# text the result has for it.
_PLAIN = Licensing()


class _Licenses:
    """Turns the result's SPDX expressions into spdx-tools license values and collects
    every ``LicenseRef-`` they use, with its text.

    ``LicenseRef-`` ids are kept as they are; other ids are written as the SPDX License
    List (as spdx-tools knows it) spells them. An id it does not know becomes a
    ``LicenseRef-`` id standing for it (a ``WITH`` with an unknown exception becomes one
    ``LicenseRef-``), so a license list newer than spdx-tools' never makes the document
    invalid; an expression that does not parse is NOASSERTION, with a note."""

    def __init__(self, refs: Mapping[str, str]) -> None:
        self.refs = dict(refs)
        self.used: dict[str, tuple[str, str | None]] = {}  # id -> (text, comment)
        self._cache: dict[str, tuple[LicenseValue, list[str]]] = {}

    def convert(self, expr: str | None) -> tuple[LicenseValue, list[str]]:
        """The license value for ``expr`` and notes on what was changed."""
        if expr is None or not expr.strip() or expr.strip() == "NOASSERTION":
            return SpdxNoAssertion(), []
        if expr.strip() == "NONE":
            return SpdxNone(), []
        if expr not in self._cache:
            self._cache[expr] = self._convert(expr)
        value, notes = self._cache[expr]
        if isinstance(value, LicenseExpression):
            for sym in _PLAIN.license_symbols(value, unique=True, decompose=True):
                if sym.key.startswith("LicenseRef-") and sym.key not in self.used:
                    self._use(sym.key, self.refs.get(sym.key), None)
        return value, notes

    def _use(self, ref: str, body: str | None, comment: str | None) -> None:
        if body is None:
            body, comment = ref, comment or "flightcheck has no text for this license id"
        self.used[ref] = (body, comment)

    def _ref_for(self, original: str) -> str:
        """A valid LicenseRef id standing for ``original`` (which is not one)."""
        bare = original[len("LicenseRef-"):] if original.startswith("LicenseRef-") else original
        return f"LicenseRef-{_slug(bare, 64) or 'unnamed'}-{_digest(original, 8)}"

    @staticmethod
    def _listed(key: str, exception: bool) -> str | None:
        """``key`` as the SPDX License List spells it, if it is a listed license (or
        exception)."""
        known = spdx_licensing.known_symbols
        sym = known.get(key) or spdx_licensing.known_symbols_lowercase.get(key.lower())
        if sym is None:  # an alias, such as the deprecated GPL-2.0+
            try:
                alias = spdx_licensing.parse(key)
            except ExpressionError:
                alias = None
            sym = known.get(alias.key) if isinstance(alias, LicenseSymbol) else None
        if sym is None or sym.key.startswith("LicenseRef-") or bool(sym.is_exception) != exception:
            return None
        return str(sym.key)

    def _license(self, key: str, notes: list[str]) -> str:
        """The id to write for license ``key``."""
        if _LICENSE_REF.match(key):
            return key
        listed = self._listed(key, exception=False)
        if listed is not None:
            if listed != key:
                notes.append(f"{key} written as {listed}")
            return listed
        new = self._ref_for(key)
        self._use(new, self.refs.get(key, key), f"stands for {key!r}, which is not on the SPDX License List")
        notes.append(f"{key} written as {new}")
        return new

    def _convert(self, expr: str) -> tuple[LicenseValue, list[str]]:
        try:
            parsed = _PLAIN.parse(_decoded(expr))
        except ExpressionError as err:
            return SpdxNoAssertion(), [f"license expression {expr!r} does not parse: {err}"]
        if parsed is None:
            return SpdxNoAssertion(), []
        subs: dict[Any, LicenseSymbol] = {}
        notes: list[str] = []
        for sym in _PLAIN.license_symbols(parsed, unique=True, decompose=False):
            if isinstance(sym, LicenseWithExceptionSymbol):
                lic, exc = sym.license_symbol.key, sym.exception_symbol.key
                listed_exc = self._listed(exc, exception=True)
                if listed_exc is not None:
                    new_lic = self._license(lic, notes)
                    if listed_exc != exc:
                        notes.append(f"{exc} written as {listed_exc}")
                    if (new_lic, listed_exc) != (lic, exc):
                        subs[sym] = LicenseWithExceptionSymbol(LicenseSymbol(new_lic),
                                                               LicenseSymbol(listed_exc, is_exception=True))
                else:
                    whole = f"{lic} WITH {exc}"
                    new = self._ref_for(f"{lic}-WITH-{exc}")
                    subs[sym] = LicenseSymbol(new)
                    self._use(new, whole, f"stands for {whole!r}: SPDX 2.3 allows listed exceptions only")
                    notes.append(f"{whole} written as {new}")
            else:
                key = self._license(sym.key, notes)
                if key != sym.key:
                    subs[sym] = LicenseSymbol(key)
        value = parsed.subs(subs) if subs else parsed
        # The checks spdx-tools' validator makes (license_expression_validator).
        bad = [s for s in spdx_licensing.validate(value).invalid_symbols if not _LICENSE_REF.match(s)]
        if bad:
            return SpdxNoAssertion(), [f"license expression {expr!r} is not valid SPDX: {', '.join(bad)}"]
        try:
            spdx_licensing.parse(str(value), validate=True, strict=True)
        except ExpressionParseError as err:
            return SpdxNoAssertion(), [f"license expression {expr!r} is not valid SPDX: {err}"]
        except ExpressionError:
            pass  # LicenseRef- ids: declared in the extracted licensing info
        return value, notes

    def extracted(self) -> list[ExtractedLicensingInfo]:
        out = []
        for ref in sorted(self.used):
            body, comment = self.used[ref]
            body_text = text(body) or ""
            if not body_text.strip():
                body_text = ref
            name_line = line(body.strip().splitlines()[0] if body.strip() else ref) or ref
            if len(name_line) > 120:
                name_line = name_line[:117] + "..."
            note = ("The text is the license as the package database states it (a name or a short "
                    "string), not the full license text.")
            out.append(ExtractedLicensingInfo(
                license_id=ref, extracted_text=body_text, license_name=name_line,
                comment=text(f"{comment}. {note}" if comment else note)))
        return out


# ------------------------------------------------------------------------- model


def _created(started: str | None) -> datetime:
    try:
        when = datetime.fromisoformat(str(started))
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _supplier(vendor: str | None) -> Actor | SpdxNoAssertion:
    if vendor is None or not vendor.strip():
        return SpdxNoAssertion()
    m = re.fullmatch(r"\s*(.*?)\s*<([^<>]*)>\s*", vendor)
    if m and m.group(1).strip():
        name, email = m.group(1), m.group(2).strip() or None
    else:
        name, email = vendor.strip(), None
    name = (line(name) or "").strip()
    if not name:
        return SpdxNoAssertion()
    # Tag-value writes "Organization: NAME (EMAIL)"; parentheses in the e-mail would
    # be read back as part of it, so drop an e-mail that holds them.
    if email and ("(" in email or ")" in email):
        email = None
    return Actor(ActorType.ORGANIZATION, name, line(email) if email else None)


def _purl_ref(purl: str | None) -> ExternalPackageRef | None:
    if not purl:
        return None
    locator = re.sub(r"[\s\x00-\x1f\x7f-\x9f]", lambda m: "%{:02X}".format(ord(m.group())), _decoded(purl))
    if not re.match(PURL_REGEX, locator):
        return None
    return ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", locator)


def _cpe_ref(cpe: str | None) -> ExternalPackageRef | None:
    if not cpe:
        return None
    for ref_type, regex in (("cpe23Type", CPE23TYPE_REGEX), ("cpe22Type", CPE22TYPE_REGEX)):
        if re.match(regex, cpe):
            return ExternalPackageRef(ExternalPackageRefCategory.SECURITY, ref_type, cpe)
    return None


def _target_label(target: Mapping[str, Any]) -> tuple[str, str]:
    """A readable name of the target and a slug for the namespace."""
    osr: Mapping[str, str] = target.get("os") or {}
    root = str(target.get("root") or "")
    pretty = osr.get("PRETTY_NAME") or osr.get("NAME")
    name = f"{pretty} at {root}" if pretty else root or "unknown target"
    slug_src = "-".join(x for x in (osr.get("ID"), osr.get("VERSION_ID")) if x) or Path(root).name or "root"
    return name, _slug(slug_src, 40) or "target"


def to_document(doc: Mapping[str, Any]) -> Document:
    """The SPDX 2.3 document of one result (see the module docstring for its shape)."""
    target: Mapping[str, Any] = doc.get("target") or {}
    osr: Mapping[str, str] = target.get("os") or {}
    root = str(target.get("root") or "")
    started = str((doc.get("scan") or {}).get("started") or "")
    version = str((doc.get("tool") or {}).get("version") or "unknown")
    label, slug = _target_label(target)
    namespace = f"{NAMESPACE_BASE}{slug}-{uuid.uuid5(uuid.NAMESPACE_URL, _decoded(root + chr(10) + started))}"

    refs = {str(r["id"]): str(r["text"]) for r in doc.get("license_refs") or [] if r.get("id")}
    licenses = _Licenses(refs)
    ids = _Ids((DOCUMENT_ID, TARGET_ID, UNOWNED_ID))
    relationships: list[Relationship] = []

    # Files, one per ELF record (the first record wins if a path repeats).
    files: list[File] = []
    file_id: dict[str, str] = {}
    elves: list[Mapping[str, Any]] = []
    for elf in doc.get("elves") or []:
        path = str(elf["path"])
        if path in file_id:
            continue
        fid = ids.make("SPDXRef-File", path.rsplit("/", 1)[-1], path)
        file_id[path] = fid
        elves.append(elf)
        kind = str(elf.get("type") or "other")
        types = [FileType.BINARY] + ([FileType.APPLICATION] if kind in ("executable", "pie") else [])
        flags = [f for f in ("static", "setuid", "setgid") if elf.get(f)]
        files.append(File(
            name=line("./" + path.lstrip("/")) or "./",
            spdx_id=fid,
            checksums=[Checksum(ChecksumAlgorithm.SHA1, str(elf["sha1"])),
                       Checksum(ChecksumAlgorithm.SHA256, str(elf["sha256"]))],
            file_types=types,
            license_concluded=SpdxNoAssertion(),
            license_info_in_file=[SpdxNoAssertion()],
            copyright_text=SpdxNoAssertion(),
            comment=text(", ".join([f"ELF {kind}", str(elf.get("machine") or "unknown machine"), *flags])),
        ))
    file_by_id = {f.spdx_id: f for f in files}

    # Which files each package contains; owners that name no package go with the unowned.
    pkg_records: list[Mapping[str, Any]] = []
    seen_pkgs: set[str] = set()
    for p in doc.get("packages") or []:
        if str(p["id"]) not in seen_pkgs:
            seen_pkgs.add(str(p["id"]))
            pkg_records.append(p)
    members: dict[str | None, list[str]] = {}
    for elf in elves:
        owner = elf.get("owner")
        members.setdefault(owner if owner in seen_pkgs else None, []).append(file_id[str(elf["path"])])

    packages: list[Package] = []
    for p in pkg_records:
        pid = str(p["id"])
        spdx_id = ids.make("SPDXRef-Package", pid, pid)
        contained = members.get(pid, [])
        declared, notes = licenses.convert(p.get("license_spdx"))
        full_version = str(p.get("version") or "") + (f"-{p['release']}" if p.get("release") else "")
        lic_comment = [
            f"License as the {p.get('manager') or 'package'} database states it: "
            + (repr(p["license_raw"]) if p.get("license_raw") is not None else "none"),
            f"flightcheck's SPDX mapping: {p.get('license_spdx') or 'NOASSERTION'} "
            f"(status: {p.get('license_status') or 'not analysed'}; "
            f"category: {p.get('license_category') or 'unknown'}; source: {p.get('license_source') or 'none'})",
            *[str(n) for n in p.get("license_notes") or []],
            *notes,
        ]
        comment = [f"flightcheck package id {pid}", f"architecture {p.get('arch') or 'none'}"]
        if p.get("location"):
            comment.append(f"package file {p['location']} in the repository")
        if p.get("epoch"):
            comment.append(f"epoch {p['epoch']}")
        recorded = f"files recorded by the package database: {p.get('files', 'unknown')}"
        comment.append(
            f"{recorded}; this document lists {len(contained)} of them (its ELF files found by the scan), "
            "and the verification code covers only those" if contained else
            f"{recorded}; none is an ELF file found by the scan, so no file is listed")
        packages.append(Package(
            spdx_id=spdx_id,
            name=line(str(p.get("name") or "")) or line(pid) or "unnamed",
            download_location=_download(target, p),
            version=line(full_version) or None,
            supplier=_supplier(p.get("vendor")),
            files_analyzed=bool(contained),
            verification_code=(calculate_package_verification_code([file_by_id[f] for f in contained])
                               if contained else None),
            source_info=text(f"built from source package {p['source']}") if p.get("source") else None,
            license_concluded=SpdxNoAssertion(),
            license_declared=declared,
            license_comment=text("\n".join(lic_comment)),
            copyright_text=SpdxNoAssertion(),
            comment=text("; ".join(comment)),
            external_references=[r for r in (_purl_ref(p.get("purl")),) if r],
        ))
        relationships.extend(Relationship(spdx_id, RelationshipType.CONTAINS, f) for f in contained)

    unowned = members.get(None, [])
    is_repo = target.get("kind") == "repository"
    packages.extend([] if is_repo else [Package(
        spdx_id=UNOWNED_ID,
        name=line(f"unowned files of {label}") or "unowned files",
        download_location=SpdxNoAssertion(),
        version=None,
        supplier=SpdxNoAssertion(),
        files_analyzed=bool(unowned),
        verification_code=calculate_package_verification_code([file_by_id[f] for f in unowned]) if unowned else None,
        license_concluded=SpdxNoAssertion(),
        license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
        comment=("Not a real package: these ELF files belong to no installed package (no package "
                 "database of the target claims them)." if unowned else
                 "Not a real package: every ELF file of this scan belongs to an installed package."),
    )])
    relationships.extend(Relationship(UNOWNED_ID, RelationshipType.CONTAINS, f) for f in unowned)

    # Dynamic links: A DYNAMIC_LINK B when A loads B at run time.
    for elf in elves:
        src = file_id[str(elf["path"])]
        needed = set(elf.get("needed") or [])
        done: set[str] = set()
        for soname, path in (elf.get("closure") or {}).items():
            dst = file_id.get(path) if path is not None else None
            if dst is None or dst == src or dst in done:
                continue
            done.add(dst)
            relationships.append(Relationship(src, RelationshipType.DYNAMIC_LINK, dst,
                                              None if soname in needed else TRANSITIVE))

    # The scanned system: described by the document, contains every package.
    summary: Mapping[str, Any] = doc.get("summary") or {}
    verdict = (doc.get("policy") or {}).get("verdict") or summary.get("verdict") or "unknown"
    system = Package(
        spdx_id=TARGET_ID,
        name=line(f"repository at {root}" if is_repo else
                  osr.get("PRETTY_NAME") or osr.get("NAME") or f"system at {root}") or "system",
        download_location=SpdxNoAssertion(),
        version=line(osr.get("VERSION_ID")) or None,
        supplier=SpdxNoAssertion(),
        files_analyzed=False,
        license_concluded=SpdxNoAssertion(),
        license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
        primary_package_purpose=PackagePurpose.OTHER if is_repo else PackagePurpose.OPERATING_SYSTEM,
        comment=text("\n".join([
            f"The {target.get('kind') or 'directory'} target scanned at {root}",
            "os-release: " + ", ".join(f"{k}={v}" for k, v in osr.items() if k in ("ID", "VERSION_ID", "NAME")),
            f"machine: {target.get('machine') or 'unknown'}",
            f"{len(pkg_records)} packages in the repository" if is_repo else
            f"{len(pkg_records)} installed packages, {len(files)} ELF files ({len(unowned)} unowned)",
            f"flightcheck policy verdict: {verdict}",
        ])),
        external_references=[r for r in (_cpe_ref(osr.get("CPE_NAME")),) if r],
    )
    relationships[:0] = [Relationship(DOCUMENT_ID, RelationshipType.DESCRIBES, TARGET_ID)] + [
        Relationship(TARGET_ID, RelationshipType.CONTAINS, p.spdx_id) for p in packages]

    options = (doc.get("scan") or {}).get("options") or {}
    creation = CreationInfo(
        spdx_version=SPDX_VERSION,
        spdx_id=DOCUMENT_ID,
        name=line(f"flightcheck-{label}") or "flightcheck",
        document_namespace=namespace,
        creators=[Actor(ActorType.TOOL, line(f"flightcheck-{version}") or "flightcheck")],
        created=_created(started),
        document_comment=text("\n".join([
            f"Produced by flightcheck {version} from the result of a scan started {started}.",
            "It lists the ELF files the scan found (not every file of the system), the installed "
            "packages, which package contains each file and which libraries each file loads.",
            f"Scanned paths: {', '.join(map(str, options.get('paths') or ['/']))}" if isinstance(options, dict) else "",
        ]).strip()),
    )
    return Document(
        creation_info=creation,
        packages=[system, *packages],
        files=files,
        relationships=relationships,
        extracted_licensing_info=licenses.extracted(),
    )


# ------------------------------------------------------------------------ output


def validation_messages(document: Document) -> list[ValidationMessage]:
    """What spdx-tools' full validation (``validate_full_spdx_document``) says about
    ``document``, in linear time.

    spdx-tools checks every relationship by listing every element of the document again
    (quadratic: half a minute for a /usr scan), so its validator runs here on the document
    with only its DESCRIBES relationships, and the checks it would make on the other
    relationships are made with sets: both ids well formed (spdx-tools'
    ``validate_spdx_id``), both present, and no package with files-analyzed false that
    contains a file (SPDX 2.3 section 7.8)."""
    rels = document.relationships
    describes = [r for r in rels if r.relationship_type in (RelationshipType.DESCRIBES, RelationshipType.DESCRIBED_BY)]
    head = Document(creation_info=document.creation_info, packages=document.packages, files=document.files,
                    snippets=document.snippets, annotations=document.annotations, relationships=describes,
                    extracted_licensing_info=document.extracted_licensing_info)
    messages = validate_full_spdx_document(head)

    present = set(get_list_of_all_spdx_ids(document))
    file_ids = {f.spdx_id for f in document.files}
    unanalysed = {p.spdx_id for p in document.packages if not p.files_analyzed}
    for rel in rels:
        context = ValidationContext(element_type=SpdxElementType.RELATIONSHIP, full_element=rel)
        related = rel.related_spdx_element_id
        ends = [rel.spdx_element_id] + ([] if isinstance(related, (SpdxNone, SpdxNoAssertion)) else [related])
        for spdx_id in ends:
            found = validate_spdx_id(spdx_id, document)
            if ":" not in spdx_id and spdx_id not in present:
                found.append(f'did not find the referenced spdx_id "{spdx_id}" in the SPDX document')
            messages.extend(ValidationMessage(m, context) for m in found)
        package_id: object  # an id, or NONE / NOASSERTION on the related side
        file_id: object
        if rel.relationship_type == RelationshipType.CONTAINS:
            package_id, file_id = rel.spdx_element_id, rel.related_spdx_element_id
        elif rel.relationship_type == RelationshipType.CONTAINED_BY:
            package_id, file_id = rel.related_spdx_element_id, rel.spdx_element_id
        else:
            continue
        if package_id in unanalysed and file_id in file_ids:
            messages.append(ValidationMessage(
                f"package must contain no elements if files_analyzed is False, but found {rel}",
                ValidationContext(spdx_id=str(package_id), parent_id=document.creation_info.spdx_id,
                                  element_type=SpdxElementType.PACKAGE)))
    return messages


def validate_document(document: Document) -> None:
    """Raise ValueError listing the first messages when the document is not valid SPDX."""
    messages = validation_messages(document)
    if messages:
        shown = "; ".join(m.validation_message for m in messages[:5])
        more = f" (and {len(messages) - 5} more)" if len(messages) > 5 else ""
        raise ValueError(f"the SPDX document is not valid: {shown}{more}")


def write_json(doc: Mapping[str, Any], dest: Path, validate: bool = True) -> None:
    """Write the SPDX 2.3 JSON document of a result, validated first unless ``validate``
    is false (nothing is written when validation fails)."""
    document = to_document(doc)
    if validate:
        validate_document(document)
    with open(dest, "w", encoding="utf-8") as out:
        json_writer.write_document_to_stream(document, out, validate=False, drop_duplicates=False)


def write_tagvalue(doc: Mapping[str, Any], dest: Path, validate: bool = True) -> None:
    """Write the SPDX 2.3 tag-value document of a result, validated first unless
    ``validate`` is false (nothing is written when validation fails)."""
    document = to_document(doc)
    if validate:
        validate_document(document)
    with open(dest, "w", encoding="utf-8") as out:
        tagvalue_writer.write_document_to_stream(document, out, validate=False, drop_duplicates=False)
