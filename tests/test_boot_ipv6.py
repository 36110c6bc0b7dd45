"""The boot and IPv6 rules (scanner/checks/boot.py, ipv6.py) on real file trees: the
system roots built by fixtures/build_systemroots.py, small roots written here for single
cases, and programs compiled here for the IPv4-only API check."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from conftest import CACHE, load_builder, scan_root


@pytest.fixture(scope="session")
def systemroots() -> dict[str, Path]:
    return load_builder("build_systemroots").build_system_roots(CACHE)


def states(doc: dict) -> dict[str, list[str]]:
    """rule -> the states of its results."""
    out: dict[str, list[str]] = {}
    for f in doc["findings"]:
        if f["rule"].startswith(("FC-BOOT", "FC-IP6")):
            out.setdefault(f["rule"], []).append(f["state"])
    return out


def state(doc: dict, rule: str) -> str:
    """The rule's state on a root (a per-executable rule: fail if any of its results fails)."""
    got = set(states(doc)[rule])
    if "fail" in got:
        return "fail"
    assert len(got) == 1, (rule, got)
    return got.pop()


def write(root: Path, rel: str, text: str | bytes, mode: int = 0o600) -> Path:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    p.chmod(mode)
    return p


# ---- the four distribution-shaped roots and a container --------------------------------------
EXPECTED = {
    # rule: {root: state}
    "FC-BOOT-001": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "rhel7-secure": "pass", "rhel7-trap": "fail",
                    "rhel9-bls": "pass", "debian12": "fail", "container": "notapplicable"},
    "FC-BOOT-002": {"rhel5-secure": "notapplicable", "rhel7-secure": "pass", "rhel7-trap": "fail",
                    "rhel9-bls": "fail", "debian12": "fail", "container": "notapplicable"},
    "FC-BOOT-003": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "rhel7-secure": "pass", "rhel7-trap": "pass",
                    "debian12": "fail", "container": "notapplicable"},
    "FC-BOOT-004": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "rhel7-secure": "pass", "rhel9-bls": "pass",
                    "debian12": "pass",
                    "container": "notapplicable"},
    "FC-BOOT-005": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "rhel7-secure": "pass", "rhel7-trap": "fail",
                    "debian12": "pass", "container": "notapplicable"},
    "FC-BOOT-006": {"rhel5-secure": "notapplicable", "rhel7-secure": "pass", "rhel7-trap": "fail",
                    "debian12": "fail", "container": "notapplicable"},
    "FC-BOOT-007": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "rhel7-secure": "pass", "rhel7-trap": "fail",
                    "rhel9-bls": "pass", "debian12": "pass"},
    "FC-BOOT-008": {"rhel5-secure": "notapplicable", "rhel7-secure": "pass", "rhel9-bls": "pass",
                    "rhel7-trap": "fail"},  # an /etc copy of emergency.service without sulogin
    "FC-BOOT-009": {"rhel5-secure": "notapplicable", "rhel7-secure": "pass", "rhel7-trap": "fail"},
    "FC-BOOT-010": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "rhel7-secure": "notapplicable"},
    "FC-IP6-001": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "rhel9-bls": "fail", "rhel7-secure": "pass",
                   "container": "notapplicable"},
    "FC-IP6-002": {"rhel7-secure": "pass", "rhel7-trap": "fail", "rhel9-bls": "pass"},
    "FC-IP6-003": {"rhel5-insecure": "fail", "rhel7-trap": "fail", "rhel7-secure": "pass"},
    "FC-IP6-004": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "debian12": "notapplicable"},
    "FC-IP6-008": {"debian12": "fail"},  # v4-resolver and v4-parse (ptonly: informational)
    "FC-IP6-005": {"rhel7-secure": "pass", "rhel7-trap": "fail", "rhel5-secure": "notapplicable"},
    "FC-IP6-006": {"rhel5-secure": "pass", "rhel5-insecure": "fail", "debian12": "pass"},
    "FC-IP6-007": {"rhel7-secure": "pass", "rhel7-trap": "fail", "debian12": "notapplicable"},
}


@pytest.fixture(scope="session")
def system_results(systemroots: dict[str, Path]) -> dict[str, dict]:
    names = {n for per in EXPECTED.values() for n in per}
    return {n: scan_root(systemroots[n]) for n in sorted(names)}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_rule_on_every_root(rule: str, system_results: dict[str, dict]) -> None:
    from conftest import is_root

    for root, want in EXPECTED[rule].items():
        if rule == "FC-BOOT-003" and want == "pass" and not is_root():
            continue  # the fixture files belong to the build user when not built as root
        assert state(system_results[root], rule) == want, (rule, root)


def test_ipv4_only_programs_of_the_debian_root(system_results: dict[str, dict]) -> None:
    got = {f["subject"]: f for f in system_results["debian12"]["findings"] if f["rule"] == "FC-IP6-008"}
    assert got["/usr/bin/v4-resolver"]["state"] == "fail"
    assert set(got["/usr/bin/v4-resolver"]["evidence"]["functions"]) == {"gethostbyname", "inet_ntoa"}
    assert got["/usr/bin/v4-parse"]["state"] == "fail" and got["/usr/bin/ptonly"]["state"] == "informational"
    assert "/usr/bin/dual-stack" not in got


def test_each_rule_passes_and_fails_somewhere() -> None:
    for rule, per in EXPECTED.items():
        seen = set(per.values())
        assert ("pass" in seen or rule == "FC-IP6-008") and "fail" in seen, rule


def test_evidence_names_path_line_and_text(system_results: dict[str, dict]) -> None:
    doc = system_results["rhel7-trap"]
    (f,) = [f for f in doc["findings"] if f["rule"] == "FC-IP6-002"]
    lines = f["evidence"]["lines"]
    assert any(ln["path"].startswith("/etc/sysctl.d/") and ln["line"] >= 1 and "disable_ipv6" in ln["text"]
               for ln in lines)
    (boot,) = [f for f in doc["findings"] if f["rule"] == "FC-BOOT-001"]
    assert "01_users" in boot["message"] or "GRUB2_PASSWORD" in boot["message"]
    assert boot["references"]["ssg"] and boot["references"]["stig"]


def test_boot_findings_reach_the_gate_and_sarif(systemroots: dict[str, Path], tmp_path: Path) -> None:
    import json
    import sys

    r = subprocess.run([sys.executable, "-m", "scanner", "scan", str(systemroots["rhel7-trap"]), "-o", str(tmp_path),
                        "-q", "--format", "sarif,junit"], capture_output=True, text=True)
    assert r.returncode == 1  # FC-BOOT-001 and -002 are high
    sarif = json.loads((tmp_path / "result.sarif").read_text())
    kinds = {(res["ruleId"], res["kind"]) for res in sarif["runs"][0]["results"]}
    assert ("FC-BOOT-001", "fail") in kinds and ("FC-BOOT-004", "pass") in kinds
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", str(systemroots["container"]), "-o",
                        str(tmp_path / "c"), "-q"], capture_output=True, text=True)
    assert r.returncode == 0  # no boot loader: notapplicable, not fail


# ---- single cases in small roots -------------------------------------------------------------
def test_sysctl_precedence(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root, "/etc/sysctl.d/10-off.conf", "net.ipv6.conf.all.disable_ipv6 = 1\n")
    write(root, "/usr/lib/sysctl.d/99-off.conf", "net.ipv6.conf.default.disable_ipv6=1\n")
    assert state(scan_root(root), "FC-IP6-002") == "fail"
    # a later file re-enables it; a same-named file in /etc masks the one in /usr/lib
    write(root, "/etc/sysctl.d/90-on.conf", "net.ipv6.conf.all.disable_ipv6 = 0\n")
    write(root, "/etc/sysctl.d/99-off.conf", "# masks /usr/lib/sysctl.d/99-off.conf\n")
    assert state(scan_root(root), "FC-IP6-002") == "pass"
    # /etc/sysctl.conf comes last
    write(root, "/etc/sysctl.conf", "net/ipv6/conf/all/disable_ipv6 = 1\n")
    assert state(scan_root(root), "FC-IP6-002") == "fail"


def test_rescue_dropin_without_sulogin(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root, "/usr/lib/systemd/system/rescue.service",
          "[Service]\nExecStart=-/usr/lib/systemd/systemd-sulogin-shell rescue\n", 0o644)
    write(root, "/usr/lib/systemd/system/emergency.service",
          "[Service]\nExecStart=-/usr/lib/systemd/systemd-sulogin-shell emergency\n", 0o644)
    assert state(scan_root(root), "FC-BOOT-007") == "pass"
    write(root, "/etc/systemd/system/rescue.service.d/override.conf", "[Service]\nExecStart=\nExecStart=-/bin/bash\n")
    doc = scan_root(root)
    assert state(doc, "FC-BOOT-007") == "fail"
    (f,) = [f for f in doc["findings"] if f["rule"] == "FC-BOOT-007"]
    assert "/etc/systemd/system/rescue.service.d/override.conf" in f["evidence"]["files"]
    assert state(doc, "FC-BOOT-008") == "pass"


def test_libvirt_networks_with_and_without_ipv6(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root, "/etc/libvirt/qemu/networks/v6.xml",
          "<network><name>v6</name><ip address='192.168.1.1' netmask='255.255.255.0'/>"
          "<ip family='ipv6' address='fd00::1' prefix='64'/></network>")
    assert state(scan_root(root), "FC-IP6-007") == "pass"
    write(root, "/etc/libvirt/qemu/networks/v4.xml", "<network><name>v4</name><ip address='10.0.0.1'/></network>")
    assert sorted(states(scan_root(root))["FC-IP6-007"]) == ["fail", "pass"]
    write(root, "/etc/libvirt/qemu/networks/broken.xml", "<network><name>x</name>")
    assert "error" in states(scan_root(root))["FC-IP6-007"]


def test_ipv4_only_apis_on_programs_compiled_here(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "usr/bin").mkdir(parents=True)
    progs = {
        "v4": "#include <netdb.h>\n#include <arpa/inet.h>\n#include <stdio.h>\nint main(int c,char**v){"
              "struct hostent*h=gethostbyname(v[0]);struct in_addr a={0};puts(inet_ntoa(a));return h!=0;}",
        "dual": "#include <netdb.h>\n#include <stddef.h>\nint main(int c,char**v){struct addrinfo*r=NULL;"
                "int e=getaddrinfo(v[0],NULL,NULL,&r);if(!e)freeaddrinfo(r);return e;}",
        "pton": "#include <arpa/inet.h>\nint main(int c,char**v){unsigned char b[16];return inet_pton(AF_INET6,v[0],b);}",
    }
    for name, src in progs.items():
        c = tmp_path / f"{name}.c"
        c.write_text(src)
        subprocess.run(["gcc", "-O1", "-o", str(root / "usr/bin" / name), str(c)], check=True)
    doc = scan_root(root)
    got = {f["subject"]: f for f in doc["findings"] if f["rule"] == "FC-IP6-008"}
    assert got["/usr/bin/v4"]["state"] == "fail"
    assert set(got["/usr/bin/v4"]["evidence"]["functions"]) == {"gethostbyname", "inet_ntoa"}
    assert "getaddrinfo" in got["/usr/bin/v4"]["message"] and "inet_ntop" in got["/usr/bin/v4"]["message"]
    assert got["/usr/bin/pton"]["state"] == "informational"
    assert "/usr/bin/dual" not in got


# ---- hostile configuration ---------------------------------------------------------------------
def test_hostile_boot_configuration(tmp_path: Path) -> None:
    """Binary junk, a 5 MB line, unbalanced braces, a configfile loop: an error result for
    the rules that need that file, and the other rules still give their answer."""
    cases = {
        "longline": {"/boot/grub2/grub.cfg": "set x=" + "a" * (5 << 20) + "\n"},
        "junk": {"/boot/grub2/grub.cfg": bytes(random.Random(5).randbytes(4096))},
        "braces": {"/boot/grub2/grub.cfg": "menuentry 'x' {\n  linux /vmlinuz ro audit=1\n"},
        "loop": {"/boot/grub2/grub.cfg": "configfile /boot/grub2/other.cfg\n",
                 "/boot/grub2/other.cfg": "configfile /boot/grub2/grub.cfg\n"},
        "quote": {"/boot/grub2/grub.cfg": "menuentry 'x' {\n linux /vmlinuz ro audit=1\n}\n",
                  "/etc/default/grub": 'GRUB_CMDLINE_LINUX="audit=1\n'},
    }
    for name, files in cases.items():
        root = tmp_path / name
        for rel, content in files.items():
            write(root, rel, content)
        write(root, "/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n", 0o644)
        write(root, "/etc/sysctl.d/50-ok.conf", "net.ipv6.conf.all.disable_ipv6 = 0\n", 0o644)
        doc = scan_root(root)
        # a malformed /etc/default/grub cannot hide a grub.cfg without a password: that rule
        # reads grub.cfg alone, which proves the failure; the rules that need the unreadable
        # file are errors (counted as failing), never a pass
        password_rule = "fail" if name == "quote" else "error"
        assert state(doc, "FC-BOOT-001") == password_rule, name
        assert state(doc, "FC-IP6-001") == "error", name
        # the others go on
        assert state(doc, "FC-IP6-006") == "pass", name
        assert state(doc, "FC-IP6-002") == "pass", name
        boot_rule = "FC-BOOT-006" if name == "quote" else "FC-BOOT-001"
        for rule in (boot_rule, "FC-IP6-001"):
            msg = next(f["message"] for f in doc["findings"] if f["rule"] == rule)
            assert {"longline": "larger than", "junk": "binary", "braces": "unclosed brace",
                    "loop": "configfile loop", "quote": "No closing quotation"}[name] in msg, (name, rule, msg)


def test_binary_sysctl_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root, "/etc/sysctl.d/junk.conf", bytes(range(256)) * 10)
    write(root, "/etc/hosts", "::1 localhost\n", 0o644)
    doc = scan_root(root)
    assert state(doc, "FC-IP6-002") == "error"
    assert state(doc, "FC-IP6-006") == "pass"


@pytest.mark.parametrize("name", ["hostile-longline", "hostile-braces", "hostile-configfile-loop"])
def test_hostile_system_roots(name: str, systemroots: dict[str, Path]) -> None:
    doc = scan_root(systemroots[name])
    assert state(doc, "FC-BOOT-001") == "error"
    assert state(doc, "FC-IP6-006") == "pass" and state(doc, "FC-IP6-003") == "pass"
    assert all(f["state"] in ("pass", "fail", "error", "notapplicable", "informational", "waived")
               for f in doc["findings"])
