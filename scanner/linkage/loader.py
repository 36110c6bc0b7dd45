"""Emulate the target's dynamic loader: for each ELF object, the libraries ``ldd`` would
list for it, each resolved to a file inside the target, without running anything.

glibc (``elf/dl-load.c``, ``_dl_map_object``; ``elf/dl-deps.c``, ``_dl_map_object_deps``):

* dependencies are loaded breadth first from the object, each ``DT_NEEDED`` in order; a
  name already loaded (matching a loaded object's requested name, path or ``DT_SONAME``,
  the interpreter included) is not searched again;
* a name with a ``/`` is a path (after dynamic string token expansion);
* otherwise, in order: when the *requesting* object has no ``DT_RUNPATH``, the
  ``DT_RPATH`` of the requesting object, then of the object that loaded it, and on up to
  the executable (an object's ``DT_RPATH`` is ignored when it has a ``DT_RUNPATH``);
  ``LD_LIBRARY_PATH`` (not known offline: not used); the requesting object's own
  ``DT_RUNPATH`` (never inherited); ``/etc/ld.so.cache``, skipping entries in the system
  folders when the requesting object has ``DF_1_NODEFLIB``; the system folders, unless
  ``DF_1_NODEFLIB``;
* a candidate of another ELF class or machine is skipped and the search goes on
  (``open_verify``'s ``found_other_class``); a file there that is not ELF stops the lookup;
* ``$ORIGIN`` is the folder of the object as it was found (the executable's real folder),
  ``$LIB`` the loader's library folder (``lib64``, ``lib/x86_64-linux-gnu``...),
  ``$PLATFORM`` the kernel's AT_PLATFORM; in set-user-ID or set-group-ID programs an
  expanded path is used only inside a system folder (``_dl_dst_substitute``'s secure mode).

Differences from a live ``ld.so``: no ``LD_LIBRARY_PATH``/``LD_PRELOAD``/``/etc/ld.so.preload``,
no ``glibc-hwcaps`` or legacy hwcap subfolders (they depend on the CPU running the program),
relative ``DT_RPATH`` entries (relative to a working directory nobody knows) are skipped.
When the target has no ``ld.so.cache``, its ``ld.so.conf`` folders stand in for the cache.
How each loader is configured from the target's files (the cache, the search folders
compiled into the interpreter, musl's path file) is :mod:`scanner.linkage.loaderconfig`.

musl (``ldso/dynlink.c``, ``load_library``): ``libc.so``, ``libpthread.so`` and the other
names musl implements itself resolve to the loader; ``DT_RUNPATH`` or ``DT_RPATH`` of the
requesting object and all its loaders (musl inherits both), then the path file or default.
"""

from __future__ import annotations

import errno
import posixpath
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from scanner.errors import ErrorRecord
from scanner.inventory.elf import ElfRecord
from scanner.linkage import config as cfgmod
from scanner.linkage.loaderconfig import LoaderConfig, default_interpreters, make_config, read_cache
from scanner.target import PathLoop, RootFS

MUSL_RESERVED = ("c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet.")

Describe = Callable[[str], "list[ElfRecord | ErrorRecord]"]
"""Census of one resolved guest path the walk did not reach (empty: not an ELF file)."""


@dataclass
class _Loaded:
    path: str  # canonical guest path
    found: str  # the path it was found under ($ORIGIN is its folder)
    record: ElfRecord
    loader: "_Loaded | None"


@dataclass(frozen=True)
class Linkage:
    """The link closure of every dynamic object: ``closures[path][soname]`` is the
    canonical guest path ``ldd`` would show, or None when the loader finds nothing."""

    closures: Mapping[str, Mapping[str, str | None]]
    loaders: tuple[LoaderConfig, ...]
    cache: str  # ld.so.cache | ld.so.conf | none
    errors: tuple[ErrorRecord, ...] = field(default=())

    @property
    def unresolved(self) -> dict[str, list[str]]:
        """soname -> objects whose closure cannot resolve it."""
        out: dict[str, list[str]] = {}
        for path, closure in self.closures.items():
            for name, target in closure.items():
                if target is None:
                    out.setdefault(name, []).append(path)
        return out


class Loader:
    """The target's loader, configured from the target's own files."""

    def __init__(self, fs: RootFS, records: Mapping[str, ElfRecord], describe: Describe) -> None:
        self.fs = fs
        self.records = dict(records)
        self.describe = describe
        self.errors: dict[tuple[str, str], ErrorRecord] = {}
        self._resolved: dict[str, str | None] = {}
        self._extra: dict[str, ElfRecord | None] = {}
        self._configs: dict[str, LoaderConfig] = {}
        self._search: dict[tuple[object, ...], tuple[str, str] | None] = {}
        self._closures: dict[tuple[object, ...], tuple[dict[str, str | None], str | None]] = {}
        self._soname_in_dir: dict[str, dict[str, str]] | None = None
        self._dirs_seen: dict[str, bool] = {}  # search folder -> whether it exists
        self.cache_kind, self._cache = read_cache(fs, self._error)
        self._default_interp = default_interpreters(self.records.values())

    # ---- configuration ------------------------------------------------------------
    def _error(self, path: str, message: str) -> None:
        self.errors.setdefault((path, message), ErrorRecord(path, "linkage", message))

    @property
    def configs(self) -> tuple[LoaderConfig, ...]:
        """The loader configurations met so far (one per interpreter)."""
        return tuple(self._configs.values())

    def interpreter_for(self, rec: ElfRecord) -> str | None:
        if rec.interpreter:
            return rec.interpreter
        interp = self._default_interp.get(rec.abi)
        if interp:
            return interp
        for cand in cfgmod.INTERPRETERS.get((rec.machine, rec.elf_class), ()):
            if self.fs.exists(cand):
                return cand
        return None

    def config_for(self, interpreter: str | None, rec: ElfRecord) -> LoaderConfig:
        key = interpreter or f"<none:{rec.abi}>"
        cfg = self._configs.get(key)
        if cfg is None:
            cfg = self._configs[key] = make_config(self.fs, interpreter, rec, self._error)
        return cfg

    # ---- files ----------------------------------------------------------------------
    def canonical(self, path: str) -> str | None:
        """Resolve a guest path inside the root; None when it leads nowhere."""
        try:
            return self._resolved[path]
        except KeyError:
            pass
        try:
            res: str | None = self.fs.resolve(path)
        except PathLoop:
            self._error(path, "symbolic link loop (more than 40 links)")
            res = None
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self._error(path, f"cannot resolve: {exc.strerror or exc}")
            res = None
        self._resolved[path] = res
        return res

    def record(self, path: str) -> ElfRecord | None:
        """The census record of a canonical path, parsed on demand when the walk did not
        reach it (outside the walked file systems)."""
        rec = self.records.get(path)
        if rec is not None:
            return rec
        if path in self._extra:
            return self._extra[path]
        if not self.fs.is_file(path):
            self._extra[path] = None
            return None
        got = None
        for r in self.describe(path):
            if isinstance(r, ErrorRecord):
                self._error(r.path, r.message)
            else:
                got = r
        self._extra[path] = got
        return got

    def _dir_exists(self, d: str) -> bool:
        got = self._dirs_seen.get(d)
        if got is None:
            got = self._dirs_seen[d] = self.fs.is_dir(d)
        return got

    def _try(self, candidate: str, want: tuple[int, str, str]) -> tuple[str, str] | None | bool:
        """glibc's ``open_verify``: (canonical, found) when the candidate exists and is an
        object of the wanted ABI; None when absent or of another ABI (search goes on);
        False when it exists but is not a loadable ELF file (the lookup stops)."""
        canon = self.canonical(candidate)
        if canon is None:
            return None
        rec = self.records.get(canon)
        if rec is None:
            if not self.fs.is_file(canon):
                return None
            rec = self.record(canon)
        if rec is None:
            self._error(candidate, "not an ELF file where the loader looks for a library")
            return False
        if rec.abi != want:
            return None
        return canon, candidate

    def prefetch(self, describe_many: DescribeMany, rounds: int = 4) -> None:
        """Read ahead, in bulk, the cache's candidates for every name the known objects
        need, round after round as new libraries bring new names."""
        if self.cache_kind != "ld.so.cache":
            return
        assert isinstance(self._cache, dict)
        pending = list(self.records.values())
        asked: set[str] = set()
        for _ in range(rounds):
            wanted: set[str] = set()
            for rec in pending:
                for name in rec.needed:
                    if name in asked or "/" in name:
                        continue
                    asked.add(name)
                    for cand in self._cache.get(name, ()):
                        canon = self.canonical(cand)
                        if canon and canon not in self.records and canon not in self._extra:
                            wanted.add(canon)
            if not wanted:
                return
            found: dict[str, ElfRecord | None] = dict.fromkeys(wanted)
            for r in describe_many(sorted(wanted)):
                if isinstance(r, ErrorRecord):
                    self._error(r.path, r.message)
                else:
                    found[r.path] = r
            self._extra.update(found)
            pending = [r for r in found.values() if r is not None]

    # ---- search ---------------------------------------------------------------------
    def _expand(self, entry: str, obj: _Loaded, cfg: LoaderConfig, secure: bool) -> str | None:
        s = entry
        if "$" in s:
            origin = posixpath.dirname(obj.found) or "/"
            for token, value in (("ORIGIN", origin), ("LIB", cfg.lib), ("PLATFORM", cfg.platform)):
                s = s.replace("${" + token + "}", value).replace("$" + token, value)
            if "$" in s:
                self._error(obj.path, f"unknown dynamic string token in {entry!r}")
                return None
            if secure and not any(
                posixpath.normpath(s) == d or posixpath.normpath(s).startswith(d.rstrip("/") + "/")
                for d in cfg.system_dirs
            ):
                return None  # set-user-ID program: untrusted expanded path is ignored
        if not s.startswith("/"):
            return None  # relative to an unknown working directory
        return posixpath.normpath(s)

    def _dirs(self, entries: Iterable[str], obj: _Loaded, cfg: LoaderConfig, secure: bool) -> list[str]:
        out = []
        for e in entries:
            if e == "":
                continue
            d = self._expand(e, obj, cfg, secure)
            if d is not None:
                out.append(d)
        return out

    def _in_dirs(self, name: str, dirs: Iterable[str], want: tuple[int, str, str]) -> tuple[str, str] | None | bool:
        for d in dirs:
            if not self._dir_exists(d):
                continue  # as ld.so marks a search folder "nonexisting" once, and skips it after
            got = self._try(posixpath.join(d, name), want)
            if got is not None:
                return got
        return None

    def _cache_lookup(self, name: str, want: tuple[int, str, str], nodeflib: bool,
                      cfg: LoaderConfig) -> tuple[str, str] | None | bool:
        if self.cache_kind == "ld.so.cache":
            assert isinstance(self._cache, dict)
            for path in self._cache.get(name, ()):
                if nodeflib and posixpath.dirname(path) in cfg.system_dirs:
                    continue
                got = self._try(path, want)
                if got is not None:
                    return got
            return None
        dirs = [d for d in self._cache if not (nodeflib and d in cfg.system_dirs)]
        got = self._in_dirs(name, dirs, want)
        if got is not None:
            return got
        # ldconfig keys its cache by DT_SONAME: a library whose file name differs from its
        # soname (no symlink shipped) is still found in a folder ld.so.conf names
        index = self._sonames_by_dir()
        for d in dirs:
            found = index.get(d, {}).get(name)
            if found and self.records[found].abi == want:
                return found, found
        return None

    def _sonames_by_dir(self) -> dict[str, dict[str, str]]:
        if self._soname_in_dir is None:
            idx: dict[str, dict[str, str]] = {}
            for r in self.records.values():
                if r.soname and r.is_library:
                    idx.setdefault(posixpath.dirname(r.path), {}).setdefault(r.soname, r.path)
            self._soname_in_dir = idx
        return self._soname_in_dir

    def _search_dirs(self, obj: _Loaded, cfg: LoaderConfig, secure: bool) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
        """The DT_RPATH folders of ``obj``'s loader chain and its own DT_RUNPATH ones, as
        the loader would search them for a name ``obj`` needs."""
        chain_rpath: list[tuple[str, ...]] = []
        if cfg.flavour == "musl":
            link: _Loaded | None = obj
            while link is not None:
                chain_rpath.append(tuple(self._dirs(link.record.runpath or link.record.rpath, link, cfg, secure)))
                link = link.loader
            return tuple(chain_rpath), ()
        if not obj.record.runpath:
            link = obj
            while link is not None:
                if not link.record.runpath:
                    chain_rpath.append(tuple(self._dirs(link.record.rpath, link, cfg, secure)))
                link = link.loader
        return tuple(chain_rpath), tuple(self._dirs(obj.record.runpath, obj, cfg, secure))

    def search(self, name: str, obj: _Loaded, cfg: LoaderConfig, want: tuple[int, str, str], secure: bool,
               dirs: tuple[tuple[tuple[str, ...], ...], tuple[str, ...]] | None = None) -> tuple[str, str] | None:
        """Find ``name`` requested by ``obj`` (see the module docstring for the order).
        ``dirs``: :meth:`_search_dirs` for ``obj``, when the caller already has them."""
        if "/" in name:
            p = self._expand(name, obj, cfg, secure)
            hit = self._try(p, want) if p else None
            return hit if isinstance(hit, tuple) else None
        chain_rpath, runpath = dirs if dirs is not None else self._search_dirs(obj, cfg, secure)
        nodeflib = obj.record.nodeflib and cfg.flavour == "glibc"
        key = (name, chain_rpath, runpath, nodeflib, want, cfg.interpreter)
        if key in self._search:
            return self._search[key]
        got: tuple[str, str] | None | bool = None
        for folders in chain_rpath:
            got = self._in_dirs(name, folders, want)
            if got is not None:
                break
        if got is None and runpath:
            got = self._in_dirs(name, runpath, want)
        if got is None and cfg.flavour == "glibc":
            got = self._cache_lookup(name, want, nodeflib, cfg)
        if got is None and not nodeflib:
            got = self._in_dirs(name, cfg.system_dirs, want)
        result = got if isinstance(got, tuple) else None
        self._search[key] = result
        return result

    # ---- closure ----------------------------------------------------------------------
    def closure(self, rec: ElfRecord) -> dict[str, str | None]:
        """The sonames ``ldd`` lists for ``rec`` (interpreter line aside), in load order,
        each with its canonical path or None."""
        if rec.static or rec.type not in ("executable", "pie", "shared-library"):
            return {}
        # objects alike in all but their own path load the same libraries when the path
        # can play no part: no soname and no "/" in a needed name (nothing loaded can be
        # the object itself by name), no $ORIGIN in its own search folders; and none of
        # what it loads turned out to be the object itself (checked below)
        key = None
        if rec.soname is None and not any("/" in n for n in rec.needed) and not any(
                "ORIGIN" in e for e in (*rec.rpath, *rec.runpath)):
            key = (rec.needed, rec.rpath, rec.runpath, rec.interpreter, rec.abi, rec.setuid or rec.setgid,
                   rec.flags_1)
            known = self._closures.get(key)
            if known is not None:
                out, missing = known
                if missing:
                    self._error(rec.path, missing)
                return dict(out)
        out, missing = self._closure(rec)
        if key is not None and rec.path not in out.values():
            self._closures[key] = (out, missing)
            return dict(out)
        return out

    def _closure(self, rec: ElfRecord) -> tuple[dict[str, str | None], str | None]:
        """:meth:`closure`, worked out; and the error about ``rec`` itself, if any."""
        missing = None
        interp = self.interpreter_for(rec)
        cfg = self.config_for(interp, rec)
        want = rec.abi
        secure = rec.setuid or rec.setgid
        main = _Loaded(rec.path, rec.path, rec, None)
        by_name: dict[str, _Loaded | None] = {rec.path: main}
        by_path: dict[str, _Loaded] = {rec.path: main}
        if rec.soname:
            by_name[rec.soname] = main
        if interp:
            canon = self.canonical(interp)
            irec = self.record(canon) if canon else None
            if canon is None or irec is None:
                missing = f"interpreter {interp} not found in the target"
                self._error(rec.path, missing)
            else:
                rtld = _Loaded(canon, interp, irec, None)
                by_path[canon] = rtld
                by_name[interp] = rtld
                if irec.soname:
                    by_name[irec.soname] = rtld
        out: dict[str, str | None] = {}
        queue = deque([main])
        while queue:
            obj = queue.popleft()
            dirs = None  # the folders obj's names are searched in: worked out at its first search
            for name in obj.record.needed:
                if name in by_name:
                    hit = by_name[name]
                    out.setdefault(name, hit.path if hit else None)
                    continue
                if cfg.flavour == "musl" and name.startswith("lib") and any(
                    name[3:].startswith(r) for r in MUSL_RESERVED
                ):
                    rtld_canon = self.canonical(interp) if interp else None
                    out[name] = rtld_canon
                    by_name[name] = by_path.get(rtld_canon or "")
                    continue
                if dirs is None and "/" not in name:
                    dirs = self._search_dirs(obj, cfg, secure)
                got = self.search(name, obj, cfg, want, secure, dirs)
                if got is None:
                    by_name[name] = None
                    out[name] = None
                    continue
                canon, found = got
                existing = by_path.get(canon)
                if existing is None:
                    lrec = self.record(canon)
                    assert lrec is not None  # _try verified it
                    existing = _Loaded(canon, found, lrec, obj)
                    by_path[canon] = existing
                    if lrec.soname:
                        by_name.setdefault(lrec.soname, existing)
                    queue.append(existing)
                by_name[name] = existing
                out[name] = canon
        return out, missing


DescribeMany = Callable[[list[str]], "list[ElfRecord | ErrorRecord]"]
"""Census of many resolved guest paths at once (in parallel)."""


def resolve_all(fs: RootFS, records: Iterable[ElfRecord], describe: Describe,
                describe_many: DescribeMany | None = None) -> Linkage:
    """Closures of every dynamic executable and library of a census. With
    ``describe_many``, libraries outside the census that the target's ``ld.so.cache``
    offers for the names being linked are read ahead in bulk; anything else the loader
    meets is read on demand by ``describe``."""
    recs = {r.path: r for r in records}
    loader = Loader(fs, recs, describe)
    if describe_many is not None:
        loader.prefetch(describe_many)
    closures = {path: loader.closure(r) for path, r in recs.items() if r.type in ("executable", "pie", "shared-library")}
    return Linkage(
        closures=closures,
        loaders=loader.configs,
        cache=loader.cache_kind,
        errors=tuple(loader.errors.values()),
    )
