"""A target that is a folder on this machine: ``/`` itself or an extracted root tree.

Only regular files are opened, their type checked without following links before the
open and again after it; they are opened with ``O_NOFOLLOW`` (every link was already
resolved inside the root by :class:`~scanner.target.base.RootFS`), ``O_NONBLOCK`` (should
the entry become a FIFO between the check and the open, the open still does not wait) and
``O_NOATIME`` where allowed (reading does not even change access times).

Like ``find -xdev``, the walk stays on the file system of the root folder: it does not
enter other mounted file systems, and on ``/`` never ``/proc``, ``/sys``, ``/dev`` or
``/run``. ``cross_mounts=True`` enters other mounts, but still never the kernel's pseudo
file systems (proc, sysfs, devtmpfs, cgroup...), whose files are not the system's software.
"""

from __future__ import annotations

import errno
import io
import os
import stat as statmod
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import BinaryIO

from scanner.target.base import RootFS, TargetError, normpath, require_regular

#: kernel pseudo file systems: never software, never walked
PSEUDO_FS = frozenset(
    {
        "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
        "securityfs", "pstore", "bpf", "mqueue", "hugetlbfs", "configfs", "fusectl",
        "autofs", "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs", "selinuxfs",
    }
)
#: on a live ``/`` these are state of the running kernel, not of the installed system
LIVE_ONLY = frozenset({"/proc", "/sys", "/dev", "/run"})

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


def _mountinfo() -> dict[str, str]:
    """Mount points of this machine and their file-system types (``/proc/self/mountinfo``)."""
    mounts: dict[str, str] = {}
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                fields = line.split()
                try:
                    sep = fields.index("-")
                except ValueError:
                    continue
                point = fields[4].encode().decode("unicode_escape")
                mounts[point] = fields[sep + 1]
    except OSError:
        pass
    return mounts


class DirectoryRoot(RootFS):
    """The tree under a host folder, seen as a guest's ``/``."""

    def __init__(self, root: str | os.PathLike[str], *, cross_mounts: bool = False) -> None:
        host = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(host)
        except OSError as exc:
            raise TargetError(f"cannot read root {host}: {exc.strerror}") from exc
        if not statmod.S_ISDIR(st.st_mode):
            raise TargetError(f"root {host} is not a directory")
        if not os.access(host, os.R_OK | os.X_OK):
            raise TargetError(f"cannot read root {host}: permission denied")
        self.host_root = host.rstrip("/") or "/"
        self._prefix = "" if self.host_root == "/" else self.host_root
        self.label = self.host_root
        self.cross_mounts = cross_mounts
        self._root_dev = st.st_dev
        self._skip_points: set[str] = set()
        self._pseudo_points: set[str] = set()
        mounts = _mountinfo()
        self._mounts_read = bool(mounts)  # every mount point under the root is then known
        for point, fstype in mounts.items():
            if point == self.host_root or not (
                self.host_root == "/" or point.startswith(self.host_root + "/")
            ):
                continue
            guest = normpath(point[len(self._prefix):])
            if fstype in PSEUDO_FS:
                self._pseudo_points.add(guest)
            self._skip_points.add(guest)
        if self.host_root == "/":
            self._pseudo_points |= LIVE_ONLY

    def __reduce__(self) -> tuple[object, ...]:
        return (DirectoryRoot, (self.host_root,), {"cross_mounts": self.cross_mounts})

    def __setstate__(self, state: dict[str, object]) -> None:
        self.cross_mounts = bool(state["cross_mounts"])

    @property
    def is_live(self) -> bool:
        """True when the target is the running system's own ``/``."""
        return self.host_root == "/"

    def host_path(self, path: str) -> str:
        """The host path of a *resolved* guest path."""
        return self._prefix + normpath(path)

    # ---- primitives -------------------------------------------------------------
    def lstat(self, path: str) -> os.stat_result:
        return os.lstat(self.host_path(path))

    def readlink(self, path: str) -> str:
        return os.readlink(self.host_path(path))

    def listdir(self, path: str) -> list[tuple[str, str]]:
        out = []
        with os.scandir(self.host_path(path)) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    kind = "dir"
                elif e.is_file(follow_symlinks=False):
                    kind = "file"
                elif e.is_symlink():
                    kind = "symlink"
                else:
                    kind = "other"
                out.append((e.name, kind))
        return out

    def listdir_stat(self, path: str) -> list[tuple[str, str, os.stat_result | None]]:
        out: list[tuple[str, str, os.stat_result | None]] = []
        with os.scandir(self.host_path(path)) as it:
            for e in it:
                st = None
                try:
                    st = e.stat(follow_symlinks=False)
                    mode = st.st_mode
                except OSError:
                    mode = 0
                kind = ("dir" if statmod.S_ISDIR(mode) else "file" if statmod.S_ISREG(mode) else
                        "symlink" if statmod.S_ISLNK(mode) else "other")
                out.append((e.name, kind, st if kind == "file" else None))
        return out

    def open_resolved(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        """Open only a regular file: its type is checked on the entry itself (``lstat``)
        *before* the open, because opening a device runs its driver's open (``O_NONBLOCK``
        does not prevent that) and opening a FIFO waits for a writer. The opened file is
        checked again (``fstat``): an entry replaced between the two (a live root being
        changed under the scan) is refused too."""
        host = self.host_path(path)
        before = os.lstat(host)
        require_regular(before, path)
        fd = open_nofollow(host)
        try:
            st = os.fstat(fd)
            require_regular(st, path)
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
                raise OSError(errno.ESTALE, "replaced while being opened", path)
            # the scan never needs non-blocking reads from a regular file
            os.set_blocking(fd, True)
            # unbuffered: a 4-byte magic check is one 4-byte read(2)
            return io.FileIO(fd, "rb", closefd=True), st
        except BaseException:
            os.close(fd)
            raise

    # ---- walk policy ------------------------------------------------------------
    def descend(self, path: str, st: os.stat_result | None = None) -> bool:
        """``st``: the folder's lstat when the caller has it (saves a system call)."""
        if path in self._pseudo_points:
            return False
        if self.cross_mounts:
            return True
        if path in self._skip_points:
            return False
        try:
            return (st or os.lstat(self.host_path(path))).st_dev == self._root_dev
        except OSError:
            return False

    def folders(self, top: str, exclude: tuple[str, ...] = (), *,
                recursive: bool = True) -> Iterator[tuple[str, list[tuple[str, os.stat_result | None]]]]:
        """:meth:`RootFS.folders`, in one tight loop over ``os.scandir`` (a rescan with a
        cache does little else per file). Only regular files are stat'ed: the listing's
        entry type says what the others are, and when this machine's mount table was read
        it already names every mount point the walk must not cross."""
        cut = len(self._prefix)
        stack = [self.host_path(top)]
        isreg = statmod.S_ISREG
        by_table = self._mounts_read and not self.cross_mounts
        pseudo, skip = self._pseudo_points, self._skip_points
        while stack:
            host = stack.pop()
            # each folder is opened (never through a link) and read through its descriptor:
            # every stat below resolves one name, not the whole path again
            try:
                fd = os.open(host, _DIR_FLAGS)
            except OSError as exc:
                self.on_walk_error(host[cut:] or "/", exc)
                continue
            files: list[tuple[str, os.stat_result | None]] = []
            base = host.rstrip("/") + "/"
            try:
                with os.scandir(fd) as it:
                    for e in it:
                        try:
                            if e.is_file(follow_symlinks=False):
                                st = e.stat(follow_symlinks=False)
                                if isreg(st.st_mode):  # still a file (not replaced since the listing)
                                    files.append((e.name, st))
                            elif recursive and e.is_dir(follow_symlinks=False):
                                path = base + e.name
                                guest = path[cut:]
                                if by_table:
                                    if guest not in skip and guest not in pseudo:
                                        stack.append(path)
                                elif self.descend(guest, e.stat(follow_symlinks=False)):
                                    stack.append(path)
                        except OSError:
                            continue  # gone since the listing
            except OSError as exc:
                self.on_walk_error(host[cut:] or "/", exc)
                continue
            finally:
                os.close(fd)
            folder = host[cut:] or "/"
            if exclude:
                prefix = folder.rstrip("/") + "/"
                files = [f for f in files if not any(fnmatchcase(prefix + f[0], pat) for pat in exclude)]
            yield folder, files


def open_nofollow(host_path: str) -> int:
    """Open a host path read-only without following a final symlink, without blocking
    on FIFOs, and without updating its access time when the kernel allows that."""
    if _NOATIME:
        try:
            return os.open(host_path, _OPEN_FLAGS | _NOATIME)
        except PermissionError:
            pass  # O_NOATIME needs ownership or CAP_FOWNER; a plain open may still work
    return os.open(host_path, _OPEN_FLAGS)
