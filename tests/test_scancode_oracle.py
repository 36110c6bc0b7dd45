"""ScanCode as the oracle of flightcheck's license reading (issue 18).

ScanCode (``scancode-toolkit-mini`` from PyPI, in its own virtualenv built once into the
fixture cache by ``fixtures/build_scancode.py``) detects licenses in the same Debian
``copyright`` files flightcheck reads. On a fixed sample (the 19 real files of
``fixtures/data/copyright`` and 8 packages of this host picked with a fixed seed, when it is
a dpkg system): every SPDX-listed id flightcheck declares is among ScanCode's on at least 95%
of packages, and never "-only" where ScanCode finds "-or-later" and no "-only". The
disagreements are printed. ``bench/scancode_oracle.py`` runs the same comparison on every
package of a Debian root and of this host."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from scanner.inventory.packages import Package, PackageDatabase
from scanner.licensing import license_packages, load_tables
from scanner.licensing.naming import license_naming
from scanner.target import DirectoryRoot

from conftest import CACHE, REPO, load_builder

COPYRIGHT = REPO / "fixtures" / "data" / "copyright"
HOST_SAMPLE = 8  # with the 19 fixture files: under two minutes of ScanCode on this machine
SEED = 18


@pytest.fixture(scope="module")
def oracle() -> object:
    builder = load_builder("build_scancode")
    try:
        builder.build_scancode(CACHE)
    except Exception as exc:  # noqa: BLE001 - no PyPI here: said, not hidden
        pytest.skip(f"ScanCode could not be installed into the fixture cache from PyPI: {exc}")
    return builder


def _sample(tmp: Path) -> tuple[DirectoryRoot, list[str]]:
    """A root holding the fixture files and a seeded sample of this host's copyright files."""
    doc = tmp / "usr/share/doc"
    shutil.copytree(COPYRIGHT, doc, ignore=shutil.ignore_patterns("README.md"))
    names = sorted(p.name for p in doc.iterdir())
    host = sorted(p.parent.name for p in Path("/usr/share/doc").glob("*/copyright")
                  if p.is_file() and p.parent.name not in names) if Path("/var/lib/dpkg/status").exists() else []
    for name in random.Random(SEED).sample(host, min(HOST_SAMPLE, len(host))):
        (doc / name).mkdir()
        shutil.copyfile(Path("/usr/share/doc") / name / "copyright", doc / name / "copyright")
        names.append(name)
    return DirectoryRoot(tmp), names


def test_flightcheck_ids_are_among_scancodes(oracle: object, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fs, names = _sample(tmp_path)
    pkgs = tuple(Package(f"deb/{n}", "dpkg", n, None, "1", None, "amd64", None, None, None, f"pkg:deb/debian/{n}@1", ())
                 for n in names)
    db = PackageDatabase("dpkg", "/var/lib/dpkg/status", "dpkg-status", "python-debian", pkgs)
    ours = license_packages(fs, [db], load_tables().for_naming(license_naming({}, ["dpkg"])))  # as a scan of Debian
    files = {n: (tmp_path / "usr/share/doc" / n / "copyright").read_bytes() for n in names}
    theirs = oracle.detect(oracle.build_scancode(CACHE), files, processes=2)  # type: ignore[attr-defined]
    verdicts = [oracle.compare(n, ours[f"deb/{n}"].outcome.spdx, theirs[n]) for n in names]  # type: ignore[attr-defined]
    with capsys.disabled():
        print("\nScanCode oracle, fixed sample: " + oracle.summary(verdicts))  # type: ignore[attr-defined]
    assert len(verdicts) >= len(list(COPYRIGHT.glob("*/copyright")))
    judged = [v for v in verdicts if v.theirs]  # where ScanCode detects no SPDX-listed id it can neither confirm nor deny
    assert len(judged) >= 0.9 * len(verdicts), "ScanCode detects nothing: the oracle is broken"
    assert not [v.package for v in verdicts if v.only_not_later]
    assert sum(v.agrees for v in judged) >= 0.95 * len(judged)
