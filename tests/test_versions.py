"""Version order of apk and opkg packages, as ``flightcheck diff`` uses it (issue 17, item 3).

apk: ``apk`` itself does not install on Debian, so the order is checked against apk-tools'
own published test vectors, ``test/version.data`` of github.com/alpinelinux/apk-tools
(commit 50ab589e9a5a84592ee4c0ac5a49506bb6c552fc), copied byte for byte to
``fixtures/data/apk/version.data``: 729 pairs, each checked both ways round.

opkg: libopkg's ``verrevcmp`` is dpkg's, so the order is dpkg's; each pair (the real versions of
the opkg fixtures, and the cases where dpkg's order differs from a string's or rpm's) is checked
against ``dpkg --compare-versions`` run here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scanner import diff as diffmod
from scanner.inventory.apkvercmp import apk_version_compare

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "apk" / "version.data"
OPS = {"<": -1, "=": 0, ">": 1}


def apk_vectors() -> list[tuple[str, int, str]]:
    out = []
    for line in VECTORS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            a, op, b = line.split()
            out.append((a, OPS[op], b))
    return out


def pkg(manager: str, version: str, epoch: int | None = None) -> dict[str, Any]:
    return {"manager": manager, "name": "x", "arch": None, "version": version, "release": None, "epoch": epoch}


def test_apk_order_matches_apk_tools_test_vectors() -> None:
    vectors = apk_vectors()
    assert len(vectors) == 729  # every line of the file
    wrong = [(a, op, b) for a, op, b in vectors
             if apk_version_compare(a, b) != op or apk_version_compare(b, a) != -op]
    assert wrong == []
    # and diff orders apk records by it: new against old
    for a, op, b in vectors:
        assert diffmod.compare_versions("apk", pkg("apk", a), pkg("apk", b)) == -op


def test_apk_order_is_not_a_string_or_rpm_order() -> None:
    """Cases that a string comparison or rpmvercmp would order otherwise: the tests above
    would not notice a comparison that fell back to one of them only here."""
    assert apk_version_compare("1.1_rc1", "1.1") == -1  # a pre-release suffix is older
    assert apk_version_compare("1.1_p1", "1.1") == 1  # a patch suffix is newer
    assert apk_version_compare("1.2.10-r0", "1.2.9-r9") == 1
    assert apk_version_compare("1.0-r10", "1.0-r9") == 1
    assert apk_version_compare("1.05", "1.5") == -1  # leading zeros after a dot
    assert apk_version_compare("2.12.6-r0", "2.12.6") == 1  # musl/apk-tools as Alpine writes them


def test_apk_order_of_junk_is_bounded() -> None:
    long = "1." + "9" * 100_000
    assert apk_version_compare(long, "1.0") in (-1, 1)  # a string order, never a 100,000-digit number
    assert apk_version_compare("abc", "1.0") in (-1, 0, 1)
    assert apk_version_compare("", "") == 0


OPKG_PAIRS = [
    # the real versions of fixtures/data/opkg (Angstrom's epoch, OpenWrt's dates and hashes)
    ("1:0.1.8+svnr649-r13.0.0", "0.1.8+svnr649-r13.0.0"),
    ("1:0.1.8+svnr649-r13.0.0", "1:0.1.8+svnr650-r1.0"),
    ("1.20.2-r10.0", "1.20.2-r9.0"),
    ("2022-02-24-d038e5b6-2", "2022-02-24-d038e5b6-10"),
    ("3.0.12-1", "3.0.13-1"),
    ("1.36.1-1", "1.36.1-r1"),
    ("5.15.137-1", "5.15.137+1-1"),
    ("1.0~rc1-1", "1.0-1"),
    ("1.0", "1.0-0"),
    ("1.0a", "1.0+"),
    ("2.36-9", "2.36-9+deb12u1"),
    ("0.9", "0.10"),
]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed (apt-get install dpkg)")
@pytest.mark.parametrize(("a", "b"), OPKG_PAIRS)
def test_opkg_order_is_dpkgs(a: str, b: str) -> None:
    def dpkg(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0

    want = -1 if dpkg("lt") else (1 if dpkg("gt") else 0)
    assert dpkg("eq") == (want == 0)
    epoch_a = int(a.split(":")[0]) if ":" in a else None
    epoch_b = int(b.split(":")[0]) if ":" in b else None
    # the epoch is both in the version (as opkg writes it) and in the record's epoch field
    assert diffmod.compare_versions("opkg", pkg("opkg", b, epoch_b), pkg("opkg", a, epoch_a)) == want
    assert diffmod.compare_versions("opkg", pkg("opkg", a, epoch_a), pkg("opkg", b, epoch_b)) == -want
    assert diffmod.evr(pkg("opkg", a, epoch_a)) == a  # the epoch written once
