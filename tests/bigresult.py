"""A host-sized result made from the fixture's: its ELF records replicated under many trees
and packages, so the reports can be measured at the size of a real machine (a scan of this
machine holds 24,105 ELF records and 16,455 findings) without scanning one."""

from __future__ import annotations

import copy
from typing import Any


def big_result(doc: dict[str, Any], elves: int = 50_000, findings: int = 30_000, trees: int = 120,
               packages: int = 900) -> dict[str, Any]:
    """``doc`` grown to ``elves`` ELF records (half of them unowned, spread over ``trees``
    trees; the rest owned by ``packages`` packages) and ``findings`` findings: one
    FC-INV-001 per unowned file, and the license findings of the copies of the fixture's
    packages."""
    big = copy.deepcopy(doc)
    base = [e for e in doc["elves"] if e["type"] != "debuginfo"]
    pkg_base = doc["packages"]
    big["packages"] = list(doc["packages"])
    for i in range(packages):
        p = dict(pkg_base[i % len(pkg_base)])
        p["id"], p["name"] = f"rpm/copy{i}-{p['name']}", f"copy{i}-{p['name']}"
        big["packages"].append(p)
    out_elves = list(doc["elves"])
    out_findings = list(doc["findings"])
    inv = next((f for f in doc["findings"] if f["rule"] == "FC-INV-001"), None) or {
        "rule": "FC-INV-001", "title": "An ELF file belongs to no installed package", "severity": "medium",
        "state": "fail", "references": {}, "waiver": None}
    tree_files: dict[str, list[str]] = {}
    digests: dict[str, str] = {}
    i = 0
    while len(out_elves) < elves:
        e = dict(base[i % len(base)])
        unowned = i % 2 == 0
        top = f"/opt/vendor{i // 2 % trees}" if unowned else f"/usr/share/copy{i // 2 % packages}"
        e["path"] = f"{top}/copy{i // len(base)}{e['path']}"  # one copy of the fixture's tree per round
        e["sha256"] = f"{i:064x}"
        if unowned:
            e["owner"], e["tree"] = None, top
            tree_files.setdefault(top, []).append(e["path"])
            digests[e["path"]] = e["sha256"]
        else:
            e["owner"] = big["packages"][len(pkg_base) + i // 2 % packages]["id"]
            e.pop("tree", None)
        out_elves.append(e)
        i += 1
    for top, files in tree_files.items():
        for path in files:
            if len(out_findings) >= findings:
                break
            out_findings.append({**inv, "id": f"inv{len(out_findings)}", "subject": path,
                                 "message": f"{path} (pie) belongs to no installed package: its origin, license and "
                                            f"updates are unknown. It is in the unowned tree {top}.",
                                 "evidence": {"path": path, "sha256": digests[path], "tree": top}})
    lic = [f for f in doc["findings"] if f["rule"].startswith("FC-LIC") and f["subject"] in {p["id"] for p in pkg_base}]
    j = 0
    while len(out_findings) < findings and lic:
        f = lic[j % len(lic)]
        copy_id = big["packages"][len(pkg_base) + j % packages]["id"]
        out_findings.append({**f, "id": f"lic{j}", "subject": copy_id, "message": f["message"].replace(f["subject"], copy_id)})
        j += 1
    big["elves"], big["findings"] = out_elves, out_findings
    big["unowned_trees"] = [*doc.get("unowned_trees", []),
                            *({"top": t, "files": len(fs), "first": fs[:5]} for t, fs in tree_files.items())]
    big["summary"] = {**doc["summary"], "elves": len(out_elves), "packages": len(big["packages"]),
                      "unowned_elves": sum(1 for e in out_elves if e.get("owner") is None)}
    return big
