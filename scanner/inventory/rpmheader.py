"""rpm's installed-package database read without librpm: the header blob format and the
three storage backends, in pure Python.

Used where librpm cannot read a database: the ndb backend (SUSE; Debian's librpm has no
ndb), and every backend when the ``rpm`` bindings are missing. librpm itself is preferred
where it works (see :mod:`scanner.inventory.rpmdb`). Written by hand because no maintained
Python library reads these formats; the formats are from rpm's own sources:

* header blob (``lib/header.c``, ``headerImport``): big-endian ``il`` (entry count) and
  ``dl`` (data size), ``il`` index entries ``(tag, type, offset, count)``, then the data;
* sqlite (``lib/backend/sqlite.c``): table ``Packages(hnum, blob)``;
* Berkeley DB hash and B-tree: :mod:`scanner.inventory.bdb` (every record accounted for
  by :mod:`scanner.inventory.rpmstore`);
* ndb (``lib/backend/ndb/rpmpkg.c``): a ``RpmP`` header, slot pages of ``Slot`` entries
  ``(magic, pkgidx, blkoff, blkcnt)``, each pointing at a ``BlbS`` blob header followed
  by the header blob, in 16-byte blocks.

Every length and offset is checked against the data it points into; a malformed database
raises :class:`RpmDbError` with one line saying what is wrong, and a malformed header in a
readable database is reported and skipped. A header blob is checked whole, as librpm's
``headerImport`` checks it (``hdrblobInit``, ``hdrblobVerifyRegion``, ``hdrblobVerifyInfo``,
``hdrblobImport``), before any tag is read: a header librpm refuses is refused here too,
never read as far as it happens to make sense (see :func:`verify_blob`).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from scanner import limits
from scanner.inventory.packages import PathBudget
from scanner.limits import LimitExceeded

# tags (rpmtag.h)
NAME, VERSION, RELEASE, EPOCH, LICENSE, VENDOR, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1014, 1011, 1022, 1044
OLDFILENAMES, DIRINDEXES, BASENAMES, DIRNAMES = 1027, 1116, 1117, 1118
FILE_TAGS = frozenset({OLDFILENAMES, DIRINDEXES, BASENAMES, DIRNAMES})
# types
T_CHAR, T_INT8, T_INT16, T_INT32, T_INT64, T_STRING, T_BIN, T_STRING_ARRAY, T_I18NSTRING = 1, 2, 3, 4, 5, 6, 7, 8, 9

MAX_IL = 0x00FFFF  # rpm's HEADER_TAGS_MAX
MAX_DL = 256 << 20
# librpm's own bounds (lib/header.c): HEADER_DATA_MAX, headerMaxbytes, HEADER_I18NTABLE
_DATA_MAX = 0x0FFFFFFF
_BLOB_MAX = 256 << 20
_FIRST_TAG = 100
# region tags (HEADERIMAGE, HEADERSIGNATURES, HEADERIMMUTABLE), their type and count
_REGION_TAGS = (61, 62, 63)
_REGION_TYPE, _REGION_COUNT = T_BIN, 16
#: per type (0 to 9): the alignment of its data, and its size (None: NUL-terminated strings)
_ALIGN = (1, 1, 1, 2, 4, 8, 1, 1, 1, 1)
_SIZE: tuple[int | None, ...] = (0, 1, 1, 2, 4, 8, None, 1, None, None)
#: the type rpm declares for each tag it knows (``rpmTagGetTagType`` of librpm 4.18, by type): a
#: header whose region is HEADERIMMUTABLE or HEADERIMAGE must store a known tag with that type,
#: or for a string tag with any string type (rpm's ``hdrchkTagType``); unknown tags are allowed
_TAG_TYPES: dict[int, tuple[int, ...]] = {
    1: (1029,),
    3: (1030, 1033),
    4: (257, 277, 1003, 1006, 1008, 1009, 1028, 1034, 1037, 1045, 1046, 1048, 1051, 1052, 1053, 1068, 1069,
         1080, 1095, 1096, 1106, 1112, 1114, 1116, 1119, 1127, 1128, 1129, 1134, 1140, 1141, 1143, 1144, 1145,
         1158, 1161, 1195, 5011, 5017, 5018, 5019, 5020, 5021, 5022, 5023, 5024, 5025, 5026, 5027, 5032, 5033,
         5037, 5045, 5048, 5051, 5054, 5057, 5068, 5070, 5072, 5078, 5080, 5082, 5084, 5085, 5091, 5093),
    5: (270, 271, 5008, 5009),
    6: (269, 273, 1000, 1001, 1002, 1007, 1010, 1011, 1014, 1015, 1020, 1021, 1022, 1023, 1024, 1025, 1026,
         1044, 1064, 1079, 1094, 1122, 1123, 1124, 1125, 1126, 1132, 1151, 1152, 1155, 1196, 5012, 5013, 5014,
         5015, 5016, 5034, 5062, 5096, 5098, 5099, 5100, 5101),
    7: (259, 261, 262, 267, 268, 1012, 1013, 1043, 1146),
    8: (100, 266, 276, 1018, 1019, 1027, 1035, 1036, 1039, 1040, 1047, 1049, 1050, 1054, 1055, 1059, 1060, 1061,
         1062, 1065, 1066, 1067, 1081, 1082, 1085, 1086, 1087, 1088, 1089, 1090, 1091, 1092, 1097, 1098, 1099,
         1113, 1115, 1117, 1118, 1120, 1121, 1133, 1135, 1142, 1147, 1148, 1149, 1150, 1153, 1154, 1156, 1157,
         1159, 1160, 5000, 5001, 5002, 5005, 5006, 5007, 5010, 5030, 5031, 5035, 5036, 5040, 5041, 5042, 5043,
         5044, 5046, 5047, 5049, 5050, 5052, 5053, 5055, 5056, 5058, 5059, 5060, 5061, 5066, 5067, 5069, 5071,
         5076, 5077, 5079, 5081, 5086, 5087, 5088, 5089, 5090, 5092, 5097),
    9: (1004, 1005, 1016),
}
_STRING_TYPES = frozenset({T_STRING, T_STRING_ARRAY, T_I18NSTRING})
#: integer types of another width than rpm 4 declares, as older writers stored them: rpm 5
#: (Yocto before 2.3) writes FILESTATES (1029, CHAR in rpm 4) as INT8. librpm 4 refuses such a
#: header (``hdrchkTagType``: "BAD, tag 1029 type 2"); this reader reads the entry by the
#: type the header declares for it and notes the variant (:attr:`RpmHeader.variants`)
_INT_TYPES = frozenset({T_CHAR, T_INT8, T_INT16, T_INT32, T_INT64})
_TAG_TYPE = {tag: typ for typ, tags in _TAG_TYPES.items() for tag in tags}


class RpmDbError(Exception):
    """An rpm database, or one header in it, cannot be read."""


@dataclass(frozen=True)
class RpmHeader:
    """The fields of one installed package that flightcheck uses."""

    name: str
    epoch: int | None
    version: str
    release: str
    arch: str | None
    source: str | None
    vendor: str | None
    license: str | None
    files: tuple[str, ...]
    #: what was left out of this header without making it unreadable (file paths past a cap)
    problems: tuple[str, ...] = ()
    #: ``(tag, stored type)`` of entries stored with an integer type of another width than
    #: rpm 4 declares (read by the stored type; see :data:`_INT_TYPES`)
    variants: tuple[tuple[int, int], ...] = ()


def _strings(data: bytes, off: int, count: int) -> list[str]:
    out = []
    pos = off
    for _ in range(count):
        end = data.find(b"\0", pos)
        if end < 0:
            raise RpmDbError("header string runs past the end of its data")
        out.append(data[pos:end].decode("utf-8", "surrogateescape"))
        pos = end + 1
    return out


def _strings_end(data: bytes, start: int, count: int) -> int:
    """The offset just past the ``count``-th NUL at or after ``start`` (-1: fewer there),
    as rpm's ``strtaglen`` measures a string array. Counted by the chunk in C, not by a
    Python loop per string: a 256 MiB header may claim 256 million empty strings."""
    if count <= 64:
        pos = start
        for _ in range(count):
            nul = data.find(b"\0", pos)
            if nul < 0:
                return -1
            pos = nul + 1
        return pos
    pos, left, step = start, count, 4096
    while True:
        stop = min(len(data), pos + step)
        found = data.count(b"\0", pos, stop)
        if found >= left:
            break
        if stop >= len(data):
            return -1
        pos, left, step = stop, left - found, min(step * 2, 1 << 20)
    lo, hi = pos + 1, stop  # the smallest end whose [pos, end) holds `left` NULs
    while lo < hi:
        mid = (lo + hi) // 2
        if data.count(b"\0", pos, mid) >= left:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _data_length(data: bytes, typ: int, off: int, count: int) -> int:
    """Bytes of an entry's data from ``off`` (rpm's ``dataLength`` on disk); -1 when
    the data does not hold it."""
    size = _SIZE[typ]
    if size is None:
        if typ == T_STRING and count != 1:
            return -1
        end = _strings_end(data, off, count)
        return end - off if end >= 0 else -1
    return size * count if off + size * count <= len(data) else -1


def _align_pad(typ: int, at: int) -> int:
    """Padding before an entry of type ``typ`` placed at ``at`` (rpm's ``alignDiff``)."""
    size = _SIZE[typ]
    return -at % size if size is not None and size > 1 else 0


def verify_blob(blob: bytes, variants: list[tuple[int, int]] | None = None
                ) -> tuple[list[tuple[int, int, int, int]], bytes]:
    """The index entries ``(tag, type, offset, count)`` and the data of a header blob,
    checked as librpm's ``headerImport`` checks a blob before it loads it: the intro's
    counts in range and the blob exactly ``8 + 16 il + dl`` bytes; a region tag (first
    entry) of type BIN and count 16 whose trailer lies in the data and repeats it, its
    negative offset a whole number of entries; every other entry with a tag of at least
    100, a known type, a count of at least one, an offset in the data, aligned for its
    type (and of the type rpm declares for the tag, in a package header), after the
    previous entry's data and off the region trailer, its data (strings to their NUL)
    inside the data; and the data length equal to what the entries span
    (with their alignment, plus the trailer). :class:`RpmDbError` naming the first
    check that fails. With ``variants`` (a list), an integer tag stored as an integer of
    another width (rpm 5's FILESTATES as INT8) is accepted and appended there as
    ``(tag, type)``; without it, refused as librpm refuses it."""
    if len(blob) < 8:
        raise RpmDbError(f"header blob of {len(blob)} bytes is too short")
    il, dl = struct.unpack_from(">ii", blob, 0)
    if not (0 < il <= MAX_IL) or not (0 <= dl <= _DATA_MAX):
        raise RpmDbError(f"header claims {il} entries and {dl} data bytes")
    need = 8 + 16 * il + dl
    if need != len(blob) or need >= _BLOB_MAX:
        raise RpmDbError(f"header of {il} entries and {dl} data bytes needs {need} bytes, the blob has {len(blob)}")
    entries = list(struct.iter_unpack(">iiii", blob[8 : 8 + 16 * il]))
    data = blob[8 + 16 * il :]
    tag0, type0, off0, count0 = entries[0]
    region = tag0 in _REGION_TAGS
    rdl = 0
    if region:
        if type0 != _REGION_TYPE or count0 != _REGION_COUNT:
            raise RpmDbError(f"region tag {tag0}: type {type0} count {count0}, not a region")
        if not 0 <= off0 <= dl - _REGION_COUNT:
            raise RpmDbError(f"region tag {tag0}: trailer offset {off0} outside the {dl} data bytes")
        ttag, ttype, toff, tcount = struct.unpack_from(">iiii", data, off0)
        if (ttag, ttype, tcount) != (tag0, _REGION_TYPE, _REGION_COUNT):
            raise RpmDbError(f"region tag {tag0}: its trailer is not a region trailer (tag {ttag} type {ttype} "
                             f"count {tcount})")
        rdl = off0 + _REGION_COUNT
        ril, rest = divmod(-toff, 16)
        if rest or not 0 <= ril <= il:
            raise RpmDbError(f"region tag {tag0}: its trailer claims {-toff} bytes of index, the header has {il} "
                             f"entries")
    typechk = tag0 in (61, 63)  # (a signature header's tags cannot be checked: rpm does not either)
    end = 0
    span = 0  # what the entries take, aligned, in index order (rpm's regionSwab)
    for i, (tag, typ, off, count) in enumerate(entries[1:] if region else entries, 1 if region else 0):
        what = f"entry {i} (tag {tag}, type {typ}, offset {off}, count {count})"
        if off < end:
            raise RpmDbError(f"{what}: overlaps the data of the entry before it")
        if tag < _FIRST_TAG:
            raise RpmDbError(f"{what}: tag below {_FIRST_TAG}")
        if not 0 <= typ < len(_SIZE):
            raise RpmDbError(f"{what}: unknown type")
        if not 0 < count <= dl:
            raise RpmDbError(f"{what}: count outside 1..{dl}")
        if off % _ALIGN[typ]:
            raise RpmDbError(f"{what}: offset not aligned for its type")
        if not 0 <= off <= dl:
            raise RpmDbError(f"{what}: offset outside the {dl} data bytes")
        declared = _TAG_TYPE.get(tag, typ) if typechk else typ
        if declared != typ and not (declared in _STRING_TYPES and typ in _STRING_TYPES):
            if variants is None or declared not in _INT_TYPES or typ not in _INT_TYPES:
                raise RpmDbError(f"{what}: rpm declares this tag of type {declared}")
            variants.append((tag, typ))
        length = _data_length(data, typ, off, count)
        if length <= 0:
            raise RpmDbError(f"{what}: its data runs past the {dl} data bytes")
        end = off + length
        if region and end > rdl - _REGION_COUNT and off < rdl:
            raise RpmDbError(f"{what}: its data overlaps the region trailer")
        span += _align_pad(typ, span) + length
    if region:
        span += _REGION_COUNT
    if span != dl:
        raise RpmDbError(f"header claims {dl} data bytes, its entries span {span}")
    return entries, data


def parse_header(blob: bytes, budget: PathBudget | None = None) -> RpmHeader:
    """Decode an installed package's header blob (as the databases store it: no lead, no
    header magic), checked whole first (:func:`verify_blob`). ``budget``: what the
    database's file lists may still cost (one of its own when None)."""
    variants: list[tuple[int, int]] = []
    entries, data = verify_blob(blob, variants)
    dl = len(data)
    want = {NAME, VERSION, RELEASE, EPOCH, LICENSE, VENDOR, ARCH, SOURCERPM, *FILE_TAGS}
    values: dict[int, object] = {}
    problems: list[str] = []
    for tag, typ, off, count in entries:
        if tag not in want:
            continue
        if off < 0 or off > dl or count < 0 or count > dl + 1:
            raise RpmDbError(f"tag {tag}: offset {off} or count {count} outside the data")
        if tag in FILE_TAGS and count > limits.MAX_RPM_HEADER_FILES:
            problems = [too_many_files(count)]
            continue
        if tag not in FILE_TAGS:
            count = min(count, 1)  # one value is read (an EPOCH of 60 million ints is not)
        if typ in (T_STRING, T_I18NSTRING):
            values[tag] = _strings(data, off, 1)[0]
        elif typ == T_STRING_ARRAY:
            values[tag] = _strings(data, off, count)
        elif typ == T_INT32:
            if off + 4 * count > dl:
                raise RpmDbError(f"tag {tag}: int32 array runs past the data")
            values[tag] = list(struct.unpack_from(f">{count}i", data, off))
        elif typ in _INT_TYPES:
            size = _SIZE[typ] or 1
            if off + size * count > dl:
                raise RpmDbError(f"tag {tag}: integer array runs past the data")
            values[tag] = list(struct.unpack_from(f">{count}{' BBhiq'[typ]}", data, off))
    name = values.get(NAME)
    if not isinstance(name, str):
        raise RpmDbError("header has no NAME")
    files = () if problems else file_list(values.get(BASENAMES), values.get(DIRNAMES), values.get(DIRINDEXES),
                                          values.get(OLDFILENAMES), budget if budget is not None else PathBudget(),
                                          problems)
    epoch = values.get(EPOCH)
    return RpmHeader(
        name=name,
        epoch=epoch[0] if isinstance(epoch, list) and epoch else None,
        version=_text(values, VERSION) or "",
        release=_text(values, RELEASE) or "",
        arch=_text(values, ARCH),
        source=_text(values, SOURCERPM),
        vendor=_text(values, VENDOR),
        license=_text(values, LICENSE),
        files=files,
        problems=tuple(problems),
        variants=tuple(variants),
    )


def largest_file_tag(blob: bytes) -> int:
    """The largest entry count among a header blob's file tags, from its index alone: what
    may be asked of librpm's bindings, which build a Python list of a whole tag at once."""
    il = struct.unpack_from(">i", blob, 0)[0] if len(blob) >= 8 else 0
    counts = [struct.unpack_from(">i", blob, 8 + 16 * i + 12)[0] for i in range(min(il, MAX_IL, (len(blob) - 8) // 16))
              if struct.unpack_from(">i", blob, 8 + 16 * i)[0] in FILE_TAGS]
    return max(counts, default=0)


def too_many_files(count: int) -> str:
    """The problem line of a header whose file tags are past ``MAX_RPM_HEADER_FILES``."""
    return str(LimitExceeded("MAX_RPM_HEADER_FILES", limits.MAX_RPM_HEADER_FILES,
                             f"a file tag of {count:,} entries; the package's files were not read"))


def _text(values: dict[int, object], tag: int) -> str | None:
    """A string tag's value; None when it is missing or (in a hostile header) of another type."""
    value = values.get(tag)
    return value if isinstance(value, str) else None


def file_list(basenames: object, dirnames: object, dirindexes: object, oldfilenames: object, budget: PathBudget,
              problems: list[str]) -> tuple[str, ...]:
    """A header's file paths from its tags as either reader got them (``DIRNAMES[i] +
    BASENAMES`` since rpm 4.0, ``OLDFILENAMES`` before), within ``budget``'s caps: each path
    is measured before it is built (see :class:`~scanner.inventory.packages.PathBudget`).
    Built here rather than by librpm (``h["filenames"]``), which builds every path first."""
    if isinstance(basenames, list) and basenames:
        if not isinstance(dirnames, list) or not isinstance(dirindexes, list) or len(dirindexes) != len(basenames):
            raise RpmDbError("BASENAMES without matching DIRNAMES/DIRINDEXES")
        if not all(isinstance(x, str) for x in (*basenames, *dirnames)) or not all(type(i) is int for i in dirindexes):
            raise RpmDbError("BASENAMES, DIRNAMES or DIRINDEXES of the wrong type")
        dirs: list[str] = dirnames

        def pairs() -> Iterator[tuple[str, str]]:
            for b, i in zip(basenames, dirindexes):
                if not 0 <= i < len(dirs):
                    raise RpmDbError(f"DIRINDEXES entry {i} outside DIRNAMES")
                yield dirs[i], b

        return budget.paths(pairs(), problems)
    if isinstance(oldfilenames, list) and all(isinstance(x, str) for x in oldfilenames):
        return budget.paths((("", f) for f in oldfilenames), problems)
    return ()


# ---- backends -------------------------------------------------------------------------------
def sqlite_blobs(path: str) -> Iterator[bytes]:
    """Header blobs of an rpm sqlite database, a few at a time (not the whole table in
    memory). ``path`` must be a private copy: sqlite may create journal files beside the
    file it opens. A damaged page raises :class:`RpmDbError` where it is met, after the
    blobs before it."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.DatabaseError as exc:
        raise RpmDbError(f"sqlite: {exc}") from exc
    try:
        cursor = con.execute("SELECT blob FROM Packages ORDER BY hnum")
        while rows := cursor.fetchmany(64):
            for (blob,) in rows:
                if isinstance(blob, bytes):
                    yield blob
    except sqlite3.DatabaseError as exc:
        raise RpmDbError(f"sqlite: {exc}") from exc
    finally:
        con.close()


def sqlite_count(path: str) -> int:
    """How many rows the ``Packages`` table of an rpm sqlite database holds (what a reader
    that skips headers it cannot read must account for)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            return int(con.execute("SELECT count(*) FROM Packages").fetchone()[0])
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise RpmDbError(f"sqlite: {exc}") from exc


_NDB_MAGIC = 0x506D7052  # "RpmP" little-endian
_NDB_SLOT_MAGIC = 0x746F6C53  # "Slot"
_NDB_BLOB_MAGIC = 0x53626C42  # "BlbS"
_NDB_PAGE = 4096


def ndb_blobs(data: bytes) -> Iterator[bytes]:
    """Header blobs of an ndb ``Packages.db`` (SUSE)."""
    if len(data) < 32:
        raise RpmDbError(f"ndb file of {len(data)} bytes is too short")
    magic, version, _generation, slot_pages = struct.unpack_from("<IIII", data, 0)
    if magic != _NDB_MAGIC:
        raise RpmDbError("not an ndb Packages.db (bad magic)")
    if version != 0:
        raise RpmDbError(f"ndb version {version} is not supported")
    if slot_pages == 0 or slot_pages * _NDB_PAGE > len(data):
        raise RpmDbError(f"ndb claims {slot_pages} slot pages, the file has {len(data) // _NDB_PAGE} pages")
    nslots = slot_pages * _NDB_PAGE // 16 - 2  # the 32-byte file header takes two slots
    for i in range(nslots):
        smagic, pkgidx, blkoff, _blkcnt = struct.unpack_from("<IIII", data, 32 + 16 * i)
        if smagic != _NDB_SLOT_MAGIC:
            raise RpmDbError(f"ndb slot {i} has a bad magic")
        if pkgidx == 0:
            continue
        at = blkoff * 16
        if at + 16 > len(data):
            raise RpmDbError(f"ndb package {pkgidx}: blob offset {at} past the end of the file")
        bmagic, bidx, _cksum, blen = struct.unpack_from("<IIII", data, at)
        if bmagic != _NDB_BLOB_MAGIC or bidx != pkgidx:
            raise RpmDbError(f"ndb package {pkgidx}: bad blob header at offset {at}")
        if at + 16 + blen > len(data):
            raise RpmDbError(f"ndb package {pkgidx}: blob of {blen} bytes runs past the end")
        yield data[at + 16 : at + 16 + blen]
