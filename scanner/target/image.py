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

The layers below the file systems are in :mod:`scanner.target.disks`, ext4's checks and
directory reading in :mod:`scanner.target.ext4`, the read path of an opened file in
:mod:`scanner.target.mapped`; this module assembles the guest's tree (:class:`ImageRoot`).
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat as statmod
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

from scanner.errors import ErrorRecord
from scanner.target.base import RootFS, TargetError, normpath, require_regular
from scanner.target.disks import (
    FileSystem, described, gpt_damage, is_lvm_pv, mapper_name, open_container, open_filesystem, per_file, whole_target,
)
from scanner.target.ext4 import ext_entries
from scanner.target.mapped import Closing
from scanner.target.qcow2 import BackingPolicy


class ImageRoot(RootFS):
    """Disk images of one machine, assembled into its ``/`` per its fstab."""

    backend = "dissect"
    target_kind = "image"

    def __init__(self, images: Sequence[str | os.PathLike[str]], backing: BackingPolicy | None = None) -> None:
        self.images = [Path(p) for p in images]
        self.backing = backing or BackingPolicy()
        self.label = ", ".join(str(p) for p in self.images)
        self.filesystems: list[FileSystem] = []
        self.problems: list[str] = []
        self._problem_records: list[tuple[str, str]] = []
        # one reader at a time: every layer below (dissect's streams, the qcow2 reader)
        # seeks and reads one shared position, and the scan reads from two threads (the
        # package databases beside the census walk): interleaved, one thread's seek
        # moved the other's read (an intact inode then failed its checksum)
        self._lock = threading.RLock()
        self._damage: dict[tuple[str, str], None] = {}  # (guest path, message): damage met while reading
        for path in self.images:
            if not (path.is_file() or path.is_block_device()):  # a disk, an LV, a loop device...
                raise TargetError(f"cannot read image {path}: no such file or block device")
            with whole_target(f"cannot read image {path}"):
                self._find_filesystems(open_container(path, self.backing), path)
        with whole_target(f"cannot read the volumes of {self.label}"):
            self._read_lvm()
        if not self.filesystems:
            raise TargetError(f"no ext2/3/4 or xfs file system found in {self.label}")
        for fs in self.filesystems:
            for line in fs.damage:
                self._problem(fs.where, line)
        with whole_target(f"cannot read the file systems of {self.label}"):
            self.mounts = self._assemble()
        for fs, rel, message, walk in self.__dict__.pop("_early", ()):
            self._damaged(fs, rel, message, walk)

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

    def image_facts(self) -> dict[str, Any] | None:
        """How the images were read (:attr:`description`), for the target's identity."""
        return self.description

    def _problem(self, where: str, message: str) -> None:
        """Something of the disks that is not read (a partition, a volume, a file system
        the guest mounts), or damage a file system's own checks found: shown in
        ``target.image.problems`` and an error record of the scan (:meth:`target_errors`)."""
        self.problems.append(f"{where}: {message}")
        self._problem_records.append((where, message))

    def target_errors(self) -> list[ErrorRecord]:
        """What of the disks could not be read, as error records (stage ``target``): the
        image's problems, then the damage met while reading (a directory's checksum or
        entries, a block that reads as zeros) in this process. A census worker's own
        damage reaches the scan through :attr:`walk_errors`."""
        out = [ErrorRecord(where, "target", message) for where, message in self._problem_records]
        out += [ErrorRecord(path, "target", message) for path, message in self._damage]
        return out

    def _damaged(self, fs: FileSystem, rel: str, message: str, walk: bool = True) -> None:
        """Damage met while reading ``rel`` of ``fs``: kept for :meth:`target_errors` and,
        for a folder's listing (``walk``), told to the walk, whose errors travel back
        from census workers. Met before the file systems are placed (reading the root's
        fstab), it waits to be named by its guest path."""
        if "mounts" not in self.__dict__:
            self.__dict__.setdefault("_early", []).append((fs, rel, message, walk))
            return
        key = (self._guest_path(fs, rel), message)
        if key not in self._damage:
            self._damage[key] = None
            if walk:
                self.walk_errors.append(key)

    # ---- discovery ---------------------------------------------------------------------------
    def _find_filesystems(self, stream: BinaryIO, path: Path) -> None:
        from dissect.volume.disk import Disk

        try:
            stream.seek(0)
            disk = Disk(stream)
        except Exception:  # noqa: BLE001 - no partition table: a bare file system or physical volume
            if is_lvm_pv(stream):
                self._pvs.append((stream, str(path)))
                return
            fs = open_filesystem(stream, str(path))
            if fs:
                self.filesystems.append(fs)
            return
        for line in gpt_damage(stream):
            self._problem(str(path), line)
        for part in disk.partitions:
            where = f"{path} partition {getattr(part, 'number', '?')} ({getattr(part, 'name', '') or ''})"
            try:
                size = stream.seek(0, io.SEEK_END)
                if part.offset + part.size > size:
                    self._problem(where, "the partition runs past the end of the disk; not read")
                    continue
                guid = getattr(part, "guid", None)
                pstream = part.open()
                if is_lvm_pv(pstream):
                    self._pvs.append((pstream, where))
                    continue
                fs = open_filesystem(pstream, where, str(guid) if guid else None)
            except Exception as exc:  # noqa: BLE001
                self._problem(where, f"unreadable partition: {described(exc)}")
                continue
            if fs:
                self.filesystems.append(fs)

    @property
    def _pvs(self) -> list[tuple[BinaryIO, str]]:
        pvs: list[tuple[BinaryIO, str]] = self.__dict__.setdefault("_pv_list", [])
        return pvs

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
                self._problem(where, f"LVM2 physical volume unreadable: {described(exc)}")
                continue
            groups.setdefault(vg, []).append(dev)
        for vg, devs in groups.items():
            try:
                group = LVM2(devs).vg
                wanted = {pv.id.replace("-", "") for pv in group.pv if getattr(pv, "id", None)}
                missing = wanted - {d.id.replace("-", "") for d in devs}
                if missing:
                    self._problem(f"volume group {vg}", f"{len(missing)} physical volume(s) not on these disks: its volumes are "
                                  "not read")
                    continue
                volumes = [lv for lv in group.lv if lv.is_visible]
            except Exception as exc:  # noqa: BLE001
                self._problem(f"volume group {vg}", f"unreadable metadata: {described(exc)}")
                continue
            for lv in volumes:
                names = (f"/dev/{vg}/{lv.name}", mapper_name(vg, lv.name))
                try:
                    fs = open_filesystem(lv.open(), names[0])
                except Exception as exc:  # noqa: BLE001 - thin, cache, raid... volumes
                    self._problem(names[0], f"{lv.type or 'unknown'} volume not read: {described(exc)}")
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
            match = self._match(fields[0])
            if match is None:
                self._problem(normpath(fields[1]), self._unmounted(fields[0], fields[1], fields[2]))
            elif match is not root:
                mounts.append((normpath(fields[1]), match))
        mounts.sort(key=lambda m: -len(m[0]))
        return mounts

    def _unmounted(self, spec: str, point: str, kind: str) -> str:
        """Why the guest's fstab line for ``point`` gives the scan nothing: it is part of
        the guest's tree, so its files are unread (an error record, never a silent gap)."""
        if kind in ("vfat", "msdos", "fat", "exfat", "ntfs", "ntfs3", "iso9660", "btrfs", "zfs", "f2fs"):
            return (f"/etc/fstab mounts {spec} ({kind}) here; flightcheck reads only ext2/3/4 and xfs, so the "
                    f"files under {point} are not scanned")
        return (f"/etc/fstab mounts {spec} ({kind}) here, but no file system of these disks matches it: the "
                f"files under {point} are not scanned")

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
        cache: dict[tuple[int, str], dict[str, Any]] = self.__dict__.setdefault("_dirs", {})
        entries = cache.get(key)
        if entries is None:
            entries = {}
            damage: list[str] = []
            try:
                listing = ext_entries(fs, node, damage) if fs.kind == "ext" else node.iterdir()
                for entry in listing:
                    name = entry.filename if hasattr(entry, "filename") else entry.name
                    if isinstance(name, bytes):
                        name = name.decode("utf-8", "surrogateescape")
                    if name not in (".", ".."):
                        entries[name] = entry
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - a damaged directory block: an I/O error here
                raise OSError(5, f"cannot read the directory: {exc.__class__.__name__} {exc}".strip(), rel) from exc
            finally:
                for line in damage:
                    self._damaged(fs, rel, f"damaged directory: {line}")
            cache[key] = entries
        return entries

    def _guest_path(self, fs: FileSystem, rel: str) -> str:
        """Where ``rel`` of ``fs`` is in the guest's tree (its mount point first)."""
        point = next((pt for pt, f in self.__dict__.get("mounts", ()) if f is fs), None)
        if point is None:
            return f"{fs.where}:/{rel}"  # before assembly, or a file system the guest does not mount
        return normpath(posixpath.join(point, rel))

    def _fs_node(self, fs: FileSystem, rel: str) -> Any:
        try:
            node = fs.fs.get("/")
            self._trusted(fs, node, "")
            walked = ""
            for part in (p for p in rel.split("/") if p):
                entries = self._entries(fs, walked, node)
                if part not in entries:
                    raise FileNotFoundError(2, "no such file or directory", rel)
                node = entries[part]
                walked = f"{walked}/{part}" if walked else part
                self._trusted(fs, node, walked)
            return node
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt inode: an I/O error for this path
            raise OSError(5, f"cannot read: {exc}", rel) from exc

    def _trusted(self, fs: FileSystem, node: Any, rel: str) -> None:
        """Refuse an inode whose checksum fails (as the kernel does: EIO). The damage is
        also kept for :meth:`target_errors`: a reader that only asks whether a file
        exists would otherwise take it for absent."""
        if fs.checks is not None:
            why = fs.checks.inode(int(node.inum))
            if why:
                self._damaged(fs, rel, why, walk=False)
                raise OSError(errno.EIO, why, rel)

    def _fs_exists(self, fs: FileSystem, rel: str) -> bool:
        try:
            self._fs_node(fs, rel)
            return True
        except OSError:
            return False

    def _fs_read(self, fs: FileSystem, rel: str) -> bytes:
        with self._lock, per_file(rel):
            return Closing(self._fs_node(fs, rel).open(), rel, self._lock).read(1 << 20)

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
        mode: Any = getattr(raw, "i_mode", None)
        if mode is None:
            mode = getattr(raw, "di_mode", 0)
        uid = getattr(raw, "i_uid", getattr(raw, "di_uid", 0))
        gid = getattr(raw, "i_gid", getattr(raw, "di_gid", 0))
        stamp: Any = getattr(node, "mtime", None)
        mtime = int(stamp.timestamp()) if hasattr(stamp, "timestamp") else 0
        # dissect hands out its own integer types: plain ints cross process boundaries
        return os.stat_result((int(mode), int(getattr(node, "inum", 0) or 0), 0, 1, int(uid), int(gid),
                               int(node.size or 0), mtime, mtime, mtime))

    # ---- primitives ----------------------------------------------------------------------------
    def lstat(self, path: str) -> os.stat_result:
        with self._lock, per_file(path):
            return self._stat(self._node(path))

    def readlink(self, path: str) -> str:
        with self._lock, per_file(path):
            node = self._node(path)
            if not statmod.S_ISLNK(self._stat(node).st_mode):
                raise OSError(22, "not a symbolic link", path)
            link = node.link
            return link.decode("utf-8", "surrogateescape") if isinstance(link, bytes) else str(link)

    def listdir(self, path: str) -> list[tuple[str, str]]:
        with self._lock, per_file(path, "cannot list"):
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
        with self._lock, per_file(path, "cannot open"):
            node = self._node(path)
            st = self._stat(node)
            require_regular(st, path)
            return cast(BinaryIO, Closing(node.open(), path, self._lock)), st  # a raw file: read, seek, tell
