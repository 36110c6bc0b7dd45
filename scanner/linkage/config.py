"""The target's own loader configuration, read from its files, never from this host's.

* ``/etc/ld.so.cache``: glibc's binary cache, new format ``glibc-ld.so.cache1.1`` (glibc
  2.32+ writes only this) and the old ``ld.so-1.7.0`` format with or without a new-format
  part after it (``sysdeps/generic/dl-cache.h``). Entries with a non-zero hwcap field are
  ``glibc-hwcaps/`` subdirectory variants chosen by the CPU at run time; an offline scan
  does not know the CPU and takes the baseline entries only.
* ``/etc/ld.so.conf`` with ``include`` globs (relative to the including file's folder, as
  ``ldconfig``'s ``parse_conf_include`` does), ``hwcap`` lines ignored, ``#`` comments,
  directories separated by white space, ``:`` or ``,``. Used when the target has no cache
  (a root folder no ``ldconfig`` ran on yet): it tells which folders ``ldconfig`` would put
  in the cache.
* the loader's compiled-in system directories (glibc's ``system_dirs``, what ``ld.so
  --help`` prints as "system search path"), read from the target's own ``ld.so`` file: they
  differ between Debian (multiarch ``/lib/x86_64-linux-gnu``) and RHEL (``/lib64``), and the
  binary is the only authority. A distribution-shaped default is used when it cannot be read.
* musl: ``/etc/ld-musl-$ARCH.path`` or musl's default ``/lib:/usr/local/lib:/usr/lib``.
"""

from __future__ import annotations

import posixpath
import re
import struct
from dataclasses import dataclass

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.target import RootFS
from scanner.target.base import Budget

CACHE_MAGIC_NEW = b"glibc-ld.so.cache"
CACHE_VERSION_NEW = b"1.1"
CACHE_MAGIC_OLD = b"ld.so-1.7.0"

#: Debian multiarch tuples, for the fallback when ld.so's own directories cannot be read
MULTIARCH = {
    "x86_64": "x86_64-linux-gnu", "i386": "i386-linux-gnu", "aarch64": "aarch64-linux-gnu",
    "arm": "arm-linux-gnueabihf", "ppc64le": "powerpc64le-linux-gnu", "ppc64": "powerpc64-linux-gnu",
    "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu", "mips64el": "mips64el-linux-gnuabi64",
    "mipsel": "mipsel-linux-gnu", "loongarch64": "loongarch64-linux-gnu", "x32": "x86_64-linux-gnux32",
    "ppc": "powerpc-linux-gnu", "sparc64": "sparc64-linux-gnu", "alpha": "alpha-linux-gnu",
}
#: AT_PLATFORM as the kernel reports it, for ``$PLATFORM``
PLATFORMS = {"i386": "i686", "arm": "v7l", "ppc64le": "power8", "ppc64": "power8", "s390x": "z900"}
#: where distributions put each ABI's glibc interpreter (for libraries, which name none)
INTERPRETERS = {
    ("x86_64", 64): ("/lib64/ld-linux-x86-64.so.2",),
    ("i386", 32): ("/lib/ld-linux.so.2",),
    ("x32", 32): ("/libx32/ld-linux-x32.so.2",),
    ("aarch64", 64): ("/lib/ld-linux-aarch64.so.1",),
    ("arm", 32): ("/lib/ld-linux-armhf.so.3", "/lib/ld-linux.so.3"),
    ("ppc64le", 64): ("/lib64/ld64.so.2",),
    ("ppc64", 64): ("/lib64/ld64.so.1",),
    ("s390x", 64): ("/lib/ld64.so.1",),
    ("riscv64", 64): ("/lib/ld-linux-riscv64-lp64d.so.1",),
    ("mips64el", 64): ("/lib64/ld.so.1",),
    ("loongarch64", 64): ("/lib64/ld-linux-loongarch-lp64d.so.1",),
}
#: the lib64 architectures of RHEL/Fedora/SUSE (for the fallback)
LIB64 = frozenset({"x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "riscv64", "mips64el", "loongarch64", "sparc64"})

_SYSTEM_DIRS_RE = re.compile(rb"(?:/[A-Za-z0-9_.+-][A-Za-z0-9_./+-]*/\x00){1,16}")


class ConfigError(Exception):
    """A loader configuration file is malformed."""


@dataclass(frozen=True)
class CacheEntry:
    """One ``ld.so.cache`` entry: a library name and the path ``ldconfig`` recorded."""

    name: str
    path: str
    flags: int
    hwcap: int = 0


def parse_ld_so_cache(data: bytes) -> list[CacheEntry]:
    """Entries of an ``ld.so.cache`` file in the cache's own order. Raises
    :class:`ConfigError` on a malformed or truncated cache."""
    if data.startswith(CACHE_MAGIC_NEW):
        return _parse_new(data, 0)
    if data.startswith(CACHE_MAGIC_OLD):
        if len(data) < 16:
            raise ConfigError("ld.so.cache: truncated old-format header")
        (nlibs,) = struct.unpack_from("<I", data, 12)
        end_old = 16 + nlibs * 12
        if end_old > len(data):
            raise ConfigError(f"ld.so.cache: {nlibs} old-format entries run past the end")
        new_at = (end_old + 7) & ~7
        if data[new_at:].startswith(CACHE_MAGIC_NEW):
            return _parse_new(data, new_at)
        entries = []
        strings = end_old
        for i in range(nlibs):
            flags, key, value = struct.unpack_from("<iII", data, 16 + i * 12)
            entries.append(CacheEntry(_cstr(data, strings + key), _cstr(data, strings + value), flags))
        return entries
    raise ConfigError("ld.so.cache: unknown format (no glibc-ld.so.cache or ld.so-1.7.0 magic)")


def _parse_new(data: bytes, base: int) -> list[CacheEntry]:
    hdr = 48
    if len(data) < base + hdr:
        raise ConfigError("ld.so.cache: truncated header")
    if data[base + 17 : base + 20] != CACHE_VERSION_NEW:
        raise ConfigError(f"ld.so.cache: unsupported version {data[base + 17 : base + 20]!r}")
    flags_byte = data[base + 28]
    # bit 0..1: endianness of the writer (0 unset, 1 invalid, 2 little, 3 big)
    order = ">" if flags_byte & 3 == 3 else "<"
    nlibs, len_strings = struct.unpack_from(order + "II", data, base + 20)
    entsize = 24
    if base + hdr + nlibs * entsize > len(data):
        raise ConfigError(f"ld.so.cache: {nlibs} entries run past the end of the file")
    entries = []
    for i in range(nlibs):
        flags, key, value, _osv, hwcap = struct.unpack_from(order + "iIIIQ", data, base + hdr + i * entsize)
        # string offsets are relative to the start of the new-format header
        entries.append(CacheEntry(_cstr(data, base + key), _cstr(data, base + value), flags, hwcap))
    return entries


def _cstr(data: bytes, off: int) -> str:
    if not 0 <= off < len(data):
        raise ConfigError(f"ld.so.cache: string offset {off} outside the file")
    end = data.find(b"\0", off)
    if end < 0:
        raise ConfigError("ld.so.cache: unterminated string")
    return data[off:end].decode("utf-8", "surrogateescape")


def parse_ld_so_conf(fs: RootFS, path: str = "/etc/ld.so.conf", errors: list[tuple[str, str]] | None = None) -> list[str]:
    """Library folders named by ``ld.so.conf`` and everything it includes, in order,
    without duplicates. Unreadable includes are noted in ``errors`` and skipped; a file
    already read (by its path after links) is not read again. The work is bounded, since
    the target may be hostile (``include /x/*/*/*/*/*/*/*/*.conf`` over links to ``.``):
    include nesting (``MAX_INCLUDE_DEPTH``), files read (``MAX_CONFIG_FILES``), the
    folders all its globs visit together (``MAX_GLOB_DIRS``) and their matches
    (``MAX_GLOB_MATCHES``), bytes read in all (``MAX_CONFIG_TOTAL_BYTES``). Hitting one is
    an error naming the cap and stops the reading; the folders found until then are used.
    One file is read up to ``MAX_CONFIG_BYTES`` and ``MAX_CONFIG_LINES`` (an error, then
    the rest of the reading goes on)."""
    out: list[str] = []
    seen_files: set[str] = set()
    errs = errors if errors is not None else []
    budget = Budget()
    reading: list[str] = []  # the files being read, outermost first: a cap names the innermost

    def parse(file: str, depth: int) -> None:
        try:
            canon = fs.resolve(file)
            if canon in seen_files:
                return
            if depth > limits.MAX_INCLUDE_DEPTH:
                raise LimitExceeded("MAX_INCLUDE_DEPTH", limits.MAX_INCLUDE_DEPTH, f"{file} is included {depth} deep")
            seen_files.add(canon)
            budget.spend("MAX_CONFIG_FILES", 1, file)
            data = fs.read(canon, limits.MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            if depth or not isinstance(exc, FileNotFoundError):  # a missing top-level ld.so.conf is normal
                errs.append((file, f"cannot read: {exc.strerror or exc}"))
            return
        reading.append(file)
        budget.spend("MAX_CONFIG_TOTAL_BYTES", len(data), file)
        if len(data) > limits.MAX_CONFIG_BYTES:
            errs.append((file, str(LimitExceeded("MAX_CONFIG_BYTES", limits.MAX_CONFIG_BYTES,
                                                 "read up to the cap, without its last partial line"))))
            data = data[: data.rfind(b"\n", 0, limits.MAX_CONFIG_BYTES) + 1]
        lines = data.decode("utf-8", "surrogateescape").splitlines()
        if len(lines) > limits.MAX_CONFIG_LINES:
            errs.append((file, str(LimitExceeded("MAX_CONFIG_LINES", limits.MAX_CONFIG_LINES, "read up to the cap"))))
            del lines[limits.MAX_CONFIG_LINES:]
        for raw in lines:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            word, _, rest = line.partition(" ")
            if word == "include" or line.startswith("include\t"):
                for pattern in (rest or line[8:]).split():
                    if not pattern.startswith("/"):
                        pattern = posixpath.join(posixpath.dirname(file), pattern)
                    for inc in fs.glob(pattern, budget):
                        parse(inc, depth + 1)
                continue
            if word == "hwcap":
                continue
            for d in re.split(r"[\s:,]+", line):
                d = d.split("=", 1)[0]  # legacy "dir=libc5" type suffix
                if d.startswith("/"):
                    d = posixpath.normpath(d)
                    if d not in out:
                        out.append(d)
        reading.pop()

    try:
        parse(path, 0)
    except LimitExceeded as exc:
        errs.append((reading[-1] if reading else path, str(exc)))
    return out


def system_dirs_from_ld_so(data: bytes) -> list[str] | None:
    """The system search directories compiled into a glibc ``ld.so`` (its ``system_dirs``
    string: consecutive NUL-terminated absolute folders, each ending in ``/``), or None
    when no such run is in the file."""
    best: list[str] | None = None
    for m in _SYSTEM_DIRS_RE.finditer(data):
        dirs = [d.decode("ascii") for d in m.group(0).split(b"\x00") if d]
        if not all("lib" in d for d in dirs):
            continue
        if best is None or len(dirs) > len(best):
            best = dirs
    if not best:
        return None
    return [d.rstrip("/") or "/" for d in best]


def fallback_system_dirs(fs: RootFS, machine: str, elf_class: int) -> list[str]:
    """Distribution-shaped default folders when ld.so cannot tell: Debian multiarch when the
    target has the tuple's folder, else ``lib64`` on 64-bit RHEL-family systems."""
    tuple_ = MULTIARCH.get(machine)
    if tuple_ and (fs.is_dir(f"/usr/lib/{tuple_}") or fs.is_dir(f"/lib/{tuple_}")):
        return [f"/lib/{tuple_}", f"/usr/lib/{tuple_}", "/lib", "/usr/lib"]
    if elf_class == 64 and machine in LIB64:
        return ["/lib64", "/usr/lib64"]
    return ["/lib", "/usr/lib"]


def musl_arch(interpreter: str) -> str | None:
    """``x86_64`` for ``/lib/ld-musl-x86_64.so.1``; None for other interpreters."""
    base = posixpath.basename(interpreter)
    if base.startswith("ld-musl-") and ".so" in base:
        return base[len("ld-musl-") : base.index(".so")]
    return None


def musl_search_path(fs: RootFS, arch: str, errors: list[tuple[str, str]] | None = None) -> list[str]:
    """musl's library path: ``/etc/ld-musl-ARCH.path`` (folders separated by new lines or
    ``:``), or its built-in ``/lib:/usr/local/lib:/usr/lib`` when there is none. A file
    that is there but cannot be read (not a regular file, a link loop) or is larger than
    ``MAX_CONFIG_BYTES`` (read up to the cap) is noted in ``errors``."""
    path = f"/etc/ld-musl-{arch}.path"
    try:
        data = fs.read(path, limits.MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        if errors is not None and not isinstance(exc, FileNotFoundError):
            errors.append((path, f"cannot read: {exc.strerror or exc}; using musl's built-in path"))
        return ["/lib", "/usr/local/lib", "/usr/lib"]
    if len(data) > limits.MAX_CONFIG_BYTES:
        if errors is not None:
            errors.append((path, str(LimitExceeded("MAX_CONFIG_BYTES", limits.MAX_CONFIG_BYTES, "read up to the cap"))))
        data = data[: data.rfind(b"\n", 0, limits.MAX_CONFIG_BYTES) + 1]
    return [d for d in re.split(r"[\n:]+", data.decode("utf-8", "surrogateescape")) if d.startswith("/")]
