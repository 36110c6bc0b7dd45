"""Which naming convention a target's license strings follow, from its os-release and its
package databases (issue 18): the same string means different things on different
distributions. ``MIT`` is an SPDX id on Yocto (whose LICENSE values are SPDX-style) and on
SUSE (SPDX since 2013), but Fedora's legacy "MIT" is an umbrella for a dozen licenses;
Debian's ``Artistic`` is the one in ``/usr/share/common-licenses/Artistic``, Perl's, while
elsewhere it may be any Artistic license; old Red Hat's "Apache Software License" is the
Apache 1.1 of its time.

Conventions: ``fedora`` (Fedora, RHEL and their rebuilds, Amazon Linux, CBL-Mariner: Callaway
names), ``suse``, ``yocto`` (OpenEmbedded), ``debian`` (DEP-5 short names), ``spdx`` (Alpine,
OpenWrt, Wolfi, Arch: SPDX ids or close to them), and ``""`` when nothing says. The tables
apply a convention with :meth:`scanner.licensing.tables.LicenseTables.for_naming`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

NAMINGS = ("fedora", "suse", "yocto", "debian", "spdx")
#: conventions whose names that are SPDX ids mean exactly those ids
SPDX_STYLE = frozenset({"suse", "yocto", "spdx"})

_IDS = {
    "fedora": "fedora", "rhel": "fedora", "centos": "fedora", "rocky": "fedora", "almalinux": "fedora",
    "ol": "fedora", "scientific": "fedora", "amzn": "fedora", "mariner": "fedora", "azurelinux": "fedora",
    "sles": "suse", "sled": "suse", "suse": "suse", "opensuse": "suse",
    "poky": "yocto", "yocto": "yocto", "nodistro": "yocto", "openembedded": "yocto", "angstrom": "yocto",
    "debian": "debian", "ubuntu": "debian", "raspbian": "debian",
    "alpine": "spdx", "openwrt": "spdx", "wolfi": "spdx", "arch": "spdx", "chainguard": "spdx",
}
_MANAGERS = {"opkg": "yocto", "apk": "spdx", "dpkg": "debian", "rpm": "fedora"}


def license_naming(os_release: Mapping[str, str], managers: Iterable[str] = ()) -> str:
    """The convention of a target: its os-release ``ID``, then ``ID_LIKE``, then the first
    system package manager found; ``""`` when none says."""
    for ident in [os_release.get("ID", ""), *os_release.get("ID_LIKE", "").split()]:
        ident = ident.strip().lower()
        if ident.startswith("opensuse"):
            return "suse"
        if ident in _IDS:
            return _IDS[ident]
    for manager in managers:
        if manager in _MANAGERS:
            return _MANAGERS[manager]
    return ""
