"""Shared test fixtures: real roots built by the scripts in fixtures/, cached under
.cache/fixtures (git-ignored)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scanner.scan import ScanOptions, scan
from scanner.target import DirectoryRoot

REPO = Path(__file__).resolve().parent.parent

# libguestfs's appliance under TCG emulation in the whole suite (and the scans it starts): on
# some machines /dev/kvm exists but a nested KVM guest hangs at boot, never failing, so the
# KVM-first fallback of scanner.target.guestfs would wait for ever. TCG is slower but certain.
os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
CACHE = REPO / ".cache" / "fixtures"


def load_builder(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_fixture_{name}", REPO / "fixtures" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def rpmroot() -> Path:
    """A real RPM-based x86-64 root (rpmbuild + rpm --root), see fixtures/README.md."""
    return load_builder("build_rpmroot").build_rpm_root(CACHE)


@pytest.fixture(scope="session")
def hostile_root(rpmroot: Path) -> Path:
    """A root full of hostile input derived from a real ELF file. World-readable (not under
    pytest's private tmp) so a test can scan it as an unprivileged user."""
    base = Path(tempfile.mkdtemp(prefix="flightcheck-hostile-"))
    base.chmod(0o755)
    root = load_builder("build_hostile").build_hostile_root(base / "root", rpmroot / "usr/bin/hello")
    yield root
    shutil.rmtree(base, ignore_errors=True)


def scan_root(root: Path | str, **kw: Any) -> dict[str, Any]:
    """Scan a folder in-process (the same pipeline the CLI runs)."""
    opts = ScanOptions(jobs=kw.pop("jobs", 1), **kw)
    return scan(DirectoryRoot(root), opts)


@pytest.fixture(scope="session")
def rpmroot_result(rpmroot: Path) -> dict[str, Any]:
    return scan_root(rpmroot)


def by_path(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in doc["elves"]}


def is_root() -> bool:
    return os.geteuid() == 0
