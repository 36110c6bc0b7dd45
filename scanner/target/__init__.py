"""Stage 1, target: where the bytes come from.

Every target is a :class:`RootFS`: a read-only file tree with symlinks resolved inside its
own root. Nothing after this stage knows which kind of target it reads.
"""

from __future__ import annotations

import os

from scanner.target.base import MAXSYMLINKS, PathLoop, RootFS, TargetError, WalkEntry, normpath
from scanner.target.directory import DirectoryRoot

__all__ = [
    "MAXSYMLINKS",
    "DirectoryRoot",
    "PathLoop",
    "RootFS",
    "TargetError",
    "WalkEntry",
    "normpath",
    "open_target",
]


def open_target(spec: str | os.PathLike[str] | None = None, *, images: list[str] | None = None,
                cross_mounts: bool = False) -> RootFS:
    """Open a target from its command-line spelling: a folder (``/`` or an extracted root),
    or the disk images of one machine (``images``)."""
    if images:
        try:
            from scanner.target.image import ImageRoot
        except ImportError as exc:  # pragma: no cover - the optional extra is missing
            raise TargetError("reading disk images needs the dissect libraries: pip install 'flightcheck[images]'") from exc
        return ImageRoot(images)
    return DirectoryRoot(spec or "/", cross_mounts=cross_mounts)
