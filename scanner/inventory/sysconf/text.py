"""Configuration text read from the target, never raising: lines, what could not be read,
and later-wins assignments.

The target is untrusted, so :func:`read_config` reads what it can and says what it could
not: it returns the lines it could read and, when it had to stop (not a regular file, a
link loop, over ``MAX_CONFIG_BYTES``, ``MAX_CONFIG_LINES`` or ``MAX_CONFIG_LINE``, a NUL
byte, bytes that are not UTF-8), why; everything after that point is unknown. The readers
above it collect those as :class:`Unreadable` records (plus malformed structure), tagged
with the part of the configuration they belong to. Each reader reads within one
:class:`~scanner.target.base.Budget` (files, bytes, glob folders): no include, glob or loop
can make it run for ever. A link to ``/dev/null`` is an empty file (systemd's way to mask
a vendor file), never opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.target import RootFS
from scanner.target.base import Budget


@dataclass(frozen=True)
class Line:
    path: str
    number: int
    text: str

    def evidence(self) -> dict[str, object]:
        return {"path": self.path, "line": self.number, "text": self.text[:500]}


@dataclass(frozen=True)
class Unreadable:
    """A configuration file, or its part from some line on, that could not be read or
    understood, and why; ``part`` says which part of a configuration it belongs to."""

    path: str
    reason: str
    part: str = ""

    def evidence(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ConfigText:
    """The lines of a configuration file that could be read: all of them, or those before
    the point where reading stopped (``problem`` says why; what follows is unknown)."""

    path: str
    lines: tuple[Line, ...]
    problem: str | None = None

    @property
    def unreadable(self) -> Unreadable | None:
        """What could not be read of it, as a record (None: it was read whole)."""
        return Unreadable(self.path, self.problem) if self.problem else None


@dataclass(frozen=True)
class ConfigFiles:
    """A set of configuration files found by globs (and fixed paths that are present):
    ``files`` in the order they are read, ``listing``: the globs that could not be listed
    (their matches are unknown), ``texts``: what each file holds, in ``files``' order."""

    files: tuple[str, ...] = ()
    listing: tuple[Unreadable, ...] = ()
    texts: tuple[ConfigText, ...] = ()

    @property
    def lines(self) -> list[Line]:
        return [ln for t in self.texts for ln in t.lines]

    @property
    def unreadable(self) -> list[Unreadable]:
        """The globs not listed, then the files not read whole, in reading order."""
        return [*self.listing, *(u for t in self.texts if (u := t.unreadable) is not None)]


def present(fs: RootFS, path: str) -> bool:
    """Whether anything is at ``path``: a file, a folder, a device, a FIFO, a dangling
    link or a link loop. A configuration path that holds something unreadable must be
    reported, not taken for absent (a FIFO in place of grub.cfg must not make the boot
    rules not applicable)."""
    return fs.exists(path) or fs.is_symlink(path)


def present_paths(fs: RootFS, paths: Iterable[str]) -> list[str]:
    return [p for p in paths if present(fs, p)]


def _masked(fs: RootFS, path: str) -> bool:
    try:
        return fs.resolve(path, strict=False) == "/dev/null"
    except OSError:
        return False


def read_config(fs: RootFS, path: str, budget: Budget | None = None) -> ConfigText:
    """The lines of a configuration file, never raising: see :class:`ConfigText`. Reads
    at most ``MAX_CONFIG_BYTES`` (and spends the file and its bytes from ``budget``); a
    file that goes on is cut after its last whole line within the cap."""
    if _masked(fs, path):
        return ConfigText(path, ())
    budget = budget if budget is not None else Budget()
    cap = limits.MAX_CONFIG_BYTES
    try:
        budget.spend("MAX_CONFIG_FILES", 1, path)
        data = fs.read(path, cap + 1)
        budget.spend("MAX_CONFIG_TOTAL_BYTES", len(data), path)
    except OSError as exc:
        return ConfigText(path, (), f"cannot read: {exc.strerror or exc}")
    except LimitExceeded as exc:
        return ConfigText(path, (), str(exc))
    problem: str | None = None
    end = len(data)
    if end > cap:
        end, problem = cap, str(LimitExceeded("MAX_CONFIG_BYTES", cap, f"larger than {cap >> 10} KiB; read up to the cap"))
    nul = data.find(b"\0", 0, end)
    if nul >= 0:
        end, problem = nul, f"binary data (a NUL byte at offset {nul}), not a configuration file"
    try:
        text = data[:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        end, problem = exc.start, (f"binary or non-UTF-8 data (byte 0x{data[exc.start]:02x} at offset {exc.start}), "
                                   "not a configuration file")
        text = data[:end].decode("utf-8")
    if problem is not None:  # the line the reading stopped in is not whole: drop it
        text = text[: text.rfind("\n") + 1]
    raw = text.split("\n")
    if raw[-1] == "":
        raw.pop()
    if len(raw) > limits.MAX_CONFIG_LINES:
        del raw[limits.MAX_CONFIG_LINES:]
        problem = str(LimitExceeded("MAX_CONFIG_LINES", limits.MAX_CONFIG_LINES, "read up to the cap"))
    long = next((i for i, t in enumerate(raw) if len(t) > limits.MAX_CONFIG_LINE), None)
    if long is not None:
        problem = str(LimitExceeded("MAX_CONFIG_LINE", limits.MAX_CONFIG_LINE,
                                    f"line {long + 1} is {len(raw[long]):,} characters long; read up to it"))
        del raw[long:]
    return ConfigText(path, tuple(Line(path, n, t.removesuffix("\r")) for n, t in enumerate(raw, 1)), problem)


def read_if_present(fs: RootFS, path: str) -> ConfigText | None:
    """A configuration file's lines (None when there is nothing at ``path``), within a
    budget of its own."""
    return read_config(fs, path) if present(fs, path) else None


def glob(fs: RootFS, pattern: str, budget: Budget, unreadable: list[Unreadable], part: str = "") -> list[str]:
    """``fs.glob`` within ``budget``; a cap it hits is recorded in ``unreadable`` (the
    matches are then unknown, so none are returned)."""
    try:
        return fs.glob(pattern, budget)
    except LimitExceeded as exc:
        unreadable.append(Unreadable(pattern, str(exc), part))
        return []


def read_files(fs: RootFS, patterns: Iterable[str], fixed: Iterable[str] = (), *, fixed_first: bool = False,
               budget: Budget | None = None) -> ConfigFiles:
    """The files matching ``patterns`` and the ``fixed`` paths that are present (after the
    matches, or before them with ``fixed_first``), each read once, all within one budget."""
    budget = budget if budget is not None else Budget()
    listing: list[Unreadable] = []
    matched = [p for pat in patterns for p in glob(fs, pat, budget, listing)]
    there = present_paths(fs, fixed)
    files = there + matched if fixed_first else matched + there
    return ConfigFiles(tuple(files), tuple(listing), tuple(read_config(fs, p, budget) for p in files))


def _certain(key: str, when: Mapping[str, int], last_gap: int, unsure: Mapping[str, object]) -> bool:
    if key not in when:
        return last_gap < 0
    return when[key] > last_gap and key not in unsure


@dataclass(frozen=True)
class Assignments:
    """Later-wins ``key = value`` settings read in order from files some of which may be
    partly unreadable (a gap). The unknown content may assign any key, so a value is
    :meth:`certain` only when it was assigned after the last gap, from values that were
    certain then; and a key left unassigned is certainly unassigned only when there was
    no gap at all. :meth:`sure_words` are the words a value certainly has even when it is
    not certain as a whole (``X="$X ipv6.disable=1"`` after a gap). Built by
    :class:`AssignmentsReader`."""

    values: Mapping[str, tuple[str, Line]] = field(default_factory=lambda: MappingProxyType({}))
    unreadable: tuple[Unreadable, ...] = ()
    when: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    last_gap: int = -1
    unsure: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))  # key -> literal words

    def certain(self, key: str) -> bool:
        return _certain(key, self.when, self.last_gap, self.unsure)

    def sure_words(self, key: str) -> list[str]:
        """The words the effective value of ``key`` certainly holds."""
        if key not in self.when or self.when[key] < self.last_gap:
            return []
        return list(self.unsure.get(key, self.values[key][0].split()))

    @property
    def complete(self) -> bool:
        return not self.unreadable


class AssignmentsReader:
    """Collects assignments and gaps in reading order; :meth:`done` gives the record."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, Line]] = {}
        self.unreadable: list[Unreadable] = []
        self._seq = 0
        self._last_gap = -1
        self._when: dict[str, int] = {}
        self._unsure: dict[str, tuple[str, ...]] = {}  # key -> its literal words, when it expanded an uncertain key

    def set(self, key: str, value: str, line: Line, uses: Iterable[str] = (), literal: list[str] | None = None) -> None:
        """Assign ``key``; ``uses``: the keys its value was expanded from; ``literal``: the
        words of the value written out, not expanded (all of them when None)."""
        unsure = any(not _certain(u, self._when, self._last_gap, self._unsure) for u in uses)
        self._seq += 1
        self.values[key] = (value, line)
        self._when[key] = self._seq
        if unsure:
            self._unsure[key] = tuple(value.split() if literal is None else literal)
        else:
            self._unsure.pop(key, None)

    def gap(self, what: Unreadable) -> None:
        """Content that could not be read comes here, in reading order."""
        self._seq += 1
        self._last_gap = self._seq
        self.unreadable.append(what)

    def done(self) -> Assignments:
        return Assignments(MappingProxyType(dict(self.values)), tuple(self.unreadable),
                           MappingProxyType(dict(self._when)), self._last_gap, MappingProxyType(dict(self._unsure)))
