"""The license name tables (``rules/licenses/*.toml``), loaded once per scan.

``names.toml`` maps license names as package databases write them to SPDX expressions,
``exceptions.toml`` the names written after ``with``. Lookups ignore case and collapse
white space. A policy file may add or override entries (``[names."X"]`` tables of the same
shape)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scanner.licensing.naming import SPDX_STYLE
from scanner.resources import content_dir


@dataclass(frozen=True)
class NameEntry:
    spdx: str
    guess: bool = False
    proprietary: bool = False
    public_domain: bool = False
    alternatives: tuple[str, ...] = ()
    #: what the name means under one naming convention (``[names."X".naming.debian]``)
    naming: tuple[tuple[str, "NameEntry"], ...] = ()
    note: str = ""  # said in the outcome's notes when this entry is used (a convention applied)


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _entry(name: str, e: Any) -> NameEntry:
    if not isinstance(e, dict) or not isinstance(e.get("spdx"), str):
        raise ValueError(f"license table entry {name!r} has no spdx string")
    naming = e.get("naming", {})
    if not isinstance(naming, dict):
        raise ValueError(f"license table entry {name!r}: naming is not a table")
    return NameEntry(
        spdx=e["spdx"], guess=bool(e.get("guess")), proprietary=bool(e.get("proprietary")),
        public_domain=bool(e.get("public_domain")), alternatives=tuple(e.get("alternatives", ())),
        naming=tuple((str(k), _entry(f"{name} on {k}", v)) for k, v in sorted(naming.items())),
    )


def _entries(table: dict[str, Any]) -> dict[str, NameEntry]:
    return {_key(name): _entry(name, e) for name, e in table.items()}


def _for_naming(key: str, e: NameEntry, naming: str) -> NameEntry:
    own = dict(e.naming).get(naming)
    if own is not None:
        return replace(own, note=f"{key!r} read as {naming} names it: {own.spdx}")
    if naming in SPDX_STYLE and " " not in e.spdx and key == e.spdx.casefold() and (e.guess or e.alternatives):
        return replace(e, guess=False, alternatives=(), note=f"{e.spdx!r} is an SPDX id in {naming}'s naming: exact")
    return e


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

    def for_naming(self, naming: str) -> "LicenseTables":
        """The tables as a target of this naming convention (:mod:`scanner.licensing.naming`)
        reads them: an entry's own ``naming.<convention>`` meaning, and on SPDX-style
        conventions a name that is itself an SPDX id is exact (``MIT`` on Yocto)."""
        if not naming:
            return self
        return LicenseTables({k: _for_naming(k, e, naming) for k, e in self.names.items()},
                             {k: _for_naming(k, e, naming) for k, e in self.exceptions.items()})


def load_tables(folder: Path | None = None) -> LicenseTables:
    """The shipped tables (or those in ``folder``)."""
    folder = folder or content_dir("rules") / "licenses"
    with open(folder / "names.toml", "rb") as fh:
        names = tomllib.load(fh).get("names", {})
    with open(folder / "exceptions.toml", "rb") as fh:
        exceptions = tomllib.load(fh).get("exceptions", {})
    return LicenseTables(_entries(names), _entries(exceptions))
