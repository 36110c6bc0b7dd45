"""The CLI's building blocks: option groups as dataclasses (scanner.cli.options), the
one helper that writes a result and its reports and the one error line
(scanner.cli.output, scanner.cli.app), and the fleet report (scanner.reports.fleet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from scanner.cli import main
from scanner.cli.app import DEBUG_OPTION, EXIT_ERROR, fail
from scanner.cli.options import (
    CENSUS_OPTIONS, GATE_OPTIONS, TARGET_OPTIONS, CensusOptions, GateOptions, OutputOptions, TargetOptions, grouped,
    scan_options,
)
from scanner.cli.output import write_result
from scanner.reports.fleet import Fleet, write_fleet


def _probe() -> tuple[click.Command, dict[str, Any]]:
    """A command with the scan command's option groups that keeps what it was given."""
    seen: dict[str, Any] = {}

    @click.command()
    @TARGET_OPTIONS
    @CENSUS_OPTIONS
    @GATE_OPTIONS
    @grouped(target=TargetOptions, census=CensusOptions, gate=GateOptions, out=OutputOptions)
    def probe(target: TargetOptions, census: CensusOptions, gate: GateOptions, out: OutputOptions) -> None:
        seen.update(target=target, census=census, gate=gate, out=out)

    return probe, seen


def test_grouped_builds_one_dataclass_per_group(tmp_path: Path) -> None:
    probe, seen = _probe()
    policy = tmp_path / "policy.toml"
    policy.write_text("")
    r = CliRunner().invoke(probe, ["/srv/root", "--image", "a.qcow2", "--image", "b.qcow2", "-j", "3", "--path", "/usr",
                                   "--no-licenses", "--policy", str(policy), "--fail-on", "critical",
                                   "--format", "html,sarif", "--history", "h.sqlite"])
    assert r.exit_code == 0, r.output
    assert seen["target"] == TargetOptions(root="/srv/root", images=("a.qcow2", "b.qcow2"))
    assert seen["census"] == CensusOptions(jobs=3, paths=("/usr",), no_licenses=True)
    assert seen["gate"] == GateOptions(policy=policy, fail_on="critical", history="h.sqlite")
    assert seen["out"] == OutputOptions(formats="html,sarif")  # the fields this command does not offer keep defaults
    options = scan_options(seen["census"], seen["gate"])
    assert options.jobs == 3 and options.paths == ("/usr",) and options.licenses is False
    assert options.packages and options.fail_on == "critical" and options.policy == policy


def test_scan_options_default_to_the_whole_target() -> None:
    options = scan_options(CensusOptions(no_licenses=True), GateOptions())
    assert options.paths == ("/",) and options.licenses is False and options.fail_on == "high"


def test_target_options_know_a_libvirt_target() -> None:
    assert TargetOptions(domains=("web",)).libvirt and TargetOptions(all_domains=True).libvirt
    assert not TargetOptions(root="/").libvirt


def test_every_scan_option_is_in_a_group() -> None:
    """The scan command takes its parameters as groups only: none is left loose."""
    scan = main.commands["scan"]
    grouped_fields = {f for cls in (TargetOptions, CensusOptions, GateOptions, OutputOptions)
                      for f in cls.__dataclass_fields__}
    loose = {p.name for p in scan.params if p.expose_value} - grouped_fields
    assert loose == set()


def test_fail_is_one_visible_line_and_exit_2() -> None:
    @click.command()
    @DEBUG_OPTION
    def refuse() -> None:
        fail("no such root: /srv/\x1b[31mred\nnext")

    r = CliRunner().invoke(refuse, [])
    assert r.exit_code == EXIT_ERROR
    assert r.output.count("\n") == 1 and "\x1b" not in r.output
    assert r.output.startswith("flightcheck: error: no such root: /srv/")


def test_write_result_writes_result_and_reports(rpmroot_result: dict[str, Any], tmp_path: Path) -> None:
    dest, written = write_result(rpmroot_result, tmp_path / "out", ["json", "sarif", "junit"], None)
    assert dest == tmp_path / "out" / "result.json" and json.loads(dest.read_text())["schema"]
    assert written == [tmp_path / "out" / "result.sarif", tmp_path / "out" / "junit.xml"]
    dest, written = write_result(rpmroot_result, tmp_path / "reports", ["sarif"], None, result=False)
    assert dest is None and not (tmp_path / "reports" / "result.json").exists()
    assert written == [tmp_path / "reports" / "result.sarif"]


def test_write_result_says_an_unwritable_folder_in_one_line(rpmroot_result: dict[str, Any], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    @click.command()
    def write() -> None:
        write_result(rpmroot_result, blocker / "out", ["json"], None)

    r = CliRunner().invoke(write, [])
    assert r.exit_code == EXIT_ERROR and r.output.count("\n") == 1
    assert r.output.startswith("flightcheck: error: ") and "Not a directory" in r.output


def test_fleet_report(rpmroot_result: dict[str, Any], tmp_path: Path) -> None:
    fleet = Fleet("test:///default")
    fleet.scanned("db", "u-1", "shut off", disks=["/v/db.qcow2"], output=tmp_path, doc=rpmroot_result, html=True)
    fleet.skipped("web", "u-2", "running", "web is running (--allow-running scans it anyway)")
    fleet.error("nas", "u-3", "shut off", "cannot open the image")
    assert fleet.verdict == rpmroot_result["policy"]["verdict"] == "fail"
    written = write_fleet(fleet, tmp_path)
    assert written == [tmp_path / "fleet.json", tmp_path / "fleet.html"]
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["connect"] == "test:///default" and doc["verdict"] == "fail"
    assert [g["outcome"] for g in doc["domains"]] == ["scanned", "skipped", "error"]
    db = doc["domains"][0]
    assert db["link"] == "db/report.html" and db["result"] == str(tmp_path / "db" / "result.json")
    assert db["packages"] == rpmroot_result["summary"]["packages"] and db["disks"] == ["/v/db.qcow2"]
    assert fleet.rows()[1] == ("web", "running", "skipped", "web is running (--allow-running scans it anyway)")
    html = (tmp_path / "fleet.html").read_text()
    assert 'href="db/report.html"' in html and "FAIL" in html


@pytest.mark.parametrize("name", ["render_text", "render_html"])
def test_diff_renderers_live_with_the_reports(name: str) -> None:
    from scanner import diff
    from scanner.reports import diff as rendered

    assert getattr(diff, name) is getattr(rendered, name)
