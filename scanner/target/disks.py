"""The layers of a disk image below its file systems, read with the dissect libraries:
the image container (qcow2 with its backing chain, vmdk, or raw; dissect.hypervisor), the
partition table (GPT, checked against its CRC32s, or MBR; dissect.volume), LVM2 physical
volume labels, and the file-system openers (ext2/3/4: dissect.extfs; xfs: dissect.xfs).
Also the two error boundaries every image read goes through: :func:`whole_target` around
opening the images, :func:`per_file` around reading one path.

dissect is AGPL-3.0: it is the optional extra ``flightcheck[images]``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from scanner.limits import LimitExceeded
from scanner.target.base import TargetError
from scanner.target.ext4 import ExtChecks
from scanner.target.qcow2 import BackingPolicy, Layer, backing_chain, open_plain, refused, vmdk_refusal


def described(exc: BaseException) -> str:
    """A reader's exception in one line, its type first: dissect's own messages can be
    empty or cryptic on damaged structures (a bare ``EOFError``)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def whole_target(what: str) -> Iterator[None]:
    """The boundary around opening the images: whatever the readers raise on a damaged
    container, partition table or superblock is one :class:`TargetError` line (exit 2),
    never a traceback."""
    try:
        yield
    except TargetError:
        raise
    except Exception as exc:  # noqa: BLE001 - dissect raises anything on damaged structures
        raise TargetError(f"{what}: {described(exc)}") from exc


@contextlib.contextmanager
def per_file(path: str, what: str = "cannot read") -> Iterator[None]:
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
        raise OSError(errno.EIO, f"{what}: {described(exc)}", path) from exc


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


def open_container(path: Path, policy: BackingPolicy) -> BinaryIO:
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
            return cast(BinaryIO, plain)  # a raw stream: read, seek, tell
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
            backing = ZeroPadded(backing, layer.size)
        backing = QCow2(layer.fh, backing_file=backing, allow_no_backing_file=backing is None).open()
    assert backing is not None
    return cast(BinaryIO, backing)  # dissect's stream: read, seek, tell


class ZeroPadded(io.RawIOBase):
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
    return cast(BinaryIO, vmdk.open() if hasattr(vmdk, "open") else vmdk)


#: bytes of GPT partition entries checked (128 entries of 128 bytes is what every tool writes)
_GPT_ENTRIES_MAX = 1 << 20


def gpt_damage(stream: BinaryIO) -> list[str]:
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


def is_lvm_pv(stream: BinaryIO) -> bool:
    """An LVM2 physical-volume label in one of the first four sectors."""
    for sector in range(4):
        stream.seek(sector * 512)
        head = stream.read(32)
        if head[:8] == b"LABELONE" and head[24:32] == b"LVM2 001":
            return True
    return False


def mapper_name(vg: str, lv: str) -> str:
    """device-mapper's name for a logical volume: dashes inside names are doubled."""
    return f"/dev/mapper/{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def open_filesystem(stream: BinaryIO, where: str, partuuid: str | None = None) -> FileSystem | None:
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
