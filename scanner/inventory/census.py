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
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING
import multiprocessing

from scanner.errors import ErrorRecord
from scanner.inventory.elf import ELF_MAGIC, ElfParseError, ElfRecord, parse_elf
from scanner.target import RootFS, WalkEntry, normpath

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
    if cache is not None:
        walked = _regular_entries(fs, tuple(exclude), tuple(paths) or ("/",), True)
        files_iter = _through_cache(fs, walked, cache, misses, account)
    else:
        files_iter = _regular_files(fs, tuple(exclude), tuple(paths) or ("/",))
    _parse_all(fs, files_iter, jobs or os.cpu_count() or 1, False, account, started)
    if cache is not None:
        by_path: dict[str, list[ElfRecord | ErrorRecord]] = {}
        for r in results:
            if r.path in misses:
                by_path.setdefault(r.path, []).append(r)
        for p, st in misses.items():
            cache.store(p, st, by_path.get(p, []))
    errors = [ErrorRecord(p, "target", f"cannot walk: {msg}") for p, msg in fs.walk_errors]
    elf_records = sorted((r for r in results if isinstance(r, ElfRecord)), key=lambda r: r.path)
    errors += sorted((r for r in results if isinstance(r, ErrorRecord)), key=lambda r: r.path)
    return Census(tuple(elf_records), tuple(errors), files)


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
