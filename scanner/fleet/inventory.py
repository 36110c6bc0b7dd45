"""The hypervisors of a fleet: an inventory file, or ``--connect URI`` given again and again.

The inventory is TOML::

    [[hypervisor]]
    name = "kvm-01"                      # names its Dask worker resource: hypervisor-kvm-01
    uri = "qemu+ssh://kvm-01/system"     # as virsh -c takes it
    include = ["web-*", "db-*"]          # domain name globs (default: every domain)
    exclude = ["*-scratch"]
    groups = ["prod", "eu"]

A name is letters, digits, ``.``, ``_`` and ``-``: it becomes part of a Dask resource
name, of the output folder (``OUTPUT/NAME/DOMAIN/``) and of the history's target names.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class FleetError(Exception):
    """An inventory that cannot be used: one line of text."""


@dataclass(frozen=True)
class Hypervisor:
    name: str
    uri: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        """The Dask worker resource that marks a worker running on this hypervisor."""
        return f"hypervisor-{self.name}"

    def wants(self, domain: str) -> bool:
        return any(fnmatchcase(domain, g) for g in self.include) and not any(fnmatchcase(domain, g)
                                                                            for g in self.exclude)


def _strings(entry: dict[str, Any], key: str, default: tuple[str, ...], where: str) -> tuple[str, ...]:
    value = entry.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FleetError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def load_inventory(path: Path) -> list[Hypervisor]:
    """The hypervisors of an inventory file; FleetError when it is not one."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetError(f"{path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FleetError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get("hypervisor")
    if not isinstance(entries, list) or not entries:
        raise FleetError(f"{path}: no [[hypervisor]] tables")
    out: list[Hypervisor] = []
    for i, entry in enumerate(entries, 1):
        where = f"{path}: hypervisor {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str) or not entry["uri"]:
            raise FleetError(f"{where}: needs uri = \"...\" (as virsh -c takes it)")
        name = entry.get("name", default_name(entry["uri"]))
        out.append(_checked(Hypervisor(name if isinstance(name, str) else "", entry["uri"],
                                       _strings(entry, "include", ("*",), where),
                                       _strings(entry, "exclude", (), where),
                                       _strings(entry, "groups", (), where)), where))
    _unique(out, str(path))
    return out


def from_uris(uris: list[str]) -> list[Hypervisor]:
    """One hypervisor per ``--connect URI``, named after the URI's host (``local`` for none)."""
    out = [_checked(Hypervisor(default_name(uri), uri), f"--connect {uri}") for uri in uris]
    seen: dict[str, int] = {}
    for i, h in enumerate(out):  # two local URIs (system and session) get distinct names
        n = seen[h.name] = seen.get(h.name, 0) + 1
        if n > 1:
            out[i] = Hypervisor(f"{h.name}-{n}", h.uri)
    _unique(out, "--connect")
    return out


def default_name(uri: str) -> str:
    host = urlsplit(uri).hostname
    return re.sub(r"[^A-Za-z0-9._-]", "-", host) if host else "local"


def _checked(h: Hypervisor, where: str) -> Hypervisor:
    if not NAME.match(h.name):
        raise FleetError(f"{where}: name {h.name!r} must be letters, digits, '.', '_' or '-' (at most 63)")
    return h


def _unique(hvs: list[Hypervisor], where: str) -> None:
    names = [h.name for h in hvs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FleetError(f"{where}: hypervisor names must be unique: {', '.join(dupes)}")
