"""Readers for the system configuration the boot and IPv6 rules judge, from the target.

Each reader returns plain records with evidence (path, line number, the line) and raises
:class:`ConfigReadError` with one line when a file cannot be used (too large, binary,
unbalanced braces, a ``configfile`` loop): the rule that needed it reports an error and the
others go on.

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
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

from scanner.target import RootFS

MAX_CONFIG = 1 << 20  # a boot or sysctl file larger than 1 MiB is not a configuration


class ConfigReadError(Exception):
    """A configuration file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Line:
    path: str
    number: int
    text: str

    def evidence(self) -> dict[str, object]:
        return {"path": self.path, "line": self.number, "text": self.text[:500]}


@dataclass
class BootEntry:
    title: str
    args: list[str]
    where: Line
    rescue: bool = False


@dataclass
class BootConfig:
    kind: str  # grub-legacy | grub2 | bls | none
    files: list[str] = field(default_factory=list)  # every boot configuration file read
    entries: list[BootEntry] = field(default_factory=list)
    password: Line | None = None  # the line that really sets a password hash
    superusers: Line | None = None
    superuser_names: list[str] = field(default_factory=list)
    defaults: dict[str, tuple[str, Line]] = field(default_factory=dict)  # /etc/default/grub


def read_text(fs: RootFS, path: str, limit: int = MAX_CONFIG) -> str:
    try:
        data = fs.read(path, limit + 1)
    except OSError as exc:
        raise ConfigReadError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise ConfigReadError(f"{path}: larger than {limit >> 10} KiB, not a configuration file")
    if b"\0" in data:
        raise ConfigReadError(f"{path}: binary data, not a configuration file")
    return data.decode("utf-8", "replace")


def _lines(path: str, text: str) -> list[Line]:
    return [Line(path, n, raw) for n, raw in enumerate(text.splitlines(), 1)]


def _is_rescue(title: str, args: list[str]) -> bool:
    t = title.lower()
    return "rescue" in t or "recovery" in t or "single" in args and "recovery" in t


def _existing(fs: RootFS, paths: list[str]) -> list[str]:
    return [p for p in paths if fs.is_file(p)]


def _efi(fs: RootFS, name: str) -> list[str]:
    return fs.glob(f"/boot/efi/EFI/*/{name}")


# ---- GRUB 2 --------------------------------------------------------------------------------------
_MENUENTRY = re.compile(r"""^\s*menuentry\s+(?:'([^']*)'|"([^"]*)"|(\S+))""")
_LINUX = re.compile(r"^\s*(linux|linux16|linuxefi)\s+(\S+)\s*(.*)$")
_HASH = re.compile(r"grub\.pbkdf2\.sha512\.\d+\.[0-9A-Fa-f]+\.[0-9A-Fa-f]+")


def _grub2(fs: RootFS, path: str, cfg: BootConfig, seen: set[str], chain: tuple[str, ...] = ()) -> bool:
    """Read one grub.cfg (following ``configfile``); True when it says ``blscfg``. A file
    already read is not read again; one that ``configfile`` leads back to is a loop."""
    canon = fs.resolve(path, strict=False)
    if canon in chain:
        raise ConfigReadError(f"{path}: configfile loop ({' -> '.join((*chain, canon))})")
    if canon in seen:
        return False
    seen.add(canon)
    chain = (*chain, canon)
    text = read_text(fs, path)
    cfg.files.append(path)
    depth = 0
    entry: BootEntry | None = None
    bls = False
    for line in _lines(path, text):
        s = line.text.strip()
        if not s or s.startswith("#"):
            continue
        m = _MENUENTRY.match(s)
        if m:
            entry = BootEntry(next(g for g in m.groups() if g is not None), [], line)
        depth += s.count("{") - s.count("}")
        if depth < 0:
            raise ConfigReadError(f"{path}:{line.number}: a closing brace without an opening one")
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
                if fs.is_file(resolved):
                    bls |= _grub2(fs, resolved, cfg, seen, chain)
                    break
    if depth > 0:
        raise ConfigReadError(f"{path}: {depth} unclosed brace(s): a menuentry or block never ends")
    return bls


def _configfile_candidates(target: str) -> list[str]:
    if "$prefix" in target or "${prefix}" in target:
        tail = target.split("prefix", 1)[1].lstrip("}").lstrip("/")
        return [f"/boot/grub2/{tail}", f"/boot/grub/{tail}"]
    return [target] if target.startswith("/") else [f"/boot/grub2/{target}", f"/boot/grub/{target}"]


def _grubenv(fs: RootFS) -> dict[str, str]:
    for path in ["/boot/grub2/grubenv", "/boot/grub/grubenv", *_efi(fs, "grubenv")]:
        if fs.is_file(path):
            try:
                text = read_text(fs, path, 64 << 10)
            except ConfigReadError:
                continue
            return dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln and not ln.startswith("#"))
    return {}


def _bls(fs: RootFS, cfg: BootConfig) -> None:
    env = _grubenv(fs)
    for path in fs.glob("/boot/loader/entries/*.conf"):
        text = read_text(fs, path)
        cfg.files.append(path)
        title, options, where = posixpath.basename(path), [], None
        for line in _lines(path, text):
            key, _, value = line.text.strip().partition(" ")
            if key == "title":
                title = value.strip()
            elif key == "options":
                expanded = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), value)
                options = expanded.split()
                where = line
        if where is not None:
            cfg.entries.append(BootEntry(title, options, where, _is_rescue(title, options)))


def _user_cfg(fs: RootFS, cfg: BootConfig) -> None:
    for path in _existing(fs, ["/boot/grub2/user.cfg", "/boot/grub/user.cfg", *_efi(fs, "user.cfg")]):
        cfg.files.append(path)
        for line in _lines(path, read_text(fs, path)):
            if line.text.strip().startswith("GRUB2_PASSWORD=") and _HASH.search(line.text):
                cfg.password = line


def _defaults(fs: RootFS, cfg: BootConfig) -> None:
    """``/etc/default/grub`` then ``grub.d/*.cfg``: shell assignments, ``$VAR`` expanded."""
    values: dict[str, str] = {}
    for path in _existing(fs, ["/etc/default/grub"]) + fs.glob("/etc/default/grub.d/*.cfg"):
        for line in _lines(path, read_text(fs, path)):
            s = line.text.strip()
            m = re.match(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", s)
            if not m:
                continue
            try:
                words = shlex.split(m.group(2), comments=True)
            except ValueError as exc:
                raise ConfigReadError(f"{path}:{line.number}: {exc}") from exc
            value = " ".join(words)
            value = re.sub(r"\$\{?(\w+)\}?", lambda v: values.get(v.group(1), ""), value).strip()
            values[m.group(1)] = value
            cfg.defaults[m.group(1)] = (value, line)


# ---- legacy GRUB -----------------------------------------------------------------------------------
def _legacy(fs: RootFS, path: str, cfg: BootConfig) -> None:
    text = read_text(fs, path)
    cfg.files.append(path)
    title: Line | None = None
    for line in _lines(path, text):
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
    """The target's boot loader configuration; kind ``none`` when it has no boot loader."""
    legacy = _existing(fs, ["/boot/grub/grub.conf", "/boot/grub/menu.lst"])
    grub2 = _existing(fs, ["/boot/grub2/grub.cfg", "/boot/grub/grub.cfg"]) + _efi(fs, "grub.cfg")
    bls_entries = fs.glob("/boot/loader/entries/*.conf")
    if grub2:
        cfg = BootConfig("grub2")
        seen: set[str] = set()
        bls = False
        for path in grub2:
            bls |= _grub2(fs, path, cfg, seen)
        if bls or bls_entries:
            cfg.kind = "bls"
            _bls(fs, cfg)
        _user_cfg(fs, cfg)
        _defaults(fs, cfg)
        return cfg
    if legacy:
        cfg = BootConfig("grub-legacy")
        _legacy(fs, legacy[0], cfg)
        return cfg
    if bls_entries:
        cfg = BootConfig("bls")
        _bls(fs, cfg)
        return cfg
    return BootConfig("none")


# ---- systemd units ----------------------------------------------------------------------------------
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def is_systemd(fs: RootFS) -> bool:
    return any(fs.is_dir(d) for d in UNIT_DIRS[2:]) and any(
        fs.exists(f"{d}/{u}") for d in UNIT_DIRS for u in ("rescue.service", "emergency.service", "default.target"))


def unit_exec_start(fs: RootFS, unit: str) -> tuple[list[Line], list[str]] | None:
    """The effective ``ExecStart=`` lines of a unit after drop-ins, and the files read;
    None when the unit does not exist."""
    main = next((f"{d}/{unit}" for d in UNIT_DIRS if fs.exists(f"{d}/{unit}")), None)
    if main is None:
        return None
    files = [main]
    dropins: dict[str, str] = {}
    for d in reversed(UNIT_DIRS):  # /etc last: same-named drop-ins in /etc win
        for path in fs.glob(f"{d}/{unit}.d/*.conf"):
            dropins[posixpath.basename(path)] = path
    files += [dropins[name] for name in sorted(dropins)]
    execs: list[Line] = []
    for path in files:
        section = ""
        for line in _lines(path, read_text(fs, path)):
            s = line.text.strip()
            if s.startswith("["):
                section = s
            elif section == "[Service]" and s.startswith("ExecStart="):
                if s == "ExecStart=":
                    execs = []
                else:
                    execs.append(line)
    return execs, files


# ---- sysctl ------------------------------------------------------------------------------------------
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")


def sysctl_settings(fs: RootFS) -> dict[str, Line]:
    """Effective sysctl assignments as systemd-sysctl applies them: ``*.conf`` of every
    sysctl.d folder, a name in an earlier folder masking the same name in later ones, all
    applied in file-name order, then ``/etc/sysctl.conf``; later assignments win."""
    by_name: dict[str, str] = {}
    for d in SYSCTL_DIRS:
        for path in fs.glob(f"{d}/*.conf"):
            by_name.setdefault(posixpath.basename(path), path)
    order = [by_name[n] for n in sorted(by_name)] + _existing(fs, ["/etc/sysctl.conf"])
    out: dict[str, Line] = {}
    for path in order:
        for line in _lines(path, read_text(fs, path)):
            s = line.text.strip()
            if not s or s[0] in "#;" or "=" not in s:
                continue
            key, _, value = s.lstrip("-").partition("=")
            out[key.strip().replace("/", ".")] = Line(path, line.number, f"{key.strip()} = {value.strip()}")
    return out


def sysctl_value(line: Line) -> str:
    return line.text.split("=", 1)[1].strip()
