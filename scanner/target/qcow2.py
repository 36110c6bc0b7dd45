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
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

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
MAX_L1_BYTES = 32 << 20  # QEMU's own limit on the L1 table


class Qcow2Error(OSError):
    """The file says it is qcow2 but its header or tables cannot be right."""


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
        self._l2: dict[int, array] = {}
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

    def readinto(self, b: "bytearray | memoryview") -> int:
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


def be_u64(raw: bytes) -> array:
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
