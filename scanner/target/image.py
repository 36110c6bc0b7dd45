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
import struct
import sys
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.limits import LimitExceeded
from scanner.target.base import RootFS, TargetError, normpath, require_regular
from scanner.target.qcow2 import (COMPRESSED, L2_OFFSET, ZERO, BackingPolicy, Layer, PlainQcow2, Qcow2Error, backing_chain,
                                  be_u64, check_entry, open_plain, read_pieces, refused, vmdk_refusal)


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
    damage: tuple[str, ...] = ()  # what the file system's own checksums say is damaged
    checks: ExtChecks | None = None  # ext4 metadata checksums, when the file system has them


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

    backing: Any = None
    for layer in reversed(layers):
        if layer.fmt == "raw":
            backing = layer.fh
            continue
        why = refused(layer.fh)
        if why:
            raise TargetError(f"cannot read image {layer.path}: {why}")
        layer.fh.seek(0)
        if backing is not None:
            backing = _ZeroPadded(backing, layer.size)
        backing = QCow2(layer.fh, backing_file=backing, allow_no_backing_file=backing is None).open()
    assert backing is not None
    return backing


class _ZeroPadded(io.RawIOBase):
    """A backing layer as its overlay sees it: ``size`` bytes, zeros past the layer's own
    end (as QEMU reads a backing file shorter than the disk). Without it a read that
    crosses the end comes up short, and a directory block read there looks cut off."""

    def __init__(self, inner: Any, size: int) -> None:
        super().__init__()
        self.inner = inner
        self.size = size
        self.inner_size = inner.seek(0, io.SEEK_END)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end <= self.pos:
            return b""
        data = b""
        if self.pos < self.inner_size:
            self.inner.seek(self.pos)
            data = self.inner.read(min(end, self.inner_size) - self.pos)
        data += bytes(end - self.pos - len(data))
        self.pos = end
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _vmdk(path: Path, fh: BinaryIO) -> BinaryIO:
    """The guest disk of a monolithic sparse vmdk (``qemu-img convert -O vmdk``); one
    naming other files is refused (:func:`~scanner.target.qcow2.vmdk_refusal`)."""
    from dissect.hypervisor.disk.vmdk import VMDK

    why = vmdk_refusal(fh)
    if why:
        raise TargetError(f"cannot read image {path}: {why}")
    vmdk = VMDK(fh)
    return vmdk.open() if hasattr(vmdk, "open") else vmdk


#: bytes of GPT partition entries checked (128 entries of 128 bytes is what every tool writes)
_GPT_ENTRIES_MAX = 1 << 20


def _gpt_damage(stream: BinaryIO) -> list[str]:
    """What the CRC32s of a GPT say is damaged (the primary header, its partition
    entries): dissect reads the primary table as it finds it, where the kernel would
    refuse it and read the backup; either way what the scan reads may not be what the
    guest sees. Empty for an intact GPT or another kind of table."""
    stream.seek(512)
    head = stream.read(512)
    if head[:8] != b"EFI PART":
        return []
    size = struct.unpack_from("<I", head, 12)[0]
    if not 92 <= size <= 512:
        return [f"the GPT header gives its own size as {size} bytes (92 to 512): damaged"]
    out = []
    if zlib.crc32(head[:16] + b"\0\0\0\0" + head[20:size]) != struct.unpack_from("<I", head, 16)[0]:
        out.append("the primary GPT header's CRC32 does not match: it is damaged (the guest's kernel would read "
                   "the backup GPT instead)")
    entries_at, count, entry_size, crc = struct.unpack_from("<QIII", head, 72)
    total = count * entry_size
    if entry_size < 128 or total > _GPT_ENTRIES_MAX:
        out.append(f"the GPT header names {count:,} partition entries of {entry_size} bytes: damaged")
        return out
    stream.seek(entries_at * 512)
    data = stream.read(total)
    if len(data) != total:
        out.append("the GPT partition entries lie past the end of the disk")
    elif zlib.crc32(data) != crc:
        out.append("the GPT partition entries' CRC32 does not match: partitions may be read from damaged entries")
    return out


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
        checks = ExtChecks.of(fs)
        return FileSystem("ext", fs, uuid, label or None, where, partuuid,
                          damage=tuple(checks.damage_at_open()) if checks else (), checks=checks)
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


# ---- ext4's own consistency checks ----------------------------------------------------------
# dissect.extfs reads what it finds: a flipped bit in an inode, a directory block or a group
# descriptor is read as if it were data, and a directory entry it cannot parse ends the
# listing with a log line nobody sees (the rest of the folder is silently gone). The
# kernel checks what ext4 lets it check; so does flightcheck, and every failure is an
# error of the path (an inode, a listing) or of the file system (superblock, descriptors).

_EXT4_RO_COMPAT_METADATA_CSUM = 0x0400
_EXT4_INCOMPAT_CSUM_SEED = 0x2000
_DIRENT_TAIL = 12  # struct ext4_dir_entry_tail at the end of a leaf block (metadata_csum)


def _crc(seed: int, data: bytes) -> int:
    """ext4's ``ext4_chksum``: crc32c from ``seed``, without the final inversion."""
    from dissect.util.hash.crc32c import crc32c

    return crc32c(data, seed ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


class ExtChecks:
    """The metadata checksums of one ext4 file system (``metadata_csum``): superblock,
    group descriptors, inodes and directory leaf blocks, verified as the kernel verifies
    them before it trusts one."""

    def __init__(self, ext: Any, raw_sb: bytes) -> None:
        self.ext = ext
        self.sb = raw_sb
        incompat = struct.unpack_from("<I", raw_sb, 0x60)[0]
        if incompat & _EXT4_INCOMPAT_CSUM_SEED:
            self.seed = struct.unpack_from("<I", raw_sb, 0x270)[0]
        else:
            self.seed = _crc(0xFFFFFFFF, raw_sb[0x68:0x78])
        self.inode_size = int(ext.sb.s_inode_size) or 128
        from dissect.extfs.c_ext import c_ext

        self.wide_descriptors = ext._group_desc_struct == c_ext.ext4_group_desc
        self.bad_inodes: dict[int, str] = {}
        self.good_inodes: set[int] = set()

    @classmethod
    def of(cls, ext: Any) -> ExtChecks | None:
        """The checks of ``ext`` when it has metadata checksums (ext4 since e2fsprogs 1.43)."""
        ext.fh.seek(1024)
        raw = ext.fh.read(1024)
        if len(raw) != 1024 or not struct.unpack_from("<I", raw, 0x64)[0] & _EXT4_RO_COMPAT_METADATA_CSUM:
            return None
        return cls(ext, raw)

    def damage_at_open(self) -> Iterator[str]:
        """The superblock's checksum, then every group descriptor's."""
        if _crc(0xFFFFFFFF, self.sb[:0x3FC]) != struct.unpack_from("<I", self.sb, 0x3FC)[0]:
            yield "ext4 superblock checksum mismatch (a damaged superblock: its counts and offsets are not trusted)"
        ext = self.ext
        size = int(ext._group_desc_size)
        count = int(ext.groups_count)
        if not 0 < size <= 1024 or count > limits.MAX_IMAGE_READ_BYTES // size:
            yield f"ext4 group descriptors unreadable ({count:,} groups of {size} bytes)"
            return
        ext.fh.seek(int(ext.groups_offset))
        table = ext.fh.read(count * size)
        bad = []
        for group in range(count):
            desc = table[group * size:(group + 1) * size]
            if len(desc) < size:
                yield f"ext4 group descriptor table cut short at group {group}"
                return
            want = struct.unpack_from("<H", desc, 0x1E)[0]
            got = _crc(_crc(self.seed, struct.pack("<I", group)), desc[:0x1E] + b"\0\0" + desc[0x20:]) & 0xFFFF
            if got != want:
                bad.append(group)
        if bad:
            yield (f"ext4 group descriptor checksum mismatch in {len(bad)} group(s) (first {bad[0]}): the inodes of "
                   "those groups are read where a damaged descriptor says they are")

    def inode(self, inum: int) -> str | None:
        """Why inode ``inum`` is not to be trusted (its checksum), or None."""
        if inum in self.good_inodes:
            return None
        if inum in self.bad_inodes:
            return self.bad_inodes[inum]
        ext = self.ext
        group, index = divmod(inum - 1, int(ext.sb.s_inodes_per_group))
        desc = ext._read_group_desc(group)
        table = int(desc.bg_inode_table_lo)
        if self.wide_descriptors:
            table |= int(desc.bg_inode_table_hi) << 32
        ext.fh.seek(table * int(ext.block_size) + index * self.inode_size)
        raw = ext.fh.read(self.inode_size)
        why = None
        if len(raw) != self.inode_size:
            why = f"inode {inum} lies past the end of the file system"
        else:
            want = struct.unpack_from("<H", raw, 0x7C)[0]
            body = raw[:0x7C] + b"\0\0" + raw[0x7E:]
            wide = self.inode_size > 128 and 0x84 <= 128 + struct.unpack_from("<H", raw, 0x80)[0]
            if wide:
                want |= struct.unpack_from("<H", raw, 0x82)[0] << 16
                body = body[:0x82] + b"\0\0" + body[0x84:]
            csum = _crc(_crc(self.seed, struct.pack("<I", inum)), raw[0x64:0x68])
            got = _crc(csum, body)
            if (got if wide else got & 0xFFFF) != want:
                why = f"inode {inum} checksum mismatch (a damaged inode: its type, size and blocks are not trusted)"
        if why is None:
            self.good_inodes.add(inum)
        else:
            self.bad_inodes[inum] = why
        return why

    def dirblock(self, inum: int, generation: int, block: bytes) -> bool | None:
        """Whether a directory leaf block's checksum matches (None: no tail, so an htree
        node or a block without one)."""
        tail = block[-_DIRENT_TAIL:]
        if len(block) < _DIRENT_TAIL or tail[:8] != b"\0\0\0\0\x0c\0\0\xde":
            return None
        csum = _crc(_crc(self.seed, struct.pack("<I", inum)), struct.pack("<I", generation))
        return _crc(csum, block[:-_DIRENT_TAIL]) == struct.unpack_from("<I", tail, 8)[0]


def _ext_entries(fs: FileSystem, node: Any, damage: list[str]) -> Iterator[Any]:
    """The entries of an ext2/3/4 directory, read block by block as the kernel reads them
    (entries never cross a block): a malformed entry ends its block, not the folder; a
    block whose checksum fails, a hole, an entry naming an inode out of range each add
    one line to ``damage``. dissect's own ``iterdir`` stops at the first bad entry and
    only logs it."""
    from dissect.extfs.c_ext import FILETYPES

    ext = fs.fs
    bs = int(ext.block_size)
    size = int(node.size or 0)
    if size > limits.MAX_IMAGE_READ_BYTES:
        raise LimitExceeded("MAX_IMAGE_READ_BYTES", limits.MAX_IMAGE_READ_BYTES, f"a directory of {size:,} bytes")
    if size % bs:
        damage.append(f"directory size {size:,} is not a multiple of the block size {bs}")
    typed = bool(ext.sb.s_feature_incompat & 0x2)  # filetype: ext2_dir_entry_2
    inodes = int(ext.sb.s_inodes_count)
    generation = int(node.inode.i_generation)
    runs = node.dataruns()
    stream = node.open()
    at = 0
    zeroed = 0
    for blockno, count in runs:
        for i in range(int(count)):
            pos = (at + i) * bs
            if pos >= size:
                break
            if blockno is None:
                damage.append(f"a hole in the directory at offset {pos:#x} (no block where entries must be)")
                continue
            stream.seek(pos)
            block = stream.read(bs)
            if len(block) != bs:
                damage.append(f"directory block at offset {pos:#x} lies past the end of the image")
                return
            if not block.strip(b"\0"):
                zeroed += 1
                continue
            if fs.checks is not None and fs.checks.dirblock(int(node.inum), generation, block) is False:
                damage.append(f"directory block at offset {pos:#x}: checksum mismatch (entries read from it may be "
                              "wrong)")
            yield from _ext_block(block, pos, bs, typed, inodes, ext, FILETYPES, damage)
        at += int(count)
    if zeroed:
        damage.append(f"{zeroed} directory block(s) read as zeros (unallocated in the image, or wiped): their "
                      "entries are lost")


def _ext_block(block: bytes, pos: int, bs: int, typed: bool, inodes: int, ext: Any,
               filetypes: dict[int, int], damage: list[str]) -> Iterator[Any]:
    off = 0
    while off < bs:
        if off + 8 > bs:
            damage.append(f"directory entry at offset {pos + off:#x} runs past its block")
            return
        if typed:
            inum, rec_len, name_len, ftype = struct.unpack_from("<IHBB", block, off)
        else:
            inum, rec_len, name_len = struct.unpack_from("<IHH", block, off)
            ftype = 0
        if bs >= 65536 and rec_len in (0, 65535):
            rec_len = bs
        if rec_len < 12 or rec_len % 4 or off + rec_len > bs or 8 + name_len > rec_len:
            damage.append(f"malformed directory entry at offset {pos + off:#x} (record length {rec_len}, name "
                          f"length {name_len}): the rest of its block is not read")
            return
        if inum:  # 0: an unused entry (or an htree node's, whose index fills the rest of the block)
            name = block[off + 8:off + 8 + name_len].decode("utf-8", "surrogateescape")
            if not 1 <= inum <= inodes:
                damage.append(f"directory entry {name!r} names inode {inum}, past the {inodes:,} inodes")
            elif name not in (".", "..") and name_len:
                yield ext.get_inode(inum, name, filetypes.get(ftype) if typed else None)
        off += rec_len


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
            with _whole_target(f"cannot read image {path}"):
                self._find_filesystems(_open_container(path, self.backing), path)
        with _whole_target(f"cannot read the volumes of {self.label}"):
            self._read_lvm()
        if not self.filesystems:
            raise TargetError(f"no ext2/3/4 or xfs file system found in {self.label}")
        for fs in self.filesystems:
            for line in fs.damage:
                self._problem(fs.where, line)
        with _whole_target(f"cannot read the file systems of {self.label}"):
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
            if _is_lvm_pv(stream):
                self._pvs.append((stream, str(path)))
                return
            fs = _filesystem(stream, str(path))
            if fs:
                self.filesystems.append(fs)
            return
        for line in _gpt_damage(stream):
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
                if _is_lvm_pv(pstream):
                    self._pvs.append((pstream, where))
                    continue
                fs = _filesystem(pstream, where, str(guid) if guid else None)
            except Exception as exc:  # noqa: BLE001
                self._problem(where, f"unreadable partition: {_described(exc)}")
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
                self._problem(where, f"LVM2 physical volume unreadable: {_described(exc)}")
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
                self._problem(f"volume group {vg}", f"unreadable metadata: {_described(exc)}")
                continue
            for lv in volumes:
                names = (f"/dev/{vg}/{lv.name}", _mapper_name(vg, lv.name))
                try:
                    fs = _filesystem(lv.open(), names[0])
                except Exception as exc:  # noqa: BLE001 - thin, cache, raid... volumes
                    self._problem(names[0], f"{lv.type or 'unknown'} volume not read: {_described(exc)}")
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
        cache = self.__dict__.setdefault("_dirs", {})
        entries = cache.get(key)
        if entries is None:
            entries = {}
            damage: list[str] = []
            try:
                listing = _ext_entries(fs, node, damage) if fs.kind == "ext" else node.iterdir()
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
        with self._lock, _per_file(rel):
            return _Closing(self._fs_node(fs, rel).open(), rel, self._lock).read(1 << 20)

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
        with self._lock, _per_file(path):
            return self._stat(self._node(path))

    def readlink(self, path: str) -> str:
        with self._lock, _per_file(path):
            node = self._node(path)
            if not statmod.S_ISLNK(self._stat(node).st_mode):
                raise OSError(22, "not a symbolic link", path)
            link = node.link
            return link.decode("utf-8", "surrogateescape") if isinstance(link, bytes) else str(link)

    def listdir(self, path: str) -> list[tuple[str, str]]:
        with self._lock, _per_file(path, "cannot list"):
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
        with self._lock, _per_file(path, "cannot open"):
            node = self._node(path)
            st = self._stat(node)
            require_regular(st, path)
            return _Closing(node.open(), path, self._lock), st


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

    def __init__(self, stream: Any, path: str, lock: Any = None) -> None:
        super().__init__()
        self._s = stream
        self._path = path
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self._hole_budget = limits.MAX_IMAGE_HOLE_BYTES
        self._holes: list[tuple[int, int]] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with self._lock, _per_file(self._path):
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
            with self._lock:
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
        with self._lock, _per_file(self._path):
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
def _util_streams() -> tuple[Any, Any]:
    """dissect.util's stream classes the mapped path knows, imported once (it runs per read).
    Typed Any: dissect ships no type information, and a bare ``type`` would hide their attributes."""
    from dissect.util.stream import RangeStream, RunlistStream

    return RangeStream, RunlistStream


def _dissect_qcow2_stream() -> Any:  # a class or None; Any as for _util_streams
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
    elif isinstance(stream, _ZeroPadded):
        inside = max(0, min(length, stream.inner_size - offset))
        _pieces(stream.inner, offset, inside, out, depth + 1)
        if length > inside:
            out.append((None, 0, length - inside))
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
        if l2_at:
            check_entry(int(l1[l1_index]) & ~ZERO, csize, 2, f"L1 entry {l1_index}")
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
        if not entry & COMPRESSED:
            check_entry(entry, csize, int(q.header.version), f"L2 entry of guest cluster {cluster}")
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
    except Qcow2Error:
        raise  # a corrupt table: dissect would read zeros there
    except Exception:  # noqa: BLE001 - anything unusual: dissect's own streams read it
        return None
    return read_pieces(pieces, length, _read_layer, "the image file ends inside a file's data")


def _read_layer(src: Any, offset: int, n: int) -> bytes:
    """A piece left to a layer's own reader (compressed clusters, vmdk)."""
    src.seek(offset)
    return src.read(n)
