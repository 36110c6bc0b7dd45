"""The target's own idea of what it is: ``os-release(5)``.

Read from ``/etc/os-release``, else ``/usr/lib/os-release`` (the order systemd uses). Values
follow shell quoting rules (single or double quotes, backslash escapes in double quotes);
malformed lines are skipped, as systemd skips them. Bytes that are not UTF-8 are kept as
surrogate escapes, the project's one policy (percent-encoded in purls, ``\\xNN`` in the result).
"""

from __future__ import annotations

import re
import shlex

from scanner.target import RootFS

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if not _KEY.match(key):
            continue
        try:
            parts = shlex.split(value, comments=False, posix=True)
        except ValueError:
            continue
        out[key] = " ".join(parts) if parts else ""
    return out


_RELEASE_IDS = (("red hat enterprise linux", "rhel"), ("centos", "centos"), ("fedora", "fedora"),
                ("scientific linux", "scientific"), ("oracle linux", "ol"), ("rocky", "rocky"),
                ("almalinux", "almalinux"))


def parse_redhat_release(line: str) -> dict[str, str]:
    """``Red Hat Enterprise Linux Server release 5.11 (Tikanga)`` as os-release fields."""
    line = line.strip()
    m = re.match(r"^(.*?)\s+release\s+([\d.]+)", line)
    name = m.group(1) if m else line
    out = {"NAME": name, "PRETTY_NAME": line}
    if m:
        out["VERSION_ID"] = m.group(2)
    for prefix, ident in _RELEASE_IDS:
        if name.lower().startswith(prefix):
            out["ID"] = ident
            break
    return out


def read_os_release(fs: RootFS) -> dict[str, str]:
    """Fields of the target's os-release; on systems older than os-release (RHEL 5, 6;
    Debian before 7) what ``/etc/redhat-release`` or ``/etc/debian_version`` says, in the
    same field names; an empty mapping when none of them is there."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            data = fs.read(path, 1 << 16)
        except OSError:
            continue
        return parse_os_release(data.decode("utf-8", "surrogateescape"))
    try:
        line = fs.read("/etc/redhat-release", 4096).decode("utf-8", "surrogateescape").splitlines()[0]
        return parse_redhat_release(line)
    except (OSError, IndexError):
        pass
    try:
        version = fs.read("/etc/debian_version", 256).decode("utf-8", "surrogateescape").strip()
    except OSError:
        return {}
    return {"ID": "debian", "NAME": "Debian GNU/Linux", "VERSION_ID": version,
            "PRETTY_NAME": f"Debian GNU/Linux {version}"}
