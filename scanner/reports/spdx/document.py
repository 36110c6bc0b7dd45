"""The SPDX 2.3 document of one result, one converter per SPDX element: the creation
information (section 6), the packages (7: one per installed package, the unowned files'
package, the scanned system), the files (8), the relationships (11: DESCRIBES, CONTAINS,
DYNAMIC_LINK) and the other licensing information (10, from :class:`Licenses`).
:func:`to_document` wires them; ids are made in a fixed order (files, then packages), so
one result always gives the same document."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.file import File, FileType
from spdx_tools.spdx.model.package import Package, PackagePurpose
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.spdx_element_utils import calculate_package_verification_code

from scanner.reports.spdx.licenses import Licenses
from scanner.reports.spdx.text import Ids, decoded, line, text
from scanner.reports.spdx.values import cpe_ref, created, download_location, purl_ref, supplier, target_label

SPDX_VERSION = "SPDX-2.3"
DOCUMENT_ID = "SPDXRef-DOCUMENT"
TARGET_ID = "SPDXRef-Target"
UNOWNED_ID = "SPDXRef-Package-unowned-files"
NAMESPACE_BASE = "https://flightcheck.invalid/spdx/"
TRANSITIVE = "transitive: loaded for a library this file links, not one of its own DT_NEEDED entries"


@dataclass
class Files:
    """The files of the document, one per ELF record of the result (the first record wins
    if a path repeats), with each path's SPDX id."""

    files: list[File] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)  # path -> SPDX id
    elves: list[Mapping[str, Any]] = field(default_factory=list)  # the records kept

    def by_id(self) -> dict[str, File]:
        return {f.spdx_id: f for f in self.files}


def file_element(elf: Mapping[str, Any], spdx_id: str) -> File:
    """One ELF record as an SPDX file (section 8): ``./<path>``, SHA1 and SHA256, type
    BINARY (and APPLICATION for executables), licenses NOASSERTION."""
    path = str(elf["path"])
    kind = str(elf.get("type") or "other")
    types = [FileType.BINARY] + ([FileType.APPLICATION] if kind in ("executable", "pie") else [])
    flags = [f for f in ("static", "setuid", "setgid") if elf.get(f)]
    return File(
        name=line("./" + path.lstrip("/")) or "./",
        spdx_id=spdx_id,
        checksums=[Checksum(ChecksumAlgorithm.SHA1, str(elf["sha1"])),
                   Checksum(ChecksumAlgorithm.SHA256, str(elf["sha256"]))],
        file_types=types,
        license_concluded=SpdxNoAssertion(),
        license_info_in_file=[SpdxNoAssertion()],
        copyright_text=SpdxNoAssertion(),
        comment=text(", ".join([f"ELF {kind}", str(elf.get("machine") or "unknown machine"), *flags])),
    )


def file_elements(doc: Mapping[str, Any], ids: Ids) -> Files:
    """Every ELF record of the result as a file."""
    out = Files()
    for elf in doc.get("elves") or []:
        path = str(elf["path"])
        if path in out.ids:
            continue
        fid = ids.make("SPDXRef-File", path.rsplit("/", 1)[-1], path)
        out.ids[path] = fid
        out.elves.append(elf)
        out.files.append(file_element(elf, fid))
    return out


def package_records(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The result's packages, each id once (the first record wins)."""
    records: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    for p in doc.get("packages") or []:
        if str(p["id"]) not in seen:
            seen.add(str(p["id"]))
            records.append(p)
    return records


def members(files: Files, package_ids: set[str]) -> dict[str | None, list[str]]:
    """The file ids each package contains; owners that name no package go with the
    unowned (key None)."""
    out: dict[str | None, list[str]] = {}
    for elf in files.elves:
        owner = elf.get("owner")
        out.setdefault(owner if owner in package_ids else None, []).append(files.ids[str(elf["path"])])
    return out


def _license_comment(p: Mapping[str, Any], notes: list[str]) -> str | None:
    """What the package database states and how flightcheck read it."""
    return text("\n".join([
        f"License as the {p.get('manager') or 'package'} database states it: "
        + (repr(p["license_raw"]) if p.get("license_raw") is not None else "none"),
        f"flightcheck's SPDX mapping: {p.get('license_spdx') or 'NOASSERTION'} "
        f"(status: {p.get('license_status') or 'not analysed'}; "
        f"category: {p.get('license_category') or 'unknown'}; source: {p.get('license_source') or 'none'})",
        *[str(n) for n in p.get("license_notes") or []],
        *notes,
    ]))


def _package_comment(p: Mapping[str, Any], contained: list[str]) -> str | None:
    """The package's id, architecture, file and how many of its files the document lists."""
    pid = str(p["id"])
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
    return text("; ".join(comment))


def package_element(p: Mapping[str, Any], spdx_id: str, contained: list[str], file_by_id: Mapping[str, File],
                    licenses: Licenses, target: Mapping[str, Any]) -> Package:
    """One installed package (section 7): purl, declared license, supplier, and when it
    contains ELF files of the document, files-analyzed true and a verification code."""
    pid = str(p["id"])
    declared, notes = licenses.convert(p.get("license_spdx"))
    full_version = str(p.get("version") or "") + (f"-{p['release']}" if p.get("release") else "")
    return Package(
        spdx_id=spdx_id,
        name=line(str(p.get("name") or "")) or line(pid) or "unnamed",
        download_location=download_location(target, p),
        version=line(full_version) or None,
        supplier=supplier(p.get("vendor")),
        files_analyzed=bool(contained),
        verification_code=(calculate_package_verification_code([file_by_id[f] for f in contained])
                           if contained else None),
        source_info=text(f"built from source package {p['source']}") if p.get("source") else None,
        license_concluded=SpdxNoAssertion(),
        license_declared=declared,
        license_comment=_license_comment(p, notes),
        copyright_text=SpdxNoAssertion(),
        comment=_package_comment(p, contained),
        external_references=[r for r in (purl_ref(p.get("purl")),) if r],
    )


def unowned_package(label: str, unowned: list[str], file_by_id: Mapping[str, File]) -> Package:
    """The package that holds the ELF files no package database claims."""
    return Package(
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
    )


def target_package(doc: Mapping[str, Any], packages: int, files: int, unowned: int) -> Package:
    """The scanned system itself (purpose OPERATING-SYSTEM; OTHER for a repository)."""
    target: Mapping[str, Any] = doc.get("target") or {}
    osr: Mapping[str, str] = target.get("os") or {}
    root = str(target.get("root") or "")
    is_repo = target.get("kind") == "repository"
    summary: Mapping[str, Any] = doc.get("summary") or {}
    verdict = (doc.get("policy") or {}).get("verdict") or summary.get("verdict") or "unknown"
    return Package(
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
            f"{packages} packages in the repository" if is_repo else
            f"{packages} installed packages, {files} ELF files ({unowned} unowned)",
            f"flightcheck policy verdict: {verdict}",
        ])),
        external_references=[r for r in (cpe_ref(osr.get("CPE_NAME")),) if r],
    )


def dynamic_links(files: Files) -> list[Relationship]:
    """``A DYNAMIC_LINK B`` when ELF file A loads library B at run time (from each file's
    link closure, where the library is a file of the document); those not among the
    file's own DT_NEEDED entries carry the comment :data:`TRANSITIVE`."""
    out: list[Relationship] = []
    for elf in files.elves:
        src = files.ids[str(elf["path"])]
        needed = set(elf.get("needed") or [])
        done: set[str] = set()
        for soname, path in (elf.get("closure") or {}).items():
            dst = files.ids.get(path) if path is not None else None
            if dst is None or dst == src or dst in done:
                continue
            done.add(dst)
            out.append(Relationship(src, RelationshipType.DYNAMIC_LINK, dst, None if soname in needed else TRANSITIVE))
    return out


def creation_info(doc: Mapping[str, Any]) -> CreationInfo:
    """Section 6: version, data license, the deterministic namespace (UUIDv5 of the
    target's root and the scan's start), the creator tool and the creation time."""
    target: Mapping[str, Any] = doc.get("target") or {}
    root = str(target.get("root") or "")
    started = str((doc.get("scan") or {}).get("started") or "")
    version = str((doc.get("tool") or {}).get("version") or "unknown")
    label, slug = target_label(target)
    options = (doc.get("scan") or {}).get("options") or {}
    return CreationInfo(
        spdx_version=SPDX_VERSION,
        spdx_id=DOCUMENT_ID,
        name=line(f"flightcheck-{label}") or "flightcheck",
        document_namespace=f"{NAMESPACE_BASE}{slug}-{uuid.uuid5(uuid.NAMESPACE_URL, decoded(root + chr(10) + started))}",
        creators=[Actor(ActorType.TOOL, line(f"flightcheck-{version}") or "flightcheck")],
        created=created(started),
        document_comment=text("\n".join([
            f"Produced by flightcheck {version} from the result of a scan started {started}.",
            "It lists the ELF files the scan found (not every file of the system), the installed "
            "packages, which package contains each file and which libraries each file loads.",
            f"Scanned paths: {', '.join(map(str, options.get('paths') or ['/']))}" if isinstance(options, dict) else "",
        ]).strip()),
    )


def to_document(doc: Mapping[str, Any]) -> Document:
    """The SPDX 2.3 document of one result (see :mod:`scanner.reports.spdx` for its shape)."""
    target: Mapping[str, Any] = doc.get("target") or {}
    licenses = Licenses({str(r["id"]): str(r["text"]) for r in doc.get("license_refs") or [] if r.get("id")})
    ids = Ids((DOCUMENT_ID, TARGET_ID, UNOWNED_ID))
    files = file_elements(doc, ids)
    file_by_id = files.by_id()
    records = package_records(doc)
    contains = members(files, {str(p["id"]) for p in records})

    packages: list[Package] = []
    relationships: list[Relationship] = []
    for p in records:
        spdx_id = ids.make("SPDXRef-Package", str(p["id"]), str(p["id"]))
        contained = contains.get(str(p["id"]), [])
        packages.append(package_element(p, spdx_id, contained, file_by_id, licenses, target))
        relationships.extend(Relationship(spdx_id, RelationshipType.CONTAINS, f) for f in contained)
    unowned = contains.get(None, [])
    if target.get("kind") != "repository":
        packages.append(unowned_package(target_label(target)[0], unowned, file_by_id))
    relationships.extend(Relationship(UNOWNED_ID, RelationshipType.CONTAINS, f) for f in unowned)
    relationships.extend(dynamic_links(files))

    system = target_package(doc, len(records), len(files.files), len(unowned))
    head = [Relationship(DOCUMENT_ID, RelationshipType.DESCRIBES, TARGET_ID)]
    head += [Relationship(TARGET_ID, RelationshipType.CONTAINS, p.spdx_id) for p in packages]
    return Document(
        creation_info=creation_info(doc),
        packages=[system, *packages],
        files=files.files,
        relationships=head + relationships,
        extracted_licensing_info=licenses.extracted(),
    )
