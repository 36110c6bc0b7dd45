"""Package URLs: the one builder every package reader uses (rpm, dpkg, apk, opkg and the
repository sources).

The purl spec (github.com/package-url/purl-spec): ``pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS``.
Types: ``rpm`` and ``deb`` are registered; ``apk`` too; ``opkg`` is not (see
:mod:`scanner.inventory.opkg` for why its own type is written). An installed package is
namespaced by the target's os-release ``ID`` and qualified by ``distro=ID-VERSION_ID``; a
package of a repository read over HTTP by ``repository_url``. rpm's and dpkg's version is
``version-release`` (the epoch is the ``epoch`` qualifier, as the spec's ``rpm`` type asks).

packageurl-python assembles the string; each component is percent-encoded here first,
byte for byte, because a name read from the target may hold an undecodable byte (kept as a
surrogate escape, ``\\udcff``), which packageurl's own encoder cannot take. For text that is
valid UTF-8 the result is exactly packageurl's own.
"""

from __future__ import annotations

from collections.abc import Mapping

from packageurl import PackageURL
from packageurl import quote as purl_quote

#: the purl type of each package manager
TYPES = {"rpm": "rpm", "dpkg": "deb", "apk": "apk", "opkg": "opkg"}


def purl(manager: str, name: str, version: str, *, epoch: int | None = None, release: str | None = None,
         arch: str | None = None, distro: str | None = None, namespace: str | None = None,
         repository_url: str | None = None) -> str:
    """The package URL of one package of ``manager`` (``rpm``, ``dpkg``, ``apk``, ``opkg``).
    A qualifier that is None or empty (and an epoch of 0) is left out."""
    quals: dict[str, str] = {}
    if arch:
        quals["arch"] = arch
    if epoch:
        quals["epoch"] = str(epoch)
    if distro:
        quals["distro"] = distro
    if repository_url:
        quals["repository_url"] = repository_url
    full = version + (f"-{release}" if release else "")
    return purl_string(TYPES.get(manager, manager), namespace or None, name, full, quals)


def namespace(os_release: Mapping[str, str]) -> str | None:
    """The namespace of an installed package: the target's os-release ``ID``."""
    return os_release.get("ID") or None


def distro(os_release: Mapping[str, str]) -> str | None:
    """The ``distro`` qualifier of an installed package: ``ID-VERSION_ID`` (either alone
    when the other is missing)."""
    return "-".join(x for x in (os_release.get("ID"), os_release.get("VERSION_ID")) if x) or None


def _quote(value: str) -> str:
    """One purl component percent-encoded from its bytes: a name read from the target keeps
    an undecodable byte as a surrogate escape (``\\udcff``), which has no UTF-8 spelling; its
    byte (``%FF``) is what the spec's percent-encoding writes."""
    return str(purl_quote(value.encode("utf-8", "surrogateescape")))


def purl_string(ptype: str, namespace: str | None, name: str, version: str, qualifiers: Mapping[str, str]) -> str:
    """A purl from components that may hold undecodable bytes (kept as surrogate escapes):
    each is percent-encoded here, byte for byte, and packageurl only assembles them."""
    return str(PackageURL(type=ptype, namespace=_quote(namespace) if namespace else None, name=_quote(name),
                          version=_quote(version),
                          qualifiers={k: _quote(v) for k, v in qualifiers.items()}).to_string(encode=None))
