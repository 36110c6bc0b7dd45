"""scanner.licensing: raw license strings to SPDX, categories, the license closure."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from license_expression import get_spdx_licensing
from spdx_tools.spdx.model import Actor, ActorType, CreationInfo, Document, ExtractedLicensingInfo
from spdx_tools.spdx.validation.license_expression_validator import validate_license_expression

from scanner.inventory import rpmdb
from scanner.licensing import load_tables, normalize
from scanner.licensing.categories import category
from scanner.licensing.debian import read_copyright
from scanner.target import DirectoryRoot

from conftest import REPO, by_path

SHARED = REPO / "fixtures" / "data" / "rpmdb"
TABLES = load_tables()


def spdx_tools_accepts(expression: str, refs: dict[str, str]) -> list[str]:
    """spdx-tools' own validation of an expression inside a document that carries the
    extracted text of each LicenseRef (as an SPDX export will)."""
    from datetime import datetime

    doc = Document(
        CreationInfo("SPDX-2.3", "SPDXRef-DOCUMENT", "t", "https://example.invalid/t",
                     [Actor(ActorType.TOOL, "flightcheck-test")], datetime(2026, 1, 1)),
        extracted_licensing_info=[ExtractedLicensingInfo(ref, text or ref) for ref, text in refs.items()],
    )
    parsed = get_spdx_licensing().parse(expression)
    return [m.validation_message for m in validate_license_expression(parsed, doc, "SPDXRef-DOCUMENT")]


def known_pairs() -> list[tuple[str, str]]:
    with open(REPO / "rules/licenses/known-pairs.csv", newline="") as fh:
        return [(r["raw"], r["expected"]) for r in csv.DictReader(fh)]


def test_known_pairs() -> None:
    pairs = known_pairs()
    assert len(pairs) >= 60
    for raw, want in pairs:
        got = normalize(raw, TABLES)
        assert (got.spdx, got.status) == (want, "exact"), raw


@pytest.mark.parametrize("raw,want", [
    ("GPLv2+", "GPL-2.0-or-later"),
    ("ASL 2.0", "Apache-2.0"),
    ("GPL+ or Artistic", "GPL-1.0-or-later OR Artistic-1.0-Perl"),
    ("GPLv2 & bzip2", "GPL-2.0-only AND bzip2-1.0.6"),
    ("BSD-3-Clause or GPL-2.0", "BSD-3-Clause OR GPL-2.0-only"),
    ("GPL-2.0+ and LGPL-2.1+", "GPL-2.0-or-later AND LGPL-2.1-or-later"),
    ("(GPLv2+ or LGPLv3+) and ASL 2.0", "(GPL-2.0-or-later OR LGPL-3.0-or-later) AND Apache-2.0"),
    ("GPLv2 | MIT", "GPL-2.0-only OR MIT"),
    ("LGPL-2.1-or-later WITH GCC-exception-2.0", "LGPL-2.1-or-later WITH GCC-exception-2.0"),
    # DEP-5: a comma lowers the precedence of the operator after it
    ("GPL-2+ or AFL-2.1, and Expat", "(GPL-2.0-or-later OR AFL-2.1) AND MIT"),
    ("Expat and GPL-2+, or Apache-2.0", "(MIT AND GPL-2.0-or-later) OR Apache-2.0"),
])
def test_issue_examples(raw: str, want: str) -> None:
    assert normalize(raw, TABLES).spdx == want


def test_umbrella_names_are_guesses() -> None:
    for raw in ("BSD", "MIT and BSD", "GPL"):
        got = normalize(raw, TABLES)
        assert got.status == "guess" and got.notes, raw
        assert not spdx_tools_accepts(got.spdx, got.refs), raw


def test_yocto_closed_is_proprietary() -> None:
    got = normalize("CLOSED", TABLES)
    assert got.proprietary and got.spdx.startswith("LicenseRef-")


@pytest.mark.parametrize("raw", [
    "GPLv2+ and (MIT or BSD",  # unbalanced
    "MIT) or (GPL",
    "x" * 10_000,  # 10 kB of junk
    "<html><body><a href='x'>GPL</a></body></html>",
    "caf\udce9 licen\udcffse",  # non-UTF-8 bytes as rpm strings carry them
    "and or with",
    "GPLv2+ and Totally Made Up License 3",
])
def test_bad_license_strings(raw: str) -> None:
    got = normalize(raw, TABLES)
    assert got.status == "unknown" and got.refs and got.raw == raw
    assert all(r.startswith("LicenseRef-") for r in got.refs)
    assert not spdx_tools_accepts(got.spdx, got.refs)


@pytest.mark.parametrize("folder,backend,fname", [("cbl-mariner-2.0", "sqlite", "rpmdb.sqlite"),
                                                  ("libuuid-bdb", "bdb", "Packages"),
                                                  ("sle15-bci", "ndb", "Packages.db")])
def test_every_license_of_the_shared_databases(folder: str, backend: str, fname: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    db = rpmdb.read_database(DirectoryRoot(SHARED / folder), "/", backend, fname, {}, prefer="python")
    statuses = {"exact": 0, "guess": 0, "unknown": 0, "none": 0}
    for p in db.packages:
        got = normalize(p.license_raw, TABLES)
        statuses[got.status] += 1
        assert got.raw == p.license_raw
        assert not spdx_tools_accepts(got.spdx, got.refs), (p.license_raw, got.spdx)
        for ref in got.refs:
            assert ref in got.spdx or ref in got.refs
    with capsys.disabled():
        print(f"\n{folder}: {statuses}")
    assert statuses["unknown"] <= len(db.packages) // 10


def test_categories() -> None:
    assert category("MIT") == "permissive"
    assert category("GPL-2.0-or-later") == "copyleft"
    assert category("LGPL-2.1-or-later") == "weak-copyleft"
    assert category("AGPL-3.0-only") == "network-copyleft"
    assert category("GPL-3.0-or-later WITH GCC-exception-3.1") == "weak-copyleft"
    assert category("MIT AND GPL-2.0-only") == "copyleft"  # AND: the strictest part
    assert category("MIT OR GPL-2.0-only") == "permissive"  # OR: the most permissive
    assert category("LicenseRef-x OR MIT") == "permissive"
    assert category("LicenseRef-x AND MIT") == "unknown"
    assert category("NOASSERTION") == "unknown"


def test_debian_copyright(tmp_path: Path) -> None:
    doc = tmp_path / "usr/share/doc"
    (doc / "dep5").mkdir(parents=True)
    (doc / "dep5/copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 A\nLicense: GPL-2+\n\n"
        "Files: lib/*\nCopyright: 2020 B\nLicense: LGPL-2.1+ or Expat\n\n"
        "Files: doc/*\nCopyright: 2020 C\nLicense: GPL-2+\n\n"
        "License: GPL-2+\n text\n")
    (doc / "free").mkdir()
    (doc / "free/copyright").write_text(
        "This is free software.\nOn Debian systems, the complete text of the GNU General\n"
        "Public License version 2 can be found in `/usr/share/common-licenses/GPL-2'.\n")
    (doc / "nothing").mkdir()
    (doc / "nothing/copyright").write_text("All rights reserved, probably.\n")
    fs = DirectoryRoot(tmp_path)
    dep5 = read_copyright(fs, "dep5")
    assert dep5.source == "dep5" and dep5.raw == "GPL-2+ and (LGPL-2.1+ or Expat)"
    assert normalize(dep5.raw, TABLES).spdx == "GPL-2.0-or-later AND (LGPL-2.1-or-later OR MIT)"
    free = read_copyright(fs, "free")
    assert free.source == "copyright-text" and free.raw == "GPL-2"
    assert read_copyright(fs, "nothing").raw is None
    assert read_copyright(fs, "absent").source == "none"


def test_host_packages_all_get_a_license_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/var/lib/dpkg/status").exists():
        pytest.skip("this host is not a dpkg system")
    from scanner.inventory.osrelease import read_os_release
    from scanner.licensing import license_packages
    from scanner.scan import read_package_databases

    fs = DirectoryRoot("/")
    dbs = read_package_databases(fs, read_os_release(fs))
    lic = license_packages(fs, dbs, TABLES)
    n = sum(len(d.packages) for d in dbs)
    assert len(lic) == n > 100
    counts = {"exact": 0, "guess": 0, "unknown": 0, "none": 0}
    for pl in lic.values():
        counts[pl.outcome.status] += 1
        assert pl.outcome.spdx  # every package has an outcome
    with capsys.disabled():
        print("\nthis host's packages: " + ", ".join(f"{k} {v} ({100 * v / n:.0f}%)" for k, v in counts.items()))


def test_license_closure_of_the_fixture(rpmroot_result: dict) -> None:
    elves = by_path(rpmroot_result)
    prop = elves["/opt/vendor/bin/prop-app"]
    assert prop["license_category"] == "proprietary"
    rows = {r["soname"]: r for r in prop["linked_licenses"]}
    assert rows["libgplcalc.so.1"]["package"] == "rpm/libgplcalc-2.1-3.x86_64"
    assert rows["libgplcalc.so.1"]["license"] == "GPL-2.0-or-later"
    assert rows["libgplcalc.so.1"]["category"] == "copyleft"
    hello = elves["/usr/bin/hello"]
    assert hello["license"] == "GPL-2.0-or-later"
    assert {r["soname"]: r["license"] for r in hello["linked_licenses"]}["libgreet.so.1"] == "LGPL-2.0-or-later"


def test_generic_exception_names_are_always_guesses() -> None:
    """'X with exceptions' never says which exception: whatever representative the table
    picks, the outcome must say it is a guess."""
    names = [n for n in TABLES.names if n.endswith("with exceptions") or n.endswith("with exception")]
    assert names
    for n in names:
        assert TABLES.names[n].guess, n
    for n in ("GPL", "LGPL", "BSD", "MIT", "MPL", "Artistic"):
        assert TABLES.name(n) is not None and TABLES.name(n).guess, n
