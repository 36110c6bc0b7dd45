"""One interface for every package manager's database (after Syft's catalogers): a reader
finds the databases of its manager in a target, says what each read depends on, and reads
one into a :class:`~scanner.inventory.packages.PackageDatabase` (package records with their
file lists, from which ownership is computed afterwards, once, for all managers).

Readers register themselves (:func:`register`); :func:`read_package_databases` runs every
registered reader in order (rpm, dpkg, apk, then opkg: when two packages claim one file, the first read
owns it). Readers never see the scan cache: :func:`read_databases` asks the memo for each
database by its identity (:meth:`PackageReader.identity`, a fingerprint of the database
files) and stores what the reader returned.

Adding a reader: a module with a class that has the members of :class:`PackageReader`,
decorated with ``@register``, and its module named in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple, Protocol, TypeVar

from scanner.errors import ErrorRecord
from scanner.inventory import purl as purlmod
from scanner.inventory.memo import Key, Memo, remembered
from scanner.inventory.packages import PackageDatabase, database_from_memo, database_to_memo
from scanner.inventory.relocation import strip_prefixes
from scanner.target import RootFS

# (the records passing between a reader and the registry are named tuples: cheap to define
# at import, which every scan pays)

#: the modules of the built-in readers, in the order their databases are read
BUILTIN = ("scanner.inventory.rpmdb", "scanner.inventory.dpkg", "scanner.inventory.apk", "scanner.inventory.opkg")


class ReadContext(NamedTuple):
    """What a read depends on besides the target: its os-release fields (purls are
    namespaced by them) and the options (``rpm_reader``: ``auto``, ``librpm`` or ``python``)."""

    os_release: Mapping[str, str]
    rpm_reader: str = "auto"

    @property
    def namespace(self) -> str | None:
        return purlmod.namespace(self.os_release)

    @property
    def distro(self) -> str | None:
        return purlmod.distro(self.os_release)


class Location(NamedTuple):
    """One database a reader found: its guest path (as its records will name it), its
    backend, and what else the reader needs to open it (rpm: the folder and file name)."""

    path: str
    backend: str
    parts: tuple[str, ...] = ()


class Found(NamedTuple):
    """The databases a reader found, and what it could not look at while looking (each an
    error record: a database may have been missed)."""

    locations: tuple[Location, ...] = ()
    notes: tuple[ErrorRecord, ...] = ()


class PackageReader(Protocol):
    """A package manager's reader. ``read`` never raises: what cannot be read is the
    database's error record."""

    manager: str  # the records' manager, and the memo's kind

    def locate(self, fs: RootFS, ctx: ReadContext) -> Found:
        """The databases of this manager in the target."""
        ...

    def identity(self, fs: RootFS, location: Location, ctx: ReadContext) -> Key | None:
        """A fingerprint of everything a read of ``location`` depends on (the database
        files' identities, the options, the os-release fields it writes); None when the
        read is not to be remembered. May raise OSError (then it is read, not remembered)."""
        ...

    def read(self, fs: RootFS, location: Location, ctx: ReadContext) -> PackageDatabase:
        """The database at ``location``."""
        ...

    def keep(self, db: PackageDatabase) -> bool:
        """Whether a read may be remembered (not when it depends on the moment)."""
        ...

    def reader_name(self, ctx: ReadContext) -> str:
        """The reader a record names when no database was read (``librpm``, ``python``...)."""
        ...


READERS: list[PackageReader] = []

R = TypeVar("R", bound=type)


def register(cls: R) -> R:
    """Class decorator: one instance of ``cls`` joins :data:`READERS` (once)."""
    if not any(type(r) is cls for r in READERS):
        READERS.append(cls())
    return cls


def registered() -> list[PackageReader]:
    """The readers, the built-in ones first (imported here: they register themselves)."""
    for module in BUILTIN:
        importlib.import_module(module)
    order = {m: i for i, m in enumerate(BUILTIN)}
    return sorted(READERS, key=lambda r: order.get(type(r).__module__, len(order)))


def read_databases(reader: PackageReader, fs: RootFS, ctx: ReadContext, memo: Memo | None = None) -> list[PackageDatabase]:
    """Every database ``reader`` finds in the target, each remembered in ``memo`` (when
    given) under its identity. What the reader could not look at while looking is recorded
    with the first database; with none found, as a database of backend ``unknown`` holding
    no packages, named by the first such record: a database that may have been missed is
    never silently absent."""
    found = reader.locate(fs, ctx)
    out = [_read_one(reader, fs, loc, ctx, memo) for loc in found.locations]
    if out and found.notes:
        out[0] = replace(out[0], errors=(*found.notes, *out[0].errors))
    elif found.notes:
        out.append(PackageDatabase(reader.manager, found.notes[0].path, "unknown", reader.reader_name(ctx), (),
                                   found.notes))
    return out


def _read_one(reader: PackageReader, fs: RootFS, loc: Location, ctx: ReadContext,
              memo: Memo | None) -> PackageDatabase:
    return remembered(memo, reader.manager, loc.path, lambda: reader.identity(fs, loc, ctx),
                      lambda: reader.read(fs, loc, ctx),
                      encode=database_to_memo,
                      decode=lambda v: database_from_memo(v, reader.manager, loc.path, loc.backend),
                      keep=reader.keep)


def read_package_databases(fs: RootFS, os_release: Mapping[str, str], rpm_reader: str = "auto",
                           memo: Memo | None = None) -> list[PackageDatabase]:
    """Every package database in the target, by every registered reader (rpm: each
    database found; dpkg; apk; opkg); a database whose paths carry an install prefix the
    target lacks (an SDK installed with ``rpm --relocate``, then copied without its prefix)
    has it removed (:func:`~scanner.inventory.relocation.strip_prefixes`), and says so."""
    ctx = ReadContext(os_release, rpm_reader)
    return strip_prefixes(fs, [db for reader in registered() for db in read_databases(reader, fs, ctx, memo)])
