"""How each loader of the target searches, read from the target's own files: its
``/etc/ld.so.cache`` (else the folders of ``/etc/ld.so.conf``, as ldconfig would cache
them), the search folders compiled into each glibc interpreter (``elf/dl-load.c``'s
``system_dirs``, found in the interpreter's bytes; else the distribution's usual
folders), musl's path file (``ldso/dynlink.c``: ``/etc/ld-musl-ARCH.path``, else its
built-in path), and which interpreter a library (which names none) is loaded by.

Every function reports what it cannot read through ``error(path, message)`` (the
loader's error records) and goes on with what stands in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scanner import limits
from scanner.inventory.elf import ElfRecord
from scanner.limits import LimitExceeded
from scanner.linkage import config as cfgmod
from scanner.target import RootFS

Report = Callable[[str, str], None]
"""Where a problem of the loader's configuration goes: ``error(path, message)``."""

Cache = dict[str, list[str]] | list[str]
"""``ld.so.cache`` as soname -> paths, or (no usable cache) the folders ld.so.conf names."""


@dataclass(frozen=True)
class LoaderConfig:
    """How one interpreter of the target searches (a root may hold several: 32/64-bit,
    glibc and musl)."""

    interpreter: str  # as named by PT_INTERP
    flavour: str  # glibc | musl
    system_dirs: tuple[str, ...]
    lib: str  # what $LIB expands to
    platform: str  # what $PLATFORM expands to
    source: str  # where system_dirs came from: ld.so | fallback | musl-path


def read_cache(fs: RootFS, error: Report) -> tuple[str, Cache]:
    """The target's ``ld.so.cache`` (its entries without hwcap, by name), else the folders
    of its ``ld.so.conf``; and which it is: ``ld.so.cache``, ``ld.so.conf`` or ``none``.
    A cache over MAX_LD_SO_CACHE_BYTES or malformed is not used (a cache cut short would
    be misread)."""
    cap = limits.MAX_LD_SO_CACHE_BYTES
    try:
        data = fs.read("/etc/ld.so.cache", cap + 1)
    except FileNotFoundError:
        data = None
    except OSError as exc:
        error("/etc/ld.so.cache", f"cannot read: {exc.strerror or exc}")
        data = None
    if data is not None and len(data) > cap:  # a cache cut short would be misread: not parsed
        error("/etc/ld.so.cache", str(LimitExceeded("MAX_LD_SO_CACHE_BYTES", cap, "not read; using ld.so.conf instead")))
        data = None
    if data is not None:
        try:
            entries = cfgmod.parse_ld_so_cache(data)
        except cfgmod.ConfigError as exc:
            error("/etc/ld.so.cache", f"{exc}; using ld.so.conf instead")
        else:
            by_name: dict[str, list[str]] = {}
            for e in entries:
                if e.hwcap == 0:
                    by_name.setdefault(e.name, []).append(e.path)
            return "ld.so.cache", by_name
    errs: list[tuple[str, str]] = []
    dirs = cfgmod.parse_ld_so_conf(fs, errors=errs)
    for p, msg in errs:
        error(p, msg)
    return ("ld.so.conf" if dirs or fs.exists("/etc/ld.so.conf") else "none"), dirs


def default_interpreters(records: Iterable[ElfRecord]) -> dict[tuple[int, str, str], str]:
    """For libraries (which name no interpreter): per ABI the interpreter the target's
    executables use most, else the distribution's well-known path."""
    counts: Counter[tuple[tuple[int, str, str], str]] = Counter()
    for r in records:
        if r.interpreter and r.is_executable:
            counts[(r.abi, r.interpreter)] += 1
    out: dict[tuple[int, str, str], str] = {}
    for (abi, interp), _n in counts.most_common():
        out.setdefault(abi, interp)
    return out


def make_config(fs: RootFS, interpreter: str | None, rec: ElfRecord, error: Report) -> LoaderConfig:
    """The configuration of the loader ``interpreter`` (musl's or glibc's, told by its
    name), for objects of ``rec``'s machine and class."""
    platform = cfgmod.PLATFORMS.get(rec.machine, rec.machine)
    arch = cfgmod.musl_arch(interpreter or "")
    if arch:
        errs: list[tuple[str, str]] = []
        musl_dirs = cfgmod.musl_search_path(fs, arch, errs)
        for p, msg in errs:
            error(p, msg)
        return LoaderConfig(interpreter or "", "musl", tuple(musl_dirs), "lib", platform, "musl-path")
    dirs = interpreter_dirs(fs, interpreter, error) if interpreter else None
    source = "ld.so"
    if not dirs:
        dirs = cfgmod.fallback_system_dirs(fs, rec.machine, rec.elf_class)
        source = "fallback"
    lib = dirs[0].strip("/") or "lib"
    return LoaderConfig(interpreter or "", "glibc", tuple(dirs), lib, platform, source)


def interpreter_dirs(fs: RootFS, interpreter: str, error: Report) -> list[str] | None:
    """The search folders compiled into the glibc interpreter at ``interpreter`` (None:
    it does not tell). One that is there but cannot be read, or is larger than
    ``MAX_INTERPRETER_BYTES`` (not read: it is never held whole past the cap), is an
    error record; the usual folders then stand in."""
    cap = limits.MAX_INTERPRETER_BYTES
    try:
        data = fs.read(interpreter, cap + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        error(interpreter, f"cannot read the interpreter: {exc.strerror or exc}; its search folders were guessed")
        return None
    if len(data) > cap:
        error(interpreter, str(LimitExceeded("MAX_INTERPRETER_BYTES", cap, "the interpreter was not read; "
                                                                           "its search folders were guessed")))
        return None
    return cfgmod.system_dirs_from_ld_so(data)
