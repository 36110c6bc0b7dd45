"""Fail closed (issue 15, item 3): nothing unreadable ever improves a verdict.

A rule that ends in ``error`` counts as failing at its severity, for the gate and in the
summary counts every report reads; no waiver turns an error into ``waived``; the scan's own
error records reach the gate through FC-ERR-001. The evasion case runs through the real
command on a copy of the rpm fixture root.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import scan_root

from scanner import result as resultmod
from scanner.checks import (
    CheckContext,
    Finding,
    Judgement,
    Policy,
    effective_rules,
    evaluate,
    load_policy,
    load_rules,
    load_waivers,
    verdict,
)
from scanner.reports import html

FLIGHTCHECK = Path(sys.executable).with_name("flightcheck")

#: a GRUB 2 configuration with no password: FC-BOOT-001 (high) fails on it
GRUB_OPEN = (b"menuentry 'Fixture Linux' {\n  linux /vmlinuz-6.1 root=/dev/vda1 ro audit=1\n"
             b"  initrd /initramfs-6.1.img\n}\n")
#: one every boot rule passes on: a superuser with a literal PBKDF2 hash, audit=1, no recovery
GRUB_LOCKED = (b'set superusers="bootkeeper"\npassword_pbkdf2 bootkeeper grub.pbkdf2.sha512.10000.'
               + b"AB" * 64 + b"." + b"CD" * 64 + b"\n" + GRUB_OPEN)
DEFAULT_GRUB = b'GRUB_DISABLE_RECOVERY="true"\nGRUB_CMDLINE_LINUX="ro audit=1"\n'
#: the malformed drop-ins of the issue: each makes the boot configuration unreadable
MALFORMED = {
    "unterminated-quote": b'X="unterminated\n',
    "nul-byte": b'X="a\0b"\n',
    "over-1-MiB": b"# padding\n" * ((1 << 20) // 10 + 1),
}
#: waives every finding of the fixture's license, linkage and ownership rules, so that the
#: gate hinges on the boot rules alone (the controls below prove it does)
WAIVE_THE_REST = "".join(
    f'[[waiver]]\nrule = "{r}"\nsubject = "*"\nreason = "not under test here"\n\n'
    for r in ("FC-LIC-*", "FC-LNK-*", "FC-INV-*"))


def make_root(rpmroot: Path, dest: Path, files: dict[str, bytes]) -> Path:
    """A copy of the rpm fixture root with ``files`` (root-relative) added, mode 0600 as
    grub2-mkconfig writes them."""
    shutil.copytree(rpmroot, dest, symlinks=True)
    for rel, data in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o600)
    return dest


def cli_scan(root: Path, out: Path, *extra: str) -> tuple[int, dict]:
    """Run the installed ``flightcheck scan``; its exit code and result.json."""
    r = subprocess.run([str(FLIGHTCHECK), "scan", str(root), "-o", str(out), *extra],
                       capture_output=True, text=True, check=False)
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads((out / "result.json").read_text())


def of_rule(doc: dict, rule: str) -> list[dict]:
    return [f for f in doc["findings"] if f["rule"] == rule]


def blanket_waiver(path: Path) -> Path:
    path.write_text('[[waiver]]\nrule = "*"\nsubject = "*"\nreason = "accept every known failure"\n')
    return path


# ---- unit level: the gate and the counts -------------------------------------------------------
def test_an_error_fails_the_gate_at_its_severity() -> None:
    err = Finding("FC-BOOT-001", "high", "error", "boot", "The boot configuration cannot be read: x", {})
    assert verdict([err], "high") == "fail"
    assert verdict([err], "low") == "fail"
    assert verdict([err], "critical") == "pass"  # below the threshold, as a fail would be
    assert verdict([err], "never") == "pass"
    # an info rule never gates (fail_on is low at the least): the policy's way to mute a rule
    assert verdict([Finding("FC-X", "info", "error", "s", "m", {})], "low") == "pass"

    rules = [r for r in load_rules() if r.id == "FC-BOOT-001"]
    doc = resultmod.judged(Judgement(tuple(rules), (err,), ("rules/policy.toml",), "high", None, "test"))
    assert doc["summary"]["findings"]["high"] == 1  # the count every report reads
    assert doc["summary"]["states"]["error"] == 1 and doc["summary"]["states"]["fail"] == 0
    assert doc["policy"]["verdict"] == doc["summary"]["verdict"] == "fail"
    assert doc["findings"][0]["state"] == "error"  # the state stays error, with its reason
    assert "cannot be read" in doc["findings"][0]["message"]


def test_scan_errors_are_one_finding_per_stage() -> None:
    """3,000 unreadable files are one finding with a count and the first paths."""
    errors = [{"path": f"/usr/lib64/lib{i}.so", "stage": "inventory", "message": "truncated"} for i in range(3000)]
    errors += [{"path": "/etc/ld.so.conf", "stage": "linkage", "message": "include loop"}] * 2
    rules = [r for r in effective_rules(load_rules(), Policy()) if r.id == "FC-ERR-001"]
    findings = evaluate(CheckContext([], [], [], Policy(), errors=errors), rules, [])
    by = {f.subject: f for f in findings}
    assert set(by) == {"inventory", "linkage"}
    inv = by["inventory"]
    assert inv.state == "error" and inv.severity == "medium"
    assert inv.evidence["count"] == 3000 and len(inv.evidence["examples"]) == 20 and inv.evidence["more"] == 2980
    assert inv.evidence["examples"][0] == {"path": "/usr/lib64/lib0.so", "message": "truncated"}
    assert "3000 part(s)" in inv.message and "/usr/lib64/lib0.so" in inv.message
    assert by["linkage"].evidence["count"] == 2
    assert verdict(findings, "medium") == "fail" and verdict(findings, "high") == "pass"
    # nothing unreadable: one pass, so an auditor sees the rule ran
    (ok,) = evaluate(CheckContext([], [], [], Policy(), errors=[]), rules, [])
    assert ok.state == "pass" and ok.subject == "scan"


def test_the_policy_sets_the_scan_error_rule(tmp_path: Path) -> None:
    """Severity through the ordinary rule override; known unreadable paths named in the
    policy are left out of the gate but still counted."""
    errors = [{"path": "/usr/lib/firmware/blob.bin", "stage": "inventory", "message": "not ELF after all"},
              {"path": "/usr/bin/broken", "stage": "inventory", "message": "truncated"}]
    pol = tmp_path / "policy.toml"
    pol.write_text('[rules."FC-ERR-001"]\nseverity = "high"\nparams = { ignore_paths = ["/usr/lib/firmware/*"] }\n')
    policy = load_policy(pol)
    rules = [r for r in effective_rules(load_rules(), policy) if r.id == "FC-ERR-001"]
    (f,) = evaluate(CheckContext([], [], [], policy, errors=errors), rules, [])
    assert f.severity == "high" and f.state == "error" and verdict([f], "high") == "fail"
    assert f.evidence["count"] == 1 and f.evidence["examples"][0]["path"] == "/usr/bin/broken"
    assert f.evidence["ignored"] == {"inventory": 1}
    (ok,) = evaluate(CheckContext([], [], [], policy, errors=errors[:1]), rules, [])
    assert ok.state == "pass" and ok.evidence["ignored"] == {"inventory": 1} and "1 record(s) ignored" in ok.message
    pol.write_text('[rules."FC-ERR-001"]\nseverity = "info"\n')
    rules = [r for r in effective_rules(load_rules(), load_policy(pol)) if r.id == "FC-ERR-001"]
    (f,) = evaluate(CheckContext([], [], [], policy, errors=errors), rules, [])
    assert f.state == "error" and verdict([f], "low") == "pass"


def test_no_waiver_accepts_an_error(tmp_path: Path) -> None:
    errors = [{"path": "/usr/bin/broken", "stage": "inventory", "message": "truncated"}]
    rules = [r for r in effective_rules(load_rules(), Policy()) if r.id == "FC-ERR-001"]
    waivers = load_waivers(blanket_waiver(tmp_path / "w.toml"))
    (f,) = evaluate(CheckContext([], [], [], Policy(), errors=errors), rules, waivers)
    assert f.state == "error" and f.waiver is None
    assert f.evidence["waiver_not_applied"]["source"].endswith("w.toml#1")
    assert verdict([f], "medium") == "fail"


# ---- the evasion case, through the real command -----------------------------------------------
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_boot_file_does_not_pass_a_failing_grub_cfg(name: str, rpmroot: Path, tmp_path: Path) -> None:
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(WAIVE_THE_REST)
    gate = ("--fail-on", "low", "--waivers", str(waivers))
    # control: with the other rules waived, a root that boots nothing passes
    code, doc = cli_scan(make_root(rpmroot, tmp_path / "plain", {}), tmp_path / "o0", *gate)
    assert code == 0, doc["summary"]["findings"]
    # the failing case: grub.cfg without a password
    failing = {"boot/grub2/grub.cfg": GRUB_OPEN}
    code, before = cli_scan(make_root(rpmroot, tmp_path / "open", failing), tmp_path / "o1", *gate)
    assert code == 1 and of_rule(before, "FC-BOOT-001")[0]["state"] == "fail"
    # ...and a malformed drop-in beside it: still exit 1
    root = make_root(rpmroot, tmp_path / "evasion", {**failing, "etc/default/grub.d/x.cfg": MALFORMED[name]})
    code, doc = cli_scan(root, tmp_path / "o2", *gate)
    assert code == 1 and doc["policy"]["verdict"] == "fail"
    # the rule fails on what it could read, or says it could not read the drop-in
    assert {f["state"] for f in of_rule(doc, "FC-BOOT-001")} & {"fail", "error"}
    for f in of_rule(doc, "FC-BOOT-001"):
        assert f["state"] != "error" or "/etc/default/grub.d/x.cfg" in f["message"]
    # no error improves anything: every rule failing before still fails or errs, and no
    # severity counts fewer failing findings
    failing_before = {f["rule"] for f in before["findings"] if f["state"] in ("fail", "error")}
    assert failing_before >= {"FC-BOOT-001", "FC-BOOT-002"}
    for rule in failing_before:
        assert {f["state"] for f in of_rule(doc, rule)} & {"fail", "error"}, rule
    assert all(doc["summary"]["findings"][sev] >= n for sev, n in before["summary"]["findings"].items())
    resultmod.validate(doc)


def test_an_unreadable_boot_configuration_is_not_a_pass(rpmroot: Path, tmp_path: Path) -> None:
    """A boot configuration every rule passes on, plus a drop-in that cannot be read: the
    rules that depend on it cannot judge, no rule gets better, and the scan fails instead
    of passing."""
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(WAIVE_THE_REST)
    gate = ("--fail-on", "low", "--waivers", str(waivers))
    locked = {"boot/grub2/grub.cfg": GRUB_LOCKED, "etc/default/grub": DEFAULT_GRUB}
    code, before = cli_scan(make_root(rpmroot, tmp_path / "locked", locked), tmp_path / "o0", *gate)
    assert code == 0, [(f["rule"], f["state"]) for f in before["findings"] if f["state"] in ("fail", "error")]
    assert of_rule(before, "FC-BOOT-006")[0]["state"] == "pass"
    broken = {**locked, "etc/default/grub.d/x.cfg": MALFORMED["unterminated-quote"]}
    code, doc = cli_scan(make_root(rpmroot, tmp_path / "broken", broken), tmp_path / "o1", *gate)
    assert code == 1 and doc["policy"]["verdict"] == "fail"
    errored = [f for f in doc["findings"] if f["state"] == "error"]
    assert errored and all("/etc/default/grub.d/x.cfg" in f["message"] for f in errored)
    # GRUB_DISABLE_RECOVERY is read from the drop-ins: that rule cannot be judged
    assert [f["state"] for f in of_rule(doc, "FC-BOOT-006")] == ["error"]
    # the failing counts are the errors, at their severities
    by_sev = {sev: sum(1 for f in errored if f["severity"] == sev) for sev in doc["summary"]["findings"]}
    assert doc["summary"]["findings"] == by_sev
    # the HTML report counts them as failing too, and lists them first
    ctx = html.context(doc, print_=False, folders=html.template_folders(None))
    assert ctx["verdict"] == "fail" and ctx["failing_by_rule"]["FC-BOOT-006"] == 1
    assert ctx["score"] < 100
    assert ctx["findings"][0]["state"] == "error"  # no waived or passing finding listed before it


def test_a_waiver_accepts_the_failure_but_not_the_error(rpmroot: Path, tmp_path: Path) -> None:
    waivers = blanket_waiver(tmp_path / "w.toml")
    failing = {"boot/grub2/grub.cfg": GRUB_OPEN}
    doc = scan_root(make_root(rpmroot, tmp_path / "open", failing), fail_on="low", waivers=waivers)
    assert doc["policy"]["verdict"] == "pass" and of_rule(doc, "FC-BOOT-001")[0]["state"] == "waived"
    root = make_root(rpmroot, tmp_path / "evasion",
                     {**failing, "etc/default/grub.d/x.cfg": MALFORMED["unterminated-quote"]})
    doc = scan_root(root, fail_on="low", waivers=waivers)
    assert doc["policy"]["verdict"] == "fail"
    errored = [f for f in doc["findings"] if f["state"] == "error"]
    assert errored
    for f in errored:
        assert f["waiver"] is None
        assert f["evidence"]["waiver_not_applied"]["source"].endswith("w.toml#1")


def test_scan_error_records_reach_the_gate(rpmroot: Path, tmp_path: Path) -> None:
    """A truncated ELF file is an error record of the census; FC-ERR-001 puts it before the
    gate, and a blanket waiver does not take it away."""
    waivers = blanket_waiver(tmp_path / "w.toml")
    doc = scan_root(make_root(rpmroot, tmp_path / "clean", {}), fail_on="medium", waivers=waivers)
    assert not doc["errors"] and doc["policy"]["verdict"] == "pass"
    assert [f["state"] for f in of_rule(doc, "FC-ERR-001")] == ["pass"]
    truncated = (rpmroot / "usr/bin/hello").read_bytes()[:200]
    doc = scan_root(make_root(rpmroot, tmp_path / "broken", {"usr/bin/broken": truncated}),
                    fail_on="medium", waivers=waivers)
    resultmod.validate(doc)
    assert [e["path"] for e in doc["errors"]] == ["/usr/bin/broken"]
    (f,) = of_rule(doc, "FC-ERR-001")
    assert f["state"] == "error" and f["severity"] == "medium" and f["subject"] == "inventory"
    assert f["evidence"]["count"] == 1 and f["evidence"]["examples"][0]["path"] == "/usr/bin/broken"
    assert doc["summary"]["findings"]["medium"] == 1 and doc["policy"]["verdict"] == "fail"
