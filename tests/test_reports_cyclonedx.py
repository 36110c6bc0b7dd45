"""scanner.reports.cyclonedx: CycloneDX 1.6 JSON of a folder scan, an image scan and a
repository inventory, validated by cyclonedx-python-lib's own 1.6 schema validator,
round-tripped through the library's model, and checked against the result it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CACHE, load_builder
from cyclonedx.model.bom import Bom
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from scanner.reports import write_reports
from scanner.reports.cyclonedx import to_json
from scanner.repo import inventory
from scanner.scan import ScanOptions, scan
from scanner.target import open_target


def _checked(doc: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Written through the report writer, validated by the library, round-tripped."""
    (path,) = write_reports(doc, tmp_path, ["cyclonedx-json"])
    assert path.name == "result.cdx.json"
    text = path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = Bom.from_json(json.loads(text))  # type: ignore[attr-defined]
    again = JsonV1Dot6(bom).output_as_string(indent=None)
    assert json.loads(again) == json.loads(text)  # the library reads back exactly what was written
    cdx: dict[str, Any] = json.loads(text)
    assert cdx["specVersion"] == "1.6" and cdx["bomFormat"] == "CycloneDX"
    return cdx


def _all_components(cdx: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    todo = list(cdx.get("components", []))
    while todo:
        c = todo.pop()
        out[c["bom-ref"]] = c
        todo += c.get("components", [])
    return out


def _props(c: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in c.get("properties", [])}


def test_folder_scan(rpmroot_result: dict[str, Any], tmp_path: Path) -> None:
    doc = rpmroot_result
    cdx = _checked(doc, tmp_path)
    comps = _all_components(cdx)
    # every package, with its purl and its license expression
    for p in doc["packages"]:
        c = comps[f"pkg:{p['id']}"]
        assert c["purl"] == p["purl"] and c["type"] == "library"
        if p["license_spdx"] not in (None, "NOASSERTION"):
            assert c["licenses"] == [{"expression": p["license_spdx"]}]
        assert _props(c)["flightcheck:license-status"] == p["license_status"]
    # LicenseRef texts travel as properties
    refs = {r["id"]: r["text"] for r in doc["license_refs"]}
    with_ref = [p for p in doc["packages"] if "LicenseRef-" in (p["license_spdx"] or "")]
    assert with_ref
    for p in with_ref:
        props = _props(comps[f"pkg:{p['id']}"])
        ref = next(k for k in refs if k in p["license_spdx"])
        assert props[f"flightcheck:license-ref:{ref}"] == refs[ref]
    # every ELF file, nested in its owner's component, with its hashes
    top = {c["bom-ref"] for c in cdx["components"]}
    for e in doc["elves"]:
        c = comps[f"file:{e['path']}"]
        assert {h["alg"]: h["content"] for h in c["hashes"]} == {"SHA-256": e["sha256"], "SHA-1": e["sha1"]}
        if e["owner"] is None:
            assert c["bom-ref"] in top and _props(c)["flightcheck:unowned-tree"] == e["tree"]
        else:
            assert c["bom-ref"] in {x["bom-ref"] for x in comps[f"pkg:{e['owner']}"]["components"]}
    # dependencies: a file on the libraries of its closure that are in the BOM
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in cdx["dependencies"]}
    paths = {e["path"] for e in doc["elves"]}
    linked = [e for e in doc["elves"] if any(v in paths and v != e["path"] for v in e["closure"].values() if v)]
    assert linked
    for e in linked:
        want = {f"file:{v}" for v in e["closure"].values() if v in paths and v != e["path"]}
        assert deps[f"file:{e['path']}"] == want
    assert deps["target"] == {f"pkg:{p['id']}" for p in doc["packages"]}
    # failing license and inventory findings are on the component they name
    inv = [f for f in doc["findings"] if f["rule"] == "FC-INV-001" and f["state"] == "fail"]
    assert inv and all("flightcheck:finding:FC-INV-001" in _props(comps[f"file:{f['subject']}"]) for f in inv)
    assert _props(cdx["metadata"]["component"])["flightcheck:verdict"] == doc["policy"]["verdict"]


def test_deterministic(rpmroot_result: dict[str, Any]) -> None:
    assert to_json(rpmroot_result) == to_json(rpmroot_result)


def test_image_scan(rpmroot: Path, tmp_path: Path) -> None:
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    images = load_builder("build_images").build_images(CACHE, rpmroot, roots["rhel7-secure"] / "boot")
    doc = scan(open_target(images=[str(images["gpt-ext4.qcow2"])]), ScanOptions(jobs=1))
    cdx = _checked(doc, tmp_path)
    assert cdx["metadata"]["component"]["type"] == "operating-system"
    assert len([c for c in _all_components(cdx).values() if c["type"] == "file"]) == len(doc["elves"])


def test_repository_inventory(rpmroot: Path, tmp_path: Path) -> None:
    repos = load_builder("build_repo").build_repo(CACHE, rpmroot.parent / "rpms")
    doc = inventory(str(repos / "repo"))
    cdx = _checked(doc, tmp_path)
    assert cdx["metadata"]["component"]["type"] == "application"
    assert {c["purl"] for c in cdx["components"]} == {p["purl"] for p in doc["packages"]}


@pytest.mark.parametrize("evil", ["\x1b[31mred", "a\udcffb", "</script>"])
def test_hostile_strings_stay_valid(rpmroot_result: dict[str, Any], evil: str) -> None:
    doc = json.loads(json.dumps(rpmroot_result))
    doc["packages"][0]["vendor"] = evil
    doc["packages"][0]["license_raw"] = evil
    doc["elves"][0]["path"] = "/usr/bin/" + evil
    text = to_json(doc)  # validates, or raises
    assert "\x1b" not in text and "\\u001b" not in text and "\\udcff" not in text
    assert json.loads(text)["components"]  # and it is still a BOM
