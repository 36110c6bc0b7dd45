"""scanner.reports.spdx: SPDX 2.3 documents of the fixture scan, written with spdx-tools,
read back with spdx-tools' own parsers and checked with its full validator."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from spdx_tools.spdx.model import Document, File, Package, Relationship, RelationshipType, SpdxNoAssertion
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from scanner.reports import spdx

FORMATS = {"json": ("sbom.spdx.json", spdx.write_json), "tagvalue": ("sbom.spdx", spdx.write_tagvalue)}


def render(doc: dict[str, Any], dest_dir: Path, fmt: str) -> Document:
    """Write ``doc`` in ``fmt``, read it back with spdx-tools and insist it is valid."""
    name, writer = FORMATS[fmt]
    dest = dest_dir / name
    writer(doc, dest)
    back = parse_file(str(dest))
    messages = validate_full_spdx_document(back)
    assert messages == [], [m.validation_message for m in messages[:5]]
    return back


@pytest.fixture(scope="module", params=sorted(FORMATS))
def written(request: pytest.FixtureRequest, rpmroot_result: dict[str, Any],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Document]:
    """The fixture result written in one format: the format, the file, the file parsed back."""
    out = tmp_path_factory.mktemp(f"spdx-{request.param}")
    document = render(rpmroot_result, out, request.param)
    return request.param, out / FORMATS[request.param][0], document


@pytest.fixture()
def parsed(written: tuple[str, Path, Document]) -> Document:
    return written[2]


def written_license_refs(fmt: str, path: Path) -> set[str]:
    """LicenseRef- ids in the license fields of a written document, as written (spdx-tools'
    parser reads some through license-expression's aliases: LicenseRef-Fedora-Public-Domain
    comes back as LicenseRef-scancode-public-domain)."""
    exprs: list[str] = []
    if fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        for p in data["packages"]:
            exprs += [p.get("licenseDeclared", ""), p.get("licenseConcluded", ""), *p.get("licenseInfoFromFiles", [])]
        for f in data["files"]:
            exprs += [f.get("licenseConcluded", ""), *f.get("licenseInfoInFiles", [])]
    else:
        tags = ("PackageLicenseDeclared:", "PackageLicenseConcluded:", "PackageLicenseInfoFromFiles:",
                "LicenseConcluded:", "LicenseInfoInFile:")
        exprs = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith(tags)]
    return {ref for e in exprs for ref in license_ids(e)}


def file_named(document: Document, path: str) -> File:
    matches = [f for f in document.files if f.name == "./" + path.lstrip("/")]
    assert len(matches) == 1, path
    return matches[0]


def package_named(document: Document, name: str) -> Package:
    matches = [p for p in document.packages if p.name == name]
    assert len(matches) == 1, name
    return matches[0]


def of_type(document: Document, kind: RelationshipType) -> list[Relationship]:
    return [r for r in document.relationships if r.relationship_type == kind]


def expected_links(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(file, library) for every resolved closure entry that is an ELF record itself."""
    paths = {e["path"] for e in doc["elves"]}
    return {(e["path"], lib) for e in doc["elves"] for lib in e["closure"].values()
            if lib is not None and lib in paths and lib != e["path"]}


def license_ids(value: object) -> set[str]:
    return set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", str(value))) if value is not None else set()


def test_counts_match_the_result(parsed: Document, rpmroot_result: dict[str, Any]) -> None:
    doc = rpmroot_result
    # every installed package, the unowned-files package and the target system
    assert len(parsed.packages) == len(doc["packages"]) + 2
    assert len(parsed.files) == len(doc["elves"]) == len({f.name for f in parsed.files})
    links = expected_links(doc)
    assert len(of_type(parsed, RelationshipType.DYNAMIC_LINK)) == len(links) > 0
    assert len(of_type(parsed, RelationshipType.CONTAINS)) == len(doc["packages"]) + 1 + len(doc["elves"])
    describes = of_type(parsed, RelationshipType.DESCRIBES)
    assert [(r.spdx_element_id, r.related_spdx_element_id) for r in describes] == [("SPDXRef-DOCUMENT",
                                                                                    spdx.TARGET_ID)]
    assert len(parsed.relationships) == 1 + len(doc["packages"]) + 1 + len(doc["elves"]) + len(links)
    assert parsed.creation_info.spdx_version == "SPDX-2.3"
    assert [str(c) for c in parsed.creation_info.creators] == [f"Tool: flightcheck-{doc['tool']['version']}"]


def test_every_link_points_from_the_file_to_its_library(parsed: Document, rpmroot_result: dict[str, Any]) -> None:
    by_id = {f.spdx_id: f.name[1:] for f in parsed.files}
    got = {(by_id[r.spdx_element_id], by_id[str(r.related_spdx_element_id)])
           for r in of_type(parsed, RelationshipType.DYNAMIC_LINK)}
    assert got == expected_links(rpmroot_result)
    # "SPDXRef-A DYNAMIC_LINK SPDXRef-B": A (the application) dynamically links to B (the library)
    app = file_named(parsed, "/opt/vendor/bin/prop-app").spdx_id
    lib = file_named(parsed, "/usr/lib64/libgplcalc.so.1").spdx_id
    pairs = {(r.spdx_element_id, r.related_spdx_element_id) for r in of_type(parsed, RelationshipType.DYNAMIC_LINK)}
    assert (app, lib) in pairs
    assert (lib, app) not in pairs


def test_transitive_links_are_marked(parsed: Document) -> None:
    by_pair = {(r.spdx_element_id, r.related_spdx_element_id): r.comment
               for r in of_type(parsed, RelationshipType.DYNAMIC_LINK)}
    app = file_named(parsed, "/opt/rpathdemo/bin/rpath-app").spdx_id
    mid = file_named(parsed, "/usr/lib64/libmid.so.1").spdx_id
    deep = file_named(parsed, "/opt/rpathdemo/private/libdeep.so.1").spdx_id
    assert by_pair[(app, mid)] is None  # its own DT_NEEDED
    assert "transitive" in (by_pair[(app, deep)] or "")  # needed by libmid, not by rpath-app


def test_unowned_file_is_in_the_unowned_package(parsed: Document) -> None:
    tool = file_named(parsed, "/usr/local/bin/unowned-tool").spdx_id
    holders = [r.spdx_element_id for r in of_type(parsed, RelationshipType.CONTAINS)
               if r.related_spdx_element_id == tool]
    assert holders == [spdx.UNOWNED_ID]
    unowned = [p for p in parsed.packages if p.spdx_id == spdx.UNOWNED_ID][0]
    assert unowned.files_analyzed and "belong to no installed package" in (unowned.comment or "")


def test_target_contains_every_package(parsed: Document) -> None:
    contained = {r.related_spdx_element_id for r in of_type(parsed, RelationshipType.CONTAINS)
                 if r.spdx_element_id == spdx.TARGET_ID}
    assert contained == {p.spdx_id for p in parsed.packages} - {spdx.TARGET_ID}
    target = [p for p in parsed.packages if p.spdx_id == spdx.TARGET_ID][0]
    assert target.name == "Flightcheck Fixture Linux 1" and not target.files_analyzed


def test_hello_package(parsed: Document, rpmroot_result: dict[str, Any]) -> None:
    hello = package_named(parsed, "hello")
    assert str(hello.license_declared) == "GPL-2.0-or-later"
    assert hello.license_concluded == SpdxNoAssertion()
    assert hello.version == "1.0-1"
    purl = next(p["purl"] for p in rpmroot_result["packages"] if p["name"] == "hello")
    assert [(r.category.name, r.reference_type, r.locator) for r in hello.external_references] == [
        ("PACKAGE_MANAGER", "purl", purl)]
    assert "GPLv2+" in (hello.license_comment or "") and "exact" in (hello.license_comment or "")
    assert hello.files_analyzed
    assert re.fullmatch(r"SPDXRef-Package-[A-Za-z0-9.-]+", hello.spdx_id)


def test_supplier_is_the_vendor(parsed: Document) -> None:
    assert str(package_named(parsed, "vendor-app").supplier) == "Organization: Example Vendor Inc."
    assert package_named(parsed, "hello").supplier == SpdxNoAssertion()


def test_verification_codes_follow_the_spec(parsed: Document, rpmroot_result: dict[str, Any]) -> None:
    """SPDX 2.3 7.9: SHA1 of the package's files' SHA1s, sorted and concatenated."""
    sha1 = {"./" + e["path"].lstrip("/"): e["sha1"] for e in rpmroot_result["elves"]}
    names = {f.spdx_id: f.name for f in parsed.files}
    for package in parsed.packages:
        files = [names[str(r.related_spdx_element_id)] for r in of_type(parsed, RelationshipType.CONTAINS)
                 if r.spdx_element_id == package.spdx_id and r.related_spdx_element_id in names]
        if not files:
            assert package.verification_code is None and not package.files_analyzed
            continue
        want = hashlib.sha1("".join(sorted(sha1[f] for f in files)).encode()).hexdigest()
        assert package.files_analyzed and package.verification_code is not None
        assert package.verification_code.value == want


def test_files_have_both_checksums(parsed: Document, rpmroot_result: dict[str, Any]) -> None:
    hello = next(e for e in rpmroot_result["elves"] if e["path"] == "/usr/bin/hello")
    f = file_named(parsed, "/usr/bin/hello")
    assert {c.algorithm.name: c.value for c in f.checksums} == {"SHA1": hello["sha1"], "SHA256": hello["sha256"]}
    assert {t.name for t in f.file_types} == {"BINARY", "APPLICATION"}


def test_every_license_ref_has_text(written: tuple[str, Path, Document], rpmroot_result: dict[str, Any]) -> None:
    fmt, path, parsed = written
    used = written_license_refs(fmt, path)
    raw = {r["id"]: r["text"] for r in rpmroot_result["license_refs"]}
    assert used == set(raw) == {"LicenseRef-Proprietary", "LicenseRef-Fedora-Public-Domain"}
    extracted = {e.license_id: e for e in parsed.extracted_licensing_info}
    assert set(extracted) == used
    assert all((e.extracted_text or "").strip() and e.license_name for e in extracted.values())
    for ref, body in raw.items():
        assert extracted[ref].extracted_text == body


def test_rendering_is_deterministic(rpmroot_result: dict[str, Any], tmp_path: Path) -> None:
    spdx.write_json(rpmroot_result, tmp_path / "a.spdx.json")
    spdx.write_json(copy.deepcopy(rpmroot_result), tmp_path / "b.spdx.json")
    assert (tmp_path / "a.spdx.json").read_bytes() == (tmp_path / "b.spdx.json").read_bytes()
    ns = json.loads((tmp_path / "a.spdx.json").read_text())["documentNamespace"]
    assert ns.startswith(spdx.NAMESPACE_BASE + "fixture-1-")
    other = copy.deepcopy(rpmroot_result)
    other["scan"]["started"] = "2001-01-01T00:00:00+00:00"
    assert spdx.to_document(other).creation_info.document_namespace != ns


def hostile(doc: dict[str, Any]) -> dict[str, Any]:
    """The fixture result with strings an attacker controls (package metadata, file
    names), and a license id nobody declared."""
    bad = copy.deepcopy(doc)
    pkg = next(p for p in bad["packages"] if p["name"] == "libgplcalc")
    pkg["name"] = "<script>alert(1)</script>"
    pkg["license_spdx"] = "GPL-2.0-or-later AND LicenseRef-x"
    assert "LicenseRef-x" not in {r["id"] for r in bad["license_refs"]}
    # a library whose name is not UTF-8 (the result writes such bytes as \xNN escapes)
    old, new = "/usr/lib64/libgplcalc.so.1", "/usr/lib64/libgpl\\xffcalc.so.1"
    for e in bad["elves"]:
        if e["path"] == old:
            e["path"] = new
        e["closure"] = {k: (new if v == old else v) for k, v in e["closure"].items()}
    return bad


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_hostile_result_still_validates(rpmroot_result: dict[str, Any], tmp_path: Path, fmt: str) -> None:
    doc = hostile(rpmroot_result)
    back = render(doc, tmp_path, fmt)
    evil = package_named(back, "<script>alert(1)</script>")
    assert re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", evil.spdx_id)
    assert str(evil.license_declared) == "GPL-2.0-or-later AND LicenseRef-x"
    extracted = {e.license_id: e.extracted_text for e in back.extracted_licensing_info}
    assert extracted["LicenseRef-x"] == "LicenseRef-x"  # no text known: the id itself
    lib = file_named(back, "/usr/lib64/libgpl\\xffcalc.so.1")
    app = file_named(back, "/opt/vendor/bin/prop-app")
    assert any(r.spdx_element_id == app.spdx_id and r.related_spdx_element_id == lib.spdx_id
               for r in of_type(back, RelationshipType.DYNAMIC_LINK))
    assert len(back.files) == len(doc["elves"])


NASTY = ["NONE", "NOASSERTION", "Tool: evil", "SHA1: 00", "2024-01-01T00:00:00Z", "PackageName",
         "two\nlines</text>", "carriage\rreturn", "\x1b[31mred", "<text>open", "raw \udcff byte"]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_strings_that_look_like_syntax(rpmroot_result: dict[str, Any], tmp_path: Path, fmt: str) -> None:
    """Values tag-value would misread (keywords, actor and checksum prefixes, text
    blocks, line breaks) and characters JSON cannot hold come back as the same text
    from both formats, and every document stays valid."""
    doc = copy.deepcopy(rpmroot_result)
    for pkg, nasty in zip(doc["packages"], NASTY):
        pkg["name"] = pkg["version"] = pkg["license_raw"] = pkg["vendor"] = nasty
        pkg["release"] = None
    doc["license_refs"] = [{**r, "text": NASTY[i % len(NASTY)]} for i, r in enumerate(doc["license_refs"])]
    doc["elves"][0]["path"] = "/usr/bin/new\nline"
    model = spdx.to_document(doc)
    back = render(doc, tmp_path, fmt)

    def strip(v: object) -> object:
        return v.strip() if isinstance(v, str) else v

    def seen(d: Document) -> list[object]:
        return sorted(map(str, [(p.spdx_id, strip(p.name), strip(p.version), str(p.supplier), strip(p.license_comment))
                                for p in d.packages]
                          + [(f.spdx_id, f.name) for f in d.files]
                          + [(e.license_id, strip(e.extracted_text), strip(e.license_name))
                             for e in d.extracted_licensing_info]))

    assert seen(back) == seen(model)
    names = {p.name for p in back.packages} | {f.name for f in back.files}
    assert all("\n" not in n and "\r" not in n for n in names)
    assert "./usr/bin/new\\x0aline" in names


def test_invalid_input_is_refused_and_nothing_written(rpmroot_result: dict[str, Any], tmp_path: Path) -> None:
    doc = copy.deepcopy(rpmroot_result)
    doc["elves"][0]["sha1"] = "not a checksum"
    for name, writer in FORMATS.values():
        with pytest.raises(ValueError, match="not valid"):
            writer(doc, tmp_path / name)
        assert not (tmp_path / name).exists()
        writer(doc, tmp_path / name, validate=False)  # asked for: written as it is
        assert (tmp_path / name).exists()


def test_fast_validation_agrees_with_spdx_tools(rpmroot_result: dict[str, Any]) -> None:
    """validation_messages() checks relationships in linear time; it must report what
    spdx-tools' own quadratic checks report."""
    document = spdx.to_document(rpmroot_result)
    assert spdx.validation_messages(document) == [] == validate_full_spdx_document(document)
    a_file = document.files[0].spdx_id
    document.relationships += [
        Relationship("SPDXRef-missing", RelationshipType.DYNAMIC_LINK, a_file),
        Relationship(a_file, RelationshipType.DYNAMIC_LINK, "SPDXRef-bad_id"),
        Relationship(spdx.TARGET_ID, RelationshipType.CONTAINS, a_file),  # files_analyzed is false
    ]
    ours = spdx.validation_messages(document)
    theirs = validate_full_spdx_document(document)
    assert len(ours) == len(theirs) == 4

    def kinds(messages: list[Any]) -> list[str]:
        return sorted(re.sub(r"[:,].*", "", m.validation_message) for m in messages)

    assert kinds(ours) == kinds(theirs)
