"""ext4's own consistency checks, and ext2/3/4 directories read as the kernel reads them.

dissect.extfs reads what it finds: a flipped bit in an inode, a directory block or a group
descriptor is read as if it were data, and a directory entry it cannot parse ends the
listing with a log line nobody sees (the rest of the folder is silently gone). The
kernel checks what ext4 lets it check; so does flightcheck, and every failure is an
error of the path (an inode, a listing) or of the file system (superblock, descriptors).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from scanner import limits
from scanner.limits import LimitExceeded

if TYPE_CHECKING:
    from scanner.target.disks import FileSystem

_EXT4_RO_COMPAT_METADATA_CSUM = 0x0400
_EXT4_INCOMPAT_CSUM_SEED = 0x2000
_DIRENT_TAIL = 12  # struct ext4_dir_entry_tail at the end of a leaf block (metadata_csum)


def _crc(seed: int, data: bytes) -> int:
    """ext4's ``ext4_chksum``: crc32c from ``seed``, without the final inversion."""
    from dissect.util.hash.crc32c import crc32c

    return int(crc32c(data, seed ^ 0xFFFFFFFF)) ^ 0xFFFFFFFF


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
        return bool(_crc(csum, block[:-_DIRENT_TAIL]) == struct.unpack_from("<I", tail, 8)[0])


def ext_entries(fs: FileSystem, node: Any, damage: list[str]) -> Iterator[Any]:
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
