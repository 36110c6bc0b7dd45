"""Reading a file of a disk image: :class:`Closing`, the file object the census and the
readers get, and the mapped read path under it, which maps a file's byte ranges down
through the file system's runs, the partition and the qcow2 cluster tables to ranges of
the image files (:func:`map_pieces`), read with ``os.preadv`` or mapped whole.
"""

from __future__ import annotations

import contextlib
import functools
import io
import mmap
import os
import sys
from typing import Any

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.target.disks import ZeroPadded, per_file
from scanner.target.qcow2 import COMPRESSED, L2_OFFSET, ZERO, PlainQcow2, Qcow2Error, be_u64, check_entry, read_pieces


class Closing(io.RawIOBase):
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
        with self._lock, per_file(self._path):
            return self._read(-1 if size is None else size)

    def _read(self, size: int) -> bytes:
        pos, total = self._s.tell(), getattr(self._s, "size", None)
        if total is None:
            whole: bytes = self._s.read(size if 0 <= size <= limits.MAX_IMAGE_READ_BYTES else limits.MAX_IMAGE_READ_BYTES)
            return whole
        n = max(0, total - pos) if size < 0 else max(0, min(size, total - pos))
        if n > limits.MAX_IMAGE_READ_BYTES:
            raise LimitExceeded("MAX_IMAGE_READ_BYTES", limits.MAX_IMAGE_READ_BYTES,
                                f"one read of {n:,} bytes (the file claims {total:,}); read it in pieces")
        self._spend_holes(pos, n)
        data = _mapped_read(self._s, pos, n)
        if data is not None:
            self._s.seek(pos + len(data))
            return data
        layered: bytes = self._s.read(n)
        return layered

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
                map_pieces(self._s, 0, total, pieces)
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
        with self._lock, per_file(self._path):
            pos: int = self._s.seek(offset, whence)
            return pos

    def tell(self) -> int:
        pos: int = self._s.tell()
        return pos


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


def map_pieces(stream: Any, offset: int, length: int, out: list[Piece], depth: int = 0) -> None:
    """Append to ``out`` the pieces holding ``length`` bytes at ``offset`` of ``stream``,
    walking down its layers (file-system runs, partition ranges, zero padding, qcow2
    clusters) to the image files; adjacent ranges of one file merge into one piece."""
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
                    map_pieces(stream._fh, block * bs + start, n, out, depth + 1)
                offset += n
                length -= n
            pos += run
            if length <= 0:
                break
        if length > 0:  # past the runs (slack in the size): zeros, as dissect reads them
            out.append((None, 0, length))
    elif isinstance(stream, RangeStream):
        n = max(0, min(length, stream.size - offset))
        map_pieces(stream._fh, stream.offset + offset, n, out, depth + 1)
    elif isinstance(stream, ZeroPadded):
        inside = max(0, min(length, stream.inner_size - offset))
        map_pieces(stream.inner, offset, inside, out, depth + 1)
        if length > inside:
            out.append((None, 0, length - inside))
    elif isinstance(stream, PlainQcow2):
        for piece in stream.pieces(offset, length):
            if isinstance(piece[0], int):
                map_pieces(stream.fh, piece[1], piece[2], out, depth + 1)  # merges with what precedes
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
                map_pieces(q.backing_file, read_offset, run_length, out, depth + 1)
            elif sc_type == QCow2SubclusterType.QCOW2_SUBCLUSTER_NORMAL:
                map_pieces(q.data_file, run_offset, run_length, out, depth + 1)
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
                map_pieces(q.backing_file, offset, n, out, depth + 1)
            else:
                out.append((None, 0, n))
        else:
            map_pieces(q.data_file, host + within, n, out, depth + 1)
        offset += n
        length -= n


def _mapped_read(stream: Any, offset: int, length: int) -> bytes | None:
    """``length`` bytes at ``offset`` of a file-system stream, read through the mapped
    path; None when the stream is of a kind the path does not know."""
    if not isinstance(stream, _util_streams()[1]):
        return None
    pieces: list[Piece] = []
    try:
        map_pieces(stream, offset, length, pieces)
    except Qcow2Error:
        raise  # a corrupt table: dissect would read zeros there
    except Exception:  # noqa: BLE001 - anything unusual: dissect's own streams read it
        return None
    return read_pieces(pieces, length, _read_layer, "the image file ends inside a file's data")


def _read_layer(src: Any, offset: int, n: int) -> bytes:
    """A piece left to a layer's own reader (compressed clusters, vmdk)."""
    src.seek(offset)
    data: bytes = src.read(n)
    return data
