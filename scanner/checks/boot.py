"""Boot loader and single-user mode checks (rules in ``rules/boot.toml``).

Every check says pass, fail, notapplicable (a root with no boot loader: a container) or
error with the evidence it judged: path, line number and the line. Fail closed: a boot
file that cannot be read, or only in part, makes a rule ``error`` only when the rule's
answer depends on it (:meth:`BootConfig.problems` by part): what was read may still prove
a failure, and nothing unread ever lets a rule pass. A malformed ``/etc/default/grub.d``
file does not touch the password rule, which never reads it. Every outcome lists all
unreadable boot files in its evidence.

The checks judge ``ctx.system``, the :class:`~scanner.inventory.sysconf.SystemConfig` the
inventory read; they never touch the target. A context without one makes them ``error``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase
from typing import Any

from scanner.checks import Check, CheckContext, Outcome, Rule, check
from scanner.inventory.sysconf import (
    DEFAULTS,
    ENTRIES,
    LOADER,
    USER_CFG,
    BootConfig,
    BootEntry,
    ConfigText,
    Line,
    SystemConfig,
    UnitExec,
    Unreadable,
)

Out = Iterator[Outcome]
ALL_LOADERS = ("grub-legacy", "grub2", "bls")


def system_of(ctx: CheckContext) -> SystemConfig | Outcome:
    """The system configuration the checks judge (``ctx.system``), or the ``error`` outcome
    of a context that has none (a check run without the inventory's record: nothing it
    could judge, and what was not read never passes)."""
    if ctx.system is None:
        return Outcome("error", "system", "The system configuration was not read (the target is not a system, or "
                       "its configuration was not inventoried): nothing to judge.")
    return ctx.system


def unread(problems: Sequence[Unreadable]) -> str:
    """The unreadable files of a message, with why."""
    return "; ".join(str(u) for u in problems)


def _boot(ctx: CheckContext, rule: Rule, kinds: tuple[str, ...] = ALL_LOADERS) -> BootConfig | Outcome:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        return sysc
    cfg = sysc.boot
    if cfg.kind == "unknown":
        return Outcome("error", "boot", f"Whether the target has a boot loader could not be found out: "
                       f"{unread(cfg.all_unreadable)}", _ev(cfg))
    if cfg.kind == "none":
        return Outcome("notapplicable", "boot", "The target has no boot loader configuration (a container or "
                       "a root without /boot): nothing boots from it.")
    if cfg.kind not in kinds:
        return Outcome("notapplicable", "boot", f"Does not apply to a {cfg.kind} boot loader.")
    return cfg


def boot_check(name: str, kinds: tuple[str, ...] = ALL_LOADERS) -> Callable[[Callable[..., Out]], Check]:
    """Register a check that judges the boot loader configuration: it runs only when the
    target has one of ``kinds``; otherwise the rule gets the error or notapplicable
    result :func:`_boot` gives."""

    def deco(fn: Callable[[CheckContext, Rule, BootConfig], Out]) -> Check:
        def run(ctx: CheckContext, rule: Rule) -> Out:
            cfg = _boot(ctx, rule, kinds)
            if isinstance(cfg, Outcome):
                yield cfg
            else:
                yield from fn(ctx, rule, cfg)

        run.__name__ = run.__qualname__ = fn.__name__
        run.__doc__ = fn.__doc__
        return check(name)(run)

    return deco


def _ev(cfg: BootConfig | None, *lines: Line | None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"lines": [ln.evidence() for ln in lines if ln is not None]}
    ev.update({k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()})
    if cfg is not None and cfg.all_unreadable:
        ev["unreadable"] = [u.evidence() for u in cfg.all_unreadable]
    return ev


def depends_on_unread(cfg: BootConfig, parts: tuple[str, ...], what: str) -> Outcome | None:
    """The ``error`` outcome of a rule whose answer depends on boot files (``parts``) that
    could not be read, or None when every one of them was read."""
    problems = cfg.problems(*parts)
    if not problems:
        return None
    return Outcome("error", "boot", f"{what} cannot be judged: the boot configuration it depends on could not be "
                   f"read completely ({unread(problems)}).", _ev(cfg, files=cfg.files))


@boot_check("boot-password")
def boot_password(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    # a password line, or its absence, proves nothing while grub.cfg or user.cfg (a script
    # grub.cfg sources, which may also reset the superusers) is partly unknown
    unknown = depends_on_unread(cfg, (LOADER, USER_CFG), "Whether the boot loader requires a password")
    if unknown:
        yield unknown
        return
    if cfg.password is not None:
        yield Outcome("pass", "boot", f"The {cfg.kind} boot loader requires a password ({cfg.password.path}).",
                      _ev(cfg, cfg.password, loader=cfg.kind))
        return
    trap = ""
    if cfg.kind != "grub-legacy" and cfg.superusers is not None:
        trap = (" grub.cfg names superusers and a password_pbkdf2 line, but no literal grub.pbkdf2 hash is "
                "defined (the stock RHEL 01_users template refers to ${GRUB2_PASSWORD}, which is empty without "
                "user.cfg).")
    yield Outcome("fail", "boot", f"Anyone at the console can edit the {cfg.kind} boot entries: no boot loader "
                  f"password is set.{trap}", _ev(cfg, cfg.superusers, loader=cfg.kind, files=cfg.files))


@boot_check("boot-superuser", ("grub2", "bls"))
def boot_superuser(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    unknown = depends_on_unread(cfg, (LOADER,), "The GRUB 2 superuser")
    if unknown:
        yield unknown
        return
    banned = set(rule.params.get("forbidden_names", ["root", "admin", "administrator"]))
    if not cfg.superuser_names:
        yield Outcome("fail", "boot", "GRUB 2 names no superuser (set superusers=).", _ev(cfg, loader=cfg.kind))
    elif banned & set(cfg.superuser_names):
        yield Outcome("fail", "boot", f"The GRUB 2 superuser is a common name ({', '.join(cfg.superuser_names)}): "
                      "pick one an attacker must guess.", _ev(cfg, cfg.superusers))
    else:
        yield Outcome("pass", "boot", f"GRUB 2 superuser: {', '.join(cfg.superuser_names)}.", _ev(cfg, cfg.superusers))


@boot_check("boot-file-permissions")
def boot_file_permissions(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    """Needs only each file's owner and mode, so a file whose content cannot be read is
    judged all the same; one that cannot even be ``stat``-ed (a link loop) cannot pass."""
    bad, seen, lost = [], [], []
    for got in ctx.system.boot_modes if ctx.system is not None else ():  # boot_check runs it with one
        if isinstance(got, Unreadable):
            lost.append(got)
            continue
        seen.append({"path": got.path, "uid": got.uid, "gid": got.gid, "mode": f"{got.mode:04o}"})
        if got.uid != 0 or got.gid != 0 or got.mode & 0o077:
            bad.append(seen[-1])
    if bad:
        yield Outcome("fail", "boot", "Boot loader files readable by others or not owned by root:root: "
                      + "; ".join(f"{b['path']} {b['uid']}:{b['gid']} {b['mode']}" for b in bad), _ev(cfg, files=bad))
    elif lost:
        yield Outcome("error", "boot", f"The permissions of boot loader files cannot be read: {unread(lost)}.",
                      _ev(cfg, files=seen, unstatable=[u.evidence() for u in lost]))
    else:
        yield Outcome("pass", "boot", "Boot loader files are root:root and 0600 or stricter.", _ev(cfg, files=seen))


def _entries(cfg: BootConfig) -> list[BootEntry]:
    return [e for e in cfg.entries if not e.rescue]


@boot_check("kernel-args-required")
def kernel_args_required(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    required = list(rule.params.get("required", ["audit=1"]))
    entries = _entries(cfg)
    missing = [(e, [a for a in required if a not in e.args]) for e in entries]
    missing = [(e, m) for e, m in missing if m]
    if missing:  # an entry that was read lacks them: failing whatever the unread rest holds
        yield Outcome("fail", "boot", "Boot entries lack required kernel arguments: " + "; ".join(
            f"{e.title!r} lacks {' '.join(m)}" for e, m in missing), _ev(cfg, *(e.where for e, _ in missing)))
        return
    unknown = depends_on_unread(cfg, (LOADER, ENTRIES), "Whether every boot entry has the required kernel arguments")
    if unknown:
        yield unknown
    elif not entries:
        yield Outcome("error", "boot", "No boot entry with a kernel command line was found.", _ev(cfg, files=cfg.files))
    else:
        yield Outcome("pass", "boot", f"Every boot entry has {' '.join(required)}.",
                      _ev(cfg, *(e.where for e in entries)))


def _default_args(cfg: BootConfig, bad: Callable[[str], bool]) -> list[tuple[Line, str, list[str]]]:
    """``GRUB_CMDLINE_LINUX*`` values of ``/etc/default/grub`` holding an argument ``bad``
    says is wrong, counting only arguments no unread content can have taken out."""
    hits = []
    for key in ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"):
        found = [a for a in cfg.defaults.sure_words(key) if bad(a)]
        if found:
            hits.append((cfg.defaults.values[key][1], key, found))
    return hits


@boot_check("kernel-args-forbidden")
def kernel_args_forbidden(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    forbidden = list(rule.params.get("forbidden", []))

    def is_bad(arg: str) -> bool:
        return any(fnmatchcase(arg, f) for f in forbidden)

    hits = []
    for e in _entries(cfg):
        bad = [a for a in e.args if is_bad(a)]
        if bad:
            hits.append((e.where, e.title, bad))
    hits += _default_args(cfg, is_bad)
    if hits:
        yield Outcome("fail", "boot", "Forbidden kernel arguments in default boot entries: " + "; ".join(
            f"{t} has {' '.join(b)}" for _, t, b in hits), _ev(cfg, *(w for w, _, _ in hits)))
        return
    unknown = depends_on_unread(cfg, (LOADER, ENTRIES, DEFAULTS), "Whether a boot entry has a forbidden kernel argument")
    if unknown:
        yield unknown
    else:
        yield Outcome("pass", "boot", "No default boot entry carries a forbidden kernel argument.",
                      _ev(cfg, forbidden=forbidden))


@boot_check("recovery-disabled", ("grub2", "bls"))
def recovery_disabled(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    key = "GRUB_DISABLE_RECOVERY"
    if not cfg.defaults.certain(key):  # unread content of /etc/default/grub may set it
        yield Outcome("error", "boot", f"Whether {key} is true cannot be judged: /etc/default/grub could not be read "
                      f"completely ({unread(cfg.defaults.unreadable)}).", _ev(cfg, files=cfg.files))
        return
    value, line = cfg.defaults.values.get(key, ("", None))
    if value.lower() == "true":
        yield Outcome("pass", "boot", "GRUB_DISABLE_RECOVERY=true: no recovery entries are generated.", _ev(cfg, line))
    else:
        yield Outcome("fail", "boot", "Recovery boot entries are generated (GRUB_DISABLE_RECOVERY is not true).",
                      _ev(cfg, line, value=value or None))


def _unreadable_outcome(text: ConfigText, what: str) -> Outcome:
    return Outcome("error", text.path, f"{what} cannot be judged: {text.path} could not be read completely "
                   f"({text.problem}).", {"unreadable": [Unreadable(text.path, text.problem or "").evidence()]})


@check("single-user-auth")
def single_user_auth(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    if sysc.systemd is not None:
        yield from _systemd_auth(sysc.systemd.rescue, "rescue.service", "single-user (rescue) mode")
        return
    what = "Whether single-user mode asks for root's password"
    init = sysc.sysconfig_init
    if init is not None and init.problem:  # the last SINGLE= may be in the part not read
        yield _unreadable_outcome(init, what)
        return
    single = [ln for ln in init.lines if ln.text.strip().startswith("SINGLE=")] if init else []
    if single:
        ok = single[-1].text.strip().split("=", 1)[1].strip() == "/sbin/sulogin"
        yield Outcome("pass" if ok else "fail", "/etc/sysconfig/init",
                      "Single-user mode asks for root's password (SINGLE=/sbin/sulogin)." if ok else
                      "Single-user mode gives a root shell without a password (SINGLE is not /sbin/sulogin).",
                      _ev(None, single[-1]))
        return
    inittab = sysc.inittab
    if inittab is None:
        yield Outcome("notapplicable", "init", "No systemd, upstart or SysV init configuration was found.")
        return
    if inittab.problem:
        yield _unreadable_outcome(inittab, what)
        return
    hit = [ln for ln in inittab.lines if re.match(r"^[A-Za-z0-9~]+:S:(wait|respawn):/sbin/sulogin", ln.text.strip())]
    if hit:
        yield Outcome("pass", "/etc/inittab", "Single-user mode runs /sbin/sulogin.", _ev(None, hit[0]))
    else:
        yield Outcome("fail", "/etc/inittab", "/etc/inittab has no ~~:S:wait:/sbin/sulogin line: single-user "
                      "mode gives a root shell without a password.", _ev(None, path="/etc/inittab"))


def _systemd_auth(got: UnitExec | None, unit: str, what: str) -> Out:
    if got is None:
        yield Outcome("fail", unit, f"{unit} is missing: {what} is not defined.")
        return
    execs = got.execs
    ev = _ev(None, *execs, files=got.files)
    if got.unreadable:
        ev["unreadable"] = [u.evidence() for u in got.unreadable]
    bad = [ln for ln in execs[got.known_from:] if "sulogin" not in ln.text]  # in effect whatever was not read
    if bad or got.complete and not (execs and all("sulogin" in ln.text for ln in execs)):
        yield Outcome("fail", unit, f"{what} does not run sulogin after drop-ins are applied"
                      f" ({'; '.join(ln.text.strip() for ln in execs) or 'no ExecStart'}): it gives a root shell "
                      "without a password.", ev)
    elif not got.complete:
        yield Outcome("error", unit, f"Whether {what} asks for root's password cannot be judged: its unit files "
                      f"could not be read completely ({unread(got.unreadable)}).", ev)
    else:
        yield Outcome("pass", unit, f"{what} asks for root's password ({execs[-1].text.strip()}).", ev)


@check("emergency-auth")
def emergency_auth(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
    elif sysc.systemd is None:
        yield Outcome("notapplicable", "emergency.service", "Not a systemd system.")
    else:
        yield from _systemd_auth(sysc.systemd.emergency, "emergency.service", "emergency mode")


@check("debug-shell-disabled")
def debug_shell_disabled(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    if sysc.systemd is None:
        yield Outcome("notapplicable", "debug-shell.service", "Not a systemd system.")
        return
    links, unlisted = list(sysc.systemd.debug_shell_links), list(sysc.systemd.debug_shell_unlisted)
    if links:
        yield Outcome("fail", "debug-shell.service", "debug-shell.service is enabled: a root shell on tty9 from "
                      "early boot, without a password.", {"links": links})
    elif unlisted:
        yield Outcome("error", "debug-shell.service", f"Whether debug-shell.service is enabled cannot be judged: "
                      f"{unread(unlisted)}.", {"unreadable": [u.evidence() for u in unlisted]})
    else:
        yield Outcome("pass", "debug-shell.service", "debug-shell.service is not enabled.")


@check("interactive-boot-disabled")
def interactive_boot_disabled(ctx: CheckContext, rule: Rule) -> Out:
    sysc = system_of(ctx)
    if isinstance(sysc, Outcome):
        yield sysc
        return
    init, cfg = sysc.sysconfig_init, sysc.boot
    legacy = cfg.kind == "grub-legacy"
    if init is None and not legacy:
        if cfg.kind == "unknown":  # it may be a legacy GRUB whose kernel lines say confirm
            yield Outcome("error", "boot", f"Whether the boot loader allows interactive boot cannot be judged: "
                          f"{unread(cfg.all_unreadable)}", _ev(cfg))
        else:
            yield Outcome("notapplicable", "/etc/sysconfig/init", "No legacy (SysV/upstart) interactive boot settings.")
        return
    prompt = [ln for ln in init.lines if ln.text.strip().startswith("PROMPT=")] if init else []
    prompt_on = bool(prompt) and prompt[-1].text.strip().split("=", 1)[1].strip().lower() != "no"
    confirm = [e for e in (cfg.entries if legacy else []) if "confirm" in e.args]
    problems = ([Unreadable(init.path, init.problem)] if init and init.problem else []) + \
        (cfg.problems(LOADER) if legacy else [])
    if confirm or prompt_on and not (init and init.problem):  # a later PROMPT= may be in the part not read
        yield Outcome("fail", "/etc/sysconfig/init", "Interactive boot is allowed (PROMPT is not no, or a kernel "
                      "line says confirm): services can be skipped at the console.",
                      _ev(cfg, *(prompt[-1:] if prompt_on else []), *(e.where for e in confirm)))
    elif problems:
        yield Outcome("error", "/etc/sysconfig/init", f"Whether interactive boot is off cannot be judged: "
                      f"{unread(problems)}.", _ev(None, *prompt[-1:], unreadable=[u.evidence() for u in problems]))
    else:
        yield Outcome("pass", "/etc/sysconfig/init", "Interactive boot is off.", _ev(cfg, *prompt[-1:]))
