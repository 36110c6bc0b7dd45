"""Walk a target and census every ELF file in it, in parallel.

Every regular file is opened once and its first four bytes compared with the ELF magic
(the x bit is not a criterion: plugins, libraries shipped 0644 and mis-packaged programs are
ELF too); only ELF files are parsed and hashed. Workers are processes (pyelftools is pure
Python); batches of paths go out while the walk goes on.

A worker may die (the OOM killer's SIGKILL, a crash in a C extension): the census goes on.
The files it held, and the rest of the walk, are then censused one at a time by fresh
workers (:class:`_OneByOne`), so that a death names its file; a file on which a worker dies
twice becomes an error record. Anything a file's parse raises becomes an error record for
that file (:func:`census_file`): no file of the target can end the census.
"""

from __future__ import annotations

import marshal
import os
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import accumulate, chain
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as ready

from scanner.errors import ErrorRecord
from scanner.limits import LimitExceeded
from scanner.inventory.elf import ELF_MAGIC, ElfParseError, ElfRecord, parse_elf
from scanner.inventory.cachecodec import (DIED, Flat, decode_flat, dump_records, file_entry, flat, listing,
                                          parse_listing, parse_records, split_path, unflat)
from scanner.inventory.memo import file_key
from scanner.target import RootFS, WalkEntry, normpath

if TYPE_CHECKING:
    from scanner.inventory.cache import CensusCache

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


def census_file(fs: RootFS, path: str, *, light: bool = False) -> list[ElfRecord | ErrorRecord]:
    """Census one regular file by its resolved guest path: nothing when it is not an ELF
    file; else its :class:`ElfRecord`, an :class:`ErrorRecord` for each problem met, or
    only an :class:`ErrorRecord` when it cannot be parsed. ``light``: see
    :func:`~scanner.inventory.elf.parse_elf`."""
    return _census_file(fs, path, light)[0]


def _census_file(fs: RootFS, path: str, light: bool = False) -> tuple[list[ElfRecord | ErrorRecord], os.stat_result | None]:
    """:func:`census_file`, with the stat of the file as opened (None: it could not be)."""
    try:
        fh, st = fs.open_resolved(path)
    except OSError as exc:
        return [ErrorRecord(path, "inventory", f"cannot open: {exc.strerror or exc}")], None
    with fh:
        try:
            if st.st_size < 4 or fh.read(4) != ELF_MAGIC:
                return [], st
            fh.seek(0)
            rec, notes = parse_elf(path, fh, st.st_mode, st.st_size, st.st_uid, st.st_gid, light=light)
        except (ElfParseError, LimitExceeded) as exc:
            return [ErrorRecord(path, "inventory", str(exc))], st
        except OSError as exc:
            return [ErrorRecord(path, "inventory", f"cannot read: {exc.strerror or exc}")], st
        except MemoryError:
            return [ErrorRecord(path, "inventory", "out of memory while parsing the file")], st
        except Exception as exc:  # noqa: BLE001 - one file's surprise never ends the census
            return [ErrorRecord(path, "inventory", f"unexpected {type(exc).__name__} while parsing: {exc}")], st
    return [rec, *(ErrorRecord(path, "inventory", n) for n in notes)], st


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


Kept = dict[str, dict[str, tuple[str, list[Any]]]]
"""What a first scan gives the cache: folder -> file name -> (identity, records as JSON items)."""


def _census_keyed(paths: list[str]) -> tuple[list[ElfRecord | ErrorRecord], Kept]:
    assert _worker_fs is not None
    return _census_keyed_with(_worker_fs, paths)


def _census_keyed_with(fs: RootFS, paths: list[str]) -> tuple[list[ElfRecord | ErrorRecord], Kept]:
    """The census of ``paths``, and what the cache keeps of each file, keyed by the
    file's identity as it was opened (so a first scan with ``--cache`` needs no stat of
    its own: the worker that reads a file says what it read)."""
    return _batch_result(paths, {p: _census_file(fs, p) for p in paths}, True)


FileResult = tuple[list[ElfRecord | ErrorRecord], os.stat_result | None]
"""One file's census records, and its stat as opened (None: it could not be)."""


def _batch_result(paths: list[str], got: dict[str, FileResult], keyed: bool) -> Any:
    """A batch's answer from its files' results, as a worker gives it: the records (and,
    ``keyed``, what the cache keeps of each file)."""
    out: list[ElfRecord | ErrorRecord] = []
    kept: Kept = {}
    for p in paths:
        records, st = got[p]
        out += records
        if keyed:
            folder, name = split_path(p)
            kept.setdefault(folder, {})[name] = file_entry(st, records)
    return (out, kept) if keyed else out


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
            done(_census_keyed_with(fs, batch) if keep else _census_batch_with(fs, batch, light), len(batch), seq)
        hand_over()
        return
    from scanner.inventory import elfparse  # noqa: F401,PLC0415 (once, before the fork: not in every worker)

    ctx = multiprocessing.get_context("fork")
    batches = enumerate(_batches(paths, BATCH))
    failed: list[tuple[int, list[str]]] = []  # batches whose worker died (the pool with it)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(fs,)) as pool:
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
                fut = pool.submit(_census_keyed, batch) if keep else pool.submit(_census_batch, batch, light)
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
        with _OneByOne(fs, jobs, light) as solos:
            for seq, batch in chain(sorted(failed), batches):
                done(_batch_result(batch, solos.run(batch), keep is not None), len(batch), seq)
    hand_over()


# ---- when a worker dies ---------------------------------------------------------------------
def _serve_one_by_one(fs: RootFS, conn: Connection, light: bool) -> None:
    """A retry worker: census the paths the parent sends, one at a time, answering each
    with its :data:`FileResult`, until the parent closes the pipe."""
    _init_worker(fs)
    assert _worker_fs is not None
    with conn:
        while True:
            try:
                path = conn.recv()
            except EOFError:
                return
            conn.send(_census_file(_worker_fs, path, light))


class _Solo:
    """One retry worker process and the parent's end of its pipe."""

    def __init__(self, ctx: Any, fs: RootFS, light: bool) -> None:
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_serve_one_by_one, args=(fs, theirs, light), daemon=True)
        self.proc.start()
        theirs.close()  # only the worker holds it now: its death reads as the end of the pipe

    def end(self) -> str:
        """Close the pipe and reap the process (killed if it does not end by itself): how
        it ended, in words."""
        self.conn.close()
        self.proc.join(10)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join()
        code = self.proc.exitcode or 0
        return f"signal {-code}" if code < 0 else f"exit status {code}"


class _OneByOne:
    """``jobs`` workers, each given one file at a time: after a worker died, so that a
    death names its file. A dead worker is replaced by a fresh one; a file on which one
    dies twice becomes an error record (the death may have been the machine's memory
    pressure, not the file: it gets a second chance).

    The workers come from a fork server, a fresh single-threaded process: by now the scan
    may run threads of its own, and a process forked from a busy thread can inherit a lock
    held for ever."""

    def __init__(self, fs: RootFS, jobs: int, light: bool) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["scanner.inventory.census", "scanner.inventory.elfparse"])
        self.fs, self.jobs, self.light = fs, jobs, light
        self.idle: list[_Solo] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for solo in self.idle:
            solo.end()
        self.idle = []

    def run(self, paths: list[str]) -> dict[str, FileResult]:
        """Each path's census, by path."""
        todo = deque((p, 0) for p in paths)  # (path, deaths on it so far)
        busy: dict[Connection, tuple[_Solo, str, int]] = {}
        out: dict[str, FileResult] = {}
        try:
            while todo or busy:
                while todo and len(busy) < self.jobs:
                    path, deaths = todo.popleft()
                    solo = self.idle.pop() if self.idle else _Solo(self.ctx, self.fs, self.light)
                    busy[solo.conn] = (solo, path, deaths)
                    try:
                        solo.conn.send(path)
                    except OSError:
                        pass  # dead already: its pipe reads as ended below
                for conn in cast(list[Connection], ready(list(busy))):
                    solo, path, deaths = busy.pop(conn)
                    try:
                        out[path] = conn.recv()
                    except (EOFError, OSError):
                        how = solo.end()
                        if deaths:
                            out[path] = ([ErrorRecord(path, "inventory", f"{DIED} ({how}) on this file twice")], None)
                        else:
                            todo.append((path, deaths + 1))
                    else:
                        self.idle.append(solo)
        finally:
            for solo, _path, _deaths in busy.values():
                solo.end()
        return out


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
    # a rescan (the cache knows this target): workers walk subtrees and compare folders;
    # a first scan keeps the batch pipeline, whose load balance suits parsing everything,
    # and the workers say what the cache should keep of each file they read
    by_subtree = cache is not None and cache.known and jobs > 1 and fs.forkable
    keep: Callable[[Kept], None] | None = None
    if by_subtree:
        _cached_parallel(fs, tuple(exclude), tuple(paths) or ("/",), cache, jobs, account, started)  # type: ignore[arg-type]
    elif cache is not None and cache.known:  # a rescan in one process: file by file
        cache.preload()  # every folder will be looked up
        walked = _regular_entries(fs, tuple(exclude), tuple(paths) or ("/",), True)
        files_iter = _through_cache(fs, walked, cache, misses, account)
    else:
        files_iter = _regular_files(fs, tuple(exclude), tuple(paths) or ("/",))
        keep = cache.keep if cache is not None else None
    if not by_subtree:
        _parse_all(fs, files_iter, jobs, False, account, started, keep)
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

Subtree = tuple[list[Flat], list[str], int, list[tuple[str, str]], list[tuple[bytes, bytes, str]],
                list[bytes], int]


def _cached_subtree(top: str, exclude: tuple[str, ...], shallow: bool = False) -> Subtree:
    """In a worker: walk ``top`` (only its own files when ``shallow``) folder by folder. A
    folder whose listing (names and file identities) is the one the (inherited) cache
    holds is answered whole; any other is looked at file by file, its changed files
    censused, and its new row returned. Returns the records, the paths censused again,
    the file count, walk errors, the rows to write, the stored folders now gone or
    empty, and how many stored folders this part of the tree had."""
    assert _worker_fs is not None and _worker_cache is not None
    fs, cache = _worker_fs, _worker_cache
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


def _cached_parallel(fs: RootFS, exclude: tuple[str, ...], tops: tuple[str, ...], cache: "CensusCache", jobs: int,
                     account: Callable[[list[ElfRecord | ErrorRecord], int], None],
                     started: Callable[[], None] | None) -> None:
    """The census with a cache on several cores: a rescan of an unchanged system is a walk
    and a comparison per folder, all of it done by the workers, each walking whole
    subtrees (the largest first)."""
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
    limit = max(total // (jobs * 8), SPLIT_MIN)
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
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(fs,)) as pool:
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
            for p in _through_cache(fs, walked, cache, misses, account):
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
    todo = list(_through_cache(fs, walked, cache, misses, account))
    with _OneByOne(fs, jobs, False) as solos:
        got = solos.run(todo)
    for p in todo:
        records = got[p][0]
        account(records, 1)
        if p in misses:
            cache.store(p, misses[p], records)


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
