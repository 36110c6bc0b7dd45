"""scanner.target.image: virtual machine disk images read with dissect, never mounted,
never written. Images are real: built by fixtures/build_images.py with mkfs.ext4 -d,
mkfs.xfs -p, sfdisk and qemu-img (see fixtures/README.md)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.scan import ScanOptions, scan
from scanner.target import TargetError, open_target

from conftest import CACHE, by_path, load_builder


@pytest.fixture(scope="session")
def images(rpmroot: Path) -> dict[str, Path]:
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    return load_builder("build_images").build_images(CACHE, rpmroot, roots["rhel7-secure"] / "boot")


@pytest.fixture(scope="session")
def manifest(images: dict[str, Path]) -> dict:
    return json.loads((next(iter(images.values())).parent / "images.json").read_text())


def scan_image(*paths: Path) -> dict:
    return scan(open_target(images=[str(p) for p in paths]), ScanOptions(jobs=2))


@pytest.mark.parametrize("name", ["gpt-ext4.raw", "gpt-ext4.qcow2", "overlay.qcow2", "gpt-ext4.vmdk"])
def test_gpt_ext4_disk_in_every_container(name: str, images: dict[str, Path], manifest: dict,
                                          rpmroot_result: dict) -> None:
    doc = scan_image(images[name])
    assert doc["target"]["kind"] == "image"
    elves = by_path(doc)
    files = manifest[name if name in manifest else "gpt-ext4.raw"]["files"]
    assert elves["/usr/bin/hello"]["sha256"] == files["/usr/bin/hello"]["sha256"]
    # the same answers as the folder the image was made from: whole ELF records (closures,
    # owners, hashes, modes...) and findings; only the image has a /boot (a copy of a
    # RHEL 7 one), so the boot rules may differ
    assert by_path(doc) == by_path(rpmroot_result)
    assert findings(doc, skip_subject="boot") == findings(rpmroot_result, skip_subject="boot")
    assert doc["databases"][0]["packages"] == 12 and not doc["errors"]
    assert doc["target"]["image"]["backend"] == "dissect" and not doc["target"]["image"]["problems"]


def test_census_cache_on_an_image(images: dict[str, Path], tmp_path: Path) -> None:
    """A rescan of an unchanged image answers every file from the cache (the folders are
    listed through dissect, in the workers), with the same records as without it; the
    image file is not changed."""
    image = images["gpt-ext4.qcow2"]
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    cache = tmp_path / "census.sqlite"
    plain = scan_image(image)
    cold = scan(open_target(images=[str(image)]), ScanOptions(jobs=2, cache=cache))
    warm = scan(open_target(images=[str(image)]), ScanOptions(jobs=2, cache=cache))
    assert cold["scan"]["options"]["cache"]["misses"] == cold["summary"]["files"] > 0
    assert warm["scan"]["options"]["cache"]["misses"] == 0
    assert warm["scan"]["options"]["cache"]["hits"] == plain["summary"]["files"]
    assert by_path(warm) == by_path(cold) == by_path(plain) and warm["errors"] == plain["errors"]
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before


def findings(doc: dict, skip_subject: str | None = None) -> dict:
    return {(f["rule"], f["subject"]): (f["state"], f["severity"]) for f in doc["findings"]
            if f["subject"] != skip_subject}


@pytest.fixture(scope="session")
def lvm(rpmroot: Path) -> dict[str, Path]:
    return load_builder("build_lvm").build_lvm_image(CACHE, rpmroot)


@pytest.mark.parametrize("name", ["lvm.raw", "lvm.qcow2"])
def test_lvm_volumes_are_assembled_per_fstab(name: str, lvm: dict[str, Path], rpmroot_result: dict) -> None:
    """Root and /var are LVM2 logical volumes (fstab: /dev/fcvg/root, /dev/mapper/fcvg-var),
    /boot a partition (LABEL=): the rpm database is on the /var volume, so the packages are
    only found if /var is placed where the guest mounts it."""
    doc = scan_image(lvm[name])
    mounts = {m["path"]: m["source"] for m in doc["target"]["image"]["mounts"]}
    assert mounts["/"].startswith("/dev/fcvg/root") and mounts["/var"].startswith("/dev/fcvg/var")
    assert "partition 1" in mounts["/boot"]
    assert by_path(doc) == by_path(rpmroot_result)
    assert findings(doc) == findings(rpmroot_result)
    assert doc["databases"][0]["packages"] == 12 and not doc["errors"]


def test_damaged_lvm_metadata_is_reported(lvm: dict[str, Path], tmp_path: Path) -> None:
    """Garbage in the volume group's metadata text: the volumes cannot be read, which is
    said plainly (the boot partition alone is no system: one clear error)."""
    img = tmp_path / "lvm-bad.raw"
    data = bytearray(lvm["lvm.raw"].read_bytes())
    spots = []
    at = data.find(b"fcvg {")
    while at != -1:  # every copy in the circular metadata buffer
        spots.append(at)
        data[at:at + 512] = b"}{ \"garbage = [ [ [ " + b"\xff" * 493
        at = data.find(b"fcvg {", at + 512)
    assert spots
    img.write_bytes(bytes(data))
    before = hashlib.sha256(img.read_bytes()).hexdigest()
    with pytest.raises(TargetError, match="no root file system|LVM2"):
        open_target(images=[str(img)])
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", "--image", str(img), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "flightcheck: error:" in r.stderr
    assert hashlib.sha256(img.read_bytes()).hexdigest() == before


def test_separate_boot_partition_is_mounted_per_fstab(images: dict[str, Path]) -> None:
    """/boot is its own partition (LABEL=boot in the guest's fstab): the boot rules must
    find grub.cfg and user.cfg there."""
    doc = scan_image(images["gpt-ext4.qcow2"])
    states = {f["rule"]: f["state"] for f in doc["findings"] if f["rule"].startswith("FC-BOOT-00")}
    assert states["FC-BOOT-001"] == "pass" and states["FC-BOOT-002"] == "pass"
    fs = open_target(images=[str(images["gpt-ext4.qcow2"])])
    assert fs.is_file("/boot/grub2/grub.cfg") and fs.is_file("/boot/grub2/user.cfg")
    assert fs.resolve("/lib64/libc.so.6") == "/usr/lib64/libc.so.6"  # a symlink inside the guest
    assert sorted(p for p, _ in fs.mounts) == ["/", "/boot"]


def test_mbr_xfs_disk(images: dict[str, Path]) -> None:
    if "mbr-xfs.raw" not in images:
        pytest.skip("the xfs image could not be built on this machine (mkfs.xfs missing)")
    doc = scan_image(images["mbr-xfs.raw"])
    hello = by_path(doc)["/usr/bin/hello"]
    assert hello["closure"]["libgreet.so.1"] == "/usr/lib64/libgreet.so.1.0.0"


@pytest.mark.parametrize("name,message", [
    ("truncated.qcow2", "cannot read image"),
    ("garbage.img", "no ext2/3/4 or xfs file system"),
    ("loop-a.qcow2", "backing chain loops"),
    ("bad-gpt.raw", "no ext2/3/4 or xfs file system"),
    ("bad-gpt-range.raw", "no ext2/3/4 or xfs file system"),
])
def test_hostile_images_are_one_clear_error(name: str, message: str, images: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=message):
        open_target(images=[str(images[name])])
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", "--image", str(images[name]), "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_images_are_never_written(images: dict[str, Path]) -> None:
    def digest(p: Path) -> tuple[str, float]:
        return hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime

    chain = [images["overlay.qcow2"], images["gpt-ext4.qcow2"]]
    before = [digest(p) for p in chain]
    listing = sorted(p.name for p in chain[0].parent.iterdir())
    scan_image(images["overlay.qcow2"])
    assert [digest(p) for p in chain] == before
    assert sorted(p.name for p in chain[0].parent.iterdir()) == listing  # no lock or journal file appeared


def test_image_and_root_together_is_refused(images: dict[str, Path], rpmroot: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", str(rpmroot), "--image", str(images["gpt-ext4.raw"]),
                        "-o", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "either ROOT or --image" in r.stderr


def test_guest_absolute_symlink_reads_the_guests_file(hostile_root: Path, tmp_path: Path) -> None:
    """The hostile root made into an ext4 image: /usr/share/evil/abs -> /etc/shadow must
    read the guest's /etc/shadow, and ../../ chains stop at the guest's /."""
    import shutil

    if not shutil.which("mkfs.ext4"):
        pytest.skip("needs mkfs.ext4 (e2fsprogs)")
    img = tmp_path / "hostile.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(hostile_root), str(img), "16M"], check=True,
                   capture_output=True)
    fs = open_target(images=[str(img)])
    assert fs.read("/usr/share/evil/abs") == b"fixture-shadow-inside-root\n"
    assert fs.read("/usr/share/evil/up") == b"fixture-shadow-inside-root\n"
    with pytest.raises(FileNotFoundError):
        fs.read("/usr/lib64/libescape.so.1")  # dangling inside the guest, never the host's /etc/passwd
    doc = scan(fs, ScanOptions(jobs=1))
    assert "/usr/bin/good" in by_path(doc)
    assert any(e["path"] == "/usr/bin/truncated" for e in doc["errors"])


@pytest.mark.parametrize("name", ["overlay.qcow2", "gpt-ext4.vmdk", "mbr-xfs.raw", "lvm.qcow2"])
def test_mapped_reads_equal_dissects_streams(name: str, images: dict[str, Path], lvm: dict[str, Path]) -> None:
    """File data is read by mapping it down to ranges of the image files (ImageRoot's fast
    path); every byte must equal what dissect's own layered streams return, for whole reads
    and for reads from the middle of a file."""
    path = {**images, **lvm}.get(name)
    if path is None:
        pytest.skip(f"{name} could not be built on this machine")
    fs = open_target(images=[str(path)])
    checked = 0
    for entry in fs.walk("/"):
        if entry.kind != "file":
            continue
        fh, _st = fs.open_resolved(entry.path)
        want = fs._node(entry.path).open().read()
        assert fh.read() == want, entry.path
        fh.seek(100)
        assert fh.read(70000) == want[100:70100], entry.path
        checked += 1
    assert checked >= 5


def test_qcow2_cluster_past_the_end_is_an_error_record(images: dict[str, Path], tmp_path: Path) -> None:
    """A qcow2 L2 entry pointing far past the end of the image file (a hostile or damaged
    image): what lies in that cluster becomes error records, the rest is scanned."""
    import struct

    from scanner.target.mapped import map_pieces as _pieces

    img = tmp_path / "bad-l2.qcow2"
    img.write_bytes(images["gpt-ext4.qcow2"].read_bytes())
    fs = open_target(images=[str(img)])
    stream = fs._node("/usr/bin/hello").open()
    pieces: list = []
    _pieces(stream, 0, stream.size, pieces)
    host = pieces[0][1] & ~0xFFFF  # the host cluster holding hello's first bytes
    fs.close()
    data = bytearray(img.read_bytes())
    l1_size, l1_at = struct.unpack_from(">IQ", data, 36)
    patched = 0
    for l2_at in struct.unpack_from(f">{l1_size}Q", data, l1_at):
        l2_at &= 0x00FFFFFFFFFFFE00
        for i in range(0, 1 << 16, 8) if l2_at else ():
            (entry,) = struct.unpack_from(">Q", data, l2_at + i)
            if entry & 0x00FFFFFFFFFFFE00 == host:
                struct.pack_into(">Q", data, l2_at + i, (entry & ~0x00FFFFFFFFFFFE00) | (1 << 40))
                patched += 1
    assert patched == 1
    img.write_bytes(bytes(data))
    doc = scan(open_target(images=[str(img)]), ScanOptions(jobs=1))
    # that cluster holds hello's bytes and, in this small image, the /usr directory's block
    # too: /usr cannot be walked and says so; what lies elsewhere (/opt) is scanned
    assert any(e["path"] == "/usr" and "past the end of the qcow2 file" in e["message"] for e in doc["errors"])
    assert "/usr/bin/hello" not in by_path(doc) and "/opt/vendor/bin/prop-app" in by_path(doc)
