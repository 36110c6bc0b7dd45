"""Find the content that ships beside the code: the rule pack (``rules/``), the report
templates (``reports/``) and the result schema.

In a checkout they sit at the top of the repository; in an installed wheel they are the
data-only packages ``scanner._rules`` and ``scanner._reports`` (see pyproject.toml).
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def content_dir(name: str) -> Path:
    """Return the folder of ``rules`` or ``reports``, from a checkout or the wheel."""
    if name not in ("rules", "reports"):
        raise ValueError(f"unknown content folder {name!r}")
    here = _CHECKOUT / name
    if here.is_dir():
        return here
    # a data-only folder is a namespace package: its first search location is the folder
    spec = importlib.util.find_spec(f"scanner._{name}")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"flightcheck's {name}/ folder is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def schema_path(name: str = "result-1.schema.json") -> Path:
    """Path of a JSON Schema shipped with the result model."""
    return Path(str(resources.files("scanner.result") / name))
