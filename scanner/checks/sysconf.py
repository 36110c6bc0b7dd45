"""Readers for the system configuration the boot and IPv6 rules judge, from the target.

The target is untrusted, so every reader reads what it can and says what it could not:
:func:`read_config` never raises, it returns the lines it could read and, when it had to
stop (not a regular file, a link loop, over ``MAX_CONFIG_BYTES``, ``MAX_CONFIG_LINES`` or
``MAX_CONFIG_LINE``, a NUL byte, bytes that are not UTF-8), why; everything after that
point is unknown. The readers above it collect those as :class:`Unreadable` records
(plus malformed structure: unbalanced braces, a ``configfile`` loop, an unterminated
quote), tagged with the part of the configuration they belong to, and the rules decide:
``fail`` when what was read proves a failure whatever the rest holds, ``error`` when the
answer depends on what could not be read, ``pass`` only when nothing it depends on is
missing. A malformed file can therefore never make a verdict better, and a rule that
does not depend on it keeps its answer. Each reader reads within one :class:`Budget`
(files, bytes, glob folders): no include, glob or loop can make it run for ever.

Sources of the formats:
* legacy GRUB ``grub.conf``/``menu.lst``: global ``password [--md5|--encrypted] HASH``,
  ``title`` stanzas with ``kernel PATH ARGS`` lines;
* GRUB 2 ``grub.cfg``: ``menuentry '...' { ... linux PATH ARGS ... }``, ``set superusers=``,
  ``password_pbkdf2 USER HASH``, ``configfile PATH``, ``blscfg``; ``user.cfg``
  ``GRUB2_PASSWORD=``; ``grubenv`` (a 1024-byte block of ``key=value`` lines);
* BootLoaderSpec ``/boot/loader/entries/*.conf`` (``title``, ``options`` with
  ``$kernelopts`` from grubenv);
* ``/etc/default/grub`` and ``/etc/default/grub.d/*.cfg`` (shell assignments, later wins);
* systemd units with drop-ins (``/etc`` over ``/run`` over ``/usr/lib``/``/lib``; an empty
  ``ExecStart=`` resets the list), as ``systemd.unit(5)`` describes;
* sysctl.d precedence as ``systemd-sysctl`` applies it (``sysctl.d(5)``).
A link to ``/dev/null`` is an empty file (systemd's way to mask a vendor file), never opened.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.target import RootFS
from scanner.target.base import Budget

# the parts of a boot configuration a rule may depend on (:meth:`BootConfig.problems`)
LOADER = "loader"  # grub.cfg and what it reaches by configfile, or the legacy grub.conf
ENTRIES = "entries"  # BootLoaderSpec entries, and grubenv for their $variables
USER_CFG = "user.cfg"  # GRUB 2's password file
DEFAULTS = "defaults"  # /etc/default/grub and grub.d/*.cfg
NOTE = "note"  # unreadable, but no rule's answer depends on it


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


@dataclass
class ConfigText:
    """The lines of a configuration file that could be read: all of them, or those before
    the point where reading stopped (``problem`` says why; what follows is unknown)."""

    path: str
    lines: list[Line]
    problem: str | None = None


def present(fs: RootFS, path: str) -> bool:
    """Whether anything is at ``path``: a file, a folder, a device, a FIFO, a dangling
    link or a link loop. A configuration path that holds something unreadable must be
    reported, not taken for absent (a FIFO in place of grub.cfg must not make the boot
    rules not applicable)."""
    return fs.exists(path) or fs.is_symlink(path)


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
        return ConfigText(path, [])
    budget = budget if budget is not None else Budget()
    cap = limits.MAX_CONFIG_BYTES
    try:
        budget.spend("MAX_CONFIG_FILES", 1, path)
        data = fs.read(path, cap + 1)
        budget.spend("MAX_CONFIG_TOTAL_BYTES", len(data), path)
    except OSError as exc:
        return ConfigText(path, [], f"cannot read: {exc.strerror or exc}")
    except LimitExceeded as exc:
        return ConfigText(path, [], str(exc))
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
    return ConfigText(path, [Line(path, n, t.removesuffix("\r")) for n, t in enumerate(raw, 1)], problem)


def glob(fs: RootFS, pattern: str, budget: Budget, unreadable: list[Unreadable], part: str = "") -> list[str]:
    """``fs.glob`` within ``budget``; a cap it hits is recorded in ``unreadable`` (the
    matches are then unknown, so none are returned)."""
    try:
        return fs.glob(pattern, budget)
    except LimitExceeded as exc:
        unreadable.append(Unreadable(pattern, str(exc), part))
        return []


class Assignments:
    """Later-wins ``key = value`` settings read in order from files some of which may be
    partly unreadable (:meth:`gap`). The unknown content may assign any key, so a value is
    :meth:`certain` only when it was assigned after the last gap, from values that were
    certain then; and a key left unassigned is certainly unassigned only when there was
    no gap at all. :meth:`sure_words` are the words a value certainly has even when it is
    not certain as a whole (``X="$X ipv6.disable=1"`` after a gap)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, Line]] = {}
        self.unreadable: list[Unreadable] = []
        self._seq = 0
        self._last_gap = -1
        self._when: dict[str, int] = {}
        self._unsure: dict[str, list[str]] = {}  # key -> its literal words, when it expanded an uncertain key

    def set(self, key: str, value: str, line: Line, uses: Iterable[str] = (), literal: list[str] | None = None) -> None:
        """Assign ``key``; ``uses``: the keys its value was expanded from; ``literal``: the
        words of the value written out, not expanded (all of them when None)."""
        unsure = any(not self.certain(u) for u in uses)
        self._seq += 1
        self.values[key] = (value, line)
        self._when[key] = self._seq
        if unsure:
            self._unsure[key] = value.split() if literal is None else literal
        else:
            self._unsure.pop(key, None)

    def gap(self, what: Unreadable) -> None:
        """Content that could not be read comes here, in reading order."""
        self._seq += 1
        self._last_gap = self._seq
        self.unreadable.append(what)

    def certain(self, key: str) -> bool:
        if key not in self._when:
            return self._last_gap < 0
        return self._when[key] > self._last_gap and key not in self._unsure

    def sure_words(self, key: str) -> list[str]:
        """The words the effective value of ``key`` certainly holds."""
        if key not in self._when or self._when[key] < self._last_gap:
            return []
        return self._unsure.get(key, self.values[key][0].split())

    @property
    def complete(self) -> bool:
        return not self.unreadable


@dataclass
class BootEntry:
    title: str
    args: list[str]
    where: Line
    rescue: bool = False


@dataclass
class BootConfig:
    kind: str  # grub-legacy | grub2 | bls | none | unknown (its files could not even be listed)
    files: list[str] = field(default_factory=list)  # every boot configuration file found, read or not
    entries: list[BootEntry] = field(default_factory=list)
    password: Line | None = None  # the line that really sets a password hash
    superusers: Line | None = None
    superuser_names: list[str] = field(default_factory=list)
    defaults: Assignments = field(default_factory=Assignments)  # /etc/default/grub and grub.d
    unreadable: list[Unreadable] = field(default_factory=list)  # besides the defaults' own

    def problems(self, *parts: str) -> list[Unreadable]:
        """What could not be read in the given parts (:data:`LOADER`...): a rule depending
        on them cannot pass while there is any."""
        return [u for u in self.unreadable + self.defaults.unreadable if u.part in parts]

    @property
    def all_unreadable(self) -> list[Unreadable]:
        return self.unreadable + self.defaults.unreadable


def _is_rescue(title: str, args: list[str]) -> bool:
    t = title.lower()
    return "rescue" in t or "recovery" in t or "single" in args and "recovery" in t


def _present(fs: RootFS, paths: list[str]) -> list[str]:
    return [p for p in paths if present(fs, p)]


# ---- GRUB 2 --------------------------------------------------------------------------------------
_MENUENTRY = re.compile(r"""^\s*menuentry\s+(?:'([^']*)'|"([^"]*)"|(\S+))""")
_LINUX = re.compile(r"^\s*(linux|linux16|linuxefi)\s+(\S+)\s*(.*)$")
_HASH = re.compile(r"grub\.pbkdf2\.sha512\.\d+\.[0-9A-Fa-f]+\.[0-9A-Fa-f]+")


def _grub2(fs: RootFS, path: str, cfg: BootConfig, seen: set[str], budget: Budget,
           chain: tuple[str, ...] = ()) -> bool:
    """Read one grub.cfg (following ``configfile``); True when it says ``blscfg``. A file
    already read is not read again; one that ``configfile`` leads back to is a loop.
    What cannot be read or makes no sense (a stray or missing brace, a loop, nesting
    deeper than ``MAX_INCLUDE_DEPTH``) is recorded as unreadable :data:`LOADER` content
    and the reading goes on with the rest."""
    try:
        canon = fs.resolve(path, strict=False)
    except OSError as exc:
        cfg.files.append(path)
        cfg.unreadable.append(Unreadable(path, f"cannot read: {exc.strerror or exc}", LOADER))
        return False
    if canon in chain:
        cfg.unreadable.append(Unreadable(path, f"configfile loop ({' -> '.join((*chain, canon))})", LOADER))
        return False
    if canon in seen:
        return False
    if len(chain) >= limits.MAX_INCLUDE_DEPTH:
        cfg.unreadable.append(Unreadable(path, str(LimitExceeded(
            "MAX_INCLUDE_DEPTH", limits.MAX_INCLUDE_DEPTH, f"configfile chain {' -> '.join(chain)}")), LOADER))
        return False
    seen.add(canon)
    chain = (*chain, canon)
    cfg.files.append(path)
    text = read_config(fs, path, budget)
    if text.problem:
        cfg.unreadable.append(Unreadable(path, text.problem, LOADER))
    depth = 0
    entry: BootEntry | None = None
    bls = False
    for line in text.lines:
        s = line.text.strip()
        if not s or s.startswith("#"):
            continue
        m = _MENUENTRY.match(s)
        if m:
            entry = BootEntry(next(g for g in m.groups() if g is not None), [], line)
        depth += s.count("{") - s.count("}")
        if depth < 0:
            cfg.unreadable.append(Unreadable(path, f"line {line.number}: a closing brace without an opening one",
                                             LOADER))
            depth = 0
        lm = _LINUX.match(s)
        if lm and entry is not None:
            entry.args = lm.group(3).split()
            entry.where = line
            entry.rescue = _is_rescue(entry.title, entry.args)
            cfg.entries.append(entry)
        if depth == 0:
            entry = None
        if s.startswith("set superusers="):
            cfg.superusers = line
            cfg.superuser_names = s.split("=", 1)[1].strip().strip("\"'").replace(",", " ").split()
        if s.startswith("password_pbkdf2") and _HASH.search(s):
            cfg.password = line
        if s == "blscfg":
            bls = True
        if s.startswith("configfile "):
            target = s.split(None, 1)[1].strip().strip("\"'")
            target = re.sub(r"^\(\$?\w+\)", "", target)
            for resolved in _configfile_candidates(target):
                if present(fs, resolved):
                    bls |= _grub2(fs, resolved, cfg, seen, budget, chain)
                    break
    if depth > 0 and not text.problem:  # a file cut short leaves its blocks open: already reported
        cfg.unreadable.append(Unreadable(path, f"{depth} unclosed brace(s): a menuentry or block never ends", LOADER))
    return bls


def _configfile_candidates(target: str) -> list[str]:
    if "$prefix" in target or "${prefix}" in target:
        tail = target.split("prefix", 1)[1].lstrip("}").lstrip("/")
        return [f"/boot/grub2/{tail}", f"/boot/grub/{tail}"]
    return [target] if target.startswith("/") else [f"/boot/grub2/{target}", f"/boot/grub/{target}"]


def _grubenv(fs: RootFS, cfg: BootConfig, budget: Budget) -> tuple[dict[str, str], Unreadable | None]:
    """The variables of the first grubenv found, and what made it unreadable if anything
    (as :data:`ENTRIES` content)."""
    for path in _present(fs, ["/boot/grub2/grubenv", "/boot/grub/grubenv"]) + \
            glob(fs, "/boot/efi/EFI/*/grubenv", budget, cfg.unreadable, ENTRIES):
        text = read_config(fs, path, budget)
        env = dict(ln.text.split("=", 1) for ln in text.lines if "=" in ln.text and not ln.text.startswith("#"))
        return env, Unreadable(path, text.problem, ENTRIES) if text.problem else None
    return {}, None


def _bls(fs: RootFS, cfg: BootConfig, paths: list[str], budget: Budget) -> None:
    """BootLoaderSpec entries. An entry file that cannot be read whole gives no entry (a
    later ``options`` line may be in the part not read), nor does one whose options use
    a grubenv variable when grubenv cannot be read (only then does grubenv matter)."""
    env, env_problem = _grubenv(fs, cfg, budget)
    dropped = False
    for path in paths:
        text = read_config(fs, path, budget)
        cfg.files.append(path)
        if text.problem:
            cfg.unreadable.append(Unreadable(path, text.problem, ENTRIES))
            continue
        title, options, where, unknown = posixpath.basename(path), [], None, False
        for line in text.lines:
            key, _, value = line.text.strip().partition(" ")
            if key == "title":
                title = value.strip()
            elif key == "options":
                options = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), value).split()
                where, unknown = line, env_problem is not None and "$" in value
        if where is not None and not unknown:
            cfg.entries.append(BootEntry(title, options, where, _is_rescue(title, options)))
        dropped |= unknown
    if env_problem is not None:
        cfg.unreadable.append(env_problem if dropped else replace(env_problem, part=NOTE))


def _user_cfg(fs: RootFS, cfg: BootConfig, budget: Budget) -> None:
    for path in _present(fs, ["/boot/grub2/user.cfg", "/boot/grub/user.cfg"]) + \
            glob(fs, "/boot/efi/EFI/*/user.cfg", budget, cfg.unreadable, USER_CFG):
        cfg.files.append(path)
        text = read_config(fs, path, budget)
        if text.problem:
            cfg.unreadable.append(Unreadable(path, text.problem, USER_CFG))
        for line in text.lines:
            if line.text.strip().startswith("GRUB2_PASSWORD=") and _HASH.search(line.text):
                cfg.password = line


_ASSIGN = re.compile(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$")
_VAR = re.compile(r"\$\{?(\w+)\}?")


def _defaults(fs: RootFS, cfg: BootConfig, budget: Budget) -> None:
    """``/etc/default/grub`` then ``grub.d/*.cfg``: shell assignments, ``$VAR`` expanded.
    A line the shell could not parse (an unterminated quote swallows the rest of the
    file), a file cut short or a ``grub.d`` that could not be listed is a gap in
    :attr:`BootConfig.defaults`."""
    listing: list[Unreadable] = []
    for path in _present(fs, ["/etc/default/grub"]) + glob(fs, "/etc/default/grub.d/*.cfg", budget, listing, DEFAULTS):
        _defaults_file(fs, path, cfg.defaults, budget)
    for what in listing:  # files not listed would have come last
        cfg.defaults.gap(what)


def _defaults_file(fs: RootFS, path: str, values: Assignments, budget: Budget) -> None:
    text = read_config(fs, path, budget)
    for line in text.lines:
        m = _ASSIGN.match(line.text.strip())
        if not m:
            continue
        try:
            words = shlex.split(m.group(2), comments=True)
        except ValueError as exc:
            values.gap(Unreadable(path, f"line {line.number}: {exc} (the rest of the file is unknown)", DEFAULTS))
            return
        raw = " ".join(words)
        value = _VAR.sub(lambda v: values.values.get(v.group(1), ("",))[0], raw).strip()
        values.set(m.group(1), value, line, _VAR.findall(raw), [w for w in raw.split() if "$" not in w])
    if text.problem:
        values.gap(Unreadable(path, text.problem, DEFAULTS))


# ---- legacy GRUB -----------------------------------------------------------------------------------
def _legacy(fs: RootFS, path: str, cfg: BootConfig, budget: Budget) -> None:
    text = read_config(fs, path, budget)
    cfg.files.append(path)
    if text.problem:
        cfg.unreadable.append(Unreadable(path, text.problem, LOADER))
    title: Line | None = None
    for line in text.lines:
        s = line.text.strip()
        if s.startswith("#") or not s:
            continue
        word = s.split(None, 1)
        if word[0] == "title":
            title = line
        elif word[0] == "password" and title is None:
            parts = s.split()
            if len(parts) >= 3 and parts[1] in ("--md5", "--encrypted") and parts[2].startswith("$"):
                cfg.password = line
        elif word[0] == "kernel" and title is not None:
            args = s.split()[2:]
            name = title.text.strip()[5:].strip()
            cfg.entries.append(BootEntry(name, args, line, _is_rescue(name, args)))


def boot_config(fs: RootFS) -> BootConfig:
    """The target's boot loader configuration: kind ``none`` when it has no boot loader,
    ``unknown`` when whether it has one could not be found out (a glob cap). Never raises:
    what could not be read is in :attr:`BootConfig.unreadable`."""
    budget = Budget()
    cfg = BootConfig("none")
    legacy = _present(fs, ["/boot/grub/grub.conf", "/boot/grub/menu.lst"])
    grub2 = _present(fs, ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"]) + \
        glob(fs, "/boot/efi/EFI/*/grub.cfg", budget, cfg.unreadable, LOADER)
    bls_entries = glob(fs, "/boot/loader/entries/*.conf", budget, cfg.unreadable, ENTRIES)
    if grub2:
        cfg.kind = "grub2"
        seen: set[str] = set()
        bls = False
        for path in grub2:
            bls |= _grub2(fs, path, cfg, seen, budget)
        if bls or bls_entries:
            cfg.kind = "bls"
            _bls(fs, cfg, bls_entries, budget)
        _user_cfg(fs, cfg, budget)
        _defaults(fs, cfg, budget)
    elif legacy:
        cfg.kind = "grub-legacy"
        _legacy(fs, legacy[0], cfg, budget)
    elif bls_entries:
        cfg.kind = "bls"
        _bls(fs, cfg, bls_entries, budget)
    elif cfg.unreadable:
        cfg.kind = "unknown"
    return cfg


# ---- systemd units ----------------------------------------------------------------------------------
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def is_systemd(fs: RootFS) -> bool:
    return any(fs.is_dir(d) for d in UNIT_DIRS[2:]) and any(
        present(fs, f"{d}/{u}") for d in UNIT_DIRS for u in ("rescue.service", "emergency.service", "default.target"))


@dataclass
class UnitExec:
    """A unit's effective ``ExecStart=`` lines after its drop-ins. ``known_from``: the
    lines from that index on are certainly in effect; the ones before it, and whether
    there are more, are not known when ``unreadable`` is not empty (unread content may
    reset the list with an empty ``ExecStart=``, or add to it)."""

    execs: list[Line]
    files: list[str]
    unreadable: list[Unreadable]
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
    out = UnitExec([], [main], [])
    dropins: dict[str, str] = {}
    for d in reversed(UNIT_DIRS):  # /etc last: same-named drop-ins in /etc win
        for path in glob(fs, f"{d}/{unit}.d/*.conf", budget, out.unreadable):
            dropins[posixpath.basename(path)] = path
    unlisted = bool(out.unreadable)  # drop-ins that could not be listed may do anything
    out.complete = not unlisted
    out.files += [dropins[name] for name in sorted(dropins)]
    for path in out.files:
        section = ""
        text = read_config(fs, path, budget)
        for line in text.lines:
            s = line.text.strip()
            if s.startswith("["):
                section = s
            elif section == "[Service]" and s.startswith("ExecStart="):
                if s == "ExecStart=":  # what came before, read or not, no longer counts
                    out.execs, out.known_from, out.complete = [], 0, not unlisted
                else:
                    out.execs.append(line)
        if text.problem:
            out.unreadable.append(Unreadable(path, text.problem))
            out.known_from, out.complete = len(out.execs), False
    if unlisted:  # an unlisted drop-in may come last and reset every line
        out.known_from = len(out.execs)
    return out


# ---- sysctl ------------------------------------------------------------------------------------------
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")


def sysctl_settings(fs: RootFS) -> Assignments:
    """Effective sysctl assignments as systemd-sysctl applies them: ``*.conf`` of every
    sysctl.d folder, a name in an earlier folder masking the same name in later ones, all
    applied in file-name order, then ``/etc/sysctl.conf``; later assignments win. A file
    that cannot be read (wholly or from some line on) is a gap: the settings before it
    may have been changed by it."""
    out = Assignments()
    budget = Budget()
    by_name: dict[str, str] = {}
    listing: list[Unreadable] = []
    for d in SYSCTL_DIRS:
        for path in glob(fs, f"{d}/*.conf", budget, listing):
            by_name.setdefault(posixpath.basename(path), path)
    order = [by_name[n] for n in sorted(by_name)] + _present(fs, ["/etc/sysctl.conf"])
    for path in order:
        text = read_config(fs, path, budget)
        for line in text.lines:
            s = line.text.strip()
            if not s or s[0] in "#;" or "=" not in s:
                continue
            key, _, value = s.lstrip("-").partition("=")
            key = key.strip()
            out.set(key.replace("/", "."), value.strip(), Line(path, line.number, f"{key} = {value.strip()}"))
        if text.problem:
            out.gap(Unreadable(path, text.problem))
    for what in listing:  # the files of a folder that could not be listed may sort last
        out.gap(what)
    return out
