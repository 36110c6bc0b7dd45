"""Walk a target and census every ELF file in it, in parallel.

Every regular file is opened once and its first four bytes compared with the ELF magic
(the x bit is not a criterion: plugins, libraries shipped 0644 and mis-packaged programs are
ELF too); only ELF files are parsed and hashed. Workers are processes (pyelftools is pure
Python); batches of paths go out while the walk goes on (:mod:`scanner.inventory.censuswork`:
one file's census, the workers, the retry after a worker died).

One driver, :func:`take_census`; the cache is its strategy (:class:`CensusStrategy`):
:class:`NoCache` parses every file; :class:`Cached` fills the census cache on a first scan
and answers a rescan from it (:mod:`scanner.inventory.censusrescan`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import chain
from typing import Any, NamedTuple, Protocol
import multiprocessing

from scanner.errors import ErrorRecord
from scanner.inventory.cache import CensusCache
from scanner.inventory.censusrescan import Account, cached_parallel, store_misses, through_cache
from scanner.inventory.censuswork import (Kept, OneByOne, batch_result, census_batch, census_batch_with, census_file,
                                         census_keyed, census_keyed_with, init_worker)
from scanner.inventory.elf import ElfRecord
from scanner.target import RootFS, WalkEntry, normpath

__all__ = ["BATCH", "SPLIT_MIN", "Cached", "Census", "CensusStrategy", "NoCache", "Progress", "census_file",
           "census_paths", "take_census"]

BATCH = 192
SPLIT_MIN = 4096  # listing bytes (about 60 a file): the smallest part of a rescan given to a worker

Progress = Callable[[int, int], None]
"""Called with (files examined so far, ELF files found so far)."""


@dataclass(frozen=True)
class Census:
    """The ELF files of a target and what could not be read."""

    elves: tuple[ElfRecord, ...]
    errors: tuple[ErrorRecord, ...]
    files: int  # regular files examined


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
               started: Callable[[], None] | None = None, keep: Callable[[Kept], None] | None = None) -> None:
    """Census ``paths`` in batches, in ``jobs`` processes (1: in this one), handing each
    batch's records to ``account`` as it completes (and, with ``keep``, what the cache
    keeps of each file). ``started`` is called once the worker processes exist (with
    the fork start method, ProcessPoolExecutor forks them all at the first submit), so
    the caller may start threads without forking them."""

    # what the cache keeps, by batch: handed over in the walk's order once all are in, so
    # a folder split across batches is stored in the order a rescan will list it (not in
    # the order the batches finished, which would make its first rescan see it changed)
    kept_by_batch: dict[int, Kept] = {}

    def done(result: Any, n: int, seq: int) -> None:
        if keep is not None:
            result, kept_by_batch[seq] = result
        account(result, n)

    def hand_over() -> None:
        if keep is not None:
            for seq in sorted(kept_by_batch):
                keep(kept_by_batch.pop(seq))

    if jobs <= 1 or not fs.forkable:  # e.g. one libguestfs appliance: calls are serial anyway
        if started:
            started()
        for seq, batch in enumerate(_batches(paths, BATCH)):
            done(census_keyed_with(fs, batch) if keep else census_batch_with(fs, batch, light), len(batch), seq)
        hand_over()
        return
    from scanner.inventory import elfparse  # noqa: F401,PLC0415 (once, before the fork: not in every worker)

    ctx = multiprocessing.get_context("fork")
    batches = enumerate(_batches(paths, BATCH))
    failed: list[tuple[int, list[str]]] = []  # batches whose worker died (the pool with it)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init_worker, initargs=(fs,)) as pool:
        pending: dict[Future[Any], tuple[int, list[str]]] = {}

        def settle(fut: Future[Any]) -> None:
            seq, batch = pending.pop(fut)
            try:
                result = fut.result()
            except BrokenProcessPool:
                failed.append((seq, batch))
            else:
                done(result, len(batch), seq)

        for seq, batch in batches:
            try:
                fut = pool.submit(census_keyed, batch) if keep else pool.submit(census_batch, batch, light)
            except BrokenProcessPool:
                failed.append((seq, batch))
                break
            pending[fut] = (seq, batch)
            if started:
                started()
                started = None
            if len(pending) >= jobs * 4:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    settle(fut)
                if failed:
                    break
        if started:  # nothing was submitted (every file answered by the cache, or none at all)
            started()
        for fut in list(pending):
            settle(fut)
    if failed:  # the failed batches, then the rest of the walk, one file at a time
        with OneByOne(fs, jobs, light) as solos:
            for seq, batch in chain(sorted(failed), batches):
                done(batch_result(batch, solos.run(batch), keep is not None), len(batch), seq)
    hand_over()


class Walk(NamedTuple):
    """What one census walks: the target, the guest paths under it, the exclusions, the
    worker processes, and whom to tell once the workers exist (``started``: see
    :func:`_parse_all`)."""

    fs: RootFS
    tops: tuple[str, ...]
    exclude: tuple[str, ...]
    jobs: int
    started: Callable[[], None] | None


class CensusStrategy(Protocol):
    """How a census gets each file's records: parsed, or answered by a cache."""

    def run(self, walk: Walk, account: Account, results: list[ElfRecord | ErrorRecord]) -> None:
        """Hand every file's records to ``account`` (``results``: what was accounted so far)."""
        ...


class NoCache:
    """Every file parsed, in batches (:func:`_parse_all`)."""

    def run(self, walk: Walk, account: Account, results: list[ElfRecord | ErrorRecord]) -> None:
        files = _regular_files(walk.fs, walk.exclude, walk.tops)
        _parse_all(walk.fs, files, walk.jobs, False, account, walk.started)


class Cached:
    """The census through the census cache. A first scan (the cache does not know the
    target) keeps the batch pipeline, whose load balance suits parsing everything, and the
    workers say what the cache should keep of each file they read; a rescan on several
    cores lets workers walk subtrees and compare folders; a rescan in one process goes
    file by file."""

    def __init__(self, cache: CensusCache) -> None:
        self.cache = cache

    def run(self, walk: Walk, account: Account, results: list[ElfRecord | ErrorRecord]) -> None:
        fs, cache = walk.fs, self.cache
        if not cache.known:
            files = _regular_files(fs, walk.exclude, walk.tops)
            _parse_all(fs, files, walk.jobs, False, account, walk.started, cache.keep)
        elif walk.jobs > 1 and fs.forkable:
            cached_parallel(fs, walk.exclude, walk.tops, cache, walk.jobs, account, walk.started, SPLIT_MIN)
        else:
            cache.preload()  # every folder will be looked up
            misses: dict[str, os.stat_result] = {}
            walked = _regular_entries(fs, walk.exclude, walk.tops, True)
            _parse_all(fs, through_cache(fs, walked, cache, misses, account), walk.jobs, False, account, walk.started)
            if misses:
                store_misses(cache, results, misses)


def take_census(
    fs: RootFS,
    *,
    jobs: int | None = None,
    exclude: Iterable[str] = (),
    paths: Iterable[str] = ("/",),
    progress: Progress | None = None,
    started: Callable[[], None] | None = None,
    cache: CensusCache | None = None,
) -> Census:
    """Census every ELF file of ``fs`` under ``paths`` (folders walked, files taken as
    they are; guest paths). ``jobs`` worker processes (default: all cores; 1 parses in
    this process). With ``cache``, through the census cache (:class:`Cached`)."""
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

    strategy: CensusStrategy = Cached(cache) if cache is not None else NoCache()
    walk = Walk(fs, tuple(paths) or ("/",), tuple(exclude), jobs or os.cpu_count() or 1, started)
    strategy.run(walk, account, results)
    errors = [ErrorRecord(p, "target", f"cannot walk: {msg}") for p, msg in fs.walk_errors]
    elf_records = sorted((r for r in results if isinstance(r, ElfRecord)), key=lambda r: r.path)
    errors += sorted((r for r in results if isinstance(r, ErrorRecord)), key=lambda r: r.path)
    return Census(tuple(elf_records), tuple(errors), files)


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
