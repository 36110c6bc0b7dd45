"""Issue 18: licenses read right. Exceptions with WITH (SPDX exception ids where SPDX has
them), the short names SPDX spells differently, LicenseRef ids unique regardless of case,
and (below) the notice text of copyright files read for its grants and version clauses."""

from __future__ import annotations

import pytest
from license_expression import get_spdx_licensing

from scanner.inventory.packages import Package, PackageDatabase
from scanner.licensing import license_packages, load_tables, normalize

TABLES = load_tables()


@pytest.mark.parametrize("raw,want", [
    ("PSF-2", "PSF-2.0"), ("MPL-2", "MPL-2.0"), ("Beer-ware", "Beerware"),
    ("Artistic-2", "Artistic-2.0"), ("X-Consortium", "X11"),
])
def test_missed_short_names(raw: str, want: str) -> None:
    got = normalize(raw, TABLES)
    assert (got.spdx, got.status) == (want, "exact")


@pytest.mark.parametrize("raw,want", [
    # Ubuntu's bison: license and exception in one hyphenated word
    ("GPL-3+-WITH-BISON-EXCEPTION", "GPL-3.0-or-later WITH Bison-exception-2.2"),
    ("GPL-3+ with Bison exception", "GPL-3.0-or-later WITH Bison-exception-2.2"),
    ("GPL-3+ with GCC Runtime Library exception 3.1", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    ("GPL-2+ with Libtool exception", "GPL-2.0-or-later WITH Libtool-exception"),
    ("GPL-2 with Classpath exception", "GPL-2.0-only WITH Classpath-exception-2.0"),
    ("MIT and LGPL-2.1+-with-GCC-exception-2.0", "MIT AND LGPL-2.1-or-later WITH GCC-exception-2.0"),
])
def test_exceptions_are_joined_with_with(raw: str, want: str) -> None:
    got = normalize(raw, TABLES)
    assert got.spdx == want
    parsed = get_spdx_licensing().parse(got.spdx)
    assert "WITH" in str(parsed)


@pytest.mark.parametrize("raw,ref", [
    ("GPL-2+ with OpenSSL exception", "LicenseRef-OpenSSL-exception"),
    ("GPL-2+ with Elfutils-Exception", "LicenseRef-Elfutils-exception"),
])
def test_exceptions_spdx_lacks_are_licenserefs_joined_with_and_and_said_so(raw: str, ref: str) -> None:
    got = normalize(raw, TABLES)
    assert got.spdx == f"GPL-2.0-or-later AND {ref}"
    assert any("SPDX 2.3 allows only listed exception ids after WITH" in n for n in got.notes), got.notes


def test_a_word_with_with_that_is_not_known_stays_unknown() -> None:
    got = normalize("LGPL-2.1+-with-frobnicate", TABLES)
    assert got.status == "unknown" and "WITH" not in got.spdx


def _dpkgless(name: str, raw: str) -> Package:
    return Package(f"rpm/{name}", "rpm", name, None, "1", "1", "x86_64", None, None, raw, f"pkg:rpm/{name}@1", ())


def test_licenserefs_are_unique_regardless_of_case() -> None:
    db = PackageDatabase("rpm", "/var/lib/rpm", "sqlite", "python",
                         (_dpkgless("a", "distributable"), _dpkgless("b", "Distributable and MIT"),
                          _dpkgless("c", "GPLv2+ with OpenSSL-EXCEPTION and LicenseRef-openssl-exception")))
    lic = license_packages(None, [db], TABLES)
    a, b, c = lic["rpm/a"].outcome, lic["rpm/b"].outcome, lic["rpm/c"].outcome
    assert a.spdx == "LicenseRef-Distributable"  # one spelling, the first in sorted order
    assert b.spdx == "LicenseRef-Distributable AND MIT"
    assert set(a.refs) == set(b.refs) == {"LicenseRef-Distributable"}
    # the name tables' spelling wins over the one written in the package
    assert "LicenseRef-openssl-exception" not in c.spdx and c.spdx.count("LicenseRef-OpenSSL-exception") == 2
