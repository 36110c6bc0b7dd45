"""Stage 7, reports: renderers that read only the result document.

Each format is one small writer over the same document, so a scan taken today can be
re-rendered tomorrow (``flightcheck report result.json --format ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Writer = Callable[[dict[str, Any], Path, "Path | None"], None]


def _html(doc: dict[str, Any], dest: Path, template: Path | None) -> None:
    from scanner.reports import html

    html.write_html(doc, dest, template)


def _pdf(doc: dict[str, Any], dest: Path, template: Path | None) -> None:
    from scanner.reports import html

    html.write_pdf(doc, dest, template)


def _spdx_json(doc: dict[str, Any], dest: Path, template: Path | None) -> None:
    from scanner.reports import spdx

    spdx.write_json(doc, dest)


def _spdx_tv(doc: dict[str, Any], dest: Path, template: Path | None) -> None:
    from scanner.reports import spdx

    spdx.write_tagvalue(doc, dest)


def _cyclonedx_json(doc: dict[str, Any], dest: Path, template: Path | None) -> None:
    from scanner.reports import cyclonedx

    cyclonedx.write(doc, dest)


def _sarif(doc: dict[str, Any], dest: Path, template: Path | None) -> None:
    from scanner.reports import sarif

    sarif.write(doc, dest)


def _junit(doc: dict[str, Any], dest: Path, template: Path | None) -> None:
    from scanner.reports import junit

    junit.write(doc, dest)


#: format -> (file name in the output folder, writer)
WRITERS: dict[str, tuple[str, Writer]] = {
    "html": ("report.html", _html),
    "pdf": ("report.pdf", _pdf),
    "spdx-json": ("result.spdx.json", _spdx_json),
    "spdx-tv": ("result.spdx", _spdx_tv),
    "cyclonedx-json": ("result.cdx.json", _cyclonedx_json),
    "sarif": ("result.sarif", _sarif),
    "junit": ("junit.xml", _junit),
}
FORMATS = ("json", *WRITERS)


def parse_formats(text: str) -> list[str]:
    """``html,pdf`` -> ["html", "pdf"]; raises ValueError naming unknown formats."""
    wanted = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
    return wanted


def write_reports(doc: dict[str, Any], out_dir: Path, formats: Iterable[str],
                  template: Path | None = None) -> list[Path]:
    """Write the formats asked for (``json`` is result.json itself, written by the
    caller) into ``out_dir``; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        if fmt == "json":
            continue
        name, writer = WRITERS[fmt]
        dest = out_dir / name
        writer(doc, dest, template)
        written.append(dest)
    return written
