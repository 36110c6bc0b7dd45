"""A target that is a virtual machine's disk images, read through libguestfs
(``--image-backend guestfs``).

libguestfs (LGPL-2.1+) starts a small appliance virtual machine that reads the images
read-only (``add_drive_opts(readonly=True)``: writes go to a throw-away overlay, never to the
image) and answers file calls over a socket. Nothing is mounted on this machine. The
guest's file systems are assembled by libguestfs's inspection, which reads the guest's own
``/etc/fstab`` (``UUID=``, ``LABEL=``, ``/dev/mapper/...``, ``/dev/VG/LV``; LVM2 volume
groups are activated inside the appliance).

The appliance is launched once per target and every file call goes to it, so this
backend is serial: a forked census worker cannot share the appliance's socket, and a
second appliance per worker would cost more than it saves (a launch is seconds under
KVM and 10-20 s under TCG emulation). Calls are cut down by caching: one ``readdir`` and
one ``lstatnslist`` per directory, and files read in 1 MiB blocks.

Python bindings come from the distribution (Debian: ``python3-guestfs``), not PyPI; the
Makefile links them into the virtualenv. The appliance uses KVM when it can; when that
launch fails (no ``/dev/kvm``, or nested virtualisation that qemu cannot drive) it is
launched once more under TCG emulation (``force_tcg``). ``LIBGUESTFS_BACKEND_SETTINGS`` set by
the user is respected as it is.
"""

from __future__ import annotations

import errno
import io
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.limits import LimitExceeded
from scanner.target.base import RootFS, TargetError, normpath, require_regular
from scanner.target.qcow2 import MAGIC, BackingPolicy, Layer, backing_chain, vmdk_refusal

#: where Debian and Fedora put the bindings, for a virtualenv that was not linked to them
_DIST_PACKAGES = ("/usr/lib/python3/dist-packages", f"/usr/lib64/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages")

_FTYP = {"d": "dir", "r": "file", "l": "symlink"}
_BLOCK = 1 << 20  # one pread: the protocol caps a message at 4 MiB


def import_guestfs() -> Any:
    """The ``guestfs`` module, or a TargetError saying exactly what to install."""
    try:
        import guestfs
    except ImportError:
        for folder in _DIST_PACKAGES:
            if os.path.isfile(os.path.join(folder, "guestfs.py")):
                sys.path.append(folder)
                try:
                    import guestfs
                except ImportError:
                    sys.path.remove(folder)
                    continue
                return guestfs
        raise TargetError(
            "the guestfs backend needs libguestfs's Python bindings: apt install python3-guestfs "
            "linux-image-amd64 (Fedora: dnf install python3-libguestfs), then link guestfs.py and "
            "libguestfsmod*.so into the virtualenv's site-packages (make setup does)") from None
    return guestfs


def image_format(path: Path) -> str:
    """qcow2, vmdk or raw, from the file's magic: the format is always given to libguestfs
    (probing a raw image lets a guest pretend to be qcow2 with a host backing file)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return {MAGIC: "qcow2", b"KDMV": "vmdk"}.get(head, "raw")


_MAX_JSON_NAME = 1023  # QEMU's limit on a backing file's name, json: specifications included


def _spec(layer: Layer, below: str | None) -> dict[str, Any]:
    """QEMU's block options for one checked layer: the file by its checked path, and its
    backing named explicitly (another wrapper, or none), never read from its header."""
    spec: dict[str, Any] = {"driver": layer.fmt, "file": {"driver": "file", "filename": layer.path}}
    if layer.fmt == "qcow2":
        spec["backing"] = {"driver": "qcow2", "file": {"driver": "file", "filename": below}} if below else None
    return spec


def checked_drive(path: Path, policy: BackingPolicy, workdir: str) -> tuple[str, str]:
    """The file and format to give libguestfs for the image ``path``. A qcow2 image with a
    backing chain is checked by :func:`~scanner.target.qcow2.backing_chain` first; QEMU is
    then given, instead of the image, a throw-away qcow2 wrapper per layer (in ``workdir``)
    whose backing is a ``json:`` specification naming that layer's checked path and the
    wrapper below: QEMU never follows a name the images hold. A vmdk naming other files
    is refused, as by the dissect backend."""
    fmt = image_format(path) if path.is_file() else "raw"
    if fmt == "raw":
        return str(path), fmt
    with open(path, "rb") as fh:
        if fmt == "vmdk":
            why = vmdk_refusal(fh)
            if why:
                raise TargetError(f"cannot read image {path}: {why}")
            return str(path), fmt
        try:
            layers = backing_chain(path, fh, policy)
        except OSError as exc:
            raise TargetError(f"cannot read image {path}: {exc.strerror or exc}") from None
        for layer in layers[1:]:
            layer.fh.close()
    if len(layers) == 1:
        return str(path), fmt
    layers[0] = Layer(os.path.realpath(path), layers[0].fh, "qcow2", layers[0].size)
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise TargetError(f"cannot read image {path}: its backing chain needs qemu-img (apt install qemu-utils)")
    below = None
    for i in range(len(layers) - 1, -1, -1):
        name = "json:" + json.dumps(_spec(layers[i], below), separators=(",", ":"))
        if len(name.encode()) > _MAX_JSON_NAME:
            raise TargetError(f"cannot read image {path}: the path of {layers[i].path} is too long for QEMU")
        wrapper = os.path.join(workdir, f"layer{i}.qcow2")
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-u", "-b", name, "-F", layers[i].fmt, wrapper,
                        str(layers[i].size)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
        below = wrapper
    assert below is not None
    return below, "qcow2"


class _LaunchTimeout(Exception):
    """The appliance did not boot within the cap; its qemu was killed."""


def kvm_launch_seconds() -> float:
    """The cap on a KVM launch: ``GUESTFS_KVM_LAUNCH_SECONDS``, or the environment's
    ``FLIGHTCHECK_GUESTFS_KVM_LAUNCH_SECONDS`` (0 or less: unbounded)."""
    raw = os.environ.get("FLIGHTCHECK_GUESTFS_KVM_LAUNCH_SECONDS", "")
    try:
        return float(raw) if raw.strip() else float(limits.GUESTFS_KVM_LAUNCH_SECONDS)
    except ValueError:
        return float(limits.GUESTFS_KVM_LAUNCH_SECONDS)


def _children() -> dict[int, str]:
    """This process's child processes, with their program (argv[0]), from /proc."""
    me = os.getpid()
    out: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
            # the fields after the command name, which may hold spaces and parentheses
            if int(stat[stat.rindex(b")") + 2:].split()[1]) != me:
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                out[int(entry.name)] = os.path.basename(fh.read().split(b"\0", 1)[0].decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _launch(g: Any, cap: float) -> None:
    """``g.launch()``, bounded by ``cap`` seconds (0: unbounded). The bindings release
    the GIL during the launch, so a watchdog thread can act: past the cap it kills the
    qemu processes this launch started (children of this process that were not there
    before, whose program is qemu), the launch then fails, and :class:`_LaunchTimeout`
    says why. The handle itself cannot be asked (its calls are serialised behind the
    launch)."""
    if cap <= 0:
        g.launch()
        return
    import signal
    import threading

    before = set(_children())
    done = threading.Event()
    killed: list[int] = []

    def watchdog() -> None:
        if done.wait(cap):
            return
        for pid, prog in _children().items():
            if pid not in before and prog.startswith("qemu"):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except OSError:
                    pass

    watcher = threading.Thread(target=watchdog, name="flightcheck-guestfs-launch", daemon=True)
    watcher.start()
    try:
        g.launch()
    except RuntimeError as exc:
        if killed:
            raise _LaunchTimeout(f"the appliance did not boot within {cap:g} s under KVM "
                                 "(GUESTFS_KVM_LAUNCH_SECONDS)") from exc
        raise
    finally:
        done.set()
        watcher.join()


class GuestfsRoot(RootFS):
    """Disk images of one machine, read through one libguestfs appliance."""

    backend = "guestfs"
    target_kind = "image"
    forkable = False

    def __init__(self, images: Sequence[str | os.PathLike[str]], backing: BackingPolicy | None = None) -> None:
        self.images = [Path(p) for p in images]
        self.label = ", ".join(str(p) for p in self.images)
        self.problems: list[str] = []
        self.mounts: list[tuple[str, str]] = []  # (mount point, device)
        self._stats: dict[str, os.stat_result] = {}
        self._dirs: dict[str, list[tuple[str, str]]] = {}
        self._links: dict[str, str] = {}
        for path in self.images:
            if not path.is_file() and not path.is_block_device():
                raise TargetError(f"cannot read image {path}: no such file")
        guestfs = import_guestfs()
        self._workdir = tempfile.mkdtemp(prefix="flightcheck-guestfs-")
        try:
            drives = [checked_drive(path, backing or BackingPolicy(), self._workdir) for path in self.images]
        except (TargetError, subprocess.CalledProcessError) as exc:
            self.close()
            raise TargetError(str(exc) if isinstance(exc, TargetError) else
                              f"cannot read image {self.label}: qemu-img: {exc.stderr.decode(errors='replace').strip()}"
                              ) from None
        os.environ.setdefault("LIBGUESTFS_BACKEND", "direct")
        # KVM when it works, else TCG: /dev/kvm can be there and still fail under nested
        # virtualisation (qemu dies setting an MSR) or hang at boot for ever, so a KVM
        # launch is bounded (kvm_launch_seconds) and a failed one is retried once under TCG
        tries = [None] if "LIBGUESTFS_BACKEND_SETTINGS" in os.environ else [None, ["force_tcg"]]
        self.launch_notes: list[str] = []
        for settings in tries:
            g = guestfs.GuestFS(python_return_dict=True, close_on_exit=True)
            self.g = g
            try:
                if settings:
                    g.set_backend_settings(settings)
                for drive, fmt in drives:
                    g.add_drive_opts(drive, readonly=True, format=fmt)
                fallback = settings is None and len(tries) > 1
                _launch(g, kvm_launch_seconds() if fallback else 0.0)
                break
            except (RuntimeError, _LaunchTimeout) as exc:
                self._close_handle()
                if settings is None and len(tries) > 1 and (isinstance(exc, _LaunchTimeout) or "launch" in str(exc)):
                    self.launch_notes.append(f"the KVM launch failed ({_clean(exc)}); launched under TCG")
                    continue
                self.close()
                raise TargetError(f"cannot read image {self.label}: {_clean(exc)} "
                                  "(LIBGUESTFS_DEBUG=1 shows the appliance's log)") from exc
        self.accel = "tcg" if settings else "default"
        try:
            self._mount()
        except RuntimeError as exc:
            self.close()
            raise TargetError(f"cannot read the file systems of {self.label}: {_clean(exc)}") from exc

    def _mount(self) -> None:
        g = self.g
        roots = g.inspect_os()
        if roots:
            if len(roots) > 1:
                self._problem(self.label, f"{len(roots)} operating systems on these disks; only {roots[0]} is read")
            points = g.inspect_get_mountpoints(roots[0])
            for point, dev in sorted(points.items(), key=lambda m: len(m[0])):
                try:
                    g.mount_ro(dev, point)
                except RuntimeError as exc:
                    self._problem(normpath(point), f"{dev} cannot be mounted here ({_clean(exc)}): the files under "
                                                   f"{point} are not scanned")
                    continue
                self.mounts.append((normpath(point), dev))
            return
        fss = {dev: kind for dev, kind in g.list_filesystems().items() if kind not in ("unknown", "swap")}
        if len(fss) != 1:
            kinds = ", ".join(f"{d} {k}" for d, k in fss.items()) or "none"
            raise TargetError(f"no root file system (with /etc) found in {self.label} (file systems: {kinds})")
        dev = next(iter(fss))
        g.mount_ro(dev, "/")  # one file system and no operating system: a data disk, read as it is
        self.mounts.append(("/", dev))

    def _problem(self, where: str, message: str) -> None:
        """Part of the guest that is not read: in ``target.image.problems`` and an error
        record (:meth:`target_errors`)."""
        self.problems.append(f"{where}: {message}")
        self.__dict__.setdefault("_problem_records", []).append((where, message))

    def target_errors(self) -> list[ErrorRecord]:
        """What of the disks could not be read, as error records (stage ``target``)."""
        return [ErrorRecord(where, "target", message) for where, message in self.__dict__.get("_problem_records", ())]

    def __reduce__(self) -> tuple[object, ...]:  # pragma: no cover - never sent to a worker
        raise TypeError("a libguestfs target cannot cross a process boundary")

    def _close_handle(self) -> None:
        g = self.__dict__.pop("g", None)
        if g is not None:
            try:
                g.shutdown()
            except RuntimeError:
                pass
            g.close()

    def close(self) -> None:
        self._close_handle()
        workdir = self.__dict__.pop("_workdir", None)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    # ---- calls -----------------------------------------------------------------------
    def _call(self, fn: Any, path: str, *args: Any) -> Any:
        try:
            return fn(path, *args)
        except RuntimeError as exc:
            raise OSError(_errno_of(exc), _clean(exc), path) from None

    @staticmethod
    def _to_stat(st: dict[str, int]) -> os.stat_result:
        return os.stat_result((st["st_mode"], st["st_ino"], st["st_dev"], st["st_nlink"], st["st_uid"],
                               st["st_gid"], st["st_size"], st["st_atime_sec"], st["st_mtime_sec"],
                               st["st_ctime_sec"]))

    # ---- primitives ------------------------------------------------------------------
    def lstat(self, path: str) -> os.stat_result:
        p = normpath(path)
        st = self._stats.get(p)
        if st is None:
            parent = posixpath.dirname(p)
            if p != "/" and parent not in self._dirs:
                try:
                    self.listdir(parent)  # one call for the whole directory, cached
                except OSError:
                    pass
                st = self._stats.get(p)
            if st is None:
                if p != "/" and parent in self._dirs:
                    raise FileNotFoundError(errno.ENOENT, "no such file or directory", p)
                st = self._stats[p] = self._to_stat(self._call(self.g.lstatns, p))
        return st

    def readlink(self, path: str) -> str:
        p = normpath(path)
        link = self._links.get(p)
        if link is None:
            link = self._links[p] = self._call(self.g.readlink, p)
        return link

    def listdir(self, path: str) -> list[tuple[str, str]]:
        p = normpath(path)
        cached = self._dirs.get(p)
        if cached is not None:
            return cached
        entries = [e for e in self._call(self.g.readdir, p) if e["name"] not in (".", "..")]
        names = [e["name"] for e in entries]
        stats = self._call(self.g.lstatnslist, p, names) if names else []
        out = []
        for e, st in zip(entries, stats):
            child = posixpath.join(p, e["name"])
            kind = _FTYP.get(e["ftyp"], "other")
            if st["st_ino"] != -1:
                self._stats[child] = self._to_stat(st)
            if any(point == child for point, _ in self.mounts):
                kind = "dir"  # a mount point: the mounted file system's root
            out.append((e["name"], kind))
        self._dirs[p] = out
        return out

    def open_resolved(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        p = normpath(path)
        st = self.lstat(p)
        require_regular(st, path)
        return io.BufferedReader(_GuestFile(self, p, st.st_size), buffer_size=_BLOCK), st

    @property
    def description(self) -> dict[str, Any]:
        """How the images were read, for the result's ``target.image``."""
        return {"backend": self.backend, "images": [str(p) for p in self.images],
                "mounts": [{"path": pt, "source": dev} for pt, dev in sorted(self.mounts)],
                "problems": list(self.problems), "accel": self.accel, "launch": list(self.launch_notes)}

    def image_facts(self) -> dict[str, Any] | None:
        """How the images were read (:attr:`description`), for the target's identity."""
        return self.description


class _GuestFile(io.RawIOBase):
    """A file inside the appliance, read with ``pread`` (the BufferedReader around it
    asks for whole blocks, so an ELF census is a handful of calls per file).

    Bounded as files in images are with the dissect backend: ``read()`` of the whole file
    at most ``MAX_IMAGE_READ_BYTES``, and no byte past the file's allocated blocks plus
    ``MAX_IMAGE_HOLE_BYTES`` (an inode claiming 256 GiB over one block). The allocation is
    asked for only once a read gets that far."""

    def __init__(self, root: GuestfsRoot, path: str, size: int) -> None:
        super().__init__()
        self._root, self._path, self._size, self._pos = root, path, size, 0
        self._bound: int | None = None  # allocated bytes + the hole cap, once needed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readall(self) -> bytes:
        left = self._size - self._pos
        if left > limits.MAX_IMAGE_READ_BYTES:
            raise OSError(errno.EFBIG, str(LimitExceeded("MAX_IMAGE_READ_BYTES", limits.MAX_IMAGE_READ_BYTES,
                                                         f"one read of {left:,} bytes")), self._path)
        return super().readall()

    def _check_bound(self, end: int) -> None:
        """Refuse a read ending past the allocated bytes plus the hole cap."""
        if end <= limits.MAX_IMAGE_HOLE_BYTES:
            return
        if self._bound is None:
            blocks = self._root._call(self._root.g.lstatns, self._path)["st_blocks"]
            self._bound = max(0, blocks) * 512 + limits.MAX_IMAGE_HOLE_BYTES
        if end > self._bound:
            raise OSError(errno.EFBIG, str(LimitExceeded(
                "MAX_IMAGE_HOLE_BYTES", limits.MAX_IMAGE_HOLE_BYTES,
                f"holes read from a file claiming {self._size:,} bytes")), self._path)

    def readinto(self, b: Any) -> int:
        if self._pos >= self._size:
            return 0
        want = min(len(b), self._size - self._pos, _BLOCK)
        self._check_bound(self._pos + want)
        data = self._root._call(self._root.g.pread, self._path, want, self._pos)
        n = len(data)
        b[:n] = data
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._size + offset
        if self._pos < 0:
            raise OSError(errno.EINVAL, "negative seek position", self._path)
        return self._pos

    def tell(self) -> int:
        return self._pos


#: the daemon's errors arrive as text ending in strerror(3); the Python binding keeps no errno
_STRERROR = {os.strerror(code): code for code in errno.errorcode}


def _errno_of(exc: BaseException) -> int:
    text = str(exc)
    for message, code in _STRERROR.items():
        if text.endswith(message):
            return code
    return errno.EIO


def _clean(exc: BaseException) -> str:
    """libguestfs's message without its function-name prefix."""
    text = str(exc).strip()
    return text.split(": ", 1)[1] if text.count(": ") and text.split(": ", 1)[0].isidentifier() else text
