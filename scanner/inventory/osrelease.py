"""The target's own idea of what it is: ``os-release(5)``.

Read from ``/etc/os-release``, else ``/usr/lib/os-release`` (the order systemd uses). Values
follow shell quoting rules (single or double quotes, backslash escapes in double quotes);
malformed lines are skipped, as systemd skips them.
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


def read_os_release(fs: RootFS) -> dict[str, str]:
    """Fields of the target's os-release, or an empty mapping when it has none."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            data = fs.read(path, 1 << 16)
        except OSError:
            continue
        return parse_os_release(data.decode("utf-8", "replace"))
    return {}
