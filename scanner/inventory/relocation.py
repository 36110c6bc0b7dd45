"""Databases whose file lists carry an install prefix the target does not have (issue 17, item 2).

An embedded SDK is installed with ``rpm --relocate /usr=/opt/eldk/usr`` (or ``--prefix``, or
``--badreloc``): its database lists ``/opt/eldk/usr/bin/gcc``. Copied to a board or an image
without ``/opt/eldk``, the files are at ``/usr/bin/gcc`` and none of them matches the database,
so every file would show as nobody's. :func:`strip_prefixes` finds such a database and matches
its paths without the prefix; the database says so (``prefix_stripped`` and ``prefix_note`` in
the result's ``databases[]``), never silently.

Detection is safe and bounded: a sample of the database's paths (at most
``MAX_RELOCATION_SAMPLE``, spread evenly over its packages) is looked up in the target. Only
when most of them are **not** there (a normal root has nearly all its files) is a prefix
sought: the leading folders (up to ``MAX_RELOCATION_PREFIX_DEPTH`` deep) of the missing paths are
counted, and each of the ``MAX_RELOCATION_CANDIDATES`` most common is tried. A prefix is taken
when it leads most of the sample, most of the paths it leads exist once it is removed, and more
paths exist so than as they are; among several, the one that finds the most (then the shorter).
Paths without the prefix are kept as they are. At most ``(1 + candidates) * sample`` lookups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import NamedTuple

from scanner import limits
from scanner.inventory.packages import PackageDatabase
from scanner.target import RootFS


class Relocation(NamedTuple):
    """A prefix found, and the counts that found it (for the note)."""

    prefix: str
    sample: int  # paths looked up
    present: int  # of them, there as listed
    under: int  # of them, below the prefix
    found: int  # of those, there once the prefix is removed


def _there(fs: RootFS, path: str) -> bool:
    try:
        return fs.exists(path) or fs.is_symlink(path)
    except Exception:  # noqa: BLE001 - a path the target cannot look up is simply not there
        return False


def sample_paths(db: PackageDatabase, size: int) -> list[str]:
    """At most ``size`` of the database's paths, every n-th, so that each part of it (each
    package, in order) has its share; deterministic."""
    total = sum(len(p.files) for p in db.packages)
    step = max(1, -(-total // size)) if size > 0 else total + 1

    def every() -> Iterator[str]:
        for p in db.packages:
            yield from p.files

    return [f for i, f in enumerate(every()) if i % step == 0][:size]


def _candidates(missing: Iterable[str]) -> list[str]:
    """The leading folders of ``missing`` (never a whole path), most common first."""
    counts: Counter[str] = Counter()
    for path in missing:
        parts = path.split("/")[1:-1]  # the folders; the last part is the file itself
        for k in range(1, min(len(parts), limits.MAX_RELOCATION_PREFIX_DEPTH) + 1):
            counts["/" + "/".join(parts[:k])] += 1
    return [p for p, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limits.MAX_RELOCATION_CANDIDATES]]


def detect(fs: RootFS, db: PackageDatabase) -> Relocation | None:
    """The prefix ``db``'s paths carry and the target does not, or None (see the module)."""
    sample = sample_paths(db, limits.MAX_RELOCATION_SAMPLE)
    if len(sample) < limits.MIN_RELOCATION_SAMPLE:
        return None
    there = [_there(fs, p) for p in sample]
    present = sum(there)
    if present * 2 >= len(sample):
        return None  # mostly there: as a normal root is
    missing = [p for p, ok in zip(sample, there) if not ok]
    best: Relocation | None = None
    for prefix in _candidates(missing):
        below = [p[len(prefix):] for p in missing if p.startswith(prefix + "/")]
        if len(below) * 2 <= len(sample):
            continue  # not the common prefix of the database
        found = sum(_there(fs, p) for p in below)
        if found * 2 <= len(below) or found <= present:
            continue
        if best is None or (found, -len(prefix)) > (best.found, -len(best.prefix)):
            best = Relocation(prefix, len(sample), present, len(below), found)
    return best


def stripped(db: PackageDatabase, reloc: Relocation) -> PackageDatabase:
    """``db`` with ``reloc.prefix`` removed from every path below it, and the note saying so."""
    cut, lead = len(reloc.prefix), reloc.prefix + "/"
    packages = tuple(replace(p, files=tuple(f[cut:] if f.startswith(lead) else f for f in p.files))
                     for p in db.packages)
    note = (f"the database lists its files below {reloc.prefix}, which this target does not have: "
            f"{reloc.present:,} of {reloc.sample:,} sampled paths are there as listed, "
            f"{reloc.found:,} of the {reloc.under:,} below {reloc.prefix} are there without it; "
            f"ownership is matched with {reloc.prefix} removed")
    return replace(db, packages=packages, prefix_stripped=reloc.prefix, prefix_note=note)


def strip_prefixes(fs: RootFS, databases: Iterable[PackageDatabase]) -> list[PackageDatabase]:
    """Each database, with its install prefix removed when it has one the target lacks."""
    out = []
    for db in databases:
        reloc = detect(fs, db) if db.packages else None
        out.append(stripped(db, reloc) if reloc else db)
    return out
