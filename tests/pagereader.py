"""The data an HTML report embeds, read back as its script reads it (for tests)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

OPENING = '<script type="application/octet-stream" id="data" data-encoding="gzip+base64">'


def page_data_of(page: str) -> dict[str, Any]:
    """The page's data: gzip-compressed JSON in base64 (scanner/reports/pagedata.py)."""
    start = page.index(OPENING) + len(OPENING)
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(page[start:page.index("</script>", start)])))
    return data


def package_names(page: str) -> set[str]:
    """The names in the page's packages table."""
    from scanner.reports.pagedata import unpack_ref

    data = page_data_of(page)
    return {str(unpack_ref(data, p[1])) for p in data["K"]}
