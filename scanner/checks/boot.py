"""Boot loader and single-user mode checks (rules in ``rules/boot.toml``).

Every check says pass, fail, notapplicable (a root with no boot loader: a container) or
error (its configuration could not be read) with the evidence it judged: path, line
number and the line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import Any

from scanner.checks import CheckContext, Outcome, Rule, check
from scanner.checks.sysconf import (
    BootConfig, ConfigReadError, Line, boot_config, is_systemd, read_text, unit_exec_start,
)

Out = Iterator[Outcome]
ALL_LOADERS = ("grub-legacy", "grub2", "bls")


def _config(ctx: CheckContext) -> BootConfig | ConfigReadError:
    if "boot" not in ctx.cache:
        try:
            ctx.cache["boot"] = boot_config(ctx.fs)
        except ConfigReadError as exc:
            ctx.cache["boot"] = exc
    return ctx.cache["boot"]


def _boot(ctx: CheckContext, rule: Rule, kinds: tuple[str, ...] = ALL_LOADERS) -> BootConfig | Outcome:
    cfg = _config(ctx)
    if isinstance(cfg, ConfigReadError):
        return Outcome("error", "boot", f"The boot configuration cannot be read: {cfg}")
    if cfg.kind == "none":
        return Outcome("notapplicable", "boot", "The target has no boot loader configuration (a container or "
                       "a root without /boot): nothing boots from it.")
    if cfg.kind not in kinds:
        return Outcome("notapplicable", "boot", f"Does not apply to a {cfg.kind} boot loader.")
    return cfg


def boot_check(name: str, kinds: tuple[str, ...] = ALL_LOADERS) -> Callable[[Callable[..., Out]], Callable[..., Out]]:
    """Register a check that judges the boot loader configuration: it runs only when the
    configuration could be read and is of one of ``kinds``; otherwise the rule gets the
    error or notapplicable result :func:`_boot` gives."""

    def deco(fn: Callable[[CheckContext, Rule, BootConfig], Out]) -> Callable[..., Out]:
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


def _ev(*lines: Line | None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"lines": [ln.evidence() for ln in lines if ln is not None]}
    ev.update(extra)
    return ev


@boot_check("boot-password")
def boot_password(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    if cfg.password is not None:
        yield Outcome("pass", "boot", f"The {cfg.kind} boot loader requires a password ({cfg.password.path}).",
                      _ev(cfg.password, loader=cfg.kind))
        return
    trap = ""
    if cfg.kind != "grub-legacy" and cfg.superusers is not None:
        trap = (" grub.cfg names superusers and a password_pbkdf2 line, but no literal grub.pbkdf2 hash is "
                "defined (the stock RHEL 01_users template refers to ${GRUB2_PASSWORD}, which is empty without "
                "user.cfg).")
    yield Outcome("fail", "boot", f"Anyone at the console can edit the {cfg.kind} boot entries: no boot loader "
                  f"password is set.{trap}", _ev(cfg.superusers, loader=cfg.kind, files=cfg.files))


@boot_check("boot-superuser", ("grub2", "bls"))
def boot_superuser(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    banned = set(rule.params.get("forbidden_names", ["root", "admin", "administrator"]))
    if not cfg.superuser_names:
        yield Outcome("fail", "boot", "GRUB 2 names no superuser (set superusers=).", _ev(loader=cfg.kind))
    elif banned & set(cfg.superuser_names):
        yield Outcome("fail", "boot", f"The GRUB 2 superuser is a common name ({', '.join(cfg.superuser_names)}): "
                      "pick one an attacker must guess.", _ev(cfg.superusers))
    else:
        yield Outcome("pass", "boot", f"GRUB 2 superuser: {', '.join(cfg.superuser_names)}.", _ev(cfg.superusers))


@boot_check("boot-file-permissions")
def boot_file_permissions(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    bad, seen = [], []
    for path in cfg.files:
        if "/loader/entries/" in path:
            continue
        try:
            st = ctx.fs.stat(path)
        except OSError:
            continue
        mode = st.st_mode & 0o7777
        seen.append({"path": path, "uid": st.st_uid, "gid": st.st_gid, "mode": f"{mode:04o}"})
        if st.st_uid != 0 or st.st_gid != 0 or mode & 0o077:
            bad.append(seen[-1])
    if bad:
        yield Outcome("fail", "boot", "Boot loader files readable by others or not owned by root:root: "
                      + "; ".join(f"{b['path']} {b['uid']}:{b['gid']} {b['mode']}" for b in bad), {"files": bad})
    else:
        yield Outcome("pass", "boot", "Boot loader files are root:root and 0600 or stricter.", {"files": seen})


def _entries(cfg: BootConfig) -> list:
    return [e for e in cfg.entries if not e.rescue]


@boot_check("kernel-args-required")
def kernel_args_required(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    required = list(rule.params.get("required", ["audit=1"]))
    entries = _entries(cfg)
    if not entries:
        yield Outcome("error", "boot", "No boot entry with a kernel command line was found.", _ev(files=cfg.files))
        return
    missing = [(e, [a for a in required if a not in e.args]) for e in entries]
    missing = [(e, m) for e, m in missing if m]
    if missing:
        yield Outcome("fail", "boot", "Boot entries lack required kernel arguments: " + "; ".join(
            f"{e.title!r} lacks {' '.join(m)}" for e, m in missing), _ev(*(e.where for e, _ in missing)))
    else:
        yield Outcome("pass", "boot", f"Every boot entry has {' '.join(required)}.", _ev(*(e.where for e in entries)))


@boot_check("kernel-args-forbidden")
def kernel_args_forbidden(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    forbidden = list(rule.params.get("forbidden", []))
    hits = []
    for e in _entries(cfg):
        bad = [a for a in e.args if any(fnmatchcase(a, f) for f in forbidden)]
        if bad:
            hits.append((e.where, e.title, bad))
    for key in ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"):
        if key in cfg.defaults:
            value, line = cfg.defaults[key]
            bad = [a for a in value.split() if any(fnmatchcase(a, f) for f in forbidden)]
            if bad:
                hits.append((line, key, bad))
    if hits:
        yield Outcome("fail", "boot", "Forbidden kernel arguments in default boot entries: " + "; ".join(
            f"{t} has {' '.join(b)}" for _, t, b in hits), _ev(*(w for w, _, _ in hits)))
    else:
        yield Outcome("pass", "boot", "No default boot entry carries a forbidden kernel argument.",
                      _ev(forbidden=forbidden))


@boot_check("recovery-disabled", ("grub2", "bls"))
def recovery_disabled(ctx: CheckContext, rule: Rule, cfg: BootConfig) -> Out:
    value, line = cfg.defaults.get("GRUB_DISABLE_RECOVERY", ("", None))
    if value.lower() == "true":
        yield Outcome("pass", "boot", "GRUB_DISABLE_RECOVERY=true: no recovery entries are generated.", _ev(line))
    else:
        yield Outcome("fail", "boot", "Recovery boot entries are generated (GRUB_DISABLE_RECOVERY is not true).",
                      _ev(line, value=value or None))


def _text(ctx: CheckContext, path: str) -> list[Line] | None:
    if not ctx.fs.is_file(path):
        return None
    return [Line(path, n, t) for n, t in enumerate(read_text(ctx.fs, path).splitlines(), 1)]


@check("single-user-auth")
def single_user_auth(ctx: CheckContext, rule: Rule) -> Out:
    if is_systemd(ctx.fs):
        yield from _systemd_auth(ctx, "rescue.service", "single-user (rescue) mode")
        return
    init = _text(ctx, "/etc/sysconfig/init")
    single = [ln for ln in init or [] if ln.text.strip().startswith("SINGLE=")]
    if single:
        ok = single[-1].text.strip().split("=", 1)[1].strip() == "/sbin/sulogin"
        yield Outcome("pass" if ok else "fail", "/etc/sysconfig/init",
                      "Single-user mode asks for root's password (SINGLE=/sbin/sulogin)." if ok else
                      "Single-user mode gives a root shell without a password (SINGLE is not /sbin/sulogin).",
                      _ev(single[-1]))
        return
    inittab = _text(ctx, "/etc/inittab")
    if inittab is None:
        yield Outcome("notapplicable", "init", "No systemd, upstart or SysV init configuration was found.")
        return
    import re

    hit = [ln for ln in inittab if re.match(r"^[A-Za-z0-9~]+:S:(wait|respawn):/sbin/sulogin", ln.text.strip())]
    if hit:
        yield Outcome("pass", "/etc/inittab", "Single-user mode runs /sbin/sulogin.", _ev(hit[0]))
    else:
        yield Outcome("fail", "/etc/inittab", "/etc/inittab has no ~~:S:wait:/sbin/sulogin line: single-user "
                      "mode gives a root shell without a password.", _ev(path="/etc/inittab"))


def _systemd_auth(ctx: CheckContext, unit: str, what: str) -> Out:
    got = unit_exec_start(ctx.fs, unit)
    if got is None:
        yield Outcome("fail", unit, f"{unit} is missing: {what} is not defined.")
        return
    execs, files = got
    if execs and all("sulogin" in ln.text for ln in execs):
        yield Outcome("pass", unit, f"{what} asks for root's password ({execs[-1].text.strip()}).",
                      _ev(*execs, files=files))
    else:
        yield Outcome("fail", unit, f"{what} does not run sulogin after drop-ins are applied"
                      f" ({'; '.join(ln.text.strip() for ln in execs) or 'no ExecStart'}): it gives a root shell "
                      "without a password.", _ev(*execs, files=files))


@check("emergency-auth")
def emergency_auth(ctx: CheckContext, rule: Rule) -> Out:
    if not is_systemd(ctx.fs):
        yield Outcome("notapplicable", "emergency.service", "Not a systemd system.")
        return
    yield from _systemd_auth(ctx, "emergency.service", "emergency mode")


@check("debug-shell-disabled")
def debug_shell_disabled(ctx: CheckContext, rule: Rule) -> Out:
    if not is_systemd(ctx.fs):
        yield Outcome("notapplicable", "debug-shell.service", "Not a systemd system.")
        return
    links = [p for d in ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
             for p in ctx.fs.glob(f"{d}/*.wants/debug-shell.service")]
    if links:
        yield Outcome("fail", "debug-shell.service", "debug-shell.service is enabled: a root shell on tty9 from "
                      "early boot, without a password.", {"links": links})
    else:
        yield Outcome("pass", "debug-shell.service", "debug-shell.service is not enabled.")


@check("interactive-boot-disabled")
def interactive_boot_disabled(ctx: CheckContext, rule: Rule) -> Out:
    init = _text(ctx, "/etc/sysconfig/init")
    cfg = _config(ctx)
    legacy = not isinstance(cfg, ConfigReadError) and cfg.kind == "grub-legacy"
    if init is None and not legacy:
        yield Outcome("notapplicable", "/etc/sysconfig/init", "No legacy (SysV/upstart) interactive boot settings.")
        return
    prompt = [ln for ln in init or [] if ln.text.strip().startswith("PROMPT=")]
    confirm = [e for e in (cfg.entries if legacy else []) if "confirm" in e.args]  # type: ignore[union-attr]
    if prompt and prompt[-1].text.strip().split("=", 1)[1].strip().lower() != "no" or confirm:
        yield Outcome("fail", "/etc/sysconfig/init", "Interactive boot is allowed (PROMPT is not no, or a kernel "
                      "line says confirm): services can be skipped at the console.",
                      _ev(*(prompt[-1:] if prompt else []), *(e.where for e in confirm)))
    else:
        yield Outcome("pass", "/etc/sysconfig/init", "Interactive boot is off.", _ev(*prompt[-1:]))
