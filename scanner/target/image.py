"""A target that is a virtual machine's disk image, read without root, loop devices, FUSE or
a kernel mount, with the dissect libraries (``--image-backend dissect``).

Layers, each a dissect reader: the image container (qcow2 with its backing chain, vmdk,
or raw; dissect.hypervisor), the partition table (GPT, MBR with extended partitions;
dissect.volume), and the file systems (ext2/3/4: dissect.extfs; xfs: dissect.xfs). The
guest's own ``/etc/fstab`` then says where each file system belongs (``UUID=``,
``LABEL=``, ``PARTUUID=``, ``/dev/disk/by-*``), so a separate ``/boot`` or ``/var`` lands
where the guest sees it. Nothing is ever written: images are opened read-only and no lock
is taken.

dissect is AGPL-3.0: it is the optional extra ``flightcheck[images]``.

LVM2: every partition (or whole disk) holding a physical-volume label is gathered; the
volumes of each volume group are read with dissect.volume's LVM2 reader once all its
physical volumes are found, and named as the guest names them (``/dev/VG/LV``,
``/dev/mapper/VG-LV``). Linear and striped volumes are read; a volume group missing a
physical volume is reported, not guessed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import mmap
import os
import posixpath
import stat as statmod
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.target.base import RootFS, TargetError, normpath, require_regular
from scanner.target.qcow2 import (COMPRESSED, L2_OFFSET, ZERO, BackingPolicy, Layer, PlainQcow2, backing_chain, be_u64,
                                  open_plain, read_pieces, refused, vmdk_refusal)


def _described(exc: BaseException) -> str:
    """A reader's exception in one line, its type first: dissect's own messages can be
    empty or cryptic on damaged structures (a bare ``EOFError``)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def _whole_target(what: str) -> Iterator[None]:
    """The boundary around opening the images: whatever the readers raise on a damaged
    container, partition table or superblock is one :class:`TargetError` line (exit 2),
    never a traceback."""
    try:
        yield
    except TargetError:
        raise
    except Exception as exc:  # noqa: BLE001 - dissect raises anything on damaged structures
        raise TargetError(f"{what}: {_described(exc)}") from exc


@contextlib.contextmanager
def _per_file(path: str, what: str = "cannot read") -> Iterator[None]:
    """The boundary between dissect and the scan for one path: whatever a damaged inode,
    directory, extent tree or cluster raises becomes an ``OSError`` for that path, which
    the census and the readers turn into an error record before going on; a cap reached
    is an ``OSError`` naming the cap."""
    try:
        yield
    except OSError:
        raise
    except LimitExceeded as exc:
        raise OSError(errno.EFBIG, str(exc), path) from exc
    except Exception as exc:  # noqa: BLE001 - dissect raises anything on damaged structures
        raise OSError(errno.EIO, f"{what}: {_described(exc)}", path) from exc


@dataclass
class FileSystem:
    """One file system found on the disks."""

    kind: str  # ext | xfs
    fs: Any
    uuid: str | None
    label: str | None
    where: str  # disk image and partition, for people
    partuuid: str | None = None
    devnames: tuple[str, ...] = ()  # the guest's device names, for LVM volumes


def _open_container(path: Path, policy: BackingPolicy) -> BinaryIO:
    """The guest-visible byte stream of one image file (qcow2 chains followed where
    ``policy`` allows)."""
    fh = open(path, "rb")  # noqa: SIM115 - kept open for the life of the target
    head = fh.read(4)
    fh.seek(0)
    if head == b"QFI\xfb":
        why = refused(fh)
        if why:
            raise TargetError(f"cannot read image {path}: {why}")
        plain = open_plain(fh)  # one file, no backing chain: read here, without dissect.hypervisor
        if plain is not None:
            return plain
        return _qcow2_chain(backing_chain(path, fh, policy))
    if head in (b"KDMV", b"# Di"):
        return _vmdk(path, fh)
    return fh


def _qcow2_chain(layers: list[Layer]) -> BinaryIO:
    """The guest disk of a checked backing chain (:func:`backing_chain`), built from the
    bottom up with dissect.hypervisor, each level given its backing stream: dissect never
    opens a file by a name the image holds."""
    from dissect.hypervisor.disk.qcow2 import QCow2

    backing: BinaryIO | None = None
    for layer in reversed(layers):
        if layer.fmt == "raw":
            backing = layer.fh
            continue
        why = refused(layer.fh)
        if why:
            raise TargetError(f"cannot read image {layer.path}: {why}")
        layer.fh.seek(0)
        backing = QCow2(layer.fh, backing_file=backing, allow_no_backing_file=backing is None).open()
    assert backing is not None
    return backing


def _vmdk(path: Path, fh: BinaryIO) -> BinaryIO:
    """The guest disk of a monolithic sparse vmdk (``qemu-img convert -O vmdk``); one
    naming other files is refused (:func:`~scanner.target.qcow2.vmdk_refusal`)."""
    from dissect.hypervisor.disk.vmdk import VMDK

    why = vmdk_refusal(fh)
    if why:
        raise TargetError(f"cannot read image {path}: {why}")
    vmdk = VMDK(fh)
    return vmdk.open() if hasattr(vmdk, "open") else vmdk


def _is_lvm_pv(stream: BinaryIO) -> bool:
    """An LVM2 physical-volume label in one of the first four sectors."""
    for sector in range(4):
        stream.seek(sector * 512)
        head = stream.read(32)
        if head[:8] == b"LABELONE" and head[24:32] == b"LVM2 001":
            return True
    return False


def _mapper_name(vg: str, lv: str) -> str:
    """device-mapper's name for a logical volume: dashes inside names are doubled."""
    return f"/dev/mapper/{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def _filesystem(stream: BinaryIO, where: str, partuuid: str | None = None) -> FileSystem | None:
    stream.seek(1024 + 56)
    if stream.read(2) == b"\x53\xef":
        from dissect.extfs import ExtFS

        fs = ExtFS(stream)
        sb = getattr(fs, "sb", None)
        uuid = str(getattr(fs, "uuid", "") or "") or None
        label = getattr(fs, "volume_name", None) or (sb.s_volume_name.rstrip(b"\0").decode() if sb is not None else None)
        return FileSystem("ext", fs, uuid, label or None, where, partuuid)
    stream.seek(0)
    if stream.read(4) == b"XFSB":
        from dissect.xfs import XFS

        stream.seek(0)
        fs = XFS(stream)
        uuid = str(getattr(fs, "uuid", "") or "") or None
        label = getattr(fs, "name", None)
        if isinstance(label, bytes):
            label = label.rstrip(b"\0").decode(errors="replace")
        return FileSystem("xfs", fs, uuid, label or None, where, partuuid)
    return None


class ImageRoot(RootFS):
    """Disk images of one machine, assembled into its ``/`` per its fstab."""

    backend = "dissect"

    def __init__(self, images: list[str | os.PathLike[str]], backing: BackingPolicy | None = None) -> None:
        self.images = [Path(p) for p in images]
        self.backing = backing or BackingPolicy()
        self.label = ", ".join(str(p) for p in self.images)
        self.filesystems: list[FileSystem] = []
        self.problems: list[str] = []
        for path in self.images:
            if not (path.is_file() or path.is_block_device()):  # a disk, an LV, a loop device...
                raise TargetError(f"cannot read image {path}: no such file or block device")
            with _whole_target(f"cannot read image {path}"):
                self._find_filesystems(_open_container(path, self.backing), path)
        with _whole_target(f"cannot read the volumes of {self.label}"):
            self._read_lvm()
        if not self.filesystems:
            raise TargetError(f"no ext2/3/4 or xfs file system found in {self.label}")
        with _whole_target(f"cannot read the file systems of {self.label}"):
            self.mounts = self._assemble()

    def __reduce__(self) -> tuple[object, ...]:
        return (ImageRoot, ([str(p) for p in self.images], self.backing))

    def for_worker(self) -> "ImageRoot":
        """A forked worker must not share file offsets with its parent: open again."""
        return ImageRoot(self.images, self.backing)

    @property
    def description(self) -> dict[str, Any]:
        """How the images were read, for the result's ``target.image``."""
        return {"backend": self.backend, "images": [str(p) for p in self.images],
                "mounts": [{"path": pt, "source": f"{fs.where} ({fs.kind}, UUID {fs.uuid})"}
                           for pt, fs in sorted(self.mounts, key=lambda m: m[0])],
                "problems": list(self.problems)}

    # ---- discovery ---------------------------------------------------------------------------
    def _find_filesystems(self, stream: BinaryIO, path: Path) -> None:
        from dissect.volume.disk import Disk

        try:
            stream.seek(0)
            disk = Disk(stream)
        except Exception:  # noqa: BLE001 - no partition table: a bare file system or physical volume
            if _is_lvm_pv(stream):
                self._pvs.append((stream, str(path)))
                return
            fs = _filesystem(stream, str(path))
            if fs:
                self.filesystems.append(fs)
            return
        for part in disk.partitions:
            where = f"{path} partition {getattr(part, 'number', '?')} ({getattr(part, 'name', '') or ''})"
            try:
                size = stream.seek(0, io.SEEK_END)
                if part.offset + part.size > size:
                    self.problems.append(f"{where}: runs past the end of the disk; skipped")
                    continue
                guid = getattr(part, "guid", None)
                pstream = part.open()
                if _is_lvm_pv(pstream):
                    self._pvs.append((pstream, where))
                    continue
                fs = _filesystem(pstream, where, str(guid) if guid else None)
            except Exception as exc:  # noqa: BLE001
                self.problems.append(f"{where}: {exc}")
                continue
            if fs:
                self.filesystems.append(fs)

    @property
    def _pvs(self) -> list[tuple[BinaryIO, str]]:
        return self.__dict__.setdefault("_pv_list", [])

    def _read_lvm(self) -> None:
        """The file systems on the logical volumes of every complete volume group."""
        if not self._pvs:
            return
        from dissect.volume.lvm import LVM2
        from dissect.volume.lvm.physical import LVM2Device

        groups: dict[str, list[Any]] = {}
        for stream, where in self._pvs:
            try:
                dev = LVM2Device(stream)
                vg = next(k for k, v in dev.metadata.items() if isinstance(v, dict))
            except Exception as exc:  # noqa: BLE001 - a damaged label or metadata area
                self.problems.append(f"{where}: LVM2 physical volume unreadable: {exc}")
                continue
            groups.setdefault(vg, []).append(dev)
        for vg, devs in groups.items():
            try:
                group = LVM2(devs).vg
                wanted = {pv.id.replace("-", "") for pv in group.pv if getattr(pv, "id", None)}
                missing = wanted - {d.id.replace("-", "") for d in devs}
                if missing:
                    self.problems.append(f"volume group {vg}: {len(missing)} physical volume(s) not on these disks")
                    continue
                volumes = [lv for lv in group.lv if lv.is_visible]
            except Exception as exc:  # noqa: BLE001
                self.problems.append(f"volume group {vg}: unreadable metadata: {exc}")
                continue
            for lv in volumes:
                names = (f"/dev/{vg}/{lv.name}", _mapper_name(vg, lv.name))
                try:
                    fs = _filesystem(lv.open(), names[0])
                except Exception as exc:  # noqa: BLE001 - thin, cache, raid... volumes
                    self.problems.append(f"{names[0]} ({lv.type or 'unknown'} volume): {exc}")
                    continue
                if fs:
                    fs.devnames = names
                    self.filesystems.append(fs)

    def _assemble(self) -> list[tuple[str, FileSystem]]:
        """(mount point, file system), longest first: the root is the file system holding
        /etc/fstab (and /usr), the others placed where its fstab says."""
        root = None
        for fs in self.filesystems:
            if self._fs_exists(fs, "etc/fstab") or self._fs_exists(fs, "etc/os-release"):
                root = fs
                break
        if root is None and len(self.filesystems) == 1 and not self.problems:
            root = self.filesystems[0]  # one file system and no /etc: a data disk, read as it is
        if root is None:
            why = f" ({'; '.join(self.problems)})" if self.problems else ""
            raise TargetError(f"no root file system (with /etc) found in {self.label}{why}")
        mounts: list[tuple[str, FileSystem]] = [("/", root)]
        try:
            text = self._fs_read(root, "etc/fstab").decode("utf-8", "replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 3 or not fields[1].startswith("/") or fields[1] == "/" or fields[2] in (
                    "swap", "tmpfs", "proc", "sysfs", "devpts", "nfs", "nfs4", "cifs"):
                continue
            fs = self._match(fields[0])
            if fs is None:
                self.problems.append(f"/etc/fstab: {fields[0]} for {fields[1]} is not on these disks")
            elif fs is not root:
                mounts.append((normpath(fields[1]), fs))
        mounts.sort(key=lambda m: -len(m[0]))
        return mounts

    def _match(self, spec: str) -> FileSystem | None:
        key, _, value = spec.partition("=")
        for fs in self.filesystems:
            if key == "UUID" and fs.uuid and fs.uuid.lower() == value.lower():
                return fs
            if key == "LABEL" and fs.label == value:
                return fs
            if key == "PARTUUID" and fs.partuuid and fs.partuuid.lower() == value.lower():
                return fs
            if spec.startswith("/dev/disk/by-uuid/") and fs.uuid and fs.uuid.lower() == spec.rsplit("/", 1)[1].lower():
                return fs
            if spec.startswith("/dev/disk/by-label/") and fs.label == spec.rsplit("/", 1)[1]:
                return fs
            if spec in fs.devnames:
                return fs
        return None  # e.g. /dev/sda1: a name the guest's kernel assigns, not knowable offline

    # ---- file-system access ------------------------------------------------------------------
    def _entries(self, fs: FileSystem, rel: str, node: Any) -> dict[str, Any]:
        """A directory's entries by name, read once (dissect's ``get`` scans a directory
        linearly for every lookup: quadratic over a census of a big folder)."""
        key = (id(fs), rel)
        cache = self.__dict__.setdefault("_dirs", {})
        entries = cache.get(key)
        if entries is None:
            entries = {}
            try:
                for entry in node.iterdir():
                    name = entry.filename if hasattr(entry, "filename") else entry.name
                    if isinstance(name, bytes):
                        name = name.decode("utf-8", "surrogateescape")
                    if name not in (".", ".."):
                        entries[name] = entry
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - a damaged directory block: an I/O error here
                raise OSError(5, f"cannot read the directory: {exc.__class__.__name__} {exc}".strip(), rel) from exc
            cache[key] = entries
        return entries

    def _fs_node(self, fs: FileSystem, rel: str) -> Any:
        try:
            node = fs.fs.get("/")
            walked = ""
            for part in (p for p in rel.split("/") if p):
                entries = self._entries(fs, walked, node)
                if part not in entries:
                    raise FileNotFoundError(2, "no such file or directory", rel)
                node = entries[part]
                walked = f"{walked}/{part}" if walked else part
            return node
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt inode: an I/O error for this path
            raise OSError(5, f"cannot read: {exc}", rel) from exc

    def _fs_exists(self, fs: FileSystem, rel: str) -> bool:
        try:
            self._fs_node(fs, rel)
            return True
        except OSError:
            return False

    def _fs_read(self, fs: FileSystem, rel: str) -> bytes:
        with _per_file(rel):
            return _Closing(self._fs_node(fs, rel).open(), rel).read(1 << 20)

    def _locate(self, path: str) -> tuple[FileSystem, str]:
        p = normpath(path)
        for point, fs in self.mounts:
            if p == point or point == "/" or p.startswith(point + "/"):
                return fs, p[len(point):].lstrip("/") if point != "/" else p.lstrip("/")
        raise FileNotFoundError(2, "no such file or directory", path)

    def _node(self, path: str) -> Any:
        fs, rel = self._locate(path)
        return self._fs_node(fs, rel)

    @staticmethod
    def _stat(node: Any) -> os.stat_result:
        raw = getattr(node, "inode", None)
        mode = getattr(raw, "i_mode", None)
        if mode is None:
            mode = getattr(raw, "di_mode", 0)
        uid = getattr(raw, "i_uid", getattr(raw, "di_uid", 0))
        gid = getattr(raw, "i_gid", getattr(raw, "di_gid", 0))
        mtime = int(getattr(node, "mtime", 0).timestamp()) if hasattr(getattr(node, "mtime", None), "timestamp") else 0
        # dissect hands out its own integer types: plain ints cross process boundaries
        return os.stat_result((int(mode), int(getattr(node, "inum", 0) or 0), 0, 1, int(uid), int(gid),
                               int(node.size or 0), mtime, mtime, mtime))

    # ---- primitives ----------------------------------------------------------------------------
    def lstat(self, path: str) -> os.stat_result:
        with _per_file(path):
            return self._stat(self._node(path))

    def readlink(self, path: str) -> str:
        with _per_file(path):
            node = self._node(path)
            if not statmod.S_ISLNK(self._stat(node).st_mode):
                raise OSError(22, "not a symbolic link", path)
            link = node.link
            return link.decode("utf-8", "surrogateescape") if isinstance(link, bytes) else str(link)

    def listdir(self, path: str) -> list[tuple[str, str]]:
        with _per_file(path, "cannot list"):
            return self._listdir(normpath(path))

    def _listdir(self, p: str) -> list[tuple[str, str]]:
        node = self._node(p)
        if not statmod.S_ISDIR(self._stat(node).st_mode):
            raise NotADirectoryError(20, "not a directory", p)
        fs, rel = self._locate(p)
        out = []
        for name, entry in self._entries(fs, rel, node).items():
            # the type recorded in the directory entry itself (ext2+ filetype, xfs ftype):
            # a listing reads no inode
            mode = getattr(entry, "_filetype", None)
            if not mode:
                try:
                    mode = self._stat(entry).st_mode
                except Exception:  # noqa: BLE001 - a damaged inode: listed as other, reported when opened
                    mode = 0
            kind = ("dir" if statmod.S_ISDIR(mode) else "file" if statmod.S_ISREG(mode) else
                    "symlink" if statmod.S_ISLNK(mode) else "other")
            child = posixpath.join(p, name)
            if any(point == child for point, _ in self.mounts):
                kind = "dir"  # a mount point: the mounted file system's root
            out.append((name, kind))
        return out

    def open_resolved(self, path: str) -> tuple[BinaryIO, os.stat_result]:
        with _per_file(path, "cannot open"):
            node = self._node(path)
            st = self._stat(node)
            require_regular(st, path)
            return _Closing(node.open(), path), st


class _Closing(io.RawIOBase):
    """A dissect stream as a context-managed binary file (read, seek, tell). Reads skip
    dissect's layered streams: the file's byte ranges are mapped down through the
    file system's runs, the partition and the qcow2 cluster tables to ranges of the image
    files, which are read with ``os.preadv`` straight into one buffer (one copy instead
    of one per layer; the benchmark's image-vs-folder ratio depends on it). Streams of
    other kinds (inline data, compressed clusters, vmdk) are read by dissect.

    Bounded: one read returns at most ``MAX_IMAGE_READ_BYTES`` (``read()`` of an inode
    claiming 256 GiB must not try to allocate it), the holes read from one opened file add
    up to at most ``MAX_IMAGE_HOLE_BYTES``, and whatever dissect raises on damaged
    structures is an ``OSError`` for the file."""

    def __init__(self, stream: Any, path: str) -> None:
        super().__init__()
        self._s = stream
        self._path = path
        self._hole_budget = limits.MAX_IMAGE_HOLE_BYTES
        self._holes: list[tuple[int, int]] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with _per_file(self._path):
            return self._read(-1 if size is None else size)

    def _read(self, size: int) -> bytes:
        pos, total = self._s.tell(), getattr(self._s, "size", None)
        if total is None:
            return self._s.read(size if 0 <= size <= limits.MAX_IMAGE_READ_BYTES else limits.MAX_IMAGE_READ_BYTES)
        n = max(0, total - pos) if size < 0 else max(0, min(size, total - pos))
        if n > limits.MAX_IMAGE_READ_BYTES:
            raise LimitExceeded("MAX_IMAGE_READ_BYTES", limits.MAX_IMAGE_READ_BYTES,
                                f"one read of {n:,} bytes (the file claims {total:,}); read it in pieces")
        self._spend_holes(pos, n)
        data = _mapped_read(self._s, pos, n)
        if data is not None:
            self._s.seek(pos + len(data))
            return data
        return self._s.read(n)

    def _spend_holes(self, pos: int, n: int) -> None:
        """Count the holes in bytes ``pos`` to ``pos + n`` against the file's budget."""
        if self._holes is None:
            self._holes = _hole_ranges(self._s)
        end = pos + n
        spent = sum(max(0, min(end, b) - max(pos, a)) for a, b in self._holes)
        self._hole_budget -= spent
        if self._hole_budget < 0:
            raise LimitExceeded("MAX_IMAGE_HOLE_BYTES", limits.MAX_IMAGE_HOLE_BYTES,
                                f"holes read from a file claiming {self._s.size:,} bytes")

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def mapped(self) -> mmap.mmap | None:
        """The whole file mapped read-only, when its bytes lie in one page-aligned range
        inside one image file (as ``qemu-img convert`` lays out most files): no copy at
        all, as for a file in a folder. None otherwise (the caller reads it)."""
        total = getattr(self._s, "size", None)
        if not total or total > MAPPED_MAX or not isinstance(self._s, _util_streams()[1]):
            return None
        pieces: list[Piece] = []
        try:
            _pieces(self._s, 0, total, pieces)
        except Exception:  # noqa: BLE001 - anything unusual: read the ordinary way
            return None
        if len(pieces) != 1 or not isinstance(pieces[0][0], int):
            return None
        fd, offset, n = pieces[0]
        # the range must lie inside the image file: a page mapped past its end would
        # kill the process when touched (SIGBUS), where a read only comes up short
        if n != total or offset % mmap.ALLOCATIONGRANULARITY or offset + n > os.fstat(fd).st_size:
            return None
        return mmap.mmap(fd, n, offset=offset, access=mmap.ACCESS_READ)

    def seek(self, offset: int, whence: int = 0) -> int:
        with _per_file(self._path):
            return self._s.seek(offset, whence)

    def tell(self) -> int:
        return self._s.tell()


def _hole_ranges(stream: Any) -> list[tuple[int, int]]:
    """The byte ranges of a file-system stream that no block backs: sparse runs, and the
    slack between the last run and the size the inode claims (where a hostile inode's
    gigabytes are). Streams of other kinds (inline data) have none."""
    if not isinstance(stream, _util_streams()[1]):
        return []
    holes: list[tuple[int, int]] = []
    at = 0
    for block, count in stream.runlist:
        run = count * stream.block_size
        if block is None and run:
            holes.append((at, at + run))
        at += run
    if at < stream.size:
        holes.append((at, stream.size))
    return holes


MAPPED_MAX = limits.MAX_IMAGE_READ_BYTES  # a file mapped whole is at most one read

# ---- the mapped read path ----
@functools.lru_cache(maxsize=None)
def _util_streams() -> tuple[type, type]:
    """dissect.util's stream classes the mapped path knows, imported once (it runs per read)."""
    from dissect.util.stream import RangeStream, RunlistStream

    return RangeStream, RunlistStream


def _dissect_qcow2_stream() -> type | None:
    """dissect.hypervisor's qcow2 stream class, once something imported it (an image with
    a backing chain): its import costs more than reading a plain image."""
    return getattr(sys.modules.get("dissect.hypervisor.disk.qcow2"), "QCow2Stream", None)


# ------------------------------------------------------------------------
# A piece is (fd, offset, length) for bytes in an image file, (None, 0, length) for zeros,
# or (stream, offset, length) for a layer read the ordinary way (compressed clusters, vmdk).
Piece = tuple[Any, int, int]


def _pieces(stream: Any, offset: int, length: int, out: list[Piece], depth: int = 0) -> None:
    RangeStream, RunlistStream = _util_streams()
    QCow2Stream = _dissect_qcow2_stream()
    if length <= 0:
        return
    if depth > 64:
        raise OSError(40, "image layers nest too deeply")
    if isinstance(stream, RunlistStream):
        bs = stream.block_size
        pos = 0
        for block, count in stream.runlist:
            run = count * bs
            if offset < pos + run and length > 0:
                start = offset - pos
                n = min(run - start, length)
                if block is None:
                    out.append((None, 0, n))
                else:
                    _pieces(stream._fh, block * bs + start, n, out, depth + 1)
                offset += n
                length -= n
            pos += run
            if length <= 0:
                break
        if length > 0:  # past the runs (slack in the size): zeros, as dissect reads them
            out.append((None, 0, length))
    elif isinstance(stream, RangeStream):
        n = max(0, min(length, stream.size - offset))
        _pieces(stream._fh, stream.offset + offset, n, out, depth + 1)
    elif isinstance(stream, PlainQcow2):
        for piece in stream.pieces(offset, length):
            if isinstance(piece[0], int):
                _pieces(stream.fh, piece[1], piece[2], out, depth + 1)  # merges with what precedes
            else:
                out.append(piece)
    elif QCow2Stream is not None and isinstance(stream, QCow2Stream) and _plain_qcow2(stream):
        _qcow2_pieces(stream, offset, length, out, depth)
    elif QCow2Stream is not None and isinstance(stream, QCow2Stream):
        from dissect.hypervisor.disk.qcow2 import (
            UNALLOCATED_SUBCLUSTER_TYPES,
            ZERO_SUBCLUSTER_TYPES,
            QCow2SubclusterType,
        )

        q = stream.qcow2
        for sc_type, read_offset, run_offset, run_length in stream._yield_runs(offset, length):
            if sc_type in ZERO_SUBCLUSTER_TYPES or (sc_type in UNALLOCATED_SUBCLUSTER_TYPES and not q.has_backing_file):
                out.append((None, 0, run_length))
            elif sc_type in UNALLOCATED_SUBCLUSTER_TYPES:
                _pieces(q.backing_file, read_offset, run_length, out, depth + 1)
            elif sc_type == QCow2SubclusterType.QCOW2_SUBCLUSTER_NORMAL:
                _pieces(q.data_file, run_offset, run_length, out, depth + 1)
            else:
                out.append((stream, read_offset, run_length))
    else:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            out.append((stream, offset, length))
            return
        if out and isinstance(out[-1][0], int) and out[-1][0] == fd and out[-1][1] + out[-1][2] == offset:
            last = out.pop()
            out.append((fd, last[1], last[2] + length))
        else:
            out.append((fd, offset, length))


def _plain_qcow2(stream: Any) -> bool:
    """A qcow2 image the cluster walk below reads itself: no extended L2 entries
    (subclusters), no external data file, no encryption. Others go through dissect."""
    q = stream.qcow2
    header = q.header
    return (not (int(header.incompatible_features) & ((1 << 4) | (1 << 2))) and not int(header.crypt_method)
            and q.data_file is q.fh)


def _qcow2_pieces(stream: Any, offset: int, length: int, out: list[Piece], depth: int) -> None:
    """Guest bytes of a qcow2 image mapped to host ranges, one cluster at a time through
    the L1 and L2 tables (read once per table and kept); runs of host-contiguous
    clusters merge into one piece."""
    q = stream.qcow2
    bits = q.cluster_bits
    csize = 1 << bits
    per_l2 = csize // 8
    tables = stream.__dict__.setdefault("_fc_l2", {})
    l1 = stream.l1_table
    while length > 0:
        cluster, within = offset >> bits, offset & (csize - 1)
        n = min(length, csize - within)
        l1_index, l2_index = divmod(cluster, per_l2)
        l2_at = (int(l1[l1_index]) & L2_OFFSET) if l1_index < len(l1) else 0
        entry = 0
        if l2_at:
            table = tables.get(l2_at)
            if table is None:
                q.fh.seek(l2_at)
                raw = q.fh.read(csize)
                if len(raw) != csize:
                    raise OSError(5, "an L2 table lies past the end of the qcow2 file")
                table = tables[l2_at] = be_u64(raw)
            entry = table[l2_index]
        host = entry & L2_OFFSET
        if entry & COMPRESSED:
            out.append((stream, offset, n))  # dissect decompresses it
        elif entry & ZERO and q.header.version >= 3:
            out.append((None, 0, n))
        elif not host:
            if q.has_backing_file:
                _pieces(q.backing_file, offset, n, out, depth + 1)
            else:
                out.append((None, 0, n))
        else:
            _pieces(q.data_file, host + within, n, out, depth + 1)
        offset += n
        length -= n


def _mapped_read(stream: Any, offset: int, length: int) -> bytes | None:
    """``length`` bytes at ``offset`` of a file-system stream, read through the mapped
    path; None when the stream is of a kind the path does not know."""
    if not isinstance(stream, _util_streams()[1]):
        return None
    pieces: list[Piece] = []
    try:
        _pieces(stream, offset, length, pieces)
    except Exception:  # noqa: BLE001 - anything unusual: dissect's own streams read it
        return None
    return read_pieces(pieces, length, _read_layer, "the image file ends inside a file's data")


def _read_layer(src: Any, offset: int, n: int) -> bytes:
    """A piece left to a layer's own reader (compressed clusters, vmdk)."""
    src.seek(offset)
    return src.read(n)
