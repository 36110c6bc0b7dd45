"""Small SPDX values built from a result's fields: the creation time, a supplier, the
external references (purl, CPE), a package's download location and the target's name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.external_package_ref_validator import CPE22TYPE_REGEX, CPE23TYPE_REGEX, PURL_REGEX

from scanner.reports.spdx.text import decoded, line, slug


def download_location(target: Mapping[str, Any], p: Mapping[str, Any]) -> str | SpdxNoAssertion:
    """Where a repository's package file can be fetched (an http(s) repository only)."""
    repo = target.get("repository") or {}
    loc = p.get("location")
    if repo.get("kind") == "http" and loc and "://" not in str(loc):
        from urllib.parse import quote, urljoin

        from spdx_tools.spdx.validation.uri_validators import validate_download_location

        url = urljoin(str(repo.get("source")), quote(str(loc)))
        # SPDX 2.3 wants a host name with a top-level domain; a bare IP address is refused
        return url if not validate_download_location(url) else SpdxNoAssertion()
    return SpdxNoAssertion()


def created(started: str | None) -> datetime:
    """The scan's start as the document's creation time (the epoch when it is unreadable)."""
    try:
        when = datetime.fromisoformat(str(started))
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def supplier(vendor: str | None) -> Actor | SpdxNoAssertion:
    """A package's vendor (``Name <email>``) as its supplier organization."""
    if vendor is None or not vendor.strip():
        return SpdxNoAssertion()
    m = re.fullmatch(r"\s*(.*?)\s*<([^<>]*)>\s*", vendor)
    if m and m.group(1).strip():
        name, email = m.group(1), m.group(2).strip() or None
    else:
        name, email = vendor.strip(), None
    name = (line(name) or "").strip()
    if not name:
        return SpdxNoAssertion()
    # Tag-value writes "Organization: NAME (EMAIL)"; parentheses in the e-mail would
    # be read back as part of it, so drop an e-mail that holds them.
    if email and ("(" in email or ")" in email):
        email = None
    return Actor(ActorType.ORGANIZATION, name, line(email) if email else None)


def purl_ref(purl: str | None) -> ExternalPackageRef | None:
    """A package's purl as a PACKAGE-MANAGER external reference (SPDX 2.3 7.21)."""
    if not purl:
        return None
    locator = re.sub(r"[\s\x00-\x1f\x7f-\x9f]", lambda m: "%{:02X}".format(ord(m.group())), decoded(purl))
    if not re.match(PURL_REGEX, locator):
        return None
    return ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", locator)


def cpe_ref(cpe: str | None) -> ExternalPackageRef | None:
    """The target's CPE (os-release's CPE_NAME) as a SECURITY external reference."""
    if not cpe:
        return None
    for ref_type, regex in (("cpe23Type", CPE23TYPE_REGEX), ("cpe22Type", CPE22TYPE_REGEX)):
        if re.match(regex, cpe):
            return ExternalPackageRef(ExternalPackageRefCategory.SECURITY, ref_type, cpe)
    return None


def target_label(target: Mapping[str, Any]) -> tuple[str, str]:
    """A readable name of the target and a slug for the namespace."""
    osr: Mapping[str, str] = target.get("os") or {}
    root = str(target.get("root") or "")
    pretty = osr.get("PRETTY_NAME") or osr.get("NAME")
    name = f"{pretty} at {root}" if pretty else root or "unknown target"
    slug_src = "-".join(x for x in (osr.get("ID"), osr.get("VERSION_ID")) if x) or Path(root).name or "root"
    return name, slug(slug_src, 40) or "target"
