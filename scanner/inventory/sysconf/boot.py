"""The boot loader configuration, read from the target into a :class:`BootConfig`.

Sources of the formats:
* legacy GRUB ``grub.conf``/``menu.lst``: global ``password [--md5|--encrypted] HASH``,
  ``title`` stanzas with ``kernel PATH ARGS`` lines;
* GRUB 2 ``grub.cfg``: ``menuentry '...' { ... linux PATH ARGS ... }``, ``set superusers=``,
  ``password_pbkdf2 USER HASH``, ``configfile PATH``, ``blscfg``; ``user.cfg``
  ``GRUB2_PASSWORD=``; ``grubenv`` (a 1024-byte block of ``key=value`` lines);
* BootLoaderSpec ``/boot/loader/entries/*.conf`` (``title``, ``options`` with
  ``$kernelopts`` from grubenv);
* ``/etc/default/grub`` and ``/etc/default/grub.d/*.cfg`` (shell assignments, later wins).

What cannot be read, or makes no sense (unbalanced braces, a ``configfile`` loop, an
unterminated quote), is an :class:`Unreadable` record tagged with the part it belongs to
(:data:`LOADER`, ...), so that a rule can tell whether its answer depends on it. The whole
configuration is read within one budget. :func:`boot_file_modes` gives the owner and
mode of the files the permission rule judges (``stat`` only: no content needed).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

from scanner import limits
from scanner.inventory.sysconf.text import (
    Assignments,
    AssignmentsReader,
    Line,
    Unreadable,
    glob,
    present,
    present_paths,
    read_config,
)
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
class BootEntry:
    title: str
    args: tuple[str, ...]
    where: Line
    rescue: bool = False


@dataclass(frozen=True)
class BootConfig:
    kind: str  # grub-legacy | grub2 | bls | none | unknown (its files could not even be listed)
    files: tuple[str, ...] = ()  # every boot configuration file found, read or not
    entries: tuple[BootEntry, ...] = ()
    password: Line | None = None  # the line that really sets a password hash
    superusers: Line | None = None
    superuser_names: tuple[str, ...] = ()
    defaults: Assignments = field(default_factory=Assignments)  # /etc/default/grub and grub.d
    unreadable: tuple[Unreadable, ...] = ()  # besides the defaults' own

    def problems(self, *parts: str) -> list[Unreadable]:
        """What could not be read in the given parts (:data:`LOADER`...): a rule depending
        on them cannot pass while there is any."""
        return [u for u in self.all_unreadable if u.part in parts]

    @property
    def all_unreadable(self) -> list[Unreadable]:
        return [*self.unreadable, *self.defaults.unreadable]


@dataclass(frozen=True)
class FileMode:
    """A boot file's owner and permission bits (``stat``, following links)."""

    path: str
    uid: int
    gid: int
    mode: int  # the permission bits (& 0o7777)


@dataclass
class _Entry:
    title: str
    args: list[str]
    where: Line
    rescue: bool = False


@dataclass
class _Boot:
    """A :class:`BootConfig` while it is read."""

    kind: str
    files: list[str] = field(default_factory=list)
    entries: list[_Entry] = field(default_factory=list)
    password: Line | None = None
    superusers: Line | None = None
    superuser_names: list[str] = field(default_factory=list)
    defaults: AssignmentsReader = field(default_factory=AssignmentsReader)
    unreadable: list[Unreadable] = field(default_factory=list)

    def done(self) -> BootConfig:
        return BootConfig(self.kind, tuple(self.files),
                          tuple(BootEntry(e.title, tuple(e.args), e.where, e.rescue) for e in self.entries),
                          self.password, self.superusers, tuple(self.superuser_names), self.defaults.done(),
                          tuple(self.unreadable))


def _is_rescue(title: str, args: list[str]) -> bool:
    t = title.lower()
    return "rescue" in t or "recovery" in t or "single" in args and "recovery" in t


# ---- GRUB 2 --------------------------------------------------------------------------------------
_MENUENTRY = re.compile(r"""^\s*menuentry\s+(?:'([^']*)'|"([^"]*)"|(\S+))""")
_LINUX = re.compile(r"^\s*(linux|linux16|linuxefi)\s+(\S+)\s*(.*)$")
_HASH = re.compile(r"grub\.pbkdf2\.sha512\.\d+\.[0-9A-Fa-f]+\.[0-9A-Fa-f]+")


def _grub2(fs: RootFS, path: str, cfg: _Boot, seen: set[str], budget: Budget,
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
    entry: _Entry | None = None
    bls = False
    for line in text.lines:
        s = line.text.strip()
        if not s or s.startswith("#"):
            continue
        m = _MENUENTRY.match(s)
        if m:
            entry = _Entry(next(g for g in m.groups() if g is not None), [], line)
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


def _grubenv(fs: RootFS, cfg: _Boot, budget: Budget) -> tuple[dict[str, str], Unreadable | None]:
    """The variables of the first grubenv found, and what made it unreadable if anything
    (as :data:`ENTRIES` content)."""
    for path in present_paths(fs, ["/boot/grub2/grubenv", "/boot/grub/grubenv"]) + \
            glob(fs, "/boot/efi/EFI/*/grubenv", budget, cfg.unreadable, ENTRIES):
        text = read_config(fs, path, budget)
        env = dict(ln.text.split("=", 1) for ln in text.lines if "=" in ln.text and not ln.text.startswith("#"))
        return env, Unreadable(path, text.problem, ENTRIES) if text.problem else None
    return {}, None


def _bls(fs: RootFS, cfg: _Boot, paths: list[str], budget: Budget) -> None:
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
            cfg.entries.append(_Entry(title, options, where, _is_rescue(title, options)))
        dropped |= unknown
    if env_problem is not None:
        cfg.unreadable.append(env_problem if dropped else Unreadable(env_problem.path, env_problem.reason, NOTE))


def _user_cfg(fs: RootFS, cfg: _Boot, budget: Budget) -> None:
    for path in present_paths(fs, ["/boot/grub2/user.cfg", "/boot/grub/user.cfg"]) + \
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


def _defaults(fs: RootFS, cfg: _Boot, budget: Budget) -> None:
    """``/etc/default/grub`` then ``grub.d/*.cfg``: shell assignments, ``$VAR`` expanded.
    A line the shell could not parse (an unterminated quote swallows the rest of the
    file), a file cut short or a ``grub.d`` that could not be listed is a gap in
    :attr:`BootConfig.defaults`."""
    listing: list[Unreadable] = []
    for path in present_paths(fs, ["/etc/default/grub"]) + \
            glob(fs, "/etc/default/grub.d/*.cfg", budget, listing, DEFAULTS):
        _defaults_file(fs, path, cfg.defaults, budget)
    for what in listing:  # files not listed would have come last
        cfg.defaults.gap(what)


def _defaults_file(fs: RootFS, path: str, values: AssignmentsReader, budget: Budget) -> None:
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
def _legacy(fs: RootFS, path: str, cfg: _Boot, budget: Budget) -> None:
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
            cfg.entries.append(_Entry(name, args, line, _is_rescue(name, args)))


def boot_config(fs: RootFS) -> BootConfig:
    """The target's boot loader configuration: kind ``none`` when it has no boot loader,
    ``unknown`` when whether it has one could not be found out (a glob cap). Never raises:
    what could not be read is in :attr:`BootConfig.unreadable`."""
    budget = Budget()
    cfg = _Boot("none")
    legacy = present_paths(fs, ["/boot/grub/grub.conf", "/boot/grub/menu.lst"])
    grub2 = present_paths(fs, ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"]) + \
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
    return cfg.done()


def boot_file_modes(fs: RootFS, cfg: BootConfig) -> tuple[FileMode | Unreadable, ...]:
    """The owner and mode of each boot loader file the permission rule judges (every file
    of ``cfg`` but the BootLoaderSpec entries), in order; one that cannot be ``stat``-ed
    (a link loop) is an :class:`Unreadable` record. Each path is stat-ed once."""
    seen: dict[str, FileMode | Unreadable] = {}
    for path in cfg.files:
        if "/loader/entries/" in path or path in seen:
            continue
        try:
            st = fs.stat(path)
        except OSError as exc:
            seen[path] = Unreadable(path, f"cannot stat: {exc.strerror or exc}")
            continue
        seen[path] = FileMode(path, st.st_uid, st.st_gid, st.st_mode & 0o7777)
    return tuple(seen[p] for p in cfg.files if p in seen)
