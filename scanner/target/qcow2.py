"""A read-only qcow2 reader for the common case: one image file, no backing file.

Most disk images flightcheck meets are of this kind (a VM's own disk, a cloud image,
``qemu-img convert``'s output). Reading them needs a header, the L1 table and the L2
tables it points to (QEMU's ``docs/interop/qcow2.txt``), nothing more; doing it here
spares every scan of such an image the import of dissect.hypervisor, which loads every
format it knows (Hyper-V, VirtualBox, VMware...) whatever the image is.

:func:`open_plain` returns None for anything else (a backing file, encryption, an
external data file, extended L2 entries, zstd compression, unknown incompatible
features, a version other than 2 or 3): those images are read by dissect.hypervisor.
Compressed clusters (zlib, as ``qemu-img convert -c`` and cloud images write them) are
read here. A table or cluster past the end of the file is an ``OSError``, never a
silent zero.

:func:`backing_chain` checks and opens the backing files a qcow2 image names, for both
image backends: the names come from the image, which may be hostile (a backing file
``/etc/shadow`` or ``/proc/self/environ`` over unallocated clusters turns a host file
into guest data), so a name is followed only where a :class:`BackingPolicy` allows it.
"""

from __future__ import annotations

import io
import os
import re
import stat as statmod
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.target.base import TargetError, file_type

MAGIC = b"QFI\xfb"
_HEADER = struct.Struct(">4sIQIIQIIQQIIQ")  # the version 2 header, 72 bytes
_V3 = struct.Struct(">QQQII")  # incompatible, compatible, autoclear features, refcount order, header length

#: incompatible features this reader handles: bit 0, "dirty" (refcounts may be stale;
#: reading is unaffected). Any other bit set, or a compression type other than zlib, and
#: the image goes to dissect.
_HANDLED_INCOMPATIBLE = 1 << 0
_COMPRESSION_TYPE_BIT = 1 << 3

L2_OFFSET = 0x00FFFFFFFFFFFE00  # bits 9-55 of an L1 or L2 entry: the host offset
COMPRESSED = 1 << 62
ZERO = 1  # version 3: the cluster reads as zeros
COPIED = 1 << 63  # the cluster (or L2 table) is in use, referenced once
MAX_L1_BYTES = 32 << 20  # QEMU's own limit on the L1 table


class Qcow2Error(OSError):
    """The file says it is qcow2 but its header or tables cannot be right."""


def check_entry(entry: int, cluster_size: int, version: int, what: str) -> None:
    """Refuse an L1 or uncompressed L2 entry that QEMU itself refuses or calls corrupt
    (``qemu-img check``): a host offset not on a cluster boundary (QEMU: EIO), or the
    in-use flag (COPIED) on an entry that names no cluster and is no zero cluster. Such
    an entry is damage: read as zeros, the guest's bytes there would silently be lost."""
    host = entry & L2_OFFSET
    if host & (cluster_size - 1):
        raise Qcow2Error(5, f"corrupt qcow2 table: {what} names host offset {host:#x}, not on a cluster boundary")
    if not host and entry & COPIED and not (entry & ZERO and version >= 3):
        raise Qcow2Error(5, f"corrupt qcow2 table: {what} is marked in use ({entry:#018x}) but names no cluster")


class PlainQcow2(io.RawIOBase):
    """The guest disk of a qcow2 file, as a seekable binary stream (read-only)."""

    def __init__(self, fh: BinaryIO, header: tuple[int, ...]) -> None:
        super().__init__()
        self.fh = fh
        self.fd = fh.fileno()
        self.version, self.cluster_bits, self.size, l1_size, l1_at = header
        self.cluster_size = 1 << self.cluster_bits
        self._per_l2 = self.cluster_size // 8
        raw = pread_exact(self.fd, l1_size * 8, l1_at, "the L1 table lies past the end of the qcow2 file")
        self.l1 = be_u64(raw)
        self._l2: dict[int, array[int]] = {}
        self._pos = 0
        self._inflated: tuple[int, bytes] | None = None  # the last compressed cluster read

    # ---- io ---------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        if end <= self._pos:
            return b""
        data = read_pieces(self.pieces(self._pos, end - self._pos), end - self._pos, self._compressed,
                           "a data cluster lies past the end of the qcow2 file")
        self._pos = end
        return data

    def readinto(self, b: Any) -> int:  # a writable buffer
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    # ---- the cluster map --------------------------------------------------------------
    def pieces(self, offset: int, length: int) -> list[tuple[object, int, int]]:
        """Guest bytes ``offset`` to ``offset + length`` as pieces: ``(fd, host offset,
        n)`` for bytes in this file, ``(None, 0, n)`` for zeros, ``(self, guest offset,
        n)`` for bytes of a compressed cluster. Host-contiguous clusters merge."""
        out: list[tuple[object, int, int]] = []
        length = max(0, min(length, self.size - offset))
        bits, csize = self.cluster_bits, self.cluster_size
        while length > 0:
            cluster, within = offset >> bits, offset & (csize - 1)
            n = min(length, csize - within)
            entry = self._entry(cluster)
            host = entry & L2_OFFSET
            if not entry & COMPRESSED:
                check_entry(entry, self.cluster_size, self.version, f"L2 entry of guest cluster {cluster}")
            if entry & COMPRESSED:
                out.append((self, offset, n))
            elif (entry & ZERO and self.version >= 3) or not host:
                if out and out[-1][0] is None:
                    out[-1] = (None, 0, out[-1][2] + n)
                else:
                    out.append((None, 0, n))
            elif out and out[-1][0] == self.fd and out[-1][1] + out[-1][2] == host + within:
                out[-1] = (self.fd, out[-1][1], out[-1][2] + n)
            else:
                out.append((self.fd, host + within, n))
            offset += n
            length -= n
        return out

    def _entry(self, cluster: int) -> int:
        l1_index, l2_index = divmod(cluster, self._per_l2)
        if l1_index >= len(self.l1):
            return 0
        l2_at = self.l1[l1_index] & L2_OFFSET
        check_entry(self.l1[l1_index] & ~ZERO, self.cluster_size, 2, f"L1 entry {l1_index}")
        if not l2_at:
            return 0
        table = self._l2.get(l2_at)
        if table is None:
            table = self._l2[l2_at] = be_u64(pread_exact(self.fd, self.cluster_size, l2_at,
                                                               "an L2 table lies past the end of the qcow2 file"))
        return table[l2_index]

    def _compressed(self, _self: object, offset: int, n: int) -> bytes:
        cluster, within = divmod(offset, self.cluster_size)
        if self._inflated is None or self._inflated[0] != cluster:
            entry = self._entry(cluster)
            # bits 0 .. x-1 hold the host offset, x .. 61 the count of further 512-byte
            # sectors, x = 62 - (cluster_bits - 8)
            x = 62 - (self.cluster_bits - 8)
            host = entry & ((1 << x) - 1)
            sectors = ((entry >> x) & ((1 << (self.cluster_bits - 8)) - 1)) + 1
            stored = sectors * 512 - (host & 511)
            raw = os.pread(self.fd, stored, host)  # the last cluster may end with the file
            try:
                d = zlib.decompressobj(-12)  # raw deflate, a 4 KiB window, as QEMU writes it
                data = d.decompress(raw, self.cluster_size)
            except zlib.error as exc:
                raise Qcow2Error(5, f"a compressed cluster does not inflate: {exc}") from None
            if len(data) != self.cluster_size:
                raise Qcow2Error(5, "a compressed cluster inflates to less than a cluster")
            self._inflated = (cluster, data)
        return self._inflated[1][within: within + n]


def be_u64(raw: bytes) -> array[int]:
    """A table of big-endian 64-bit entries (qcow2's L1 and L2 tables)."""
    table = array("Q", raw)
    if sys.byteorder == "little":
        table.byteswap()
    return table


def pread_exact(fd: int, n: int, offset: int, short: str) -> bytes:
    """``n`` bytes at ``offset`` of ``fd`` (one allocation, not zero-filled first); a file
    that ends first is a :class:`Qcow2Error` saying ``short``."""
    data = os.pread(fd, n, offset)
    while len(data) < n:
        more = os.pread(fd, n - len(data), offset + len(data))
        if not more:
            raise Qcow2Error(5, short)
        data += more
    return data


def read_pieces(pieces: Iterable[tuple[Any, int, int]], length: int, read_other: Callable[[Any, int, int], bytes],
                short: str) -> bytes:
    """The bytes of ``pieces`` (see :meth:`PlainQcow2.pieces`), at most ``length`` of
    them: ``(fd, offset, n)`` read from a file, ``(None, 0, n)`` zeros, anything else by
    ``read_other(source, offset, n)``."""
    parts: list[bytes] = []
    at = 0
    for src, off, n in pieces:
        n = min(n, length - at)
        if n <= 0:
            break
        if src is None:
            data = bytes(n)
        elif isinstance(src, int):
            data = pread_exact(src, n, off, short)
        else:
            data = read_other(src, off, n)
        parts.append(data)
        at += len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def refused(fh: BinaryIO) -> str | None:
    """What makes a qcow2 file one flightcheck will not read at all, or None. Extended L2
    entries (subclusters): dissect.hypervisor exhausts memory on them, and this reader does
    not read them yet."""
    fh.seek(0)
    head = fh.read(_HEADER.size + _V3.size)
    fh.seek(0)
    if len(head) == _HEADER.size + _V3.size and struct.unpack_from(">I", head, 4)[0] >= 3:
        if _V3.unpack_from(head, _HEADER.size)[0] & (1 << 4):
            return "qcow2 images with extended L2 entries (subclusters) are not supported"
    return None


def open_plain(fh: BinaryIO) -> PlainQcow2 | None:
    """The guest disk of the qcow2 file ``fh`` when it is one this reader handles (see
    the module's docstring), else None. A header that cannot be right is a
    :class:`Qcow2Error`."""
    fh.seek(0)
    head = fh.read(512)
    if len(head) < _HEADER.size or head[:4] != MAGIC:
        raise Qcow2Error(22, "not a qcow2 header")
    (_magic, version, backing_at, _backing_len, cluster_bits, size, crypt, l1_size, l1_at,
     _refcount_at, _refcount_clusters, _snapshots, _snapshots_at) = _HEADER.unpack_from(head)
    if version not in (2, 3) or backing_at or crypt:
        return None
    if version == 3:
        if len(head) < _HEADER.size + _V3.size:
            raise Qcow2Error(22, "a version 3 qcow2 header cut short")
        incompatible, _compat, _autoclear, _refcount_order, header_len = _V3.unpack_from(head, _HEADER.size)
        if incompatible & ~_HANDLED_INCOMPATIBLE & ~_COMPRESSION_TYPE_BIT:
            return None
        if incompatible & _COMPRESSION_TYPE_BIT and (header_len <= 104 or len(head) <= 104 or head[104] != 0):
            return None  # zstd
    if not 9 <= cluster_bits <= 21:
        raise Qcow2Error(22, f"qcow2 cluster size 2^{cluster_bits} is out of range")
    if l1_size * 8 > MAX_L1_BYTES:
        raise Qcow2Error(22, f"a qcow2 L1 table of {l1_size} entries is larger than QEMU allows")
    if l1_size and l1_at % 8:
        raise Qcow2Error(22, "the qcow2 L1 table is not aligned")
    return PlainQcow2(fh, (version, cluster_bits, size, l1_size, l1_at))


# ---- backing chains ---------------------------------------------------------------------
_BACKING_FORMAT_EXT = 0xE2792ACA  # header extension: the backing file's format
_DATA_FILE_BIT = 1 << 2  # incompatible feature: the guest's clusters live in another file
_MAX_BACKING_NAME = 1023  # QEMU's own limit on a backing file's name
_MAX_EXTENSIONS = 64  # header extensions looked at (QEMU writes at most a handful)

#: host folders no image may reach, whatever the user allows: reading them runs kernel code
#: (``/proc/self/environ`` is the scanner's own environment) or a device's driver
NEVER_FOLLOWED = ("/proc", "/sys", "/dev")


def _inside(path: str, folder: str) -> bool:
    """Whether the real path ``path`` is ``folder`` or below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass(frozen=True)
class BackingPolicy:
    """Where the files an image names (qcow2 backing files, vmdk extents) may be: inside
    the folder of the image that names them, inside a folder the user allowed
    (``--backing-dir``), or one of the files a libvirt domain's own ``<backingStore>``
    chain names. Paths are real paths (links resolved), so a link inside an allowed folder
    cannot lead out of it."""

    dirs: tuple[str, ...] = ()
    files: frozenset[str] = frozenset()

    @classmethod
    def of(cls, dirs: Iterable[str | os.PathLike[str]] = (),
           files: Iterable[str | os.PathLike[str]] = ()) -> "BackingPolicy":
        """The policy for the folders and files the user and the hypervisor allowed; a
        folder that is not there is a TargetError (a typo must not silently allow less)."""
        real_dirs = []
        for folder in dirs:
            real = os.path.realpath(folder)
            if not os.path.isdir(real):
                raise TargetError(f"--backing-dir {folder}: not a folder")
            real_dirs.append(real)
        return cls(tuple(real_dirs), frozenset(os.path.realpath(f) for f in files))

    def why_not(self, real: str, home: str) -> str | None:
        """Why the real path ``real``, named by an image in the folder ``home``, may not be
        followed; None when it may."""
        if any(_inside(real, never) for never in NEVER_FOLLOWED):
            return "a kernel or device file system is never read"
        if _inside(real, home) or real in self.files or any(_inside(real, d) for d in self.dirs):
            return None
        return f"outside the image's folder {home} (allow another folder with --backing-dir)"


def open_confined(name: str, naming: str, policy: BackingPolicy, what: str = "backing file") -> tuple[BinaryIO, str]:
    """Open the file an image at ``naming`` names (``name``, relative to that image's folder
    as QEMU reads it) when ``policy`` allows it and it is a regular file; returns the file
    and its real path. Anything else is a :class:`TargetError` naming the refused path. The
    type is checked before the open (a FIFO would block it, a device's driver would run)
    and again after it, on the same file (no link or swap in between)."""
    def refuse(why: str) -> TargetError:
        return TargetError(f"{naming}: refused {what} {name!r}: {why}")

    if not name or "\0" in name:
        raise refuse("an empty or invalid name")
    home = os.path.dirname(os.path.abspath(naming))
    real = os.path.realpath(os.path.join(home, name))
    why = policy.why_not(real, os.path.realpath(home))
    if why:
        raise refuse(f"{real}: {why}" if real != name else why)
    try:
        before = os.stat(real)
    except OSError as exc:
        raise refuse(f"{exc.strerror}") from None
    if not statmod.S_ISREG(before.st_mode):
        raise refuse(f"not a regular file: {file_type(before.st_mode)}")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise refuse(f"{exc.strerror}") from None
    after = os.fstat(fd)
    if not statmod.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise refuse("it changed while it was opened")
    return open(fd, "rb"), real  # noqa: SIM115 - kept open for the life of the target


@dataclass
class Layer:
    """One image of a checked backing chain, opened (the first one is the image named)."""

    path: str  # where it was opened: as named for the first, the real path for the others
    fh: BinaryIO
    fmt: str  # qcow2 | raw
    size: int  # the guest disk's size: the virtual size of a qcow2 image, a raw file's size


def backing_info(fh: BinaryIO) -> tuple[bytes | None, str | None, int]:
    """What a qcow2 header says of its backing file: its name (None: none), its format
    when the header declares it, and the image's virtual size. An external data file (a
    second file the image names) is refused: neither backend is given one."""
    head = os.pread(fh.fileno(), 1 << 16, 0)
    if len(head) < _HEADER.size or head[:4] != MAGIC:
        raise Qcow2Error(22, "not a qcow2 header")
    version, backing_at, backing_len, _cluster_bits, size = struct.unpack_from(">IQIIQ", head, 4)
    header_len = _HEADER.size
    if version >= 3 and len(head) >= _HEADER.size + _V3.size:
        incompatible, _c, _a, _r, header_len = _V3.unpack_from(head, _HEADER.size)
        if incompatible & _DATA_FILE_BIT:
            raise Qcow2Error(22, "qcow2 images with an external data file are not supported")
    if not backing_at:
        return None, None, size
    if backing_len > _MAX_BACKING_NAME:
        raise Qcow2Error(22, f"a qcow2 backing file name of {backing_len} bytes (QEMU allows {_MAX_BACKING_NAME})")
    name = os.pread(fh.fileno(), backing_len, backing_at)
    if len(name) != backing_len:
        raise Qcow2Error(5, "the qcow2 backing file name lies past the end of the file")
    return name, _declared_format(head, header_len, min(backing_at, len(head))), size


def _declared_format(head: bytes, at: int, end: int) -> str | None:
    """The backing format header extension, from ``at`` (the header's end) to ``end``."""
    for _ in range(_MAX_EXTENSIONS):
        if at + 8 > end:
            break
        magic, length = struct.unpack_from(">II", head, at)
        if magic == 0 or at + 8 + length > end:
            break
        if magic == _BACKING_FORMAT_EXT:
            return head[at + 8: at + 8 + length].decode("ascii", "replace").lower()
        at += 8 + ((length + 7) & ~7)
    return None


def backing_chain(path: str | os.PathLike[str], fh: BinaryIO, policy: BackingPolicy) -> list[Layer]:
    """The qcow2 image ``fh`` (opened at ``path``) and every backing file below it, each
    checked by ``policy`` and opened (:func:`open_confined`). Loops are found by file
    identity (device and inode: two names of one file are one file) and the depth is
    bounded by ``MAX_BACKING_CHAIN``; both are a :class:`TargetError` naming the file."""
    name, declared, size = backing_info(fh)
    st = os.fstat(fh.fileno())
    seen = {(st.st_dev, st.st_ino)}
    layers = [Layer(os.fspath(path), fh, "qcow2", size)]
    while name is not None:
        naming = layers[-1].path
        if len(layers) >= limits.MAX_BACKING_CHAIN:
            cap = LimitExceeded("MAX_BACKING_CHAIN", limits.MAX_BACKING_CHAIN, "images in its backing chain")
            raise TargetError(f"{path}: {cap}")
        text = name.decode("utf-8", "surrogateescape")
        bfh, real = open_confined(text, naming, policy)
        bst = os.fstat(bfh.fileno())
        if (bst.st_dev, bst.st_ino) in seen:
            bfh.close()
            raise TargetError(f"{naming}: the qcow2 backing chain loops back to itself ({real})")
        seen.add((bst.st_dev, bst.st_ino))
        fmt = declared or ("qcow2" if os.pread(bfh.fileno(), 4, 0) == MAGIC else "raw")
        if fmt not in ("qcow2", "raw"):
            bfh.close()
            raise TargetError(f"{naming}: backing file {real} is {fmt}: only qcow2 and raw backing files are read")
        if fmt == "raw":
            layers.append(Layer(real, bfh, fmt, bst.st_size))
            break
        try:
            name, declared, size = backing_info(bfh)
        except Qcow2Error as exc:
            bfh.close()
            raise TargetError(f"{real}: {exc.strerror}") from None
        layers.append(Layer(real, bfh, fmt, size))
    return layers


def vmdk_refusal(fh: BinaryIO) -> str | None:
    """Why a vmdk is not read, or None. One that names other files (a descriptor whose
    extents are other files, a delta disk with a parent) is refused: dissect.hypervisor and
    QEMU would each open those names themselves, unchecked. A monolithic sparse vmdk (what
    ``qemu-img convert -O vmdk`` writes) names none."""
    head = os.pread(fh.fileno(), 44, 0)
    if head[:4] == b"# Di":
        return "vmdk descriptor files (extents in other files) are not supported; convert with qemu-img convert -O qcow2"
    if len(head) < 44:
        return None
    offset, sectors = struct.unpack_from("<QQ", head, 28)  # the embedded descriptor, in sectors
    text = b""
    if sectors and offset < 1 << 50:  # beyond: past any file (and past what pread takes)
        text = os.pread(fh.fileno(), min(sectors * 512, limits.MAX_VMDK_DESCRIPTOR_BYTES), offset * 512)
    parent = re.search(rb"^\s*parentCID\s*=\s*(\S+)", text.split(b"\0", 1)[0], re.MULTILINE)
    if parent and parent.group(1).strip(b'"').lower() != b"ffffffff":
        return "vmdk delta disks (with a parent disk) are not supported"
    return None
