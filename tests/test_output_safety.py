"""Terminal, XML and JSON safety, and exit codes (issue 15, items 2 and 6).

A real rpm root (the ``rpmroot`` fixture) is copied and given hostile names: ELF files whose
DT_NEEDED string is patched in place (same length) to hold rich markup or an escape
sequence, an ELF file whose own name holds control characters, a bidi override and an
undecodable byte, and an os-release PRETTY_NAME with markup and an OSC-8 link. The real
command scans it; its output must carry every one of those names in one visible spelling
and never a raw control character, and every report must parse.
"""

from __future__ import annotations

import gzip
import html
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jsonschema
import pytest

from pagereader import page_data_of

from scanner.reports.pagedata import unpack_ref
from scanner.textsafe import json_dumps, markup, visible, xml

REPO = Path(__file__).resolve().parent.parent
SARIF_SCHEMA = REPO / "fixtures" / "data" / "schemas" / "sarif-schema-2.1.0.json"
FLIGHTCHECK = Path(sys.executable).with_name("flightcheck")

#: the DT_NEEDED string of usr/bin/hello that each hostile copy overwrites (same length)
NEEDED = b"libgreet.so.1"
MARKUP_SONAME = b"lib[/]xx.so.1"
ESC_SONAME = b"\x1b[2J\x1b[H\x1b[32mP"  # clear the screen, home, green
NAMED_SONAME = b"libnamed.so.1"  # needed by the file with the hostile name, so the summary names it
RLO_SONAME = b"librlo00.so.1"
#: a file name with an escape sequence, a newline, BEL, tab, DEL, a C1 CSI, an undecodable byte
HOSTILE_NAME = b"x\x1b[2J\nbell\x07tab\tdel\x7f c1\xc2\x9b \xff end"
RLO_NAME = "rlo-\u202etxt.exe".encode()  # shows as "rlo-exe.txt" where bidi is honoured
PRETTY_NAME = "[/]evil\x1b]8;;http://x\x07link\x1b]8;;\x07"
#: the root's own folder name: rich markup and an escape sequence in the target's label
ROOT_NAME = "sys[red]\x1b[2J"
#: bytes no output may carry raw: ESC, BEL, C1 CSI (UTF-8), RLO (UTF-8)
RAW = (b"\x1b", b"\x07", b"\xc2\x9b", "\u202e".encode())


def flightcheck(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The installed console script (the real entry point), output as bytes; wide columns so
    that rich does not fold a long line between the words a test looks for."""
    cmd = [str(FLIGHTCHECK)] if FLIGHTCHECK.exists() else [sys.executable, "-m", "scanner"]
    return subprocess.run([*cmd, *args], check=False, capture_output=True, timeout=300,
                          env={**os.environ, "COLUMNS": "1000"})


def patched_elf(src: bytes, soname: bytes) -> bytes:
    """``src`` with its one DT_NEEDED string NEEDED replaced, in .dynstr, by ``soname``."""
    assert src.count(NEEDED) == 1 and len(soname) == len(NEEDED)
    return src.replace(NEEDED, soname)


def json_spelling(name: bytes) -> str:
    """How result.json spells a path from the target: the bytes decoded as the file system
    decodes them, an undecodable byte as the four characters ``\\xNN``."""
    return os.fsdecode(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def assert_no_raw_controls(*outputs: bytes) -> None:
    for out in outputs:
        for raw in RAW:
            assert raw not in out, (raw, out[max(0, out.find(raw) - 80):out.find(raw) + 80])


@pytest.fixture(scope="module")
def hostile(rpmroot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture root copied under a hostile folder name, with the hostile files added."""
    root = tmp_path_factory.mktemp("hostile") / ROOT_NAME
    shutil.copytree(rpmroot, root, symlinks=True)
    hello = (root / "usr/bin/hello").read_bytes()
    bindir = os.fsencode(root / "usr/bin")
    for name, soname in ((b"evil-markup", MARKUP_SONAME), (b"evil-esc", ESC_SONAME),
                         (HOSTILE_NAME, NAMED_SONAME), (RLO_NAME, RLO_SONAME)):
        path = os.path.join(bindir, name)
        with open(path, "wb") as fh:
            fh.write(patched_elf(hello, soname))
        os.chmod(path, 0o755)
    release = root / "etc/os-release"
    text = release.read_text()
    assert 'PRETTY_NAME="Flightcheck Fixture Linux 1"' in text
    release.write_text(text.replace('PRETTY_NAME="Flightcheck Fixture Linux 1"', f'PRETTY_NAME="{PRETTY_NAME}"'))
    return root


@pytest.fixture(scope="module")
def scanned(hostile: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One scan of the hostile root with every text report, stored in a history too."""
    out = tmp_path_factory.mktemp("out")
    db = out / "history.sqlite"
    r = flightcheck("scan", str(hostile), "-o", str(out), "--format", "html,sarif,junit", "--history", str(db))
    return {"run": r, "out": out, "db": db}


def test_hostile_names_reach_the_terminal_visible_and_the_verdict_stands(scanned: dict[str, Any]) -> None:
    r, out = scanned["run"], scanned["out"]
    # a completed scan whose policy fails (the fixture's proprietary app links a GPL library):
    # exit 1 from the verdict, not from a crash (a MarkupError also exited 1, after a traceback)
    assert b"Traceback" not in r.stderr and b"Error" not in r.stderr, r.stderr.decode(errors="replace")
    doc = json.loads((out / "result.json").read_bytes().decode("utf-8"))
    assert doc["policy"]["verdict"] == "fail" and r.returncode == 1
    stdout = r.stdout.decode("utf-8")
    assert "verdict: FAIL" in stdout and "history: stored as 1" in stdout
    assert_no_raw_controls(r.stdout, r.stderr)
    # each hostile name is shown, in its visible spelling, markup as text
    assert visible(PRETTY_NAME) in stdout  # [/]evil\x1b]8;;http://x\x07link...
    assert "[/]evil\\x1b]8;;http://x\\x07" in stdout
    assert f"flightcheck: {visible(doc['target']['root'])} ({visible(PRETTY_NAME)}, x86_64)" in stdout
    assert "sys[red]\\x1b[2J" in stdout
    assert "unresolved lib[/]xx.so.1 needed by /usr/bin/evil-markup" in stdout
    assert "unresolved \\x1b[2J\\x1b[H\\x1b[32mP needed by /usr/bin/evil-esc" in stdout
    hostile_path = "/usr/bin/" + json_spelling(HOSTILE_NAME)
    assert f"unresolved libnamed.so.1 needed by {visible(hostile_path)}" in stdout
    assert "/usr/bin/x\\x1b[2J\\nbell\\x07tab\\tdel\\x7f c1\\x9b \\xff end" in stdout
    assert "needed by /usr/bin/rlo-\\u202etxt.exe" in stdout


def test_result_json_is_utf8_and_spells_each_path_one_way(scanned: dict[str, Any]) -> None:
    raw = (scanned["out"] / "result.json").read_bytes()
    doc = json.loads(raw.decode("utf-8"))  # strict: valid UTF-8
    assert b"\x1b" not in raw and b"\x07" not in raw  # JSON escapes C0 controls; the decoded strings keep them
    hostile_path = "/usr/bin/" + json_spelling(HOSTILE_NAME)
    assert "\\xff" in hostile_path and "\x1b" in hostile_path  # the byte as text, the ESC kept exact
    assert hostile_path in {e["path"] for e in doc["elves"]}
    unresolved = {u["soname"]: u["needed_by"] for u in doc["unresolved"]}
    assert unresolved["libnamed.so.1"] == [hostile_path]
    assert unresolved[ESC_SONAME.decode()] == ["/usr/bin/evil-esc"]
    subjects = {f["subject"] for f in doc["findings"] if f["rule"] == "FC-INV-001"}
    assert hostile_path in subjects
    assert doc["target"]["os"]["PRETTY_NAME"] == PRETTY_NAME


def test_junit_parses_and_carries_the_visible_spelling(scanned: dict[str, Any]) -> None:
    raw = (scanned["out"] / "junit.xml").read_bytes()
    assert_no_raw_controls(raw)
    tree = ET.fromstring(raw)  # an ExpatError before: XML 1.0 cannot carry ESC
    names = {case.get("name") for case in tree.iter("testcase")}
    hostile_path = "/usr/bin/" + json_spelling(HOSTILE_NAME)
    assert "FC-LNK-001: \\x1b[2J\\x1b[H\\x1b[32mP" in names
    assert "FC-LNK-001: lib[/]xx.so.1" in names
    # the unowned files of /usr/bin are one case (issue 19: a case per rule and group), its
    # text listing each member in the visible spelling
    (failure,) = [c for c in tree.iter("testcase")
                  if (c.get("name") or "").startswith("FC-INV-001: ") and "files under /usr/bin" in (c.get("name") or "")]
    body = failure.find("failure")
    assert body is not None and body.text is not None
    assert f"fail: {visible(hostile_path)}" in body.text


def test_html_report_shows_the_visible_spelling(scanned: dict[str, Any]) -> None:
    """Jinja's autoescape leaves control characters and bidi overrides as they are: the
    report shows every target string as the terminal does, inside the tree data too."""
    raw = (scanned["out"] / "report.html").read_bytes()
    assert_no_raw_controls(raw)
    page = raw.decode("utf-8")
    hostile_path = "/usr/bin/" + json_spelling(HOSTILE_NAME)
    # the files are rendered by the page's script from the embedded data: the path is
    # there in its visible spelling (read back as the script reads it), never raw
    data = page_data_of(page)
    paths = {unpack_ref(data, e[0]) for e in data["E"]}
    assert visible(hostile_path) in paths and hostile_path not in paths
    subjects = {unpack_ref(data, f[3]) for f in data["F"]}
    assert visible(hostile_path) in subjects
    # the target root in the page's own markup: escaped text, control characters visible
    root = json.loads((scanned["out"] / "result.json").read_bytes().decode("utf-8"))["target"]["root"]
    assert html.escape(visible(root), quote=False) in page
    assert "\\x1b[2J\\x1b[H\\x1b[32mP" in page or "\\x1b[2J" in page


def test_sarif_is_valid_and_its_uris_decode_to_the_result_spelling(scanned: dict[str, Any]) -> None:
    raw = (scanned["out"] / "result.sarif").read_bytes()
    assert_no_raw_controls(raw)
    sarif = json.loads(raw.decode("utf-8"))
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    hostile_path = "/usr/bin/" + json_spelling(HOSTILE_NAME)
    found = [res for res in sarif["runs"][0]["results"]
             if res["ruleId"] == "FC-INV-001" and res["properties"]["subject"] == visible(hostile_path)]
    assert len(found) == 1
    assert found[0]["message"]["text"].startswith(visible(hostile_path) + " ")
    uri = found[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == quote(hostile_path.lstrip("/")) and unquote(uri) == hostile_path.lstrip("/")
    assert all(c.isascii() and c.isprintable() for c in uri)
    base = sarif["runs"][0]["originalUriBaseIds"]["TARGETROOT"]["uri"]
    assert base.startswith("file:///") and "%1B%5B2J" in base and "[" not in base


def test_history_list_and_show_print_the_target_visible(scanned: dict[str, Any]) -> None:
    db = scanned["db"]
    listed = flightcheck("history", "list", "--history", str(db))
    assert listed.returncode == 0, listed.stderr
    assert_no_raw_controls(listed.stdout, listed.stderr)
    assert "sys[red]\\x1b[2J" in listed.stdout.decode()  # markup shown as text, ESC visible
    as_json = flightcheck("history", "list", "--history", str(db), "--json")
    assert_no_raw_controls(as_json.stdout)
    rows = json.loads(as_json.stdout.decode("utf-8"))
    assert rows[0]["target"].endswith("/" + ROOT_NAME)  # the exact string, for a program
    shown = flightcheck("history", "show", "1", "--history", str(db))
    assert shown.returncode == 0, shown.stderr
    assert_no_raw_controls(shown.stdout, shown.stderr)
    assert visible(PRETTY_NAME) in shown.stdout.decode()


def test_diff_prints_added_hostile_files_visible(rpmroot: Path, scanned: dict[str, Any], tmp_path: Path) -> None:
    clean = flightcheck("scan", str(rpmroot), "-o", str(tmp_path / "clean"), "-q")
    assert clean.returncode == 1, clean.stderr
    old, new = tmp_path / "clean/result.json", scanned["out"] / "result.json"
    text = flightcheck("diff", str(old), str(new))
    assert text.returncode == 0 and b"Traceback" not in text.stderr
    assert_no_raw_controls(text.stdout, text.stderr)
    hostile_path = "/usr/bin/" + json_spelling(HOSTILE_NAME)
    assert f"  {visible(hostile_path)} (pie)" in text.stdout.decode()
    as_json = flightcheck("diff", str(old), str(new), "-f", "json")
    assert_no_raw_controls(as_json.stdout)
    d = json.loads(as_json.stdout.decode("utf-8"))
    assert hostile_path in {e["path"] for e in d["added_unowned_elves"]}  # exact, for a program


def test_an_error_line_quoting_a_target_path_is_visible(tmp_path: Path) -> None:
    missing = tmp_path / "gone\x1b[2J\x1b]8;;https:x\x07[/]"
    r = flightcheck("scan", str(missing), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert_no_raw_controls(r.stdout, r.stderr)
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flightcheck: error: ")
    assert "gone\\x1b[2J\\x1b]8;;https:x\\x07[/]" in lines[0]


@pytest.mark.parametrize("command", [["report", "{deep}", "-o", "{out}", "-f", "sarif"],
                                     ["diff", "{deep}", "{deep}"]])
def test_an_unexpected_exception_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    # JSON nested 100,000 deep: json's decoder raises RecursionError, which no command
    # expects (before the boundary: a traceback and exit 1, "policy failed")
    deep = tmp_path / "result.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    args = [a.format(deep=deep, out=tmp_path / "out") for a in command]
    r = flightcheck(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flightcheck: error: ") and "Traceback" not in lines[0]
    assert "Aborted" not in lines[0]
    # --debug, on the command or before it, adds the traceback; the exit code stays 2
    for debug_args in ([*args, "--debug"], ["--debug", *args]):
        r = flightcheck(*debug_args)
        assert r.returncode == 2 and b"Traceback (most recent call last)" in r.stderr
        assert r.stderr.decode().splitlines()[-1].startswith("flightcheck: error: ")


def test_a_history_document_nested_too_deep_is_damaged(scanned: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    shutil.copy(scanned["db"], db)
    with sqlite3.connect(db) as conn:  # a stored document json cannot decode without RecursionError
        conn.execute("update flightcheck_scans set document = ? where id = 1",
                     (gzip.compress(b"[" * 100_000 + b"]" * 100_000),))
    r = flightcheck("history", "show", "1", "--history", str(db))
    assert r.returncode == 2 and b"Traceback" not in r.stderr
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flightcheck: error: scan 1 in history") and "damaged" in lines[0]


def test_textsafe_spellings_are_printable_xml_and_utf8() -> None:
    # (a lone high surrogate right before a lone low one would read back as a pair: JSON cannot tell)
    every = "".join(map(chr, range(0x3000))) + "\ud800 \udcff\ufeff\ufffe\uffff\U000e0041\U0010ffff"
    shown = visible(every)
    assert shown.isprintable()
    assert visible("a\udcffb") == "a\\xffb"  # an undecodable byte, as result.json spells it
    assert visible("\x1b[2J\n\u202e") == "\\x1b[2J\\n\\u202e"
    assert markup("[/]\x1b") == "\\[/]\\x1b"
    # XML: only what XML 1.0 forbids is replaced; tab, newline and printable text are kept
    kept = xml(every)
    assert "\t\n" in kept and "\r" in kept and "\\x1b" in kept and "\\udcff" not in kept and "\\xff" in kept
    ET.fromstring(f"<a>{kept.replace('&', '&amp;').replace('<', '&lt;')}</a>")
    # JSON: round-trips exactly, encodes as UTF-8 (a lone surrogate included), no raw non-printables
    text = json_dumps({"k": every})
    text.encode("utf-8")
    assert json.loads(text) == {"k": every}
    assert all(c.isprintable() or c == "\n" for c in text)


def test_debug_on_a_refusal_of_our_own_prints_no_empty_trace() -> None:
    r = flightcheck("--debug", "rules", "show", "NO-SUCH-RULE")
    assert r.returncode == 2
    assert r.stderr.decode().splitlines() == ["flightcheck: error: no rule NO-SUCH-RULE (see: flightcheck rules list)"]


def test_pdf_and_its_attachments_show_the_visible_spelling(scanned: dict[str, Any], tmp_path: Path) -> None:
    """The PDF's text and every file attached to it spell target strings as the HTML does."""
    if not shutil.which("pdfdetach") or not shutil.which("pdftotext"):
        pytest.skip("needs poppler-utils (make installs it)")
    r = flightcheck("report", str(scanned["out"] / "result.json"), "-f", "pdf", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    pdf = tmp_path / "report.pdf"
    subprocess.run(["pdfdetach", "-saveall", "-o", str(tmp_path), str(pdf)], check=True)
    hostile_path = "/usr/bin/" + json_spelling(HOSTILE_NAME)
    findings = (tmp_path / "findings.csv").read_bytes()
    unowned = (tmp_path / "unowned.csv").read_bytes()
    assert visible(hostile_path).encode() in findings and visible(hostile_path).encode() in unowned
    for name in ("findings.csv", "findings.json", "packages.csv", "executables.csv", "unowned.csv", "errors.csv"):
        assert_no_raw_controls((tmp_path / name).read_bytes())
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True).stdout
    assert_no_raw_controls(text)
    assert b"\\x1b[2J" in text
