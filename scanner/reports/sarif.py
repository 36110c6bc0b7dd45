"""SARIF 2.1.0 (OASIS): one run, one rule descriptor per rule, one result per finding.

A finding's subject is a path inside the target (an artifact location) or a package id
(a logical location). Waived findings carry an external suppression with the waiver's
reason, so code-scanning dashboards show them as dismissed, not as open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
#: flightcheck states -> SARIF result.kind (a waived finding is a suppressed fail)
KIND = {"fail": "fail", "waived": "fail", "pass": "pass", "notapplicable": "notApplicable",
        "error": "review", "informational": "informational"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def to_sarif(doc: dict[str, Any]) -> dict[str, Any]:
    rules = doc.get("rules", [])
    index = {r["id"]: i for i, r in enumerate(rules)}
    descriptors = [
        {
            "id": r["id"],
            "name": r["check"],
            "shortDescription": {"text": r["title"]},
            "fullDescription": {"text": r.get("rationale") or r["title"]},
            "help": {"text": r.get("fix") or r["title"]},
            "defaultConfiguration": {"level": LEVEL[r["severity"]], "enabled": r.get("enabled", True)},
            "properties": {"tags": [r["family"]], "security-severity": SECURITY_SEVERITY[r["severity"]],
                           **({"references": r["references"]} if r.get("references") else {})},
        }
        for r in rules
    ]
    results = []
    for f in doc.get("findings", []):
        kind = KIND.get(f["state"], "fail")
        res: dict[str, Any] = {
            "ruleId": f["rule"],
            "kind": kind,
            "level": LEVEL[f["severity"]] if kind == "fail" else "none",
            "message": {"text": f["message"]},
            "partialFingerprints": {"flightcheck/v1": f["id"]},
            "properties": {"severity": f["severity"], "subject": f["subject"], "evidence": f["evidence"]},
        }
        if f["rule"] in index:
            res["ruleIndex"] = index[f["rule"]]
        if f["subject"].startswith("/"):
            res["locations"] = [{"physicalLocation": {"artifactLocation": {
                "uri": f["subject"].lstrip("/"), "uriBaseId": "TARGETROOT"}}}]
        else:
            res["locations"] = [{"logicalLocations": [{"fullyQualifiedName": f["subject"], "kind": "package"}]}]
        if f["state"] == "waived":
            res["suppressions"] = [{"kind": "external", "status": "accepted",
                                    "justification": f["waiver"]["reason"]}]
        results.append(res)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "flightcheck", "version": doc["tool"]["version"],
                                "informationUri": "https://github.com/flightcheck/flightcheck",
                                "rules": descriptors}},
            "originalUriBaseIds": {"TARGETROOT": {"uri": "file://" + doc["target"]["root"].rstrip("/") + "/"}},
            "invocations": [{"executionSuccessful": True,
                             "startTimeUtc": doc["scan"]["started"], "endTimeUtc": doc["scan"]["finished"]}],
            "results": results,
            "properties": {"verdict": doc.get("policy", {}).get("verdict")},
        }],
    }


def write(doc: dict[str, Any], dest: Path) -> None:
    dest.write_text(json.dumps(to_sarif(doc), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
