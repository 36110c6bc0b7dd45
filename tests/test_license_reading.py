"""Issue 18: licenses read right. Exceptions with WITH (SPDX exception ids where SPDX has
them), the short names SPDX spells differently, LicenseRef ids unique regardless of case,
and (below) the notice text of copyright files read for its grants and version clauses."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from license_expression import get_spdx_licensing

from scanner.inventory.packages import Package, PackageDatabase
from scanner.licensing import PackageLicense, license_packages, load_tables, normalize
from scanner.licensing.debian import read_copyright
from scanner.licensing.naming import license_naming
from scanner.licensing.notice import MAX_NOTICE, read_notice
from scanner.target import DirectoryRoot

from conftest import REPO
from test_licensing import spdx_tools_accepts

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


# --- the notice read, not the pointer: real copyright files (fixtures/data/copyright/README.md) ---

COPYRIGHT = REPO / "fixtures" / "data" / "copyright"

#: package, how its license was read, status, the SPDX expression its copyright file grants;
#: each checked by hand against the file's text (the README says where each file came from)
REAL_FILES = [
    # free-text files: the grant's version clause decides, not the common-licenses pointer
    ("base-files", "notice-text", "guess", "GPL-2.0-or-later"),  # was GPL-1.0-or-later (bare GPL pointer)
    ("libc6", "notice-text", "guess", "LGPL-2.1-or-later AND GPL-2.0-or-later AND BSD-3-Clause AND ISC"),
    ("libkrb5-3", "notice-text", "guess",
     "BSD-2-Clause AND CC-BY-SA-3.0 AND BSD-3-Clause AND MIT AND BSD-4-Clause AND ISC AND GPL-2.0-or-later"),
    ("libpython3.11", "notice-text", "guess",
     "Python-2.0 AND BSD-3-Clause AND GPL-2.0-or-later AND Zlib AND MIT AND BSD-2-Clause"),
    ("python3", "notice-text", "guess", "Python-2.0 AND MIT"),
    ("libselinux1", "notice-text", "guess", "GPL-2.0-only AND LGPL-2.1-or-later"),  # "version 2." alone: only
    ("libgnutls30", "notice-text", "guess",
     "LGPL-2.1-or-later AND GPL-3.0-or-later AND GFDL-1.3-or-later AND BSD-3-Clause AND BSD-2-Clause AND ISC AND MIT"
     " AND Apache-2.0"),
    ("libgcc-s1", "notice-text", "guess",
     "GPL-3.0-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1 AND BSD-3-Clause AND MIT AND GFDL-1.2-only AND "
     "LGPL-2.0-or-later AND LGPL-2.1-or-later AND GPL-2.0-or-later AND Zlib AND GFDL-1.3-or-later AND BSD-4-Clause-UC AND "
     "BSD-2-Clause AND Artistic-1.0-Perl"),
    # DEP-5 files: the short names, with the License paragraphs' text deciding or-later and the exception
    ("bash", "dep5", "unknown",
     "GPL-3.0-or-later AND GPL-3.0-or-later WITH Bison-exception-2.2 AND GPL-2.0-or-later AND "
     "GFDL-1.3-no-invariants-only AND Latex2e AND (BSD-4-Clause-UC AND LicenseRef-MIT-like) AND LicenseRef-permissive"),
    ("coreutils", "dep5", "exact",
     "GPL-3.0-or-later AND (GPL-3.0-or-later AND BSD-4-Clause-UC) AND (GPL-3.0-or-later AND ISC) AND FSFULLR AND "
     "GFDL-1.3-no-invariants-only"),
    ("apt", "dep5", "exact", "GPL-2.0-or-later AND GPL-2.0-only AND BSD-3-Clause AND MIT"),  # rsh.cc: "terms version 2"
    ("dash", "dep5", "exact", "BSD-3-Clause AND LicenseRef-Public-Domain AND GPL-2.0-or-later AND BSD-3-Clause"),
    ("gpgv", "dep5", "unknown",
     "GPL-3.0-or-later AND LicenseRef-permissive AND LGPL-2.1-or-later AND MIT AND (GPL-3.0-or-later OR BSD-3-Clause) "
     "AND LGPL-3.0-or-later AND LicenseRef-RFC-Reference AND LicenseRef-TinySCHEME AND CC0-1.0"),
    # "GPL-3+ with Bison exception": its text is Bison's 2.2 exception, so exact, no longer a guess
    ("libelf1", "dep5", "exact",
     "GPL-3.0-or-later AND (LGPL-3.0-or-later OR GPL-2.0-or-later) AND BSD-2-Clause AND GFDL-1.3-no-invariants-only AND "
     "LGPL-2.1-or-later AND GPL-3.0-or-later WITH Bison-exception-2.2"),
    ("tar", "dep5", "exact",
     "GPL-3.0-or-later AND GPL-3.0-or-later WITH Bison-exception-2.2 AND LGPL-3.0-or-later AND GPL-2.0-or-later"),
    # "License: GPL-2" whose paragraph grants "or (at your option) any later version"
    ("logrotate", "dep5", "exact", "GPL-2.0-or-later AND GPL-3.0-or-later AND BSD-3-Clause"),
    # "with Autoconf-data exception" / "with autoconf exception": the exception's text names which
    ("libcurl3-gnutls", "dep5", "exact",
     "curl AND OLDAP-2.8 AND ISC AND GPL-2.0-or-later WITH Autoconf-exception-generic AND GPL-3.0-or-later WITH "
     "Autoconf-exception-macro AND GPL-2.0-or-later WITH Libtool-exception AND BSD-3-Clause AND BSD-4-Clause-UC AND "
     "FSFULLR AND X11"),
    ("libuv1", "dep5", "exact",
     "MIT AND ISC AND CC-BY-4.0 AND Apache-2.0 AND BSD-3-Clause AND BSD-2-Clause AND GPL-3.0-or-later WITH "
     "Autoconf-exception-macro"),
]


@pytest.fixture(scope="module")
def real_licenses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PackageLicense]:
    root = tmp_path_factory.mktemp("copyright-root")
    shutil.copytree(COPYRIGHT, root / "usr/share/doc", ignore=shutil.ignore_patterns("README.md"))
    names = sorted(p.name for p in COPYRIGHT.iterdir() if p.is_dir())
    pkgs = tuple(Package(f"deb/{n}", "dpkg", n, None, "1", None, "amd64", None, None, None, f"pkg:deb/debian/{n}@1", ())
                 for n in names)
    db = PackageDatabase("dpkg", "/var/lib/dpkg/status", "dpkg-status", "python-debian", pkgs)
    return {k.removeprefix("deb/"): v for k, v in license_packages(DirectoryRoot(root), [db], TABLES).items()}


@pytest.mark.parametrize("package,source,status,want", REAL_FILES, ids=[r[0] for r in REAL_FILES])
def test_real_copyright_files(real_licenses: dict[str, PackageLicense], package: str, source: str, status: str,
                              want: str) -> None:
    got = real_licenses[package]
    assert (got.outcome.spdx, got.source, got.outcome.status) == (want, source, status)
    assert not spdx_tools_accepts(got.outcome.spdx, got.outcome.refs)  # valid SPDX 2.3 (spdx-tools' own check)
    if source == "notice-text":
        assert "read from the notice" in got.evidence and '"' in got.evidence  # the deciding sentences are kept


def test_perl_bisons_one_word_exception(real_licenses: dict[str, PackageLicense]) -> None:
    """perl's DEP-5 file says ``GPL-3+-WITH-BISON-EXCEPTION``: once a LicenseRef, now WITH."""
    spdx = real_licenses["perl-base"].outcome.spdx
    assert "GPL-3.0-or-later WITH Bison-exception-2.2" in spdx and "BISON-EXCEPTION" not in spdx


def test_free_text_reading_is_said_in_the_notes(real_licenses: dict[str, PackageLicense]) -> None:
    assert any("notice text" in n for n in real_licenses["libc6"].outcome.notes)
    assert "LGPL-2.1+" in real_licenses["libc6"].evidence and "any later version" in real_licenses["libc6"].evidence


#: real sentences from the files above, and what each grants (None: nothing; a pointer or prose)
SENTENCES = [
    ("The GNU C Library is free software; you can redistribute it and/or modify it under the terms of the GNU Lesser "
     "General Public License as published by the Free Software Foundation; either version 2.1 of the License, or (at "
     "your option) any later version.", "LGPL-2.1-or-later"),
    ("This program is free software; you can redistribute it and/or modify\n    it under the terms of the GNU General "
     "Public License as published\n    by the Free Software Foundation; version 2 of the License, or\n    (at your "
     "option) any later version.", "GPL-2.0-or-later"),
    ("Alternatively, the contents of this package may be used under the terms of the GNU General Public License "
     "(\"GPL\") version 2 or any\n   later version, in which case the provisions of the GPL are applicable instead.",
     "GPL-2.0-or-later"),
    ("However, one file (utils/avcstat.c) is Copyright: 2004 Red Hat, Inc., James Morris and is distributed underthe "
     "terms of the GNU General Public License, version 2.", "GPL-2.0-only"),
    ("Most of the package is licensed under the GNU Lesser General Public License (LGPL) version 2.1 (or later), "
     "except for helper and debugging binaries.", "LGPL-2.1-or-later"),
    ("The main library is licensed under GNU Lesser General Public License (LGPL) version 2.1+, Gnutls Extra are "
     "licenced under the GNU General Public License version 3+.", "LGPL-2.1-or-later AND GPL-3.0-or-later"),
    ("The following runtime libraries are licensed under the terms of the\nGNU General Public License (v3 or later) "
     "with version 3.1 of the GCC\nRuntime Library Exception (included in this file):",
     "GPL-3.0-or-later WITH GCC-exception-3.1"),
    ("The groff manual is also distributed under the terms of the GNU Free Documentation License version 1.3.",
     "GFDL-1.3-only"),
    ("Permission is granted to copy, distribute and/or modify this document under the terms of the GNU Free "
     "Documentation License, Version 1.3 or any later version published by the Free Software Foundation",
     "GFDL-1.3-or-later"),
    ("This program is free software; you can redistribute it and/or modify it under the terms of the GNU General "
     "Public License as published by the Free Software Foundation; either version 2 of the License, or\n(at your "
     "option) any later version.", "GPL-2.0-or-later"),
    ("Released under the terms of the GPL; see \n/usr/share/common-licenses/GPL-3.", None),  # wget: pointer only
    ("On Debian systems, the complete text of the GNU General\nPublic License version 2 can be found in "
     "`/usr/share/common-licenses/GPL-2'.", None),
    ("Notwithstanding the foregoing, with regard to derivative works based on Python 1.6.1 that incorporate "
     "non-separable material that was previously distributed under the GNU General Public License (GPL), the law of "
     "the Commonwealth of Virginia shall govern this License Agreement.", None),
    ("The GPL-compatible licenses make it possible to combine Python with other software that is released under the "
     "GPL; the others don't.", None),
    ("PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2\n--------------------------------------------\n\n1. This LICENSE "
     "AGREEMENT is between the Python Software Foundation", "PSF-2.0"),
    ("This program is free software: you can redistribute it and/or modify it under the terms of the GNU General "
     "Public License as published by the Free Software Foundation, either version 3 of the License, or (at your "
     "option) any later version.\n\nAs a special exception, you may create a larger work that contains part or all of "
     "the Bison parser skeleton and distribute that work under terms of your choice",
     "GPL-3.0-or-later WITH Bison-exception-2.2"),
    ("This program is free software; you can redistribute it and/or modify it under the terms of the GNU General "
     "Public License as published by the Free Software Foundation; either version 2 of the License, or (at your "
     "option) any later version.\n\nIn addition, as a special exception, the copyright holders give permission to link "
     "the code of portions of this program with the OpenSSL library under certain conditions.",
     "GPL-2.0-or-later AND LicenseRef-OpenSSL-exception"),
    ("Redistribution and use in source and binary forms, with or without\nmodification, are permitted provided that "
     "the following conditions are met:\n1. Redistributions of source code must retain the above copyright notice.\n"
     "2. Redistributions in binary form must reproduce the above copyright\nnotice.\n3. [This condition was removed.]\n"
     "4. Neither the name of the University nor the names of its contributors\nmay be used to endorse or promote "
     "products derived from this software\nwithout specific prior written permission.\nIN NO EVENT ... SUCH DAMAGE.",
     "BSD-3-Clause"),
    ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated "
     "documentation files (the \"Software\"), to deal in the Software without restriction", "MIT"),
    ("Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file except in "
     "compliance with the License.", "Apache-2.0"),
    # libksba8: an SPDX id inside the free text
    ("License: LGPL-2.1-or-later\n This file is free software; you can redistribute it and/or modify it under the "
     "terms of the GNU Lesser General Public License as published by the Free Software Foundation; either version 2.1 "
     "of the License, or (at your option) any later version.", "LGPL-2.1-or-later"),
    # libxss1: the X Consortium's clause on names makes the Expat grant X11's
    ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software ... OTHER "
     "DEALINGS IN THE SOFTWARE.\n\nExcept as contained in this notice, the name of the X Consortium shall not be "
     "used in advertising", "X11"),
    # libgcc's Expat text followed, further on, by Unicode's own license with the same clause: still MIT
    ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software ... OTHER "
     "DEALINGS IN THE SOFTWARE.\n\nUNICODE, INC. LICENSE AGREEMENT - DATA FILES AND SOFTWARE ... DATA FILES OR "
     "SOFTWARE.\n\nExcept as contained in this notice, the name of a copyright holder shall not be used", "MIT"),
]


@pytest.mark.parametrize("text,want", SENTENCES)
def test_notice_sentences(text: str, want: str | None) -> None:
    found = read_notice(text).found
    raw = " and ".join(f.name for f in found)
    assert (normalize(raw, TABLES).spdx if raw else None) == want
    for f in found:
        assert f.evidence and len(f.evidence) <= 240


@pytest.mark.parametrize("text", [
    "version " * 200_000,  # 1.6 MB of one word: read up to MAX_NOTICE, linear time
    "General Public License " * 40_000,
    "Redistribution and use in source and binary forms, with or without modification, are permitted provided that "
    * 10_000,
    "\x00\xff\ufffd" * 100_000,
    "",
])
def test_hostile_notices_are_bounded(text: str) -> None:
    start = time.monotonic()
    notice = read_notice(text)
    assert time.monotonic() - start < 10
    assert notice.truncated == (len(text) > MAX_NOTICE)


def test_free_text_pointer_only_and_unreadable(tmp_path: Path) -> None:
    doc = tmp_path / "usr/share/doc"
    (doc / "pointer").mkdir(parents=True)
    (doc / "pointer/copyright").write_text("Released under the terms of the GPL; see\n/usr/share/common-licenses/GPL-3.\n")
    (doc / "fifo").mkdir()
    os.mkfifo(doc / "fifo/copyright")
    fs = DirectoryRoot(tmp_path)
    got = read_copyright(fs, "pointer")
    assert (got.raw, got.source, got.read) == ("GPL-3", "copyright-text", "pointer-only")
    fifo = read_copyright(fs, "fifo")
    assert fifo.raw is None and "cannot be read" in fifo.evidence


# --- distribution-aware names: the same string, a different outcome on each distribution's root ---

@pytest.mark.parametrize("os_release,managers,want", [
    ({"ID": "poky", "VERSION_ID": "4.0"}, ["opkg"], "yocto"),
    ({"ID": "angstrom"}, ["opkg"], "yocto"),
    ({"ID": "fedora", "VERSION_ID": "39"}, ["rpm"], "fedora"),
    ({"ID": "rocky", "ID_LIKE": "rhel centos fedora"}, ["rpm"], "fedora"),
    ({"ID": "opensuse-leap", "ID_LIKE": "suse opensuse"}, ["rpm"], "suse"),
    ({"ID": "sles"}, ["rpm"], "suse"),
    ({"ID": "ubuntu", "ID_LIKE": "debian"}, ["dpkg"], "debian"),
    ({"ID": "alpine"}, ["apk"], "spdx"),
    ({"ID": "myembedded", "ID_LIKE": "nothing-known"}, ["opkg"], "yocto"),  # the database says it
    ({}, [], ""),
])
def test_license_naming(os_release: dict[str, str], managers: list[str], want: str) -> None:
    assert license_naming(os_release, managers) == want


@pytest.mark.parametrize("raw,naming,spdx,status", [
    ("MIT", "yocto", "MIT", "exact"),  # Yocto's LICENSE values are SPDX-style
    ("MIT", "suse", "MIT", "exact"),
    ("MIT", "fedora", "MIT", "guess"),  # Fedora's legacy MIT is an umbrella
    ("MIT", "debian", "MIT", "guess"),
    ("Artistic", "debian", "Artistic-1.0-Perl", "exact"),  # common-licenses/Artistic is Perl's
    ("Artistic", "yocto", "Artistic-1.0", "guess"),  # not Perl's
    ("Artistic", "fedora", "Artistic-1.0-Perl", "guess"),
    ("Apache Software License", "fedora", "Apache-1.1", "guess"),  # old Red Hat httpd 2.0.40
    ("Apache Software License", "suse", "Apache-2.0", "guess"),
    ("BSD", "yocto", "BSD-3-Clause", "guess"),  # not an SPDX id anywhere
    ("GPLv2+ & MIT", "yocto", "GPL-2.0-or-later AND MIT", "exact"),
])
def test_same_string_different_outcome(raw: str, naming: str, spdx: str, status: str) -> None:
    got = normalize(raw, TABLES.for_naming(naming))
    assert (got.spdx, got.status) == (spdx, status)
    if status == "exact" and TABLES.name(raw) is not None and TABLES.name(raw).guess:  # type: ignore[union-attr]
        assert any(naming in n for n in got.notes), got.notes  # the convention that decided is said


def _yocto_and_debian_roots(tmp: Path) -> tuple[Path, Path]:
    yocto = tmp / "yocto"
    (yocto / "etc").mkdir(parents=True)
    (yocto / "etc/os-release").write_text('ID=poky\nNAME="Poky (Yocto Project Reference Distro)"\nVERSION_ID=4.0.17\n')
    (yocto / "var/lib/opkg").mkdir(parents=True)
    (yocto / "var/lib/opkg/status").write_text(
        "Package: libfoo1\nVersion: 1.0-r0\nStatus: install ok installed\nArchitecture: cortexa57\nLicense: MIT\n\n"
        "Package: cracklib\nVersion: 2.9.8-r0\nStatus: install ok installed\nArchitecture: cortexa57\n"
        "License: Artistic\n\n")
    debian = tmp / "debian"
    (debian / "etc").mkdir(parents=True)
    (debian / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (debian / "var/lib/dpkg/info").mkdir(parents=True)
    (debian / "var/lib/dpkg/status").write_text(
        "".join(f"Package: {n}\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n"
                f"Maintainer: x <x@example.org>\nDescription: x\n\n" for n in ("libfoo1", "cracklib")))
    for name, lic in (("libfoo1", "MIT"), ("cracklib", "Artistic")):
        (debian / f"usr/share/doc/{name}").mkdir(parents=True)
        (debian / f"usr/share/doc/{name}/copyright").write_text(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            f"Files: *\nCopyright: 2024 X\nLicense: {lic}\n")
    return yocto, debian


def test_same_string_on_their_own_roots(tmp_path: Path) -> None:
    """A Debian root scanned whole; a Yocto root's opkg database read by the opkg reader
    (not yet among the scan's readers on this branch) and licensed as the scan licenses,
    by the convention its os-release names."""
    from scanner.inventory import opkg
    from scanner.inventory.osrelease import read_os_release
    from scanner.scan import ScanOptions, scan

    yocto, debian = _yocto_and_debian_roots(tmp_path)
    doc = scan(DirectoryRoot(debian), ScanOptions(jobs=1))
    assert {p["name"]: (p["license_spdx"], p["license_status"]) for p in doc["packages"]} == {
        "libfoo1": ("MIT", "guess"), "cracklib": ("Artistic-1.0-Perl", "exact")}
    fs = DirectoryRoot(yocto)
    osr = read_os_release(fs)
    db = opkg.read_database(fs, osr)
    assert db is not None
    tables = TABLES.for_naming(license_naming(osr, [db.manager]))
    got = {pid.split("/")[1].split("_")[0]: (pl.outcome.spdx, pl.outcome.status)
           for pid, pl in license_packages(fs, [db], tables).items()}
    assert got == {"libfoo1": ("MIT", "exact"), "cracklib": ("Artistic-1.0", "guess")}


def test_how_a_file_was_read_is_remembered(tmp_path: Path) -> None:
    """The scan cache keeps each copyright file's reading, how it was read included: a
    rescan says notice-text with the same evidence, from the cache."""
    from scanner.inventory.memostore import MemoStore

    doc = tmp_path / "root/usr/share/doc"
    shutil.copytree(COPYRIGHT / "libc6", doc / "libc6")
    fs = DirectoryRoot(tmp_path / "root")
    memo = MemoStore(tmp_path / "cache.db", "DirectoryRoot:t")
    first = read_copyright(fs, "libc6", memo)
    memo.commit()
    again = MemoStore(tmp_path / "cache.db", "DirectoryRoot:t")
    second = read_copyright(fs, "libc6", again)
    assert again.hits.get("copyright") == 1
    assert (second.raw, second.source, second.read, second.evidence) == (first.raw, first.source, "notice-text",
                                                                          first.evidence)


def test_remembered_notices_are_bounded() -> None:
    from scanner.licensing import notice

    for i in range(notice._RECENT_MAX + 40):
        read_notice(f"This program is free software; you can redistribute it under the terms of the GNU General Public "
                    f"License, version 2 or any later version. ({i})")
    assert len(notice._RECENT) == notice._RECENT_MAX
    again = read_notice("Licensed under the Apache License, Version 2.0 (x)")
    assert again is read_notice("Licensed under the Apache License, Version 2.0 (x)")  # the same text: remembered


def test_a_copyright_text_is_read_once_per_cache(tmp_path: Path) -> None:
    """Two targets scanned with one --cache file: the second, whose package has a copyright
    file of the same text under another name, takes the first's reading (keyed by the
    text's digest), naming its own file in the evidence."""
    from conftest import scan_root

    sample = Path(__file__).parent.parent / "fixtures/data/copyright/bash/copyright"  # free text: the notice reader
    roots = {}
    for name in ("alpha", "beta"):
        root = tmp_path / name
        (root / "var/lib/dpkg/info").mkdir(parents=True)
        (root / "var/lib/dpkg/status").write_text(
            f"Package: {name}\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n"
            "Maintainer: nobody <n@example.org>\nDescription: a fixture\n")
        (root / f"var/lib/dpkg/info/{name}.list").write_text(f"/usr/share/doc/{name}\n")
        (root / f"usr/share/doc/{name}").mkdir(parents=True)
        (root / f"usr/share/doc/{name}/copyright").write_bytes(sample.read_bytes())
        roots[name] = root
    cache = tmp_path / "cache.sqlite"
    first = scan_root(roots["alpha"], cache=cache)
    second = scan_root(roots["beta"], cache=cache)
    (a,), (b,) = first["packages"], second["packages"]
    assert second["scan"]["options"]["cache"]["memo_hits"].get("copyright-content") == 1
    assert first["scan"]["options"]["cache"]["memo_hits"].get("copyright-content") is None
    assert (a["license_spdx"], a["license_source"]) == (b["license_spdx"], b["license_source"])
    assert "/usr/share/doc/beta/copyright" in b["license_evidence"] and "alpha" not in b["license_evidence"]
