"""The fleet report of ``scan --domain``/``--all-domains``: one entry per libvirt guest.

Each guest is scanned into ``OUTPUT/NAME/`` like any target; this module only keeps the
outcome of each (scanned, skipped, error) and writes ``OUTPUT/fleet.json`` and
``OUTPUT/fleet.html`` (``reports/fleet.html.j2``), which link each guest's own result or
report. The fleet fails when any guest fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLEET_JSON = "fleet.json"
FLEET_HTML = "fleet.html"


@dataclass
class Fleet:
    """The guests of one fleet scan, in the order they were scanned, as the JSON entries
    of ``fleet.json`` (``domain``, ``uuid``, ``state``, ``outcome``, and for a scanned
    guest what its result says)."""

    connect: str | None
    guests: list[dict[str, Any]] = field(default_factory=list)

    def skipped(self, name: str, uuid: str, state: str, reason: str) -> None:
        """A guest not scanned by choice (running, a disk that cannot be read offline)."""
        self.guests.append({"domain": name, "uuid": uuid, "state": state, "outcome": "skipped", "reason": reason})

    def error(self, name: str, uuid: str, state: str, reason: str) -> None:
        """A guest whose scan failed."""
        self.guests.append({"domain": name, "uuid": uuid, "state": state, "outcome": "error", "reason": reason})

    def scanned(self, name: str, uuid: str, state: str, *, disks: list[str], output: Path, doc: dict[str, Any],
                html: bool) -> None:
        """A guest scanned into ``output/name/``: its result's summary, and the link the
        fleet report gives (its report.html when one was written, else its result.json)."""
        os_release = doc["target"]["os"]
        self.guests.append({
            "domain": name, "uuid": uuid, "state": state, "outcome": "scanned", "disks": disks,
            "result": str(output / name / "result.json"),
            "link": f"{name}/report.html" if html else f"{name}/result.json",
            "os": os_release.get("PRETTY_NAME") or os_release.get("ID"),
            "packages": doc["summary"]["packages"], "elves": doc["summary"]["elves"],
            "verdict": doc["policy"]["verdict"], "findings": doc["summary"]["findings"]})

    @property
    def verdict(self) -> str:
        """``fail`` when any guest's verdict is fail, else ``pass``."""
        return "fail" if any(g.get("verdict") == "fail" for g in self.guests) else "pass"

    def to_json(self) -> dict[str, Any]:
        return {"connect": self.connect, "verdict": self.verdict, "domains": self.guests}

    def rows(self) -> list[tuple[str, str, str, str]]:
        """One summary row per guest: domain, state, outcome, and its verdict or why it has none."""
        return [(str(g["domain"]), str(g["state"]), str(g["outcome"]), str(g.get("verdict") or g.get("reason", "")))
                for g in self.guests]


def render_fleet(guests: list[dict[str, Any]], connect: str | None, verdict: str,
                 template_dir: Path | None = None) -> str:
    """The fleet report: one row per guest, linking to its own report; it fails when any
    guest fails."""
    from scanner.reports.html import asset, environment, template_folders  # jinja2: only the HTML needs it

    folders = template_folders(template_dir)
    return environment(folders).get_template("fleet.html.j2").render(guests=guests, connect=connect, verdict=verdict,
                                                                      css=asset(folders, "report.css"))


def write_fleet(fleet: Fleet, output: Path, template_dir: Path | None = None) -> list[Path]:
    """Write ``output/fleet.json`` and ``output/fleet.html``; return both paths."""
    output.mkdir(parents=True, exist_ok=True)
    verdict = fleet.verdict
    (output / FLEET_JSON).write_text(json.dumps({"connect": fleet.connect, "verdict": verdict,
                                                 "domains": fleet.guests}, indent=1) + "\n")
    (output / FLEET_HTML).write_text(render_fleet(fleet.guests, fleet.connect, verdict, template_dir),
                                     encoding="utf-8")
    return [output / FLEET_JSON, output / FLEET_HTML]


def render_fleet_run(document: dict[str, Any], template_dir: Path | None = None) -> str:
    """The report of ``flightcheck fleet scan`` (``reports/fleet-run.html.j2``): totals per
    hypervisor, the guests that moved, one row per guest."""
    from scanner.reports.html import asset, environment, template_folders

    folders = template_folders(template_dir)
    return environment(folders).get_template("fleet-run.html.j2").render(doc=document,
                                                                          css=asset(folders, "report.css"))
