"""scanner.checks and the CI outputs: the license gate, waivers, SARIF and JUnit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
from junitparser import Failure, JUnitXml, Skipped

from scanner.reports.groups import group_findings

from conftest import REPO

SARIF_SCHEMA = REPO / "fixtures" / "data" / "schemas" / "sarif-schema-2.1.0.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True)


def scan(root: Path, out: Path, *extra: str) -> tuple[int, dict]:
    r = run("scan", str(root), "-o", str(out), "--no-progress", *extra)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads((out / "result.json").read_text())


def findings(doc: dict, rule: str) -> list[dict]:
    return [f for f in doc["findings"] if f["rule"] == rule]


def waiver_file(path: Path, expires: str) -> Path:
    path.write_text(
        '[[waiver]]\nrule = "FC-LIC-003"\nsubject = "/opt/vendor/bin/*"\n'
        f'reason = "Vendor holds a commercial license for libgplcalc (ticket LEGAL-42)"\nexpires = {expires}\n')
    return path


def test_proprietary_linking_gpl_fails_the_gate(rpmroot: Path, tmp_path: Path) -> None:
    code, doc = scan(rpmroot, tmp_path)
    assert code == 1 and doc["policy"]["verdict"] == "fail" and doc["summary"]["verdict"] == "fail"
    (f,) = findings(doc, "FC-LIC-003")
    assert f["subject"] == "/opt/vendor/bin/prop-app" and f["severity"] == "high" and f["state"] == "fail"
    assert f["evidence"]["libraries"][0]["path"] == "/usr/lib64/libgplcalc.so.1"
    assert "GPL-2.0-or-later" in f["message"] and "libgplcalc" in f["message"]
    # the other rules ran too
    assert [g["subject"] for g in findings(doc, "FC-INV-001")] == ["/usr/local/bin/unowned-tool"]
    assert {g["subject"] for g in findings(doc, "FC-LNK-001")} == {"libmissing.so.1", "libdeep.so.1"}


def test_a_waiver_passes_and_an_expired_one_fails_again(rpmroot: Path, tmp_path: Path) -> None:
    code, doc = scan(rpmroot, tmp_path / "a", "--waivers", str(waiver_file(tmp_path / "w1.toml", "2999-12-31")))
    assert code == 0 and doc["policy"]["verdict"] == "pass"
    (f,) = findings(doc, "FC-LIC-003")
    assert f["state"] == "waived" and "LEGAL-42" in f["waiver"]["reason"]
    assert doc["summary"]["waived"] == 1
    code, doc = scan(rpmroot, tmp_path / "b", "--waivers", str(waiver_file(tmp_path / "w2.toml", "2020-01-01")))
    assert code == 1
    assert findings(doc, "FC-LIC-003")[0]["state"] == "fail"
    (expired,) = findings(doc, "FC-WVR-001")
    assert "expired on 2020-01-01" in expired["message"]


def test_fail_on_thresholds(rpmroot: Path, tmp_path: Path) -> None:
    assert scan(rpmroot, tmp_path / "n", "--fail-on", "never")[0] == 0
    assert scan(rpmroot, tmp_path / "c", "--fail-on", "critical")[0] == 0
    # medium: the unowned ELF file fails too, even with FC-LIC-003 waived
    w = waiver_file(tmp_path / "w.toml", "2999-12-31")
    assert scan(rpmroot, tmp_path / "m", "--fail-on", "medium", "--waivers", str(w))[0] == 1
    assert scan(rpmroot, tmp_path / "h", "--fail-on", "high", "--waivers", str(w))[0] == 0


def test_user_policy(rpmroot: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[licenses]\ndeny = ["GPL-*"]\nallow = ["GPL-1.0-or-later"]\n\n'
                      '[rules."FC-LIC-003"]\nenabled = false\n\n[rules."FC-INV-001"]\nseverity = "critical"\n\n'
                      '[licenses.names."Proprietary"]\nspdx = "LicenseRef-Vendor-EULA"\nproprietary = true\n')
    code, doc = scan(rpmroot, tmp_path / "o", "--policy", str(policy))
    assert code == 1
    assert not findings(doc, "FC-LIC-003")
    denied = {f["subject"] for f in findings(doc, "FC-LIC-001")}
    assert "rpm/hello-1.0-1.x86_64" in denied and "rpm/libgplcalc-2.1-3.x86_64" in denied
    assert all(f["severity"] == "critical" for f in findings(doc, "FC-INV-001"))
    vendor = next(p for p in doc["packages"] if p["name"] == "vendor-app")
    assert vendor["license_spdx"] == "LicenseRef-Vendor-EULA" and vendor["license_category"] == "proprietary"


def test_bad_policy_is_one_line_and_exit_2(rpmroot: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[licenses\ndeny = 3\n")
    r = run("scan", str(rpmroot), "-o", str(tmp_path / "o"), "--policy", str(bad))
    assert r.returncode == 2 and "not valid TOML" in r.stderr and "Traceback" not in r.stderr
    bad.write_text('[[waiver]]\nrule = "X"\n')
    r = run("scan", str(rpmroot), "-o", str(tmp_path / "o"), "--waivers", str(bad))
    assert r.returncode == 2 and "waiver 1" in r.stderr
    # a license name the policy maps to nothing usable
    bad.write_text('[licenses.names."Vendor EULA"]\nspdx = 3\n')
    r = run("scan", str(rpmroot), "-o", str(tmp_path / "o"), "--policy", str(bad))
    assert r.returncode == 2 and '[licenses.names."Vendor EULA"] needs spdx' in r.stderr and "Traceback" not in r.stderr


def test_sarif_validates_and_junit_counts_match(rpmroot: Path, tmp_path: Path) -> None:
    w = waiver_file(tmp_path / "w.toml", "2999-12-31")
    code, doc = scan(rpmroot, tmp_path, "--format", "sarif,junit", "--waivers", str(w))
    sarif = json.loads((tmp_path / "result.sarif").read_text())
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.validate(sarif, schema)
    results = sarif["runs"][0]["results"]
    assert len(results) == len(doc["findings"])
    prop = next(r for r in results if r["ruleId"] == "FC-LIC-003")
    assert prop["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "opt/vendor/bin/prop-app"
    assert prop["suppressions"][0]["kind"] == "external"
    xml = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    cases = [c for suite in xml for c in suite]
    failures = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    skipped = [c for c in cases if any(isinstance(r, Skipped) for r in c.result)]
    # one case per rule and group of findings (issue 19: a tree of unowned files, a package,
    # or one subject), and one passing case per rule without findings
    groups = [g for r in group_findings(doc) for g in r.groups]
    assert len(failures) == sum(1 for g in groups if g.state == "fail")
    assert sum(1 for f in doc["findings"] if f["state"] == "waived") == 1
    assert len(skipped) == sum(1 for g in groups if g.state in ("waived", "notapplicable"))
    rules_without = {r["id"] for r in doc["rules"]} - {f["rule"] for f in doc["findings"]}
    assert len(cases) == len(groups) + len(rules_without)
    assert sum(len(g.findings) for g in groups) == len(doc["findings"])  # every finding in one group


def test_unmappable_licenses_become_findings(tmp_path: Path) -> None:
    """Junk, markup, unbalanced parentheses and non-UTF-8 bytes in a package's license:
    the scan finishes, each gets a LicenseRef with its raw text kept, and a finding."""
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    junk = {"junk": "x" * 10_000, "markup": "<b>GPL</b> <i>maybe</i>", "parens": "GPL-2+ and (MIT or",
            "bytes": "caf\udce9-license"}
    status = ""
    for name, lic in junk.items():
        status += f"Package: {name}\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
        (root / f"usr/share/doc/{name}").mkdir(parents=True)
        text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                f"Files: *\nCopyright: someone\nLicense: {lic}\n")
        (root / f"usr/share/doc/{name}/copyright").write_bytes(text.encode("utf-8", "surrogateescape"))
    (root / "var/lib/dpkg/status").write_text(status)
    code, doc = scan(root, tmp_path / "out", "--fail-on", "medium")
    assert code == 1
    unknown = {f["subject"]: f for f in findings(doc, "FC-LIC-004")}
    refs = {r["id"]: r["text"] for r in doc["license_refs"]}
    for p in doc["packages"]:
        assert p["license_status"] == "unknown" and p["id"] in unknown, p["name"]
        assert p["license_spdx"].startswith("LicenseRef-") or "LicenseRef-" in p["license_spdx"]
        assert any(ref in refs for ref in refs if ref in p["license_spdx"])
    assert next(p for p in doc["packages"] if p["name"] == "junk")["license_raw"] == "x" * 10_000


def test_policy_globs_read_expressions_as_license_expression_does() -> None:
    """The checks read SPDX expressions with a small parser of their own (WITH, then AND,
    then OR); license_expression, the library the normaliser validates with, is the
    oracle: the same ids hit, for deny and allow globs alike, and malformed text is refused."""
    import pytest
    from fnmatch import fnmatchcase

    from boolean.boolean import AND
    from license_expression import Licensing, LicenseSymbol, LicenseWithExceptionSymbol

    from scanner.checks.licenses import _matches, _parsed

    def oracle(node, globs, allow):
        if isinstance(node, LicenseWithExceptionSymbol):
            node = node.license_symbol
        if isinstance(node, LicenseSymbol):
            k = node.key
            return [k] if any(fnmatchcase(k, g) for g in globs) and not any(fnmatchcase(k, a) for a in allow) else None
        parts = [oracle(a, globs, allow) for a in node.args]
        if isinstance(node, AND):
            return [k for p in parts if p for k in p] or None
        return [k for p in parts for k in (p or [])] if all(parts) else None

    exprs = ["MIT", "GPL-2.0-or-later", "GPL-2.0+ WITH Classpath-exception-2.0",
             "GPL-2.0-only OR MIT AND BSD-3-Clause", "(GPL-2.0-only OR MIT) AND BSD-3-Clause",
             "LGPL-2.1-or-later AND (GPL-3.0-only WITH GCC-exception-3.1 OR LicenseRef-Vendor-EULA)",
             "((Apache-2.0))", "MIT and GPL-3.0-only or AGPL-3.0-only", "A OR B OR C AND D AND (E OR F)"]
    policies = [(("GPL-*", "AGPL-*"), ()), (("*",), ("MIT",)), (("LGPL-*",), ("LGPL-2.1*",)),
                (("LicenseRef-*", "E"), ()), (("A", "C", "F"), ())]
    plain = Licensing()
    for e in exprs:
        for globs, allow in policies:
            want = oracle(plain.parse(e, simple=True), globs, allow)
            got = _matches(_parsed(e), globs, allow)
            assert sorted(got or []) == sorted(want or []) and (got is None) == (want is None), (e, globs)
    for bad in ["MIT AND", "(MIT", "MIT)", "AND MIT", "MIT WITH", "MIT OR OR GPL-2.0-only", "", "MIT WITH (X)"]:
        with pytest.raises(ValueError):
            _parsed(bad)


def test_rules_say_which_targets_they_apply_to() -> None:
    """``applies_to`` in the rule files: the package-only rules judge repositories, the
    system rules do not; FC-WVR-001 is a rule in its own family, listed only when there are
    waivers to judge; FC-INV-001 and FC-LNK-001 are in their own families."""
    from scanner.checks import Waiver, load_rules, rules_for

    rules = load_rules()
    fam = {r.id: r.family for r in rules}
    assert fam["FC-INV-001"] == "inventory" and fam["FC-LNK-001"] == "linkage" and fam["FC-WVR-001"] == "waivers"
    repo = {r.id for r in rules_for(rules, "repository")}
    assert repo == {"FC-LIC-001", "FC-LIC-002", "FC-LIC-004", "FC-LIC-005", "FC-LIC-006", "FC-ERR-001"}
    system = {r.id for r in rules_for(rules, "directory")}
    assert {"FC-BOOT-001", "FC-INV-001", "FC-LIC-003", "FC-ERR-001"} <= system and "FC-WVR-001" not in system
    w = Waiver("FC-LIC-003", "*", "reason", None, "w.toml#1")
    assert "FC-WVR-001" in {r.id for r in rules_for(rules, "repository", [w])}


def test_an_unknown_target_kind_in_applies_to_is_refused(tmp_path: Path) -> None:
    import pytest

    from scanner.checks import PolicyError, load_rules

    (tmp_path / "x.toml").write_text('[[rule]]\nid = "X-1"\ncheck = "scan-errors"\ntitle = "t"\n'
                                     'severity = "low"\napplies_to = ["container"]\n')
    with pytest.raises(PolicyError, match="applies_to"):
        load_rules(tmp_path)


def test_the_expired_waiver_rule_runs_last_and_unwaived() -> None:
    """FC-WVR-001 via the engine: one finding per expired waiver, saying whether it still
    matched a failing finding; a catch-all waiver does not waive it."""
    import datetime as dt

    from scanner.checks import CheckContext, Policy, Waiver, evaluate, load_rules, rules_for

    rules = [r for r in load_rules() if r.id in ("FC-WVR-001", "FC-ERR-001")]
    errors = [{"path": "/x", "stage": "census", "message": "cannot read"}]
    old = dt.date(2020, 1, 1)
    waivers = [Waiver("FC-ERR-001", "*", "r1", old, "w#1"), Waiver("FC-NONE", "*", "r2", old, "w#2"),
               Waiver("*", "*", "r3", None, "w#3")]
    ctx = CheckContext([], [], [], Policy(), errors=errors)
    found = evaluate(ctx, rules_for(rules, "directory", waivers), waivers, dt.date(2024, 1, 1))
    assert [f.rule for f in found] == ["FC-ERR-001", "FC-WVR-001", "FC-WVR-001"]
    one, two = found[1:]
    assert one.state == two.state == "fail" and one.severity == "low" and one.title == "A waiver has expired"
    assert "no longer matches" not in one.message and "It no longer matches any finding." in two.message
    assert one.subject == "waiver:FC-ERR-001:*" and two.evidence["source"] == "w#2"
