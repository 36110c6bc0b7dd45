"""``flightcheck diff``: two real scans of a copy of the fixture root, with real changes
made between them, must differ by exactly those changes.

Between the scans:
- libgreet is upgraded 1.0.0-1 -> 1.0.1-1 (rebuilt with rpmbuild from the files the
  installed package owns, installed with ``rpm --root -U``); its license stays LGPLv2+;
- suidapp is rebuilt at the same version 1.0-1 with ``License: AGPLv3+`` instead of
  ``MIT`` and reinstalled (``-U --replacepkgs``): a license change and no upgrade;
- an ELF file no package owns appears: ``/usr/local/bin/newtool`` (a copy of hello);
- the GRUB 2 password is removed (``/boot/grub2/user.cfg``, where ``grub2-setpassword``
  writes it; both scans have rhel7-secure's ``/boot``).
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from scanner import diff as diffmod
from scanner import result as resultmod
from scanner.inventory.rpmvercmp import label_compare_py
from conftest import CACHE, load_builder, scan_root

SCRIPT = '<script>alert("diff")</script>'


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True)


def _rpm_files(rpm: str, pkg: Path) -> list[tuple[str, int, str]]:
    out = subprocess.run([rpm, "-qp", "--qf", r"[%{FILENAMES}\t%{FILEMODES}\t%{FILELINKTOS}\n]", str(pkg)],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        path, mode, link = line.split("\t")
        rows.append((path, int(mode), link))
    return rows


def rebuild(tools: Any, original: Path, source_root: Path, work: Path, *, version: str, release: str,
            license: str) -> Path:
    """rpmbuild a package with the files ``original`` owns, taken from ``source_root``,
    at another version or with another License tag. Private _topdir and _dbpath: the
    host's rpm database is never touched."""
    name = subprocess.run([tools.rpm, "-qp", "--qf", "%{NAME}", str(original)], capture_output=True, text=True,
                          check=True).stdout
    top = work / f"rpmbuild-{name}"
    for sub in ("BUILD", "BUILDROOT", "RPMS", "SOURCES", "SPECS", "SRPMS", "tmp", "hostdb"):
        (top / sub).mkdir(parents=True, exist_ok=True)
    install, files = [], []
    for path, mode, link in _rpm_files(tools.rpm, original):
        perm = f"{mode & 0o7777:04o}"
        if link:
            install.append(f"mkdir -p %{{buildroot}}{os.path.dirname(path)}")
            install.append(f"ln -s {link} %{{buildroot}}{path}")
            files.append(path)
        elif mode & 0o170000 == 0o040000:
            install.append(f"install -d -m {perm} %{{buildroot}}{path}")
            files.append(f"%dir %attr({perm},root,root) {path}")
        else:
            src = top / "SOURCES" / path.lstrip("/")
            src.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_root / path.lstrip("/"), src)
            install.append(f"install -D -m {perm} {src} %{{buildroot}}{path}")
            files.append(f"%attr({perm},root,root) {path}")
    spec = top / "SPECS" / f"{name}.spec"
    spec.write_text(f"""Name: {name}
Version: {version}
Release: {release}
Summary: {name} rebuilt for the diff test
License: {license}
ExclusiveArch: x86_64
AutoReqProv: no

%description
{name} rebuilt from the files the fixture package owns.

%install
{chr(10).join(install)}

%files
{chr(10).join(files)}
""")
    defines = {"_topdir": top, "_tmppath": top / "tmp", "_dbpath": top / "hostdb", "debug_package": "%{nil}",
               "__os_install_post": "%{nil}", "__arch_install_post": "%{nil}", "_build_id_links": "none",
               "_binary_payload": "w2.gzdio"}
    args = [a for k, v in defines.items() for a in ("--define", f"{k} {v}")]
    r = subprocess.run([tools.rpmbuild, "-bb", "--nodeps", "--quiet", *args, str(spec)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    (built,) = (top / "RPMS").rglob(f"{name}-{version}-{release}.*.rpm")
    return built


def rpm_install(tools: Any, root: Path, *pkgs: Path, replace: bool = False) -> None:
    r = subprocess.run([tools.rpm, "--root", str(root), "--dbpath", "/var/lib/rpm", "--define", "_dbpath /var/lib/rpm",
                        *tools.rpm_extra_args, "-U", "--nodeps", "--noscripts", "--notriggers", "--nosignature",
                        *(["--replacepkgs"] if replace else []), *map(str, pkgs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def scans(rpmroot: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real scans of one copy of the fixture root, with the four changes between
    them; both results are also written to files for the command-line tests."""
    builder = load_builder("build_rpmroot")
    tools = builder.find_tools()
    rpms = rpmroot.parent / "rpms"
    base = tmp_path_factory.mktemp("diff")
    root = base / "root"
    subprocess.run(["cp", "-a", str(rpmroot), str(root)], check=True)
    boot = load_builder("build_systemroots").build_system_roots(CACHE)["rhel7-secure"] / "boot"
    subprocess.run(["cp", "-a", str(boot), str(root / "boot")], check=True)
    old = scan_root(root)

    libgreet = rebuild(tools, rpms / "libgreet-1.0.0-1.x86_64.rpm", rpmroot, base, version="1.0.1", release="1",
                       license="LGPLv2+")
    suidapp = rebuild(tools, rpms / "suidapp-1.0-1.x86_64.rpm", rpmroot, base, version="1.0", release="1",
                      license="AGPLv3+")
    rpm_install(tools, root, libgreet)
    rpm_install(tools, root, suidapp, replace=True)
    shutil.copy2(root / "usr/bin/hello", root / "usr/local/bin/newtool")
    (root / "boot/grub2/user.cfg").unlink()
    new = scan_root(root)

    resultmod.write(old, base / "old")
    resultmod.write(new, base / "new")
    return {"old": old, "new": new, "old_file": base / "old/result.json", "new_file": base / "new/result.json",
            "base": base, "root": root}


def keys(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(f["rule"], f["subject"]) for f in rows}


def failing(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["rule"], f["subject"]) for f in doc["findings"] if f["state"] == "fail"}


def test_the_diff_names_exactly_the_changes(scans: dict[str, Any]) -> None:
    old, new = scans["old"], scans["new"]
    for doc in (old, new):
        resultmod.validate(doc)
    d = diffmod.diff(old, new)
    json.dumps(d)  # JSON-able
    assert d["schema"] == "flightcheck/diff/1"
    assert d["warnings"] == []

    # packages: exactly the one upgrade, nothing added, removed or downgraded
    assert d["packages"]["added"] == d["packages"]["removed"] == d["packages"]["downgraded"] == []
    assert [(p["name"], p["arch"], p["old_version"], p["new_version"]) for p in d["packages"]["upgraded"]] == [
        ("libgreet", "x86_64", "1.0.0-1", "1.0.1-1")]

    # licenses: exactly suidapp, raw and SPDX, at an unchanged version
    (lic,) = d["license_changes"]
    assert (lic["name"], lic["old_version"], lic["new_version"]) == ("suidapp", "1.0-1", "1.0-1")
    assert lic["raw"] == {"old": "MIT", "new": "AGPLv3+"}
    assert lic["spdx"] == {"old": "MIT", "new": "AGPL-3.0-or-later"}
    assert lic["category"] == {"old": "permissive", "new": "network-copyleft"}

    # ELF files outside any package: exactly the new one (unowned-tool was there before)
    assert [e["path"] for e in d["added_unowned_elves"]] == ["/usr/local/bin/newtool"]

    # findings. New: the unowned binary (FC-INV-001, medium); the boot loader without a
    # password (FC-BOOT-001, high; FC-BOOT-002's superuser is still set in grub.cfg);
    # suidapp now under a denied license (FC-LIC-001, high). Fixed: suidapp's "MIT" is no
    # longer a guessed license (FC-LIC-005). libgreet's FC-LIC-005 survives its upgrade
    # under the new package id: still failing, not fixed-and-new.
    assert keys(d["findings"]["new"]) == {("FC-INV-001", "/usr/local/bin/newtool"), ("FC-BOOT-001", "boot"),
                                          ("FC-LIC-001", "rpm/suidapp-1.0-1.x86_64")}
    assert keys(d["findings"]["fixed"]) == {("FC-LIC-005", "rpm/suidapp-1.0-1.x86_64")}
    assert d["findings"]["newly_waived"] == []
    still = {(f["rule"], f.get("old_subject", f["subject"])) for f in d["findings"]["still_failing"]}
    assert still == failing(old) - keys(d["findings"]["fixed"])
    moved = [f for f in d["findings"]["still_failing"] if f.get("old_subject")]
    assert [(f["rule"], f["old_subject"], f["subject"]) for f in moved] == [
        ("FC-LIC-005", "rpm/libgreet-1.0.0-1.x86_64", "rpm/libgreet-1.0.1-1.x86_64")]
    # and the two scans' own failing findings agree with that
    assert failing(new) == (failing(old) - {("FC-LIC-005", "rpm/suidapp-1.0-1.x86_64"),
                                            ("FC-LIC-005", "rpm/libgreet-1.0.0-1.x86_64")}
                            | keys(d["findings"]["new"]) | {("FC-LIC-005", "rpm/libgreet-1.0.1-1.x86_64")})
    s = d["summary"]
    assert (s["packages_upgraded"], s["license_changes"], s["added_unowned_elves"], s["findings_new"],
            s["findings_fixed"]) == (1, 1, 1, 3, 1)
    assert s["new_by_severity"]["high"] == 2 and s["new_by_severity"]["medium"] == 1
    assert s["changed"] and d["old"]["root"] == d["new"]["root"] == str(scans["root"])

    text = diffmod.render_text(d)
    for line in ("libgreet.x86_64 1.0.0-1 -> 1.0.1-1", "suidapp.x86_64 1.0-1: MIT -> AGPLv3+",
                 "SPDX MIT -> AGPL-3.0-or-later", "/usr/local/bin/newtool (pie)",
                 "[high] FC-BOOT-001 boot", "[low] FC-LIC-005 rpm/suidapp-1.0-1.x86_64"):
        assert line in text, text


def test_the_other_way_round_is_a_downgrade(scans: dict[str, Any]) -> None:
    d = diffmod.diff(scans["new"], scans["old"])
    assert d["packages"]["upgraded"] == []
    assert [(p["name"], p["old_version"], p["new_version"]) for p in d["packages"]["downgraded"]] == [
        ("libgreet", "1.0.1-1", "1.0.0-1")]
    assert d["license_changes"][0]["raw"] == {"old": "AGPLv3+", "new": "MIT"}
    assert d["added_unowned_elves"] == []  # newtool went away: that is not an addition
    assert keys(d["findings"]["new"]) == {("FC-LIC-005", "rpm/suidapp-1.0-1.x86_64")}
    assert keys(d["findings"]["fixed"]) == {("FC-INV-001", "/usr/local/bin/newtool"), ("FC-BOOT-001", "boot"),
                                            ("FC-LIC-001", "rpm/suidapp-1.0-1.x86_64")}
    assert "Packages DOWNGRADED (1):\n  libgreet.x86_64 1.0.1-1 -> 1.0.0-1" in diffmod.render_text(d)


def test_identical_results_make_an_empty_diff(scans: dict[str, Any]) -> None:
    d = diffmod.diff(scans["old"], copy.deepcopy(scans["old"]))
    assert not d["summary"]["changed"] and not d["warnings"]
    assert all(v == [] for v in d["packages"].values())
    assert d["license_changes"] == d["added_unowned_elves"] == []
    assert d["findings"]["new"] == d["findings"]["fixed"] == d["findings"]["newly_waived"] == []
    assert keys(d["findings"]["still_failing"]) == failing(scans["old"])
    r = run("diff", str(scans["old_file"]), str(scans["old_file"]), "--fail-on-new", "info")
    assert r.returncode == 0, r.stderr
    assert "no changes" in r.stdout and r.stderr == ""


def test_fail_on_new(scans: dict[str, Any]) -> None:
    old, new = str(scans["old_file"]), str(scans["new_file"])
    r = run("diff", old, new, "--fail-on-new", "high")
    assert r.returncode == 1
    assert r.stderr.strip() == "flightcheck: 2 new finding(s) at or above high"
    assert "New findings (3):" in r.stdout and "libgreet.x86_64 1.0.0-1 -> 1.0.1-1" in r.stdout
    assert run("diff", old, new, "--fail-on-new", "medium").returncode == 1
    assert run("diff", old, new, "--fail-on-new", "critical").returncode == 0
    assert run("diff", old, new).returncode == 0  # no gate asked for
    # the other way round only a low finding is new
    assert run("diff", new, old, "--fail-on-new", "medium").returncode == 0
    assert run("diff", new, old, "--fail-on-new", "low").returncode == 1
    assert diffmod.worst_new(diffmod.diff(scans["new"], scans["old"])) == "low"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.urls: list[str] = []
        self.csp = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]
        if a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a.get("content") or ""

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_json_and_html_files(scans: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run("diff", str(scans["old_file"]), str(scans["new_file"]), "-f", "json,html,text", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["diff.html", "diff.json", "diff.txt"]
    assert f"diff: {out / 'diff.html'}" in r.stdout and "New findings (3):" in r.stdout
    d = json.loads((out / "diff.json").read_text())
    expected = diffmod.diff(scans["old"], scans["new"], old_label=str(scans["old_file"]),
                            new_label=str(scans["new_file"]))
    assert d == json.loads(json.dumps(expected))
    assert (out / "diff.txt").read_text() == diffmod.render_text(expected)

    page = _Page()
    page.feed((out / "diff.html").read_text())
    body = " ".join(page.text)
    for word in ("libgreet", "1.0.1-1", "suidapp", "AGPL-3.0-or-later", "AGPLv3+", "/usr/local/bin/newtool",
                 "FC-BOOT-001", "FC-LIC-005"):
        assert word in body, word
    assert "script" not in page.tags and page.urls == []
    assert page.csp.startswith("default-src 'none'")
    assert "--fg:" in body  # report.css, inlined

    # json alone goes to standard output
    r = run("diff", str(scans["old_file"]), str(scans["new_file"]), "--format", "json")
    assert json.loads(r.stdout) == d


def test_html_escapes_what_the_target_says(scans: dict[str, Any]) -> None:
    new = copy.deepcopy(scans["new"])
    evil = copy.deepcopy(next(p for p in new["packages"] if p["name"] == "hello"))
    evil.update(name=SCRIPT, id=f"rpm/{SCRIPT}-1-1.x86_64", license_raw=SCRIPT)
    new["packages"].append(evil)
    new["elves"].append({**new["elves"][0], "path": f"/usr/local/bin/{SCRIPT}", "owner": None})
    page_text = diffmod.render_html(diffmod.diff(scans["old"], new))
    assert SCRIPT not in page_text
    assert "&lt;script&gt;alert(&#34;diff&#34;)&lt;/script&gt;" in page_text
    page = _Page()
    page.feed(page_text)
    assert "script" not in page.tags and SCRIPT in " ".join(page.text)


def test_unreadable_input_is_one_line_and_exit_2(scans: dict[str, Any], tmp_path: Path) -> None:
    good = str(scans["old_file"])
    (tmp_path / "garbage.json").write_bytes(b"\x00\xffnot json")
    (tmp_path / "other.json").write_text('{"schema": "flightcheck/diff/1"}')
    (tmp_path / "broken.json").write_text('{"schema": "flightcheck/result/1", "packages": "nope", "findings": 3}')
    cases = {
        str(tmp_path / "missing.json"): "No such file or directory",
        str(tmp_path / "garbage.json"): "not a JSON text",
        str(tmp_path / "other.json"): "not a flightcheck/result/1 document",
        str(tmp_path / "broken.json"): "not a well-formed result document",
        str(tmp_path): "Is a directory",
    }
    for bad, message in cases.items():
        for args in ((bad, good), (good, bad)):
            r = run("diff", *args)
            assert r.returncode == 2, (bad, r.stdout, r.stderr)
            assert r.stderr.startswith("flightcheck: error: ") and message in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
            assert r.stdout == ""
    r = run("diff", good, good, "-f", "pdf")
    assert r.returncode == 2 and "unknown diff format pdf" in r.stderr


def test_history_ids(scans: dict[str, Any], tmp_path: Path) -> None:
    history = pytest.importorskip("scanner.history")
    db = tmp_path / "history.sqlite"
    a = history.store(scans["old"], str(db))
    b = history.store(scans["new"], str(db))
    r = run("diff", str(a), str(b), "--history", str(db), "--format", "json", "--fail-on-new", "high")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["old"]["source"] == f"history {db} #{a}" and d["new"]["source"] == f"history {db} #{b}"
    assert keys(d["findings"]["new"]) == keys(diffmod.diff(scans["old"], scans["new"])["findings"]["new"])
    # a history id mixed with a file, and the default history from the environment
    r = subprocess.run([sys.executable, "-m", "scanner", "diff", str(scans["new_file"]), str(a)],
                       capture_output=True, text=True, env={**os.environ, "FLIGHTCHECK_HISTORY": str(db)})
    assert r.returncode == 0 and "Packages DOWNGRADED (1):" in r.stdout
    r = run("diff", str(a), "99", "--history", str(db))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no scan 99" in r.stderr


def test_different_targets_are_warned_about(scans: dict[str, Any], rpmroot_result: dict[str, Any]) -> None:
    d = diffmod.diff(rpmroot_result, scans["old"])
    assert any("different targets" in w for w in d["warnings"])
    assert "warning: the two results are of different targets" in diffmod.render_text(d)


def test_nightly_script(rpmroot: Path, tmp_path: Path) -> None:
    """contrib/flightcheck-nightly.sh, as the systemd unit and the cron line run it: the
    first night has nothing to compare; a new unowned binary (medium) does not fail the
    run at the default --fail-on-new high; an unowned copy of the proprietary program
    linking a GPL library (FC-LIC-003, high) does."""
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(rpmroot), str(root)], check=True)
    state, cache = tmp_path / "state", tmp_path / "cache"
    env = {**os.environ, "FLIGHTCHECK": f"{sys.executable} -m scanner", "FLIGHTCHECK_STATE": str(state),
           "FLIGHTCHECK_CACHE": str(cache), "FLIGHTCHECK_TARGET": str(root)}
    script = Path(__file__).resolve().parent.parent / "contrib" / "flightcheck-nightly.sh"

    def night() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env)

    r = night()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no earlier result to compare with (first run)" in r.stdout
    assert not (state / "previous").exists() and (state / "latest/report.html").is_file()

    shutil.copy2(root / "usr/bin/hello", root / "usr/local/bin/newtool")
    r = night()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "New findings (1):\n  [medium] FC-INV-001 /usr/local/bin/newtool" in r.stdout
    assert (state / "previous/result.json").is_file()

    shutil.copy2(root / "opt/vendor/bin/prop-app", root / "usr/local/bin/prop-copy")
    r = night()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "[high] FC-LIC-003 /usr/local/bin/prop-copy" in r.stdout
    assert "flightcheck: 1 new finding(s) at or above high" in r.stderr
    assert sorted(p.name for p in (state / "latest").iterdir()) == [
        "diff.html", "diff.json", "diff.txt", "report.html", "result.json", "result.spdx.json"]
    d = json.loads((state / "latest/diff.json").read_text())
    assert [e["path"] for e in d["added_unowned_elves"]] == ["/usr/local/bin/prop-copy"]
    assert (cache / "elf.sqlite").is_file() and (state / "history.sqlite").is_file()
    history = pytest.importorskip("scanner.history")
    assert len(history.list_scans(str(state / "history.sqlite"))) == 3


# ------------------------------------------------------------------ version order

RPM_PAIRS = [("1.0", "1.0"), ("1.0", "2.0"), ("2.0", "1.0"), ("2.0.1", "2.0.1a"), ("1.0a", "1.0"), ("10", "9"),
             ("1.010", "1.9"), ("1.05", "1.5"), ("1.0~rc1", "1.0"), ("1.0~rc1", "1.0~rc2"), ("1.0^git1", "1.0"),
             ("1.0^git1", "1.0.1"), ("1.0^", "1.0"), ("a", "1"), ("1.0.", "1.0"), ("1_0", "1.0"), ("xyz10", "xyz10.1"),
             ("5.5p1", "5.5p10"), ("6.0.rc1", "6.0"), ("1.0~", "1.0"), ("~~", "~~a"), ("1.0-1", "1.0_1"),
             ("2.36", "2.36.0"), ("00010", "10"), ("1.0", "1.0+"), ("fc4", "fc.4"), ("1..0", "1.0"), ("2.1^", "2.1~")]


def test_rpmvercmp_agrees_with_librpm() -> None:
    rpm = pytest.importorskip("rpm")
    for a, b in RPM_PAIRS:
        assert diffmod.rpmvercmp(a, b) == rpm.labelCompare(("0", a, "1"), ("0", b, "1")), (a, b)
        assert diffmod.rpmvercmp(b, a) == -diffmod.rpmvercmp(a, b)
    rng = random.Random(7)  # and random strings of the characters that matter
    for _ in range(5000):
        a, b = ("".join(rng.choice("0129ab.~^_+") for _ in range(rng.randint(1, 7))) for _ in range(2))
        assert diffmod.rpmvercmp(a, b) == rpm.labelCompare(("0", a, "1"), ("0", b, "1")), (a, b)
    assert diffmod.rpmvercmp("", "1") == -1  # librpm refuses an empty version; rpmvercmp orders it first
    for old, new in ((("1", "1.0", "1"), ("0", "9.9", "9")), ((None, "1.0", "1"), ("0", "1.0", "2"))):
        expected = rpm.labelCompare(tuple(x or "0" for x in new), tuple(x or "0" for x in old))
        assert label_compare_py(tuple(x or "0" for x in new), tuple(x or "0" for x in old)) == expected


def test_compare_versions_per_manager() -> None:
    def pkg(manager: str, version: str, release: str | None = None, epoch: int | None = None) -> dict[str, Any]:
        return {"manager": manager, "version": version, "release": release, "epoch": epoch}

    assert diffmod.compare_versions("rpm", pkg("rpm", "1.0", "1"), pkg("rpm", "1.0", "2")) == 1
    assert diffmod.compare_versions("rpm", pkg("rpm", "2.0", "1", 1), pkg("rpm", "9.0", "1")) == -1
    assert diffmod.compare_versions("rpm", pkg("rpm", "1.0~rc1", "1"), pkg("rpm", "1.0", "1")) == 1
    # Debian: ~ before the release, epochs in the version string, revisions
    assert diffmod.compare_versions("dpkg", pkg("dpkg", "1.0~rc1-1"), pkg("dpkg", "1.0-1")) == 1
    assert diffmod.compare_versions("dpkg", pkg("dpkg", "1:1.0-1", epoch=1), pkg("dpkg", "2.0-1")) == -1
    assert diffmod.compare_versions("dpkg", pkg("dpkg", "2.36-9"), pkg("dpkg", "2.36-9+deb12u1")) == 1
    assert diffmod.compare_versions("dpkg", pkg("dpkg", "1.2.10"), pkg("dpkg", "1.2.9")) == -1
    assert diffmod.evr(pkg("rpm", "1.0", "1", 2)) == "2:1.0-1" and diffmod.evr(pkg("dpkg", "1:2.0-1", epoch=1)) == "1:2.0-1"


def test_compare_versions_of_origins() -> None:
    """PEP 440 for Python distributions (packaging's own order), SemVer for Go modules and
    crates: pre-releases before releases, numbers as numbers."""
    from packaging.version import Version

    def pkg(manager: str, version: str) -> dict[str, Any]:
        return {"manager": manager, "version": version, "release": None, "epoch": None}

    pep440 = ["1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.1", "1.10", "2!0.1"]
    assert sorted(pep440, key=Version) == pep440  # the oracle agrees the list is in order
    for old, new in zip(pep440, pep440[1:]):
        assert diffmod.compare_versions("python", pkg("python", old), pkg("python", new)) == 1, (old, new)
        assert diffmod.compare_versions("python", pkg("python", new), pkg("python", old)) == -1, (old, new)
    assert diffmod.compare_versions("python", pkg("python", "1.0"), pkg("python", "1.0.0")) == 0
    # semver.org's own precedence example, then Go's v prefix and pseudo-versions
    semver = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
              "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0"]
    for manager in ("cargo", "golang"):
        for old, new in zip(semver, semver[1:]):
            prefix = "v" if manager == "golang" else ""
            assert diffmod.compare_versions(manager, pkg(manager, prefix + old), pkg(manager, prefix + new)) == 1
    assert diffmod.compare_versions("golang", pkg("golang", "v0.0.0-20230101000000-abcdef123456"),
                                    pkg("golang", "v0.1.0")) == 1
