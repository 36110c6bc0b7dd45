"""systemd facts the single-user and emergency rules judge: whether the target runs
systemd, the effective ``ExecStart=`` of its rescue and emergency units after drop-ins
(``/etc`` over ``/run`` over ``/usr/lib``/``/lib``; an empty ``ExecStart=`` resets the list,
as ``systemd.unit(5)`` describes) and the ``*.wants`` links that enable debug-shell.service.
Each reader reads within a budget of its own and never raises."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from scanner.inventory.sysconf.text import Line, Unreadable, glob, present, read_config
from scanner.target import RootFS
from scanner.target.base import Budget

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
#: the folders whose ``*.wants/debug-shell.service`` links enable the debug shell
WANTS_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def is_systemd(fs: RootFS) -> bool:
    return any(fs.is_dir(d) for d in UNIT_DIRS[2:]) and any(
        present(fs, f"{d}/{u}") for d in UNIT_DIRS for u in ("rescue.service", "emergency.service", "default.target"))


@dataclass(frozen=True)
class UnitExec:
    """A unit's effective ``ExecStart=`` lines after its drop-ins. ``known_from``: the
    lines from that index on are certainly in effect; the ones before it, and whether
    there are more, are not known when ``unreadable`` is not empty (unread content may
    reset the list with an empty ``ExecStart=``, or add to it)."""

    execs: tuple[Line, ...]
    files: tuple[str, ...]
    unreadable: tuple[Unreadable, ...]
    known_from: int = 0
    complete: bool = True


def unit_exec_start(fs: RootFS, unit: str) -> UnitExec | None:
    """The effective ``ExecStart=`` lines of a unit after drop-ins, and the files read;
    None when the unit does not exist (a unit masked by a link to ``/dev/null`` exists,
    with no ``ExecStart=``)."""
    main = next((f"{d}/{unit}" for d in UNIT_DIRS if present(fs, f"{d}/{unit}")), None)
    if main is None:
        return None
    budget = Budget()
    unreadable: list[Unreadable] = []
    dropins: dict[str, str] = {}
    for d in reversed(UNIT_DIRS):  # /etc last: same-named drop-ins in /etc win
        for path in glob(fs, f"{d}/{unit}.d/*.conf", budget, unreadable):
            dropins[posixpath.basename(path)] = path
    unlisted = bool(unreadable)  # drop-ins that could not be listed may do anything
    complete = not unlisted
    files = [main] + [dropins[name] for name in sorted(dropins)]
    execs: list[Line] = []
    known_from = 0
    for path in files:
        section = ""
        text = read_config(fs, path, budget)
        for line in text.lines:
            s = line.text.strip()
            if s.startswith("["):
                section = s
            elif section == "[Service]" and s.startswith("ExecStart="):
                if s == "ExecStart=":  # what came before, read or not, no longer counts
                    execs, known_from, complete = [], 0, not unlisted
                else:
                    execs.append(line)
        if text.problem:
            unreadable.append(Unreadable(path, text.problem))
            known_from, complete = len(execs), False
    if unlisted:  # an unlisted drop-in may come last and reset every line
        known_from = len(execs)
    return UnitExec(tuple(execs), tuple(files), tuple(unreadable), known_from, complete)


@dataclass(frozen=True)
class Systemd:
    """The systemd facts of a target that runs systemd."""

    rescue: UnitExec | None  # None: rescue.service does not exist
    emergency: UnitExec | None
    debug_shell_links: tuple[str, ...]  # the *.wants/debug-shell.service links found
    debug_shell_unlisted: tuple[Unreadable, ...]  # the *.wants folders that could not be listed


def systemd_facts(fs: RootFS) -> Systemd | None:
    """The target's systemd facts, or None when it does not run systemd."""
    if not is_systemd(fs):
        return None
    budget = Budget()
    unlisted: list[Unreadable] = []
    links = [p for d in WANTS_DIRS for p in glob(fs, f"{d}/*.wants/debug-shell.service", budget, unlisted)]
    return Systemd(unit_exec_start(fs, "rescue.service"), unit_exec_start(fs, "emergency.service"),
                   tuple(links), tuple(unlisted))
