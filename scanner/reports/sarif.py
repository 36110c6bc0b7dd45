"""SARIF 2.1.0 (OASIS): one run, one rule descriptor per rule, one result per finding.

A finding's subject is a path inside the target (an artifact location) or a package id
(a logical location). Waived findings carry an external suppression with the waiver's
reason, so code-scanning dashboards show them as dismissed, not as open.

Text a dashboard shows (messages, subjects, evidence, rule texts) is in its visible
spelling (:func:`scanner.textsafe.visible`, the one the terminal and JUnit show): no escape
sequence, bidi override or newline of the target reaches a viewer. An artifact's ``uri`` is
a URI reference, so the path is percent-encoded instead (RFC 3986), from the spelling of
result.json: decoding it gives back result.json's exact string. The JSON text is written
by :func:`scanner.textsafe.json_dumps`, so it is always valid UTF-8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from scanner.textsafe import json_dumps, visible_tree

LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
#: flightcheck states -> SARIF result.kind (a waived finding is a suppressed fail; an error,
#: a rule that could not judge the target, is an open failure at its severity: fail closed)
KIND = {"fail": "fail", "waived": "fail", "pass": "pass", "notapplicable": "notApplicable",
        "error": "fail", "informational": "informational"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def to_sarif(doc: dict[str, Any]) -> dict[str, Any]:
    rules = visible_tree(doc.get("rules", []))
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
    for exact in doc.get("findings", []):
        f = visible_tree(exact)
        kind = KIND.get(f["state"], "fail")
        res: dict[str, Any] = {
            "ruleId": f["rule"],
            "kind": kind,
            "level": LEVEL[f["severity"]] if kind == "fail" else "none",
            "message": {"text": f["message"]},
            "partialFingerprints": {"flightcheck/v1": f["id"]},
            "properties": {"severity": f["severity"], "state": f["state"], "subject": f["subject"],
                           "evidence": f["evidence"]},
        }
        if f["rule"] in index:
            res["ruleIndex"] = index[f["rule"]]
        if f["subject"].startswith("/"):
            res["locations"] = [{"physicalLocation": {"artifactLocation": {
                "uri": _uri(exact["subject"].lstrip("/")), "uriBaseId": "TARGETROOT"}}}]
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
            "originalUriBaseIds": {"TARGETROOT": {"uri": "file://" + _uri(doc["target"]["root"].rstrip("/") + "/")}},
            "invocations": [{"executionSuccessful": True,
                             "startTimeUtc": doc["scan"]["started"], "endTimeUtc": doc["scan"]["finished"]}],
            "results": results,
            "properties": {"verdict": visible_tree(doc.get("policy", {}).get("verdict"))},
        }],
    }


def _uri(path: str) -> str:
    """A path as a URI reference: every character but unreserved ones and ``/`` percent-
    encoded as UTF-8 (a lone surrogate, which UTF-8 cannot encode, as its escape ``\\udcNN``)."""
    return quote(path, safe="/", errors="backslashreplace")


def write(doc: dict[str, Any], dest: Path) -> None:
    dest.write_text(json_dumps(to_sarif(doc)) + "\n", encoding="utf-8")
