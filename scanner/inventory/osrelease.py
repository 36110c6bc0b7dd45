"""The target's own idea of what it is: ``os-release(5)``.

Read from ``/etc/os-release``, else ``/usr/lib/os-release`` (the order systemd uses). Values
follow shell quoting rules (single or double quotes, backslash escapes in double quotes);
malformed lines are skipped, as systemd skips them. Bytes that are not UTF-8 are kept as
surrogate escapes, the project's one policy (percent-encoded in purls, ``\\xNN`` in the result).

Hostile input: a file there that is not a regular file (a device, a FIFO, a folder) is never
opened, and one that cannot be read is an error record (then the next file is asked, as for
a missing one); one larger than ``MAX_OS_RELEASE_BYTES`` is read up to the cap, whole lines
only, and said: a target's identity is never silently guessed from less than it wrote.
"""

from __future__ import annotations

import re
import shlex

from scanner import limits
from scanner.errors import ErrorRecord
from scanner.limits import LimitExceeded
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


def _read(fs: RootFS, path: str, errors: list[ErrorRecord]) -> bytes | None:
    """The bytes of ``path`` up to ``MAX_OS_RELEASE_BYTES`` (cut after its last whole line
    when larger, and said); None when it is not there. Anything else that stops the read
    (not a regular file, an I/O error, a damaged inode) is an error record, and None."""
    cap = limits.MAX_OS_RELEASE_BYTES
    try:
        data = fs.read(path, cap + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        errors.append(ErrorRecord(path, "inventory", f"cannot read: {exc.strerror or exc}; "
                                                     "the target's identity was not taken from it"))
        return None
    if len(data) > cap:
        data = data[:data.rfind(b"\n", 0, cap) + 1]
        errors.append(ErrorRecord(path, "inventory", str(LimitExceeded(
            "MAX_OS_RELEASE_BYTES", cap, f"read only its first {len(data):,} bytes (whole lines)"))))
    return data


def read_os_release(fs: RootFS, errors: list[ErrorRecord] | None = None) -> dict[str, str]:
    """Fields of the target's os-release; on systems older than os-release (RHEL 5, 6;
    Debian before 7) what ``/etc/redhat-release`` or ``/etc/debian_version`` says, in the
    same field names; an empty mapping when none of them is there. What is there but
    could not be read (or only in part) goes to ``errors``."""
    errs = errors if errors is not None else []
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        data = _read(fs, path, errs)
        if data is not None:
            return parse_os_release(data.decode("utf-8", "surrogateescape"))
    data = _read(fs, "/etc/redhat-release", errs)
    lines = data.decode("utf-8", "surrogateescape").splitlines() if data is not None else []
    if lines:
        return parse_redhat_release(lines[0])
    data = _read(fs, "/etc/debian_version", errs)
    if data is None:
        return {}
    version = data.decode("utf-8", "surrogateescape").strip()
    return {"ID": "debian", "NAME": "Debian GNU/Linux", "VERSION_ID": version,
            "PRETTY_NAME": f"Debian GNU/Linux {version}"}
