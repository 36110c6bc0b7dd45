"""CycloneDX 1.6 JSON bill of materials of one scanned target (``--format cyclonedx-json``,
``result.cdx.json``), built with cyclonedx-python-lib from the result document alone.

* ``metadata``: the scan's time, flightcheck as the tool, the scanned system as the
  component (``operating-system``; ``application`` for a repository), the verdict and the
  rule pack as properties.
* one ``library`` component per package: name, version (``[E:]V[-R]``), purl, supplier (the
  vendor or maintainer), its license as an SPDX expression (the raw text of each
  ``LicenseRef-`` in it is a ``flightcheck:license-ref:ID`` property: CycloneDX 1.6 gives an
  expression no place for text), the declared string and how it was read as properties.
* one ``file`` component per ELF file, nested in the component of the package that owns it
  (unowned files at the top, with their unowned tree as a property), SHA-256 and SHA-1.
* ``dependencies``: each ELF file depends on the libraries of its link closure that are
  files of the BOM (what ``ldd`` would list), and each package on the packages its files
  link; the target depends on every package.
* failing license findings are properties of the component they name
  (``flightcheck:finding:RULE``), so a consumer that reads only the BOM still sees them.

The output is validated against the CycloneDX 1.6 schema by the library's own validator
before it is written; a document that would not validate raises ValueError.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalEntity
from cyclonedx.model.license import LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from scanner.findings import FAILING_STATES
from scanner.textsafe import visible

NAMESPACE = uuid.UUID("5e1f2a63-7c1b-4b53-9f0e-6b0c3a7d2c11")  # flightcheck's CycloneDX serial namespace


def to_bom(doc: Mapping[str, Any]) -> Bom:
    """The BOM of one result document (deterministic: the same document gives the same BOM)."""
    target = doc["target"]
    serial = uuid.uuid5(NAMESPACE, f"{target['root']}\0{doc['scan']['started']}")
    bom = Bom(serial_number=serial)
    bom.metadata.timestamp = dt.datetime.fromisoformat(doc["scan"]["finished"])
    bom.metadata.tools.components.add(Component(name="flightcheck", version=doc["tool"]["version"],
                                                type=ComponentType.APPLICATION, bom_ref="tool:flightcheck"))
    system = _system(doc)
    bom.metadata.component = system
    refs = _license_refs(doc)
    findings = _findings_by_subject(doc)
    packages = {p["id"]: _package(p, refs, findings.get(p["id"], ())) for p in doc["packages"]}
    files: dict[str, Component] = {}
    for e in doc["elves"]:
        comp = _file(e, findings.get(e["path"], ()))
        files[e["path"]] = comp
        owner = packages.get(e.get("owner") or "")
        (owner.components if owner is not None else bom.components).add(comp)
    for comp in packages.values():
        bom.components.add(comp)
    _dependencies(bom, doc, system, packages, files)
    return bom


def _system(doc: Mapping[str, Any]) -> Component:
    target, policy = doc["target"], doc.get("policy", {})
    os_ = target.get("os") or {}
    kind = ComponentType.APPLICATION if target["kind"] == "repository" else ComponentType.OPERATING_SYSTEM
    props = [Property(name="flightcheck:target-kind", value=target["kind"]),
             Property(name="flightcheck:root", value=visible(target["root"])),
             Property(name="flightcheck:verdict", value=str(policy.get("verdict", ""))),
             Property(name="flightcheck:fail-on", value=str(policy.get("fail_on", ""))),
             Property(name="flightcheck:rule-pack", value=str(policy.get("rule_pack", "")))]
    return Component(name=visible(os_.get("PRETTY_NAME") or os_.get("NAME") or target["root"]),
                     version=os_.get("VERSION_ID") or None, type=kind, bom_ref="target", properties=props)


def _license_refs(doc: Mapping[str, Any]) -> dict[str, str]:
    return {r["id"]: r["text"] for r in doc.get("license_refs", [])}


def _findings_by_subject(doc: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The failing findings of the license and inventory rules, by subject."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in doc.get("findings", []):
        if f["state"] in FAILING_STATES and f["rule"].startswith(("FC-LIC-", "FC-INV-", "FC-LNK-")):
            out.setdefault(f["subject"], []).append(f)
    return out


def _finding_props(found: Iterable[dict[str, Any]]) -> list[Property]:
    return [Property(name=f"flightcheck:finding:{f['rule']}", value=f"{f['severity']} {f['state']}: {visible(f['title'])}")
            for f in found]


def _package(p: Mapping[str, Any], refs: Mapping[str, str], found: Iterable[dict[str, Any]]) -> Component:
    spdx = p.get("license_spdx")
    licenses = [LicenseExpression(spdx)] if spdx and spdx not in ("NOASSERTION", "NONE") else []
    props = [Property(name="flightcheck:manager", value=p["manager"]),
             Property(name="flightcheck:license-status", value=str(p.get("license_status") or "none")),
             Property(name="flightcheck:license-source", value=str(p.get("license_source") or "none"))]
    if p.get("license_raw"):
        props.append(Property(name="flightcheck:license-declared", value=visible(p["license_raw"])))
    for ref in sorted({tok for tok in (spdx or "").replace("(", " ").replace(")", " ").split()
                       if tok.startswith("LicenseRef-")}):
        props.append(Property(name=f"flightcheck:license-ref:{ref}", value=visible(refs.get(ref, ref))))
    props += _finding_props(found)
    version = p["version"] + (f"-{p['release']}" if p.get("release") else "")
    if p.get("epoch"):
        version = f"{p['epoch']}:{version}"
    return Component(name=visible(p["name"]), version=visible(version), type=ComponentType.LIBRARY,
                     bom_ref=_ref("pkg", p["id"]), purl=_purl(p.get("purl")), licenses=licenses,
                     supplier=OrganizationalEntity(name=visible(p["vendor"])) if p.get("vendor") else None,
                     properties=props)


def _ref(kind: str, key: str) -> str:
    """A bom-ref: ``pkg:ID`` or ``file:PATH``, its target text made visible."""
    return f"{kind}:{visible(key)}"


def _purl(text: str | None) -> PackageURL | None:
    if not text:
        return None
    try:
        return PackageURL.from_string(text)
    except ValueError:
        return None


def _file(e: Mapping[str, Any], found: Iterable[dict[str, Any]]) -> Component:
    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=e["sha256"])] if e.get("sha256") else []
    if e.get("sha1"):
        hashes.append(HashType(alg=HashAlgorithm.SHA_1, content=e["sha1"]))
    props = [Property(name="flightcheck:elf-type", value=e["type"]), Property(name="flightcheck:machine",
                                                                             value=str(e.get("machine")))]
    if e.get("owner") is None:
        props.append(Property(name="flightcheck:unowned-tree", value=visible(e.get("tree") or "")))
    props += _finding_props(found)
    return Component(name=visible(e["path"]), type=ComponentType.FILE, bom_ref=_ref("file", e["path"]), hashes=hashes,
                     properties=props)


def _dependencies(bom: Bom, doc: Mapping[str, Any], system: Component, packages: Mapping[str, Component],
                  files: Mapping[str, Component]) -> None:
    """Files on the libraries of their closure; packages on the packages those belong to."""
    owner_of = {e["path"]: e.get("owner") for e in doc["elves"]}
    by_package: dict[str, set[str]] = {}
    for e in doc["elves"]:
        paths = [path for path in dict.fromkeys(v for v in (e.get("closure") or {}).values() if v)
                 if path in files and path != e["path"]]
        if paths:
            bom.register_dependency(files[e["path"]], [files[path] for path in paths])
        mine = e.get("owner")
        if mine in packages:
            for path in paths:
                theirs = owner_of.get(path)
                if theirs and theirs != mine and theirs in packages:
                    by_package.setdefault(mine, set()).add(theirs)
    for pid, deps in by_package.items():
        bom.register_dependency(packages[pid], [packages[d] for d in sorted(deps)])
    bom.register_dependency(system, list(packages.values()))


def to_json(doc: Mapping[str, Any]) -> str:
    """The BOM as CycloneDX 1.6 JSON, validated against the 1.6 schema (ValueError if not)."""
    text: str = JsonV1Dot6(to_bom(doc)).output_as_string(indent=None)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise ValueError(f"the CycloneDX document does not validate: {error}")
    return text


def write(doc: Mapping[str, Any], dest: Path) -> None:
    dest.write_text(to_json(doc) + "\n", encoding="utf-8")
