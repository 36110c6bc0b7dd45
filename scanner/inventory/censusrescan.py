"""The census with a cache (``--cache``): a rescan answered from the census cache.

A rescan of an unchanged system is a walk and a comparison per folder: on several cores,
workers walk whole subtrees (the largest first) and compare each folder's listing with the
stored one (:func:`cached_parallel`); in one process, file by file (:func:`through_cache`).
Only the files that changed are censused again.
"""

from __future__ import annotations

import marshal
import multiprocessing
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import accumulate
from typing import Any

from scanner.errors import ErrorRecord
from scanner.inventory import censuswork
from scanner.inventory.cache import CensusCache
from scanner.inventory.cachecodec import (Flat, decode_flat, dump_records, file_entry, flat, listing, parse_listing,
                                          parse_records, unflat)
from scanner.inventory.censuswork import OneByOne, census_file, init_worker
from scanner.inventory.elf import ElfRecord
from scanner.inventory.memo import file_key
from scanner.target import RootFS, WalkEntry, normpath

Account = Callable[[list[ElfRecord | ErrorRecord], int], None]
"""Takes the records of a number of files censused (or answered)."""


def store_misses(cache: CensusCache, records: Iterable[ElfRecord | ErrorRecord],
                  misses: dict[str, os.stat_result]) -> None:
    """Keep what the census found for each file the cache could not answer (nothing: not
    an ELF file)."""
    by_path: dict[str, list[ElfRecord | ErrorRecord]] = {}
    for r in records:
        if r.path in misses:
            by_path.setdefault(r.path, []).append(r)
    for p, st in misses.items():
        cache.store(p, st, by_path.get(p, []))


def through_cache(fs: RootFS, entries: Iterable[WalkEntry], cache: CensusCache,
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
_worker_cache: CensusCache | None = None  # inherited by forked workers (its dictionaries only)

Subtree = tuple[list[Flat], list[str], int, list[tuple[str, str]], list[tuple[bytes, bytes, str]],
                list[bytes], int]


def _cached_subtree(top: str, exclude: tuple[str, ...], shallow: bool = False) -> Subtree:
    """In a worker: walk ``top`` (only its own files when ``shallow``) folder by folder. A
    folder whose listing (names and file identities) is the one the (inherited) cache
    holds is answered whole; any other is looked at file by file, its changed files
    censused, and its new row returned. Returns the records, the paths censused again,
    the file count, walk errors, the rows to write, the stored folders now gone or
    empty, and how many stored folders this part of the tree had."""
    assert _worker_cache is not None
    fs, cache = censuswork.worker_fs(), _worker_cache
    out: list[Flat] = []
    missed: list[str] = []
    rows: list[tuple[bytes, bytes, str]] = []
    gone: list[bytes] = []
    count = 0
    del fs.walk_errors[:]
    stored = cache.folders(top, below=not shallow)
    known = len(stored)
    for folder, files in fs.folders(top, exclude, recursive=not shallow):
        fb = folder.encode("utf-8", "surrogateescape")
        row = stored.pop(fb, None)
        if not files:
            if row is not None:
                gone.append(fb)
            continue
        count += len(files)
        # the listing as the cache keeps it (file_key, inline: this runs once per file)
        now = "\0".join([f"{n}\0{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_mode}:"
                         f"{st.st_uid}:{st.st_gid}" if st is not None else f"{n}\0" for n, st in files])
        prefix = folder.rstrip("/") + "/"
        blob = now.encode("utf-8", "surrogateescape")
        # an empty key (a file without lstat, or one that could not be read) never matches
        if row is not None and row[0] == blob and b"\0\0" not in blob and blob[-1:] != b"\0":
            if row[1] == "{}":
                continue  # unchanged, and not an ELF file among them: the common case
            stored_items = parse_records(row[1])
            answered = [decode_flat(prefix + name, items) for name, items in stored_items.items()]
            # only files of this listing (a tampered row must not add files that are not there)
            if None not in answered and stored_items.keys() <= {n for n, _st in files}:
                for got in answered:
                    out.extend(got)  # type: ignore[arg-type]
                continue
        # changed (or a stored entry that does not decode): file by file
        old_keys = parse_listing(row[0]) if row is not None else {}
        old_items = parse_records(row[1]) if row is not None else {}
        names = [n for n, _st in files]
        keys = [file_key(st) if st is not None else "" for _n, st in files]
        items: dict[str, list[Any]] = {}
        for i, name in enumerate(names):
            p = prefix + name
            if keys[i] and old_keys.get(name) == keys[i]:
                got = decode_flat(p, old_items.get(name, []))
                if got is not None:
                    out.extend(got)
                    if got:
                        items[name] = old_items[name]
                    continue
            records = census_file(fs, p)
            out.extend(flat(r) for r in records)
            if keys[i]:
                missed.append(p)
            keys[i], kept_items = file_entry(files[i][1], records)
            if keys[i] and kept_items:
                items[name] = kept_items
        rows.append((fb, listing(names, keys), dump_records(items)))
    gone.extend(stored)  # folders the cache had here that the walk no longer met
    return out, missed, count, list(fs.walk_errors), rows, gone, known


def _cached_parts(parts: list[tuple[str, bool]], exclude: tuple[str, ...]) -> bytes:
    """:func:`_cached_subtree` for each ``(folder, shallow)`` of a bundle, in one answer,
    marshalled: it is plain values only (a rescan of /usr sends about 11 MB of them), which
    marshal encodes and decodes several times faster than pickle, keeping no memo of every
    string. It travels only from a forked worker to its parent."""
    out: list[Flat] = []
    missed: list[str] = []
    rows: list[tuple[bytes, bytes, str]] = []
    gone: list[bytes] = []
    errors: list[tuple[str, str]] = []
    count = known = 0
    for top, shallow in parts:
        o, m, c, e, r, g, k = _cached_subtree(top, exclude, shallow)
        out += o
        missed += m
        rows += r
        gone += g
        errors += e
        count += c
        known += k
    return marshal.dumps((out, missed, count, errors, rows, gone, known))


def _split(fs: RootFS, tops: tuple[str, ...], weight: Callable[[str], int],
           limit: int) -> tuple[list[str], list[str], list[str]]:
    """How to share a walk among workers: folders walked whole by one worker (each
    holding at most about ``limit`` of the cache's ``weight``), the folders above them
    (a worker takes their own files) and the files named as tops (for the parent)."""
    files: list[str] = []
    trees: list[str] = []
    flats: list[str] = []
    queue: list[str] = []
    for top in tops:
        top = normpath(top)
        if fs.is_dir(top):
            queue.append(fs.resolve(top))
        elif fs.is_file(top):
            files.append(fs.resolve(top))
        else:
            fs.on_walk_error(top, FileNotFoundError(2, "no such file or directory"))
    while queue:
        d = queue.pop()
        if weight(d) <= limit:
            trees.append(d)
            continue
        try:
            entries = fs.listdir(d)
        except OSError as exc:
            fs.on_walk_error(d, exc)
            continue
        flats.append(d)
        for name, kind in entries:
            p = d.rstrip("/") + "/" + name
            if kind == "dir" and fs.descend(p):
                queue.append(p)
    return trees, flats, files


def _outside(stored: Iterable[bytes], trees: list[str], flats: list[str]) -> list[bytes]:
    """The stored folders that no part of this walk covers (a folder near the top that is gone)."""
    tree_set = {t.encode("utf-8", "surrogateescape") for t in trees}
    flat_set = {f.encode("utf-8", "surrogateescape") for f in flats}
    out = []
    for p in stored:
        if p in flat_set:
            continue
        folder = p
        while folder not in tree_set and folder not in (b"", b"/"):
            folder = folder.rpartition(b"/")[0]
        if folder not in tree_set:
            out.append(p)
    return out


def cached_parallel(fs: RootFS, exclude: tuple[str, ...], tops: tuple[str, ...], cache: CensusCache, jobs: int,
                    account: Account, started: Callable[[], None] | None, split_min: int) -> None:
    """The census with a cache on several cores: a rescan of an unchanged system is a walk
    and a comparison per folder, all of it done by the workers, each walking whole
    subtrees (the largest first), none given less than ``split_min`` of the cache's weight."""
    global _worker_cache
    own = cache.sizes()  # each stored folder's listing size: about 60 bytes a file
    paths = sorted(own)
    cumulative = [0, *accumulate(own[p] for p in paths)]

    def weight(d: str, below: bool = True) -> int:
        b = d.rstrip("/").encode("utf-8", "surrogateescape")
        if not b:  # the root: everything
            return cumulative[-1] if below else own.get(b"/", 0)
        w = own.get(b, 0)
        if below:  # every stored folder under d sorts between d + "/" and d + "0"
            w += cumulative[bisect_left(paths, b + b"0")] - cumulative[bisect_left(paths, b + b"/")]
        return w

    total = sum(weight(fs.resolve(normpath(t))) for t in tops if fs.is_dir(normpath(t)))
    limit = max(total // (jobs * 8), split_min)
    trees, flats, files = _split(fs, tops, weight, limit)
    # the largest parts first, so no worker is left with a big one at the end; the many
    # small ones are bundled up to the same size (one task each would cost more in
    # messages than in work)
    parts = sorted([(weight(d), d, False) for d in trees] + [(weight(d, False), d, True) for d in flats], reverse=True)
    tasks: list[list[tuple[str, bool]]] = []
    size = limit
    for w, d, shallow in parts:
        if size >= limit:
            tasks.append([])
            size = 0
        tasks[-1].append((d, shallow))
        size += w
    _worker_cache = cache  # before the fork: each worker reads its own folders through it
    ctx = multiprocessing.get_context("fork")
    covered = 0
    failed: list[tuple[str, bool]] = []  # parts whose worker died (the pool with it)
    try:
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init_worker, initargs=(fs,)) as pool:
            futures: list[tuple[Future[bytes], list[tuple[str, bool]]]] = []
            for task in tasks:
                try:
                    futures.append((pool.submit(_cached_parts, task, exclude), task))
                except BrokenProcessPool:
                    failed += task
            if started:
                started()
            misses: dict[str, os.stat_result] = {}
            walked = (WalkEntry(p, "file", None) for p in files)
            for p in through_cache(fs, walked, cache, misses, account):
                records = census_file(fs, p)
                account(records, 1)
                cache.store(p, misses[p], records)
            for fut, task in futures:
                try:
                    payload = fut.result()
                except BrokenProcessPool:
                    failed += task
                    continue
                flat_records, missed, count, walk_errors, rows, gone, known = marshal.loads(payload)
                account([unflat(t) for t in flat_records], count)
                covered += known
                cache.counted(count - len(missed), missed)
                cache.put_folders(rows, gone)
                for path, msg in walk_errors:
                    fs.walk_errors.append((path, msg))
    finally:
        _worker_cache = None
    if failed:
        _redo_parts(fs, failed, exclude, cache, jobs, account)
    if tops == ("/",) and not exclude and covered != cache.count():
        # a whole-target scan: stored folders outside every walked part are gone too
        cache.put_folders([], _outside(cache.stored_folders(), trees, flats))


def _redo_parts(fs: RootFS, parts: list[tuple[str, bool]], exclude: tuple[str, ...], cache: CensusCache,
                jobs: int, account: Callable[[list[ElfRecord | ErrorRecord], int], None]) -> None:
    """The parts of a rescan whose worker died, done here as a rescan in one process does
    them (each file answered by the cache, or censused and stored), with the files the
    cache cannot answer censused one at a time by fresh workers."""
    walked = (WalkEntry(folder.rstrip("/") + "/" + name, "file", st)
              for top, shallow in parts
              for folder, entries in fs.folders(top, exclude, recursive=not shallow)
              for name, st in entries)
    misses: dict[str, os.stat_result] = {}
    todo = list(through_cache(fs, walked, cache, misses, account))
    with OneByOne(fs, jobs, False) as solos:
        got = solos.run(todo)
    for p in todo:
        records = got[p][0]
        account(records, 1)
        if p in misses:
            cache.store(p, misses[p], records)
