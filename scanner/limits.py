"""Every cap flightcheck puts on work it does for an untrusted target, in one place.

The target may have been built by an attacker: a sparse file claiming 16 GiB, a compressed
section inflating to gigabytes, a hash table claiming four billion chains, an ``include``
glob over links to ``.``. Each reader bounds its work by one of the named constants below;
hitting one raises :class:`LimitExceeded`, which every stage turns into an error record
naming the cap (``limit MAX_... (value) reached: ...``), so the result says what was not
read and why. The README's "Security model" section lists them.

Keep each constant here (not in the module that uses it): one table for people to read,
one place to change a cap.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class LimitExceeded(Exception):
    """Work on one item of the target stopped at a named cap."""

    def __init__(self, cap: str, value: int | float, detail: str = "") -> None:
        self.cap, self.value, self.detail = cap, value, detail
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        super().__init__(f"limit {cap} ({shown}) reached" + (f": {detail}" if detail else ""))


# ---- reading files -------------------------------------------------------------------
#: bytes read at a time when hashing or streaming a file (never the whole file at once)
READ_CHUNK = 1 * MiB
