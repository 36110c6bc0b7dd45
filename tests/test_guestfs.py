"""The libguestfs image backend against the dissect one, on the same real images.

Each test here launches libguestfs's appliance (a small virtual machine: seconds under
KVM, 10-20 s under TCG emulation on a CI runner without usable KVM), so the tests are few
and each reads a whole machine: the qcow2 overlay on its backing file with a separate
/boot partition, and the LVM2 disk. They are marked ``slow`` and run in CI like the rest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.scan import ScanOptions, scan
from scanner.target import TargetError, image_backend, open_target

from conftest import CACHE, by_path, load_builder

pytestmark = pytest.mark.slow

try:
    from scanner.target.guestfs import import_guestfs

    import_guestfs()
except TargetError as exc:  # pragma: no cover - the Makefile installs python3-guestfs
    pytest.skip(f"the guestfs backend cannot be tested here: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def images(rpmroot: Path) -> dict[str, Path]:
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    imgs = load_builder("build_images").build_images(CACHE, rpmroot, roots["rhel7-secure"] / "boot")
    return {**imgs, **load_builder("build_lvm").build_lvm_image(CACHE, rpmroot)}


def comparable(doc: dict) -> dict:
    """What both backends must agree on: every ELF record, the packages, the findings."""
    return {
        "elves": by_path(doc),
        "packages": doc["packages"],
        "unresolved": doc["unresolved"],
        "findings": sorted((f["rule"], f["subject"], f["state"], f["severity"]) for f in doc["findings"]),
        "os": doc["target"]["os"],
        "mounts": sorted(m["path"] for m in doc["target"]["image"]["mounts"]),
    }


def test_both_backends_agree_on_a_qcow2_chain_through_the_cli(images: dict[str, Path], tmp_path: Path) -> None:
    """``scan --image-backend guestfs`` on the overlay (backing file gpt-ext4.qcow2, /boot its
    own partition by LABEL=) gives the dissect backend's result, and writes nothing."""
    chain = [images["overlay.qcow2"], images["gpt-ext4.qcow2"]]
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in chain]
    listing = sorted(p.name for p in chain[0].parent.iterdir())
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", "--image", str(chain[0]), "--image-backend", "guestfs",
                        "-o", str(tmp_path), "-q", "--fail-on", "never"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["target"]["image"]["backend"] == "guestfs"
    want = scan(open_target(images=[str(chain[0])], backend="dissect"), ScanOptions(jobs=2))
    assert comparable(doc) == comparable(want)
    assert comparable(doc)["mounts"] == ["/", "/boot"]
    states = {f["rule"]: f["state"] for f in doc["findings"]}
    assert states["FC-BOOT-001"] == "pass"  # grub.cfg read from the /boot partition
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in chain] == before
    assert sorted(p.name for p in chain[0].parent.iterdir()) == listing


def test_both_backends_agree_on_lvm_volumes(images: dict[str, Path]) -> None:
    """Root and /var on LVM2 logical volumes: libguestfs activates them with the real LVM2
    tools and device-mapper in its appliance, dissect reads the metadata itself."""
    with open_target(images=[str(images["lvm.qcow2"])], backend="guestfs") as fs:
        assert fs.read("/etc/fstab").startswith(b"# written by fixtures/build_lvm.py")
        assert fs.resolve("/lib64/libc.so.6") == "/usr/lib64/libc.so.6"
        with pytest.raises(FileNotFoundError):
            fs.lstat("/no/such/file")
        got = scan(fs, ScanOptions(jobs=2))
    want = scan(open_target(images=[str(images["lvm.qcow2"])], backend="dissect"), ScanOptions(jobs=2))
    assert comparable(got) == comparable(want)
    assert comparable(got)["mounts"] == ["/", "/boot", "/var"]
    assert got["databases"][0]["packages"] == 12 and not got["errors"]


def test_hostile_image_is_one_clear_error(images: dict[str, Path], tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", "--image", str(images["truncated.qcow2"]),
                        "--image-backend", "guestfs", "-o", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "flightcheck: error:" in r.stderr and "truncated.qcow2" in r.stderr


def test_auto_prefers_dissect_when_installed() -> None:
    assert image_backend("auto") == "dissect"
    assert image_backend("guestfs") == "guestfs"
    with pytest.raises(TargetError, match="unknown image backend"):
        image_backend("vmware")
