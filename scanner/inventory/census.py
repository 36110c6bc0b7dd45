"""Walk a target and census every ELF file in it, in parallel.

Every regular file is opened once and its first four bytes compared with the ELF magic
(the x bit is not a criterion: plugins, libraries shipped 0644 and mis-packaged programs are
ELF too); only ELF files are parsed and hashed. Workers are processes (pyelftools is pure
Python); batches of paths go out while the walk goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, fields
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
import multiprocessing

from scanner.errors import ErrorRecord
from scanner.inventory.elf import ELF_MAGIC, ElfParseError, ElfRecord, parse_elf
from scanner.inventory.cache import file_key
from scanner.target import DirectoryRoot, RootFS, WalkEntry, normpath

if TYPE_CHECKING:
    from scanner.inventory.cache import CensusCache

BATCH = 192

Progress = Callable[[int, int], None]
"""Called with (files examined so far, ELF files found so far)."""


@dataclass(frozen=True)
class Census:
    """The ELF files of a target and what could not be read."""

    elves: tuple[ElfRecord, ...]
    errors: tuple[ErrorRecord, ...]
    files: int  # regular files examined


def census_file(fs: RootFS, path: str, *, light: bool = False) -> list[ElfRecord | ErrorRecord]:
    """Census one regular file by its resolved guest path: nothing when it is not an ELF
    file; else its :class:`ElfRecord`, an :class:`ErrorRecord` for each problem met, or
    only an :class:`ErrorRecord` when it cannot be parsed. ``light``: see
    :func:`~scanner.inventory.elf.parse_elf`."""
    try:
        fh, st = fs.open_resolved(path)
    except OSError as exc:
        return [ErrorRecord(path, "inventory", f"cannot open: {exc.strerror or exc}")]
    with fh:
        try:
            if st.st_size < 4 or fh.read(4) != ELF_MAGIC:
                return []
            fh.seek(0)
            rec, notes = parse_elf(path, fh, st.st_mode, st.st_size, st.st_uid, st.st_gid, light=light)
        except ElfParseError as exc:
            return [ErrorRecord(path, "inventory", str(exc))]
        except OSError as exc:
            return [ErrorRecord(path, "inventory", f"cannot read: {exc.strerror or exc}")]
        except MemoryError:
            return [ErrorRecord(path, "inventory", "file too large to parse")]
    return [rec, *(ErrorRecord(path, "inventory", n) for n in notes)]


def _regular_files(fs: RootFS, exclude: tuple[str, ...], tops: tuple[str, ...]) -> Iterator[str]:
    for entry in _regular_entries(fs, exclude, tops, False):
        yield entry.path


def _regular_entries(fs: RootFS, exclude: tuple[str, ...], tops: tuple[str, ...], stats: bool) -> Iterator[WalkEntry]:
    for top in tops:
        top = normpath(top)
        try:
            kind = "file" if fs.is_file(top) else "dir" if fs.is_dir(top) else None
        except OSError:
            kind = None
        if kind is None:
            fs.on_walk_error(top, FileNotFoundError(2, "no such file or directory"))
            continue
        entries = ([WalkEntry(fs.resolve(top), "file")] if kind == "file" else
                   fs.walk(fs.resolve(top), stats=stats))
        for entry in entries:
            if entry.kind != "file":
                continue
            if exclude and any(fnmatchcase(entry.path, pat) for pat in exclude):
                continue
            yield entry


# ---- worker side ------------------------------------------------------------------------
_worker_fs: RootFS | None = None  # one per worker process, set by the pool initializer


def _init_worker(fs: RootFS) -> None:
    global _worker_fs
    _worker_fs = fs.for_worker()


def _census_batch(paths: list[str], light: bool = False) -> list[ElfRecord | ErrorRecord]:
    assert _worker_fs is not None
    return _census_batch_with(_worker_fs, paths, light)


def _batches(paths: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for p in paths:
        batch.append(p)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _parse_all(fs: RootFS, paths: Iterable[str], jobs: int, light: bool,
               account: Callable[[list[ElfRecord | ErrorRecord], int], None],
               started: Callable[[], None] | None = None) -> None:
    """Census ``paths`` in batches, in ``jobs`` processes (1: in this one), handing each
    batch's records to ``account`` as it completes. ``started`` is called once the
    worker processes exist (with the fork start method, ProcessPoolExecutor forks them
    all at the first submit), so the caller may start threads without forking them."""
    if jobs <= 1 or not fs.forkable:  # e.g. one libguestfs appliance: calls are serial anyway
        if started:
            started()
        for batch in _batches(paths, BATCH):
            account(_census_batch_with(fs, batch, light), len(batch))
        return
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(fs,)) as pool:
        pending: dict[Future[list[ElfRecord | ErrorRecord]], int] = {}
        for batch in _batches(paths, BATCH):
            pending[pool.submit(_census_batch, batch, light)] = len(batch)
            if started:
                started()
                started = None
            if len(pending) >= jobs * 4:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    account(fut.result(), pending.pop(fut))
        if started:  # nothing was submitted (every file answered by the cache, or none at all)
            started()
        for fut in list(pending):
            account(fut.result(), pending.pop(fut))


def take_census(
    fs: RootFS,
    *,
    jobs: int | None = None,
    exclude: Iterable[str] = (),
    paths: Iterable[str] = ("/",),
    progress: Progress | None = None,
    started: Callable[[], None] | None = None,
    cache: "CensusCache | None" = None,
) -> Census:
    """Census every ELF file of ``fs`` under ``paths`` (folders walked, files taken as
    they are; guest paths). ``jobs`` worker processes (default: all cores; 1 parses in
    this process)."""
    results: list[ElfRecord | ErrorRecord] = []
    files = 0
    elves = 0

    def account(rs: list[ElfRecord | ErrorRecord], n: int) -> None:
        nonlocal files, elves
        results.extend(rs)
        files += n
        elves += sum(1 for r in rs if isinstance(r, ElfRecord))
        if progress:
            progress(files, elves)

    files_iter: Iterable[str]
    misses: dict[str, os.stat_result] = {}
    jobs = jobs or os.cpu_count() or 1
    # a rescan (the cache knows this target): workers walk subtrees and look up each file;
    # a first scan keeps the batch pipeline, whose load balance suits parsing everything
    by_subtree = cache is not None and cache.known and jobs > 1 and fs.forkable
    if by_subtree:
        _cached_parallel(fs, tuple(exclude), tuple(paths) or ("/",), cache, jobs, account, started)  # type: ignore[arg-type]
    elif cache is not None:
        walked = _regular_entries(fs, tuple(exclude), tuple(paths) or ("/",), True)
        files_iter = _through_cache(fs, walked, cache, misses, account)
    else:
        files_iter = _regular_files(fs, tuple(exclude), tuple(paths) or ("/",))
    if not by_subtree:
        _parse_all(fs, files_iter, jobs, False, account, started)
    if cache is not None and misses:
        _store_misses(cache, results, misses)
    errors = [ErrorRecord(p, "target", f"cannot walk: {msg}") for p, msg in fs.walk_errors]
    elf_records = sorted((r for r in results if isinstance(r, ElfRecord)), key=lambda r: r.path)
    errors += sorted((r for r in results if isinstance(r, ErrorRecord)), key=lambda r: r.path)
    return Census(tuple(elf_records), tuple(errors), files)


def _store_misses(cache: "CensusCache", records: Iterable[ElfRecord | ErrorRecord],
                  misses: dict[str, os.stat_result]) -> None:
    """Keep what the census found for each file the cache could not answer (nothing: not
    an ELF file)."""
    by_path: dict[str, list[ElfRecord | ErrorRecord]] = {}
    for r in records:
        if r.path in misses:
            by_path.setdefault(r.path, []).append(r)
    for p, st in misses.items():
        cache.store(p, st, by_path.get(p, []))


def _through_cache(fs: RootFS, entries: Iterable[WalkEntry], cache: "CensusCache",
                   misses: dict[str, os.stat_result],
                   account: Callable[[list[ElfRecord | ErrorRecord], int], None]) -> Iterator[str]:
    """The paths the cache cannot answer (their stat kept in ``misses``); the answers it
    has go straight to ``account``."""
    hits: list[ElfRecord | ErrorRecord] = []
    answered = 0
    for p, _kind, st in entries:
        if st is None:
            try:
                st = fs.lstat(p)
            except OSError:
                yield p  # the census says what is wrong with it
                continue
        hit = cache.lookup(p, st)
        if hit is None:
            misses[p] = st
            yield p
        else:
            hits.extend(hit)
            answered += 1
            if answered >= 2048:  # accounted in batches: progress is not redrawn per file
                account(hits, answered)
                hits, answered = [], 0
    if answered:
        account(hits, answered)


# ---- with a cache, in parallel: workers walk whole subtrees --------------------------------------
_worker_cache: "CensusCache | None" = None  # inherited by forked workers (its dictionaries only)

Subtree = tuple[list[tuple[Any, ...]], list[tuple[str, os.stat_result]], int, list[tuple[str, str]], bytes]
_ELF_FIELDS = tuple(f.name for f in fields(ElfRecord))


def _flat(r: ElfRecord | ErrorRecord) -> tuple[Any, ...]:
    """A record as a plain tuple: cheap to send back from a worker."""
    if isinstance(r, ElfRecord):
        return (True, *(getattr(r, f) for f in _ELF_FIELDS))
    return (False, r.path, r.stage, r.message)


def _unflat(t: tuple[Any, ...]) -> ElfRecord | ErrorRecord:
    return ElfRecord(*t[1:]) if t[0] else ErrorRecord(*t[1:])


def _cached_subtree(top: str, exclude: tuple[str, ...], track: bool = True) -> Subtree:
    """In a worker: walk ``top``, answer what the (inherited) cache can, census the rest.
    Returns the records, the misses with their stat, the file count, walk errors and the
    cache keys seen."""
    assert _worker_fs is not None and _worker_cache is not None
    fs, cache = _worker_fs, _worker_cache
    out: list[tuple[Any, ...]] = []
    missed: list[tuple[str, os.stat_result]] = []
    count = 0
    seen: list[bytes] = []
    del fs.walk_errors[:]
    if isinstance(fs, DirectoryRoot):
        walked: Iterable[tuple[str, os.stat_result | None]] = fs.files_with_stats(fs.resolve(top), exclude)
    else:
        walked = ((p, st) for p, _kind, st in _regular_entries(fs, exclude, (top,), True))
    entries, key_of = cache.subtree(top), file_key
    for p, st in walked:
        count += 1
        k = p.encode("utf-8", "surrogateescape")
        if track:  # only a whole-target scan forgets what it did not see
            seen.append(k)
        if st is None:
            out.extend(_flat(r) for r in census_file(fs, p))
            continue
        hit = entries.get(k)
        if hit is not None and hit[0] == key_of(st):
            if hit[1] == "[]":
                continue  # not an ELF file, as before: the common case, nothing to decode
            records = cache.decode(p, hit[1])
            if records is not None:
                out.extend(_flat(r) for r in records)
                continue
        out.extend(_flat(r) for r in census_file(fs, p))
        missed.append((p, st))
    return out, missed, count, list(fs.walk_errors), b"\0".join(seen)


def _split(fs: RootFS, tops: tuple[str, ...], exclude: tuple[str, ...], depth: int = 2) -> tuple[list[str], list[str]]:
    """Folders to hand to workers (those ``depth`` levels down) and the files met on the
    way there (for the parent)."""
    subtrees: list[str] = []
    files: list[str] = []
    level: list[str] = []
    for top in tops:
        top = normpath(top)
        if fs.is_dir(top):
            level.append(fs.resolve(top))
        elif fs.is_file(top):
            files.append(fs.resolve(top))
        else:
            fs.on_walk_error(top, FileNotFoundError(2, "no such file or directory"))
    for _ in range(depth):
        nxt: list[str] = []
        for d in level:
            try:
                entries = fs.listdir(d)
            except OSError as exc:
                fs.on_walk_error(d, exc)
                continue
            for name, kind in entries:
                p = d.rstrip("/") + "/" + name
                if kind == "dir":
                    if fs.descend(p):
                        nxt.append(p)
                elif kind == "file" and not (exclude and any(fnmatchcase(p, pat) for pat in exclude)):
                    files.append(p)
        level = nxt
    subtrees.extend(level)
    return subtrees, files


def _cached_parallel(fs: RootFS, exclude: tuple[str, ...], tops: tuple[str, ...], cache: "CensusCache", jobs: int,
                     account: Callable[[list[ElfRecord | ErrorRecord], int], None],
                     started: Callable[[], None] | None) -> None:
    """The census with a cache on several cores: a rescan of an unchanged system is a walk
    and a lookup per file, which is spread over the workers too."""
    global _worker_cache
    subtrees, files = _split(fs, tops, exclude)
    # largest first (by what the cache holds under each), so no worker is left with the
    # biggest folder at the end
    subtrees.sort(key=cache.count_below, reverse=True)
    _worker_cache = cache  # before the fork: each worker reads its own folders' entries through it
    ctx = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(fs,)) as pool:
            whole = tops == ("/",) and not exclude
            futures = [pool.submit(_cached_subtree, d, exclude, whole) for d in subtrees]
            if started:
                started()
            misses: dict[str, os.stat_result] = {}
            walked = (WalkEntry(p, "file", None) for p in files)
            for p in _through_cache(fs, walked, cache, misses, account):
                records = census_file(fs, p)
                account(records, 1)
                cache.store(p, misses[p], records)
            for fut in futures:
                flat, missed, count, walk_errors, seen = fut.result()
                records = [_unflat(t) for t in flat]
                account(records, count)
                if seen:
                    cache._seen.update(seen.split(b"\0"))
                cache.counted(count - len(missed), [p for p, _st in missed])
                _store_misses(cache, records, dict(missed))
                for path, msg in walk_errors:
                    fs.walk_errors.append((path, msg))
    finally:
        _worker_cache = None


def census_paths(fs: RootFS, paths: list[str], *, jobs: int | None = None,
                 light: bool = False) -> list[ElfRecord | ErrorRecord]:
    """Census a list of resolved guest paths in parallel (records of non-ELF files are
    simply absent)."""
    out: list[ElfRecord | ErrorRecord] = []
    jobs = jobs or os.cpu_count() or 1
    if len(paths) < BATCH:
        jobs = 1  # a pool costs more than it saves
    _parse_all(fs, paths, jobs, light, lambda rs, _n: out.extend(rs))
    return out


def _census_batch_with(fs: RootFS, paths: list[str], light: bool = False) -> list[ElfRecord | ErrorRecord]:
    return [r for p in paths for r in census_file(fs, p, light=light)]
