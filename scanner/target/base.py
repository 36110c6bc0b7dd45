"""The read-only file-system interface every target implements, and symlink resolution
confined to the target's root.

Paths handed to and returned by a target are *guest paths*: absolute POSIX strings as the
scanned system sees them (``/usr/lib64/libc.so.6``), whatever the bytes come from (a folder,
a disk image). Symlinks are resolved the way the guest's kernel would resolve them if the
target were its ``/``: an absolute link restarts at the target's root, ``..`` at the root
stays at the root (like ``openat2(RESOLVE_IN_ROOT)``), and more than 40 links in one lookup
is a loop (Linux ``MAXSYMLINKS``). Nothing here ever writes.

Only regular files of a target are ever opened (:func:`require_regular`, checked on the
entry itself, without following links, before it is opened): opening a device runs its
driver, and opening a FIFO for reading waits for a writer. Globs are bounded
(:class:`Budget`): a hostile tree of links to ``.`` makes ``/x/*/*/*/*`` exponential.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat as statmod
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, BinaryIO, NamedTuple

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.limits import LimitExceeded

MAXSYMLINKS = 40


class TargetError(Exception):
    """The target as a whole cannot be read (missing root, unreadable image...)."""


class PathLoop(OSError):
    """Too many levels of symbolic links while resolving inside the root."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ELOOP, "too many levels of symbolic links", path)


class WalkEntry(NamedTuple):
    """One non-directory entry found by :meth:`RootFS.walk` (``kind`` from the directory
    entry itself, no extra system call): ``file``, ``symlink`` or ``other``. A named tuple:
    a walk makes one per file, hundreds of thousands on a system."""

    path: str
    kind: str
    stat: os.stat_result | None = None  # the entry's lstat, when the walk was asked for it


_TYPE_NAMES = (
    (statmod.S_ISREG, "regular file"), (statmod.S_ISDIR, "directory"), (statmod.S_ISLNK, "symbolic link"),
    (statmod.S_ISCHR, "character device"), (statmod.S_ISBLK, "block device"), (statmod.S_ISFIFO, "FIFO"),
    (statmod.S_ISSOCK, "socket"),
)


def file_type(mode: int) -> str:
    """What an ``st_mode`` is, in words, for the error a refused file gets."""
    return next((name for test, name in _TYPE_NAMES if test(mode)), f"unknown file type {mode >> 12:o}")


def require_regular(st: os.stat_result, path: str) -> None:
    """Refuse to open anything of the target but a regular file: ``IsADirectoryError`` for
    a folder, ``OSError`` naming the type (``not a regular file: character device``) for
    the rest. Targets call it on the entry's own ``lstat`` *before* opening it, since the
    open itself is what a device or FIFO must never see."""
    if statmod.S_ISREG(st.st_mode):
        return
    if statmod.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    raise OSError(errno.EINVAL, f"not a regular file: {file_type(st.st_mode)}", path)


class Budget:
    """What one reader may still spend on the target, per named cap of
    :mod:`scanner.limits` (each starts at the cap's value the first time it is spent).
    One glob gets its own; a reader that runs many (an ``ld.so.conf`` whose includes
    include more) shares one, so that many bounded globs cannot add up to an unbounded one."""

    def __init__(self) -> None:
        self._left: dict[str, int] = {}

    def spend(self, cap: str, amount: int = 1, detail: str = "") -> None:
        """Take ``amount`` from the cap named ``cap``; :class:`LimitExceeded` once it runs out."""
        left = self._left.get(cap, getattr(limits, cap)) - amount
        if left < 0:
            raise LimitExceeded(cap, getattr(limits, cap), detail)
        self._left[cap] = left


def normpath(path: str) -> str:
    """Normalise a guest path lexically (no link resolution); always absolute."""
    if path[:1] == "/" and path[-1:] != "/" and "//" not in path and "/." not in path:
        return path  # already normal (nearly every path asked for): no work
    p = posixpath.normpath("/" + path.lstrip("/"))
    return "/" if p == "//" else p


@dataclass(frozen=True)
class TargetIdentity:
    """What a target is, as the result's ``target`` reports it: its kind (``directory``,
    ``image``, or ``domain`` for the disks of a libvirt domain), its label and root, how its
    images were read (``target.image``) and what the hypervisor says of the domain
    (``target.domain``: name, uuid, state, interfaces and their libvirt networks). A typed
    value the target gives, never attributes set on it from outside."""

    kind: str  # directory | image | domain
    label: str
    root: str
    image: dict[str, Any] | None = None
    domain: dict[str, Any] | None = None


class RootFS(ABC):
    """A read-only view of a system's file tree. Subclasses supply the primitives
    (:meth:`lstat`, :meth:`readlink`, :meth:`listdir`, :meth:`open_resolved`); link
    resolution, ``open`` and ``read`` are built here on top of them, once for all kinds."""

    #: human-readable name of the target (a folder, an image file, a domain)
    label: str = ""
    #: whether forked census workers may read it (each through :meth:`for_worker`)
    forkable: bool = True
    #: the kind of target this class reads (``image`` for disk images)
    target_kind: str = "directory"
    #: for the disks of a libvirt domain: what the hypervisor says of it (``Domain.facts()``),
    #: given to :func:`scanner.target.open_target` (``domain=``); None for any other target
    domain_facts: dict[str, Any] | None = None

    @property
    def identity(self) -> TargetIdentity:
        """The target's identity (:class:`TargetIdentity`), for the result's ``target``."""
        return TargetIdentity(kind="domain" if self.domain_facts else self.target_kind, label=self.label,
                              root=self.label, image=self.image_facts(), domain=self.domain_facts)

    def image_facts(self) -> dict[str, Any] | None:
        """How the target's disk images were read (``target.image``); None for a folder."""
        return None

    def target_errors(self) -> list[ErrorRecord]:
        """What the target itself could not read (a disk image's partitions, volumes, fstab
        mounts, damaged file-system metadata), as error records of stage ``target``; a
        folder has none of its own (its census reports what it cannot read)."""
        return []

    # ---- primitives -------------------------------------------------------------
    @abstractmethod
    def lstat(self, path: str) -> os.stat_result:
        """``lstat`` of a guest path whose parent components hold no symlinks."""

    @abstractmethod
    def readlink(self, path: str) -> str:
        """Target of the symlink at ``path`` (parents must hold no symlinks)."""

    @abstractmethod
    def listdir(self, path: str) -> list[tuple[str, str]]:
        """``(name, kind)`` pairs of a directory; kind is dir/file/symlink/other."""

    @abstractmethod
    def open_resolved(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        """Open a regular file by a resolved guest path (no symlink anywhere in it) for
        reading; return the file and its ``stat``. Raises ``OSError`` otherwise: every
        target checks the entry with :func:`require_regular` *before* it opens anything."""

    # ---- built on the primitives ------------------------------------------------
    def resolve(self, path: str, *, strict: bool = True) -> str:
        """Resolve every symlink in ``path`` inside the root and return the canonical
        guest path. With ``strict`` a missing component raises ``FileNotFoundError``;
        without it the unresolved rest is appended lexically (like ``realpath -m``)."""
        todo = [c for c in path.split("/") if c]
        todo.reverse()
        parts: list[str] = []
        links = 0
        while todo:
            name = todo.pop()
            if name == ".":
                continue
            if name == "..":
                if parts:
                    parts.pop()
                continue
            cur = "/" + "/".join(parts + [name])
            try:
                st = self.lstat(cur)
            except FileNotFoundError:
                if strict:
                    raise
                parts.append(name)
                continue
            except NotADirectoryError:
                if strict:
                    raise
                parts.append(name)
                continue
            if statmod.S_ISLNK(st.st_mode):
                links += 1
                if links > MAXSYMLINKS:
                    raise PathLoop(path)
                target = self.readlink(cur)
                if target.startswith("/"):
                    parts = []
                comps = [c for c in target.split("/") if c]
                todo.extend(reversed(comps))
                continue
            if todo and not statmod.S_ISDIR(st.st_mode):
                if strict:
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", cur)
            parts.append(name)
        return "/" + "/".join(parts)

    def stat(self, path: str) -> os.stat_result:
        """``stat`` following links inside the root."""
        return self.lstat(self.resolve(path))

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except OSError:
            return False
        return True

    def is_file(self, path: str) -> bool:
        try:
            return statmod.S_ISREG(self.stat(path).st_mode)
        except OSError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return statmod.S_ISDIR(self.stat(path).st_mode)
        except OSError:
            return False

    def open(self, path: str) -> BinaryIO:
        """Open a regular file for reading, following links inside the root."""
        return self.open_resolved(self.resolve(path))[0]

    def read(self, path: str, size: int = -1) -> bytes:
        with self.open(path) as fh:
            return fh.read(size)

    def iterdir(self, path: str) -> Iterator[str]:
        """Names in a directory, following links inside the root to reach it."""
        for name, _kind in self.listdir(self.resolve(path)):
            yield name

    def glob(self, pattern: str, budget: Budget | None = None) -> list[str]:
        """Expand a shell glob (``*``, ``?``, ``[...]`` per component) inside the root,
        as glibc's ``glob(3)`` does for ``include`` lines; results sorted like it.
        Bounded: every folder looked at spends ``MAX_GLOB_DIRS`` from ``budget`` (a fresh
        one per call without it), and more than ``MAX_GLOB_MATCHES`` candidates after any
        component stop it; either raises :class:`LimitExceeded` (links to ``.`` make a
        pattern of many ``*`` components exponential, never infinite)."""
        budget = budget if budget is not None else Budget()
        comps = [c for c in normpath(pattern).split("/") if c]
        found = ["/"]
        for i, comp in enumerate(comps):
            nxt: list[str] = []
            magic = any(ch in comp for ch in "*?[")
            for base in found:
                budget.spend("MAX_GLOB_DIRS", 1, f"glob {pattern}")
                if not magic:
                    cand = posixpath.join(base, comp)
                    if i == len(comps) - 1:
                        if self.exists(cand) or self.is_symlink(cand):
                            nxt.append(cand)
                    elif self.is_dir(cand):
                        nxt.append(cand)
                    continue
                try:
                    names = sorted(self.iterdir(base))
                except OSError:
                    continue
                nxt.extend(posixpath.join(base, name) for name in names
                           if not (name.startswith(".") and not comp.startswith(".")) and fnmatchcase(name, comp))
                if len(nxt) > limits.MAX_GLOB_MATCHES:
                    raise LimitExceeded("MAX_GLOB_MATCHES", limits.MAX_GLOB_MATCHES, f"glob {pattern}")
            found = nxt
        return sorted(found)

    def is_symlink(self, path: str) -> bool:
        try:
            parent, name = posixpath.split(normpath(path))
            return statmod.S_ISLNK(self.lstat(posixpath.join(self.resolve(parent), name)).st_mode)
        except OSError:
            return False

    def walk(self, top: str = "/", *, skip: frozenset[str] = frozenset(),
             stats: bool = False) -> Iterator[WalkEntry]:
        """Every non-directory entry under ``top`` (never following links). Directories
        in ``skip`` (guest paths) or refused by :meth:`descend` are not entered;
        unreadable directories are reported through :meth:`on_walk_error`. With ``stats``
        regular files carry their ``lstat`` (read with the listing where the target can)."""
        stack = [normpath(top)]
        while stack:
            d = stack.pop()
            try:
                entries = self.listdir_stat(d) if stats else [(n, k, None) for n, k in self.listdir(d)]
            except OSError as exc:
                self.on_walk_error(d, exc)
                continue
            subdirs = []
            prefix = d.rstrip("/") + "/"
            for name, kind, st in entries:
                p = prefix + name
                if kind == "dir":
                    if p not in skip and self.descend(p):
                        subdirs.append(p)
                else:
                    yield WalkEntry(p, kind, st)
            stack.extend(sorted(subdirs, reverse=True))

    def folders(self, top: str, exclude: tuple[str, ...] = (), *,
                recursive: bool = True) -> Iterator[tuple[str, list[tuple[str, os.stat_result | None]]]]:
        """The folders under the resolved guest folder ``top`` (only ``top`` itself when not
        ``recursive``), each with its regular files as ``(name, lstat)`` in listing order
        (lstat None: it could not be read), walked as :meth:`walk` does; files matching an
        ``exclude`` pattern are left out."""
        stack = [normpath(top)]
        while stack:
            d = stack.pop()
            try:
                entries = self.listdir_stat(d)
            except OSError as exc:
                self.on_walk_error(d, exc)
                continue
            prefix = d.rstrip("/") + "/"
            files = []
            for name, kind, st in entries:
                if kind == "dir":
                    if recursive and self.descend(prefix + name):
                        stack.append(prefix + name)
                elif kind == "file" and not (exclude and any(fnmatchcase(prefix + name, pat) for pat in exclude)):
                    files.append((name, st))
            yield d, files

    def listdir_stat(self, path: str) -> list[tuple[str, str, os.stat_result | None]]:
        """:meth:`listdir` with the ``lstat`` of each regular file (None when it cannot be
        read: the census then reports the file)."""
        out: list[tuple[str, str, os.stat_result | None]] = []
        prefix = path.rstrip("/") + "/"
        for name, kind in self.listdir(path):
            st = None
            if kind == "file":
                try:
                    st = self.lstat(prefix + name)
                except OSError:
                    pass
            out.append((name, kind, st))
        return out

    def descend(self, path: str) -> bool:
        """Whether :meth:`walk` enters the directory ``path`` (mount boundaries)."""
        return True

    def on_walk_error(self, path: str, exc: OSError) -> None:
        """Called for a directory the walk cannot list; recorded in :attr:`walk_errors`
        so the scan reports it and goes on."""
        self.walk_errors.append((path, f"{exc.strerror or exc}"))

    @property
    def walk_errors(self) -> list[tuple[str, str]]:
        errs = self.__dict__.get("_walk_errors")
        if errs is None:
            errs = self.__dict__["_walk_errors"] = []
        return errs

    def for_worker(self) -> "RootFS":
        """The target as a forked worker process should use it (targets holding open
        files reopen them so parent and child never share a file offset)."""
        return self

    def close(self) -> None:  # noqa: B027 - a folder holds nothing: the default releases nothing
        """Release what the target holds (images, connections)."""

    def __enter__(self) -> "RootFS":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
