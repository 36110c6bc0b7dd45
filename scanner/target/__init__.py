"""Stage 1, target: where the bytes come from.

Every target is a :class:`RootFS`: a read-only file tree with symlinks resolved inside its
own root. Nothing after this stage knows which kind of target it reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from scanner.target.base import MAXSYMLINKS, PathLoop, RootFS, TargetError, TargetIdentity, WalkEntry, normpath
from scanner.target.directory import DirectoryRoot

__all__ = [
    "MAXSYMLINKS",
    "DirectoryRoot",
    "PathLoop",
    "RootFS",
    "TargetError",
    "TargetIdentity",
    "WalkEntry",
    "IMAGE_BACKENDS",
    "image_backend",
    "normpath",
    "open_target",
]


IMAGE_BACKENDS = ("auto", "dissect", "guestfs")


def image_backend(choice: str = "auto") -> str:
    """The image backend ``choice`` stands for: ``auto`` is dissect when installed, else
    libguestfs when its bindings import, else a TargetError saying what to install."""
    if choice not in IMAGE_BACKENDS:
        raise TargetError(f"unknown image backend {choice!r} (one of {', '.join(IMAGE_BACKENDS)})")
    if choice != "auto":
        return choice
    import importlib.util

    try:  # found, not imported: dissect.hypervisor's package imports every format it has
        if all(importlib.util.find_spec(m) for m in ("dissect.volume", "dissect.hypervisor", "dissect.extfs")):
            return "dissect"
    except ImportError:
        pass
    from scanner.target.guestfs import import_guestfs

    try:
        import_guestfs()
        return "guestfs"
    except TargetError:
        raise TargetError(
            "reading disk images needs a backend: pip install 'flightcheck[images]' (dissect, AGPL-3.0), "
            "or apt install python3-guestfs linux-image-amd64 (libguestfs, LGPL)") from None


def open_target(spec: str | os.PathLike[str] | None = None, *, images: list[str] | None = None,
                cross_mounts: bool = False, backend: str = "auto",
                backing_dirs: Iterable[str | os.PathLike[str]] = (),
                domain: dict[str, Any] | None = None) -> RootFS:
    """Open a target from its command-line spelling: a folder (``/`` or an extracted root),
    or the disk images of one machine (``images``, read by ``backend``). The backing files
    the images name are followed only inside each naming image's folder, inside one of
    ``backing_dirs`` (``--backing-dir``), or when a libvirt domain's own ``<backingStore>``
    chain names them (images from :func:`~scanner.target.libvirt.domain_images` carry it).
    ``domain``: the facts of the libvirt domain whose disks these are (``Domain.facts()``),
    which the target's :attr:`~RootFS.identity` then carries (kind ``domain``)."""
    fs = _open(spec, images, cross_mounts, backend, backing_dirs)
    if domain is not None:
        fs.domain_facts = domain
    return fs


def _open(spec: str | os.PathLike[str] | None, images: list[str] | None, cross_mounts: bool, backend: str,
          backing_dirs: Iterable[str | os.PathLike[str]]) -> RootFS:
    """The target of :func:`open_target`, by kind."""
    if images:
        from scanner.target.qcow2 import BackingPolicy

        named = [f for image in images for f in getattr(image, "backing_chain", ())]
        policy = BackingPolicy.of(backing_dirs, named)
        backend = image_backend(backend)
        if backend == "guestfs":
            from scanner.target.guestfs import GuestfsRoot

            return GuestfsRoot(images, policy)
        try:
            from scanner.target.image import ImageRoot
        except ImportError as exc:
            raise TargetError("the dissect backend is not installed: pip install 'flightcheck[images]'") from exc
        return ImageRoot(images, policy)
    return DirectoryRoot(spec or "/", cross_mounts=cross_mounts)
