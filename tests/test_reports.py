"""scanner.reports: the HTML report in a real browser (Debian's headless Chromium driven by
selenium), the PDF through poppler's pdftoppm and pdftotext, and the report command."""

from __future__ import annotations

import copy
import functools
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scanner.reports import html as htmlreport
from scanner.reports import write_reports
from scanner.textsafe import visible, visible_tree

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("needs Debian's chromium and chromium-driver (make installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,1800"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def requests_made(driver) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(url, document that asked for it) of every request the browser started."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append((msg["params"]["request"]["url"], msg["params"].get("documentURL", "")))
    return urls


def hostile(doc: dict) -> dict:
    """The fixture result with target strings an attacker could choose."""
    bad = copy.deepcopy(doc)
    bad["packages"][0]["name"] = "<script>alert(1)</script>"
    bad["packages"][0]["license_raw"] = "<img src=x onerror=alert(2)>"
    bad["elves"][0]["path"] = "/usr/bin/</script><script>alert(3)</script>"
    bad["elves"][0]["needed"] = ["</script><b>x"]
    return bad


def wait_ready(browser, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    """Until the page's script has read its data and drawn the tables."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, seconds).until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))


def rule_rows(browser) -> list:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr.rule")


def open_group_rows(browser) -> None:  # type: ignore[no-untyped-def]
    """Open every rule shown, then every group shown (by their toggles, as a reader would)."""
    from selenium.webdriver.common.by import By

    for sel in ("#findings-table tr.rule button.toggle", "#findings-table tr.group button.toggle"):
        n = len(browser.find_elements(By.CSS_SELECTOR, sel))
        for i in range(n):  # each click re-renders the table: find the i-th toggle again
            button = browser.find_elements(By.CSS_SELECTOR, sel)[i]
            if button.get_attribute("aria-expanded") == "false":
                button.click()


def test_html_in_chromium(rpmroot_result: dict, tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    import time

    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from scanner.reports.groups import group_findings

    doc = hostile(rpmroot_result)
    page = tmp_path / "report.html"
    htmlreport.write_html(doc, page)
    url = page.as_uri()
    requests_made(browser)  # drain what the browser's own start-up page requested
    t0 = time.monotonic()
    browser.get(url)
    wait_ready(browser)
    assert time.monotonic() - t0 < 3
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    # the findings: one row per rule, in the grouping's order (the worst first), each
    # opening to its groups and each group to its findings: one row per finding in all
    total = len(doc["findings"])
    groups = group_findings(doc)
    assert [r.get_attribute("data-rule") for r in rule_rows(browser)] == [g.rule for g in groups]
    assert browser.find_element(By.ID, "f-count").text == f"{total} of {total} findings"
    assert not browser.find_elements(By.CSS_SELECTOR, "#findings-table tr.finding")  # rendered on demand
    open_group_rows(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#findings-table tr.group")) == sum(len(g.groups) for g in groups)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr.finding")) == total > 0
    browser.find_element(By.ID, "f-collapse").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#findings-table tr.group")
    # filters work in the browser: only the failing high finding stays
    Select(browser.find_element(By.ID, "f-severity")).select_by_visible_text("high")
    Select(browser.find_element(By.ID, "f-state")).select_by_visible_text("fail")
    assert browser.find_element(By.ID, "f-count").text == f"1 of {total} findings"
    assert len(rule_rows(browser)) == 1
    open_group_rows(browser)
    shown = browser.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr.finding")
    assert len(shown) == 1 and "prop-app" in shown[0].text
    # the message with its subject put back in place (the data writes it once, as a mark)
    assert "/opt/vendor/bin/prop-app is a proprietary executable" in shown[0].text and "\\x01" not in shown[0].text
    # free-text search over every finding's rule, subject and message
    Select(browser.find_element(By.ID, "f-severity")).select_by_visible_text("all severities")
    Select(browser.find_element(By.ID, "f-state")).select_by_visible_text("all states")
    browser.find_element(By.ID, "f-search").send_keys("libgreet")
    wanted = [f for f in doc["findings"] if "libgreet" in (f["rule"] + f["subject"] + f["message"]).lower()]
    assert wanted and browser.find_element(By.ID, "f-count").text == f"{len(wanted)} of {total} findings"
    browser.find_element(By.ID, "f-search").clear()
    browser.execute_script("document.getElementById('f-search').dispatchEvent(new Event('input'))")
    # sorting: the rule column, ascending then descending
    header = browser.find_elements(By.CSS_SELECTOR, "#findings-table thead th")[1]
    header.click()
    ids = [r.get_attribute("data-rule") for r in rule_rows(browser)]
    assert ids == sorted(ids) and len(ids) == len(groups)
    header.click()
    assert [r.get_attribute("data-rule") for r in rule_rows(browser)] == sorted(ids, reverse=True)
    # target strings are text, not markup: no alert, no extra element
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018
    packages = browser.find_element(By.ID, "packages-table").text
    assert "<script>alert(1)</script>" in packages and "<img src=x onerror=alert(2)>" in packages
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 2  # the page's data and its own script
    assert not browser.find_elements(By.CSS_SELECTOR, "#packages-table img")
    # the packages table sorts by a click on a column: files, ascending
    files_header = browser.find_elements(By.CSS_SELECTOR, "#packages-table thead th")[6]
    files_header.click()
    counts = [int(r.find_elements(By.TAG_NAME, "td")[6].text)
              for r in browser.find_elements(By.CSS_SELECTOR, "#packages-table tbody tr")]
    assert counts == sorted(counts) and len(counts) == len(doc["packages"])
    # an executable's libraries and dependency tree open from the embedded data
    browser.execute_script("document.querySelectorAll('#executables-table details').forEach(d => d.open = true)")
    button = WebDriverWait(browser, 5).until(lambda b: b.find_element(
        By.CSS_SELECTOR, "button.tree-toggle[data-path='/usr/bin/hello']"))
    libs = button.find_element(By.XPATH, "preceding-sibling::table").text
    assert "/usr/lib64/libgreet.so.1.0.0" in libs
    button.click()
    tree = button.find_element(By.XPATH, "following-sibling::div").text
    assert "libgreet.so.1 → /usr/lib64/libgreet.so.1.0.0" in tree
    # the license graph: an inline SVG, a node per object of the closure coloured by its
    # license category, a click on a node keeps only its edges bright
    gbutton = browser.find_element(By.CSS_SELECTOR, "button.graph-toggle[data-path='/usr/bin/hello']")
    gbutton.click()
    svg = gbutton.find_element(By.XPATH, "following-sibling::div[@class='graph-box']/*[local-name()='svg']")
    hello = next(e for e in doc["elves"] if e["path"] == "/usr/bin/hello")
    titles = [t.get_attribute("textContent") for t in svg.find_elements(By.CSS_SELECTOR, "g > title")]
    assert len(titles) == 1 + len({v for v in hello["closure"].values() if v}) + \
        sum(1 for v in hello["closure"].values() if v is None)
    greet = next(t for t in titles if t.startswith("/usr/lib64/libgreet.so.1.0.0:"))
    assert "LGPL" in greet and "weak-copyleft" in greet
    node = svg.find_elements(By.CSS_SELECTOR, "g[cursor='pointer']")[0]
    node.click()
    faded = [ln for ln in svg.find_elements(By.TAG_NAME, "line") if ln.get_attribute("stroke-opacity") == "0.08"]
    bright = [ln for ln in svg.find_elements(By.TAG_NAME, "line") if ln.get_attribute("stroke-opacity") == "1"]
    assert bright and len(faded) + len(bright) == len(svg.find_elements(By.TAG_NAME, "line"))
    # unowned files by tree: each tree opens to its files
    trees = browser.find_elements(By.CSS_SELECTOR, "#unowned-table tbody details")
    assert len(trees) == len(doc["unowned_trees"]) > 0
    browser.execute_script("document.querySelectorAll('#unowned-table details').forEach(d => d.open = true)")
    first = doc["unowned_trees"][0]
    WebDriverWait(browser, 5).until(lambda b: first["first"][0] in b.find_element(By.ID, "unowned-table").text)
    # the page asked for nothing but itself (the browser's own start page aside), and
    # nothing at all went to the network
    made = requests_made(browser)
    assert [u for u, document in made if document == url] == [url]
    assert not [u for u, _ in made if u.startswith(("http:", "https:", "ws:", "wss:", "ftp:"))]


def test_html_is_self_contained(rpmroot_result: dict) -> None:
    page = htmlreport.render(rpmroot_result)
    for needle in ("http://", "https://", "src=", "@import", "url("):
        # the SVG namespace is a name, never fetched (inline SVG markup, and the script's
        # createElementNS for the license graph)
        lines = [ln for ln in page.splitlines() if needle in ln and "xmlns=" not in ln
                 and ln.strip() != 'var SVG = "http://www.w3.org/2000/svg";']
        # the only absolute URLs allowed are the SVG namespace and text from the result
        assert all("flightcheck.invalid" in ln or "example.invalid" in ln or needle == "src=" and "data:" in ln
                   for ln in lines), (needle, lines[:3])


def test_pdf_pages_and_text(rpmroot_result: dict, tmp_path: Path) -> None:
    if not shutil.which("pdftoppm") or not shutil.which("pdftotext"):
        pytest.skip("needs poppler-utils (make installs it)")
    pdf = tmp_path / "report.pdf"
    htmlreport.write_pdf(rpmroot_result, pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 6  # cover, contents, and a page per section at least
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout
    assert "Flightcheck Fixture Linux 1" in first and rpmroot_result["target"]["root"] in first.replace("\n", "")
    assert "FAIL" in first
    toc = subprocess.run(["pdftotext", "-f", "2", "-l", "2", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    for _, title in htmlreport.SECTIONS:
        assert title in toc, title
    # page numbers in the contents point at real pages, and the footer counts them
    assert f"page 2 of {len(pages)}" in toc


def test_report_command_rerenders_a_saved_result(rpmroot_result: dict, tmp_path: Path) -> None:
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps(rpmroot_result))
    custom = tmp_path / "tpl"
    custom.mkdir()
    template = (htmlreport.content_dir("reports") / "report.html.j2").read_text()
    (custom / "report.html.j2").write_text(template.replace("<main>", "<main><p id='acme'>ACME audit</p>"))
    r = subprocess.run([sys.executable, "-m", "scanner", "report", str(saved), "-f", "html,sarif,junit", "-o",
                        str(tmp_path / "out"), "--template", str(custom)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    assert "ACME audit" in (out / "report.html").read_text()
    assert (out / "result.sarif").is_file() and (out / "junit.xml").is_file()
    bad = subprocess.run([sys.executable, "-m", "scanner", "report", str(saved), "-f", "docx"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown format docx" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "scanner", "report", str(tmp_path / "nope.json")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_every_format_from_the_fixture_scan(rpmroot_result: dict, tmp_path: Path) -> None:
    formats = ["html", "pdf", "sarif", "junit", "spdx-json", "spdx-tv"]
    written = write_reports(rpmroot_result, tmp_path, formats)
    assert [p.name for p in written] == ["report.html", "report.pdf", "result.sarif", "junit.xml",
                                         "result.spdx.json", "result.spdx"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_junit_of_a_big_result_is_linear(tmp_path: Path) -> None:
    """20,000 findings of one rule (a big dpkg root's packages) render in well under a
    second's work per thousand: junitparser recounts a suite on every add_testcase, which
    took minutes here before cases were added to each suite at once."""
    import time

    from junitparser import JUnitXml

    from scanner.reports.junit import write as write_junit

    doc = {"rules": [{"id": "FC-LIC-005", "family": "licenses", "title": "guess", "enabled": True}],
           "findings": [{"rule": "FC-LIC-005", "subject": f"deb/pkg{i}", "state": "fail", "severity": "low",
                         "message": "m", "waiver": None} for i in range(20_000)]}
    t0 = time.monotonic()
    write_junit(doc, tmp_path / "junit.xml")
    assert time.monotonic() - t0 < 10
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "junit.xml"))))
    assert (suite.tests, suite.failures) == (20_000, 20_000)


def decode_evidence(data: dict, x: Any) -> Any:
    """Evidence read back from the page's data, as report.js reads it."""
    from scanner.reports.pagedata import unpack_ref

    if isinstance(x, int):
        return unpack_ref(data, x)
    if x and x[0] == "=":
        return x[1]
    if x and x[0] == "{":
        return {unpack_ref(data, x[i]): decode_evidence(data, x[i + 1]) for i in range(1, len(x), 2)}
    return [decode_evidence(data, v) for v in x]


def test_page_data_reads_back_to_the_result(rpmroot_result: dict) -> None:
    """The compact data the HTML embeds holds what the old table rows showed: every
    finding once, in its rule and group, with subject, message and evidence; every ELF
    path; every executable's linked libraries with package, license and category, though
    most are written as a bare soname."""
    from scanner.reports.groups import group_findings
    from scanner.reports.pagedata import LEFT_OUT, page_data, unpack_ref
    from bigresult import big_result

    for doc in (hostile(rpmroot_result), big_result(rpmroot_result, elves=3000, findings=2000, trees=10, packages=20)):
        data = json.loads(json.dumps(page_data(doc)))
        ref = functools.partial(unpack_ref, data)
        groups = group_findings(doc)
        # each group's members are a range of F, the ranges cover F once, in group order
        ranges = [tuple(g[6]) for r in data["rules"] for g in r[4]]
        assert [n for _, n in ranges] == [len(g.findings) for rg in groups for g in rg.groups]
        assert sum(n for _, n in ranges) == len(data["F"]) == len(doc["findings"])
        assert [s for s, _ in ranges] == list(itertools.accumulate([0] + [n for _, n in ranges[:-1]]))
        flat = [f for rg in groups for g in rg.groups for f in g.findings]
        for f, row in zip(flat, data["F"], strict=True):
            subject = visible(f["subject"])
            assert ref(row[3]) == subject and data["sev"][row[1]] == f["severity"]
            assert ref(row[4]).replace("\x01", subject) == visible(f["message"])
            want = {visible(k): v for k, v in f["evidence"].items() if k not in LEFT_OUT}
            assert json.dumps(decode_evidence(data, row[5])) == json.dumps(visible_tree(want))
        elves = [e for e in doc["elves"] if e["type"] != "debuginfo"]
        assert [ref(r[0]) for r in data["E"]] == [visible(e["path"]) for e in elves]
        by_path = {r[0]: r for r in data["E"]}
        defaults = dict(data["R"])
        for e, row in zip(elves, data["E"], strict=True):
            if e["type"] not in ("executable", "pie"):
                continue
            got = []
            for x in row[7] if len(row) > 7 else []:
                soname, path = (x, defaults[x]) if isinstance(x, int) else (x[0], x[1])
                if isinstance(x, list) and len(x) == 5:
                    got.append((ref(soname), ref(path), ref(x[2]), ref(x[3]), data["cats"][x[4]]))
                    continue
                lib = by_path.get(path) if path is not None else None
                got.append((ref(soname), ref(path), ref(data["K"][lib[2]][0]) if lib and lib[2] >= 0 else None,
                            ref(lib[3]) if lib else None, data["cats"][lib[4]] if lib else "unknown"))
            want_rows = [(visible(r["soname"]), visible(r["path"]) if r["path"] else None,
                          visible(r["package"]) if r["package"] else None,
                          visible(r["license"]) if r["license"] else None, r["category"])
                         for r in e["linked_licenses"]]
            assert got == want_rows, e["path"]
