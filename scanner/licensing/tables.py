"""The license name tables (``rules/licenses/*.toml``), loaded once per scan.

``names.toml`` maps license names as package databases write them to SPDX expressions,
``exceptions.toml`` the names written after ``with``. Lookups ignore case and collapse
white space. A policy file may add or override entries (``[names."X"]`` tables of the same
shape)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.resources import content_dir


@dataclass(frozen=True)
class NameEntry:
    spdx: str
    guess: bool = False
    proprietary: bool = False
    public_domain: bool = False
    alternatives: tuple[str, ...] = ()


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _entries(table: dict[str, Any]) -> dict[str, NameEntry]:
    out = {}
    for name, e in table.items():
        if not isinstance(e, dict) or not isinstance(e.get("spdx"), str):
            raise ValueError(f"license table entry {name!r} has no spdx string")
        out[_key(name)] = NameEntry(
            spdx=e["spdx"], guess=bool(e.get("guess")), proprietary=bool(e.get("proprietary")),
            public_domain=bool(e.get("public_domain")), alternatives=tuple(e.get("alternatives", ())),
        )
    return out


@dataclass(frozen=True)
class LicenseTables:
    names: dict[str, NameEntry] = field(default_factory=dict)
    exceptions: dict[str, NameEntry] = field(default_factory=dict)

    def name(self, text: str) -> NameEntry | None:
        return self.names.get(_key(text))

    def exception(self, text: str) -> NameEntry | None:
        return self.exceptions.get(_key(text))

    def with_overrides(self, names: dict[str, Any], exceptions: dict[str, Any]) -> "LicenseTables":
        return LicenseTables({**self.names, **_entries(names)}, {**self.exceptions, **_entries(exceptions)})


def load_tables(folder: Path | None = None) -> LicenseTables:
    """The shipped tables (or those in ``folder``)."""
    folder = folder or content_dir("rules") / "licenses"
    with open(folder / "names.toml", "rb") as fh:
        names = tomllib.load(fh).get("names", {})
    with open(folder / "exceptions.toml", "rb") as fh:
        exceptions = tomllib.load(fh).get("exceptions", {})
    return LicenseTables(_entries(names), _entries(exceptions))
