"""The census's worker side: one file's census, the batches worker processes run, and
the retry after a worker died.

A worker may die (the OOM killer's SIGKILL, a crash in a C extension): the census goes on.
The files it held, and the rest of the walk, are then censused one at a time by fresh
workers (:class:`OneByOne`), so that a death names its file; a file on which a worker dies
twice becomes an error record. Anything a file's parse raises becomes an error record for
that file (:func:`census_file`): no file of the target can end the census.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as ready
from types import TracebackType
from typing import Any, Self, cast

from scanner.errors import ErrorRecord
from scanner.inventory.cachecodec import DIED, file_entry, split_path
from scanner.inventory.elf import ELF_MAGIC, ElfParseError, ElfRecord, parse_elf
from scanner.limits import LimitExceeded
from scanner.target import RootFS


def census_file(fs: RootFS, path: str, *, light: bool = False) -> list[ElfRecord | ErrorRecord]:
    """Census one regular file by its resolved guest path: nothing when it is not an ELF
    file; else its :class:`ElfRecord`, an :class:`ErrorRecord` for each problem met, or
    only an :class:`ErrorRecord` when it cannot be parsed. ``light``: see
    :func:`~scanner.inventory.elf.parse_elf`."""
    return census_one(fs, path, light)[0]


def census_one(fs: RootFS, path: str, light: bool = False) -> tuple[list[ElfRecord | ErrorRecord], os.stat_result | None]:
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


# ---- worker side ------------------------------------------------------------------------
_worker_fs: RootFS | None = None  # one per worker process, set by the pool initializer


def worker_fs() -> RootFS:
    """This worker process's target (set by :func:`init_worker`)."""
    assert _worker_fs is not None
    return _worker_fs


def init_worker(fs: RootFS) -> None:
    global _worker_fs
    _worker_fs = fs.for_worker()


def census_batch(paths: list[str], light: bool = False) -> list[ElfRecord | ErrorRecord]:
    assert _worker_fs is not None
    return census_batch_with(_worker_fs, paths, light)


Kept = dict[str, dict[str, tuple[str, list[Any]]]]
"""What a first scan gives the cache: folder -> file name -> (identity, records as JSON items)."""


def census_keyed(paths: list[str]) -> tuple[list[ElfRecord | ErrorRecord], Kept]:
    assert _worker_fs is not None
    return census_keyed_with(_worker_fs, paths)


def census_keyed_with(fs: RootFS, paths: list[str]) -> tuple[list[ElfRecord | ErrorRecord], Kept]:
    """The census of ``paths``, and what the cache keeps of each file, keyed by the
    file's identity as it was opened (so a first scan with ``--cache`` needs no stat of
    its own: the worker that reads a file says what it read)."""
    result: tuple[list[ElfRecord | ErrorRecord], Kept] = batch_result(paths, {p: census_one(fs, p) for p in paths},
                                                                      True)
    return result


FileResult = tuple[list[ElfRecord | ErrorRecord], os.stat_result | None]
"""One file's census records, and its stat as opened (None: it could not be)."""


def batch_result(paths: list[str], got: dict[str, FileResult], keyed: bool) -> Any:
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


def census_batch_with(fs: RootFS, paths: list[str], light: bool = False) -> list[ElfRecord | ErrorRecord]:
    return [r for p in paths for r in census_file(fs, p, light=light)]


# ---- when a worker dies ---------------------------------------------------------------------
def _serve_one_by_one(fs: RootFS, conn: Connection, light: bool) -> None:
    """A retry worker: census the paths the parent sends, one at a time, answering each
    with its :data:`FileResult`, until the parent closes the pipe."""
    init_worker(fs)
    assert _worker_fs is not None
    with conn:
        while True:
            try:
                path = conn.recv()
            except EOFError:
                return
            conn.send(census_one(_worker_fs, path, light))


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


class OneByOne:
    """``jobs`` workers, each given one file at a time: after a worker died, so that a
    death names its file. A dead worker is replaced by a fresh one; a file on which one
    dies twice becomes an error record (the death may have been the machine's memory
    pressure, not the file: it gets a second chance).

    The workers come from a fork server, a fresh single-threaded process: by now the scan
    may run threads of its own, and a process forked from a busy thread can inherit a lock
    held for ever."""

    def __init__(self, fs: RootFS, jobs: int, light: bool) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["scanner.inventory.censuswork", "scanner.inventory.elfparse"])
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
