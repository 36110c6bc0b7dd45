"""The header of one ``.rpm`` file, fetched as far as it goes and no further.

An rpm file is a 96-byte lead, a signature header padded to 8 bytes, the main header, and
the payload. Only the main header is needed for a license inventory: its extent is
computed from the lead and the two header intros, so a local file is read up to there and
a remote one fetched with HTTP range requests (64 KiB first, the rest of the header if it
is larger). A server that ignores ranges sends the whole file; the stream is then read up
to the end of the header and closed, so the payload is not downloaded either.

The header is decoded by librpm's bindings (``rpm.hdr``; no signature or digest checks:
nothing is installed) and by the built-in reader where the bindings are missing.
"""

from __future__ import annotations

import struct

from scanner.inventory import rpmheader
from scanner.inventory.packages import PathBudget
from scanner.inventory.rpmdb import header_from_librpm
from scanner.inventory.rpmheader import MAX_DL, MAX_IL, RpmHeader
from scanner.repo.sources import RepoError, Source

LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
LEAD = 96
FIRST = 64 << 10


def _intro(buf: bytes, at: int, what: str) -> tuple[int, int] | None:
    """``(il, dl)`` of the header starting at ``at``, or None when ``buf`` is too short."""
    if len(buf) < at + 16:
        return None
    if buf[at:at + 4] != HEADER_MAGIC:
        raise RepoError(f"no {what} header where the rpm format puts it (bad magic)")
    il, dl = struct.unpack_from(">ii", buf, at + 8)
    if not (0 < il <= MAX_IL) or not (0 <= dl <= MAX_DL):
        raise RepoError(f"the {what} header claims {il} entries and {dl} data bytes")
    return il, dl


def header_extent(buf: bytes) -> tuple[int, int] | int:
    """``(start, end)`` of the main header blob (after its 8-byte magic) once ``buf`` holds
    enough to tell; else how many bytes are needed to tell more."""
    if len(buf) < LEAD:
        return LEAD + 16
    if buf[:4] != LEAD_MAGIC:
        raise RepoError("not an rpm file (no lead magic)")
    sig = _intro(buf, LEAD, "signature")
    if sig is None:
        return LEAD + 16
    sig_len = 16 + 16 * sig[0] + sig[1]
    main_at = LEAD + sig_len + (-sig_len % 8)
    main = _intro(buf, main_at, "main")
    if main is None:
        return main_at + 16
    return main_at + 8, main_at + 16 + 16 * main[0] + main[1]


def read_header(source: Source, rel: str, budget: PathBudget) -> tuple[RpmHeader, str]:
    """The header of the rpm at ``rel`` and which reader decoded it (its file list within
    ``budget``)."""
    buf, stream = source.head(rel, FIRST)
    try:
        for _ in range(4):
            ext = header_extent(buf)
            if isinstance(ext, tuple):
                if len(buf) < ext[1]:
                    buf = source.more(rel, buf, ext[1], stream)
                    if len(buf) < ext[1]:
                        raise RepoError("the file ends inside its header (truncated)")
                return decode(buf[ext[0]:ext[1]], budget)
            if len(buf) >= ext:
                raise RepoError("the file ends inside its header (truncated)")
            buf = source.more(rel, buf, ext, stream)
            if len(buf) < ext:
                raise RepoError("the file ends inside its header (truncated)")
        raise RepoError("the header layout does not converge")  # pragma: no cover
    finally:
        if stream is not None:
            stream.close()


def decode(blob: bytes, budget: PathBudget) -> tuple[RpmHeader, str]:
    """A main-header blob (no magic) decoded by librpm, else by the built-in reader.
    RepoError for a header either cannot read (librpm also raises when asked for a
    damaged tag, not only when it loads the header)."""
    try:
        import rpm
    except ImportError:
        rpm = None
    if rpm is not None:
        try:
            return header_from_librpm(rpm.hdr(blob), budget), "librpm"
        except (rpm.error, rpmheader.RpmDbError, TypeError, ValueError) as exc:
            raise RepoError(f"librpm cannot read the header: {exc}") from None
    try:
        return rpmheader.parse_header(blob, budget), "python"
    except rpmheader.RpmDbError as exc:
        raise RepoError(str(exc)) from None
