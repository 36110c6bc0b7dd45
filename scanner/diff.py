"""``flightcheck diff``: what changed between two result documents.

:func:`diff` is a pure function of two ``flightcheck/result/1`` documents and returns one
JSON-able ``flightcheck/diff/1`` document:

* **packages** matched by ``(manager, name, arch)``: added, removed, upgraded and
  downgraded. Versions are ordered as the package manager orders them: rpm's
  ``labelCompare`` (epoch, then ``rpmvercmp`` of version and release) for rpm,
  python-debian's :class:`~debian.debian_support.Version` for dpkg and for opkg (whose
  ``[epoch:]upstream[-revision]`` order is dpkg's: libopkg's ``verrevcmp`` is dpkg's),
  apk-tools' order for apk (:mod:`scanner.inventory.apkvercmp`), PEP 440 (packaging) for
  Python distributions, SemVer 2.0 for Go modules and crates. When a name and arch
  is installed more than once (rpm's install-only kernels), the versions present on
  both sides are the same package, and one version going while another comes is an
  upgrade or a downgrade; anything else is listed as added and removed;
* **license changes** of the packages present in both (the same version, or the pair of an
  upgrade): the raw string and the SPDX expression, each old and new;
* **findings** matched by ``(rule, subject)``: new (failing now, not before), fixed
  (failing before, not now, and not waived now), still failing, newly waived (waived now,
  not before). A subject that is a package id (``rpm/bash-5.1-1.x86_64``) is matched by
  the package's ``(manager, name, arch)`` instead, so that upgrading a package whose
  license was already a guess does not report one finding fixed and another new;
* **ELF files added outside any package**: in the new document with no owner, and not
  in the old one at all;
* a **summary**: the counts, and each side's target, scan times and verdict; and
  **warnings** when the two sides are not comparable (another target, other scan
  options).

:func:`render_text` writes it for a terminal or a cron mail, :func:`render_html` as one
self-contained page in the style of the HTML report (``reports/diff.html.j2`` with
``reports/report.css`` inlined).

``rpmvercmp`` and rpm's epoch-version-release comparison live with the rpm code
(:mod:`scanner.inventory.rpmvercmp`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from scanner import __version__
from scanner.findings import FAILING_STATES, SEV_RANK
from scanner.inventory.apkvercmp import apk_version_compare
from scanner.inventory.rpmvercmp import Evr, rpmvercmp
from scanner.inventory.rpmvercmp import label_compare as _rpm_label_compare

SCHEMA_ID = "flightcheck/diff/1"

#: scan options that change what a scan can see; a difference makes the diff suspect
COMPARED_OPTIONS = ("paths", "exclude", "packages", "licenses", "cross_mounts")

PkgKey = tuple[str, str, str | None]

#: the managers whose versions are ``[epoch:]upstream[-revision]`` in dpkg's order
DPKG_ORDER = ("dpkg", "opkg")


# --------------------------------------------------------------------------- versions


def _rpm_evr(p: dict[str, Any]) -> Evr:
    epoch = p.get("epoch")
    return (str(epoch) if epoch not in (None, "") else "0", str(p.get("version") or ""), str(p.get("release") or ""))


def _deb_version(p: dict[str, Any]) -> str:
    v = str(p.get("version") or "")
    if p.get("epoch") and ":" not in v:
        v = f"{p['epoch']}:{v}"
    if p.get("release") and "-" not in v.split(":", 1)[-1]:
        v = f"{v}-{p['release']}"
    return v


_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def semver_key(version: str) -> tuple[Any, ...] | None:
    """Semantic Versioning 2.0's order (Go modules, Cargo crates): a pre-release sorts
    before its release, its dot-separated parts numerically when numeric; None when the
    version is not SemVer (a Go pseudo-version is, ``(devel)`` is not)."""
    m = _SEMVER.match(version)
    if m is None:
        return None
    core = tuple(int(x or 0) for x in m.groups()[:3])
    pre = m.group(4)
    if pre is None:
        return (core, 1, ())
    return (core, 0, tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in pre.split(".")))


def compare_versions(manager: str, old: dict[str, Any], new: dict[str, Any]) -> int:
    """-1, 0 or 1: how package record ``new``'s version orders against ``old``'s. Each
    manager's own order: rpm's, dpkg's (opkg's too), apk's, PEP 440 for Python
    distributions, SemVer for Go modules and crates; where a version does not follow its
    scheme, rpm's segment order is the stand-in."""
    a, b = str(old.get("version") or ""), str(new.get("version") or "")
    if manager == "python":
        from packaging.version import InvalidVersion, Version as Pep440

        try:
            pa, pb = Pep440(a), Pep440(b)
        except InvalidVersion:
            return rpmvercmp(b, a)
        return (pb > pa) - (pb < pa)
    if manager in ("golang", "cargo"):
        ka, kb = semver_key(a), semver_key(b)
        if ka is not None and kb is not None:
            return (kb > ka) - (kb < ka)
        return rpmvercmp(b, a)
    if manager == "apk":  # the version is whole (``1.2.2-r3``), as apk compares it
        return apk_version_compare(b, a)
    if manager in DPKG_ORDER:
        from debian.debian_support import Version

        a, b = _deb_version(old), _deb_version(new)
        try:
            va, vb = Version(a), Version(b)
        except ValueError:  # not a Debian version: rpm's segment order is a fair stand-in
            return rpmvercmp(b, a)
        return (vb > va) - (vb < va)
    return _rpm_label_compare()(_rpm_evr(new), _rpm_evr(old))


def evr(p: dict[str, Any]) -> str:
    """A package's version as its manager writes it: ``[E:]V[-R]``."""
    if p.get("manager") in DPKG_ORDER:
        return _deb_version(p)
    s = (f"{p['epoch']}:" if p.get("epoch") not in (None, "", 0, "0") else "") + str(p.get("version") or "")
    return s + (f"-{p['release']}" if p.get("release") else "")


# --------------------------------------------------------------------------- the diff


def _pkg_key(p: dict[str, Any]) -> PkgKey:
    return (str(p.get("manager") or ""), str(p.get("name") or ""), p.get("arch"))


def _pkg_brief(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p.get("id"), "manager": p.get("manager"), "name": p.get("name"), "arch": p.get("arch"),
            "version": evr(p), "license_raw": p.get("license_raw"), "license_spdx": p.get("license_spdx"),
            "license_category": p.get("license_category")}


def _sort_pkgs(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (str(r.get("name")), str(r.get("arch")), str(r.get("manager")),
                                       str(r.get("version") or r.get("new_version") or "")))


def _license_change(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    if old.get("license_raw") == new.get("license_raw") and old.get("license_spdx") == new.get("license_spdx"):
        return None
    return {"id": new.get("id"), "old_id": old.get("id"), "manager": new.get("manager"), "name": new.get("name"),
            "arch": new.get("arch"), "old_version": evr(old), "new_version": evr(new),
            "raw": {"old": old.get("license_raw"), "new": new.get("license_raw")},
            "spdx": {"old": old.get("license_spdx"), "new": new.get("license_spdx")},
            "category": {"old": old.get("license_category"), "new": new.get("license_category")}}


def _diff_packages(old: list[dict[str, Any]],
                   new: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    def group(pkgs: list[dict[str, Any]]) -> dict[PkgKey, dict[str, dict[str, Any]]]:
        out: dict[PkgKey, dict[str, dict[str, Any]]] = {}
        for p in pkgs:
            out.setdefault(_pkg_key(p), {})[evr(p)] = p
        return out

    before, after = group(old), group(new)
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    upgraded: list[dict[str, Any]] = []
    downgraded: list[dict[str, Any]] = []
    licenses: list[dict[str, Any]] = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[1], str(k[2]), k[0])):
        was, now = before.get(key, {}), after.get(key, {})
        for v in sorted(set(was) & set(now)):
            change = _license_change(was[v], now[v])
            if change:
                licenses.append(change)
        gone = [was[v] for v in sorted(set(was) - set(now))]
        came = [now[v] for v in sorted(set(now) - set(was))]
        if len(gone) == 1 and len(came) == 1:
            o, n = gone[0], came[0]
            row = {"id": n.get("id"), "old_id": o.get("id"), "manager": key[0], "name": key[1], "arch": key[2],
                   "old_version": evr(o), "new_version": evr(n)}
            (downgraded if compare_versions(key[0], o, n) < 0 else upgraded).append(row)
            change = _license_change(o, n)
            if change:
                licenses.append(change)
            continue
        removed += [_pkg_brief(p) for p in gone]
        added += [_pkg_brief(p) for p in came]
    return ({"added": _sort_pkgs(added), "removed": _sort_pkgs(removed), "upgraded": _sort_pkgs(upgraded),
             "downgraded": _sort_pkgs(downgraded)}, _sort_pkgs(licenses))


def _finding_index(doc: dict[str, Any]) -> dict[tuple[str, Any], dict[str, Any]]:
    """Findings by (rule, subject), a package id subject standing for (manager, name, arch);
    for a key given twice (it should not be) a failing one wins."""
    pkgs = {p.get("id"): _pkg_key(p) for p in doc.get("packages", []) or []}
    out: dict[tuple[str, Any], dict[str, Any]] = {}
    for f in doc.get("findings", []) or []:
        subject = f.get("subject")
        key = (str(f.get("rule")), ("package", *pkgs[subject]) if subject in pkgs else subject)
        if key not in out or f.get("state") in FAILING_STATES:
            out[key] = f
    return out


def _finding_row(f: dict[str, Any], before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    row = {"rule": f.get("rule"), "title": f.get("title"), "severity": f.get("severity"), "subject": f.get("subject"),
           "message": f.get("message"), "old_state": before.get("state") if before else None,
           "new_state": after.get("state") if after else None}
    if before and after and before.get("subject") != after.get("subject"):
        row["old_subject"] = before.get("subject")
    if after and after.get("waiver"):
        row["waiver"] = after["waiver"]
    return row


def _sort_findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-SEV_RANK.get(r.get("severity") or "", 0),
                                       str(r.get("rule")), str(r.get("subject"))))


def _diff_findings(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    before, after = _finding_index(old), _finding_index(new)
    out: dict[str, list[dict[str, Any]]] = {"new": [], "fixed": [], "still_failing": [], "newly_waived": []}
    for key in set(before) | set(after):
        b, a = before.get(key), after.get(key)
        was = b.get("state") if b else None
        now = a.get("state") if a else None
        if now in FAILING_STATES:
            assert a is not None  # a state came from it
            out["still_failing" if was in FAILING_STATES else "new"].append(_finding_row(a, b, a))
        elif now == "waived":
            assert a is not None
            if was != "waived":
                out["newly_waived"].append(_finding_row(a, b, a))
        elif was in FAILING_STATES:
            assert b is not None
            out["fixed"].append(_finding_row(b, b, a))
    return {k: _sort_findings(v) for k, v in out.items()}


def _added_unowned(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    seen = {e.get("path") for e in old.get("elves", []) or []}
    return sorted(({"path": e.get("path"), "type": e.get("type"), "machine": e.get("machine"),
                    "size": e.get("size"), "sha256": e.get("sha256"),
                    "setuid": bool(e.get("setuid")), "setgid": bool(e.get("setgid"))}
                   for e in new.get("elves", []) or []
                   if e.get("owner") is None and e.get("type") != "debuginfo" and e.get("path") not in seen),
                  key=lambda e: str(e["path"]))


def _side(doc: dict[str, Any], label: str | None) -> dict[str, Any]:
    t = doc.get("target") or {}
    os_ = t.get("os") or {}
    scan = doc.get("scan") or {}
    side = {"source": label, "kind": t.get("kind"), "root": t.get("root"),
            "os": os_.get("PRETTY_NAME") or os_.get("ID"), "machine": t.get("machine"),
            "started": scan.get("started"), "finished": scan.get("finished"),
            "verdict": (doc.get("policy") or {}).get("verdict"), "fail_on": (doc.get("policy") or {}).get("fail_on"),
            "packages": len(doc.get("packages") or []), "elves": len(doc.get("elves") or []),
            "failing": sum(1 for f in doc.get("findings") or [] if f.get("state") in FAILING_STATES)}
    if t.get("domain"):
        side["domain"] = t["domain"].get("name")
    if t.get("repository"):
        side["repository"] = t["repository"].get("source")
    return side


def _identity(side: dict[str, Any]) -> tuple[Any, ...]:
    return (side["kind"], side.get("domain") or side.get("repository") or side["root"])


def _warnings(old: dict[str, Any], new: dict[str, Any], a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    if _identity(a) != _identity(b):
        out.append(f"the two results are of different targets: {a['kind']} {a.get('domain') or a['root']} "
                   f"and {b['kind']} {b.get('domain') or b['root']}")
    if a["machine"] != b["machine"]:
        out.append(f"the machine differs: {a['machine']} and {b['machine']}")
    oo, no = (old.get("scan") or {}).get("options") or {}, (new.get("scan") or {}).get("options") or {}
    differ = [k for k in COMPARED_OPTIONS if k in oo and k in no and oo[k] != no[k]]
    if differ:
        out.append("the scans were run with different options (" + ", ".join(differ)
                   + "): some changes may come from that, not from the target")
    if a["started"] and b["started"] and str(b["started"]) < str(a["started"]):
        out.append("the new result is older than the old one")
    return out


def diff(old_doc: dict[str, Any], new_doc: dict[str, Any], *, old_label: str | None = None,
         new_label: str | None = None) -> dict[str, Any]:
    """What changed from ``old_doc`` to ``new_doc`` (both result documents), as a
    ``flightcheck/diff/1`` document. ``*_label`` name where each came from (a path, a
    history id) and are only recorded."""
    packages, licenses = _diff_packages(list(old_doc.get("packages") or []), list(new_doc.get("packages") or []))
    findings = _diff_findings(old_doc, new_doc)
    unowned = _added_unowned(old_doc, new_doc)
    a, b = _side(old_doc, old_label), _side(new_doc, new_label)
    counts = {
        "packages_added": len(packages["added"]), "packages_removed": len(packages["removed"]),
        "packages_upgraded": len(packages["upgraded"]), "packages_downgraded": len(packages["downgraded"]),
        "license_changes": len(licenses),
        "findings_new": len(findings["new"]), "findings_fixed": len(findings["fixed"]),
        "findings_still_failing": len(findings["still_failing"]), "findings_newly_waived": len(findings["newly_waived"]),
        "added_unowned_elves": len(unowned),
    }
    new_by_sev = {s: 0 for s in sorted(SEV_RANK, key=SEV_RANK.__getitem__, reverse=True)}
    for f in findings["new"]:
        new_by_sev[f["severity"]] = new_by_sev.get(f["severity"], 0) + 1
    changed = any(v for k, v in counts.items() if k != "findings_still_failing")
    return {
        "schema": SCHEMA_ID,
        "tool": {"name": "flightcheck", "version": __version__},
        "old": a,
        "new": b,
        "warnings": _warnings(old_doc, new_doc, a, b),
        "summary": {**counts, "new_by_severity": new_by_sev, "changed": changed,
                    "verdict": {"old": a["verdict"], "new": b["verdict"]}},
        "packages": packages,
        "license_changes": licenses,
        "findings": findings,
        "added_unowned_elves": unowned,
    }


def worst_new(d: dict[str, Any]) -> str | None:
    """The highest severity among the new findings, or None."""
    sevs = [f["severity"] for f in d["findings"]["new"] if f.get("severity") in SEV_RANK]
    return max(sevs, key=SEV_RANK.__getitem__) if sevs else None


def fails_on_new(d: dict[str, Any], threshold: str) -> bool:
    """True when a new finding is at or above ``threshold`` (info < low < medium < high < critical)."""
    worst = worst_new(d)
    return worst is not None and SEV_RANK[worst] >= SEV_RANK[threshold]


# the renderers live with the other reports; kept importable from here
from scanner.reports.diff import render_html, render_text  # noqa: E402

__all__ = ["SCHEMA_ID", "compare_versions", "diff", "evr", "fails_on_new", "render_html", "render_text", "rpmvercmp",
           "worst_new"]
