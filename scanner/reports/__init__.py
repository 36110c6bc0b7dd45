"""Stage 7, reports: renderers that read only the result document.

Each format is one small writer over the same document; ``write_reports`` writes the
formats asked for into a folder and returns their paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scanner.reports import junit, sarif

WRITERS: dict[str, tuple[str, Callable[[dict[str, Any], Path], None]]] = {
    "sarif": ("result.sarif", sarif.write),
    "junit": ("junit.xml", junit.write),
}
FORMATS = ("json", *WRITERS)


def write_reports(doc: dict[str, Any], out_dir: Path, formats: Iterable[str]) -> list[Path]:
    written = []
    for fmt in formats:
        if fmt == "json":
            continue  # result.json is always written
        name, writer = WRITERS[fmt]
        dest = out_dir / name
        writer(doc, dest)
        written.append(dest)
    return written
