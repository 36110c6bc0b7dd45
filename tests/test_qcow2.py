"""scanner.target.qcow2: flightcheck's own reader of single-file qcow2 images, against
QEMU's own answer (``qemu-img convert -O raw``) for every layout qemu-img writes, and
against hostile headers and tables."""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.target import TargetError, open_target
from scanner.target.qcow2 import PlainQcow2, Qcow2Error, open_plain

from conftest import CACHE, by_path, load_builder

QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")


@pytest.fixture(scope="module")
def raw(rpmroot: Path) -> Path:
    roots = load_builder("build_systemroots").build_system_roots(CACHE)
    images = load_builder("build_images").build_images(CACHE, rpmroot, roots["rhel7-secure"] / "boot")
    return images["gpt-ext4.raw"]


def convert(raw: Path, out: Path, *opts: str) -> Path:
    subprocess.run([QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", *opts, str(raw), str(out)], check=True,
                   capture_output=True)
    return out


def qemu_raw(image: Path, tmp: Path) -> bytes:
    """The guest disk as QEMU reads it."""
    out = tmp / (image.name + ".raw")
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", str(image), str(out)], check=True, capture_output=True)
    return out.read_bytes()


def assert_reads_like_qemu(image: Path, tmp: Path) -> None:
    want = qemu_raw(image, tmp)
    with open(image, "rb") as fh:
        disk = open_plain(fh)
        assert isinstance(disk, PlainQcow2), "the image should be read by flightcheck's own reader"
        assert disk.size == len(want)
        # the whole disk in reads of odd sizes that straddle cluster boundaries
        got, step = bytearray(), 1 << 16
        disk.seek(0)
        while chunk := disk.read(step + 4093):
            got += chunk
        assert bytes(got) == want
        rng = random.Random(image.name)
        for _ in range(300):
            at, n = rng.randrange(len(want)), rng.choice((1, 511, 4096, 70001, 1 << 20))
            disk.seek(at)
            assert disk.read(n) == want[at: at + n], (at, n)
        disk.seek(len(want) - 10)
        assert disk.read(100) == want[-10:] and disk.read(1) == b""


needs_qemu = pytest.mark.skipif(QEMU_IMG is None, reason="needs qemu-img (Debian's qemu-utils; make installs it)")


@needs_qemu
@pytest.mark.parametrize("opts", [
    (),  # version 3, 64 KiB clusters
    ("-o", "compat=0.10"),  # version 2
    ("-c",),  # compressed clusters (zlib), as cloud images ship
    ("-o", "cluster_size=4096"),
    ("-o", "cluster_size=2M"),
    ("-c", "-o", "cluster_size=512"),
], ids=["v3", "v2", "compressed", "4k-clusters", "2m-clusters", "compressed-512"])
def test_reads_what_qemu_reads(raw: Path, tmp_path: Path, opts: tuple[str, ...]) -> None:
    assert_reads_like_qemu(convert(raw, tmp_path / "disk.qcow2", *opts), tmp_path)


@needs_qemu
def test_zero_and_unallocated_clusters(tmp_path: Path) -> None:
    if QEMU_IO is None:
        pytest.skip("needs qemu-io (Debian's qemu-utils; make installs it)")
    image = tmp_path / "holes.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(image), "8M"], check=True)
    subprocess.run([QEMU_IO, "-f", "qcow2", "-c", "write -P 0x5a 0 3M", "-c", "write -z 1M 1M",
                    "-c", "write -P 0xa5 5000000 70000", str(image)], check=True, capture_output=True)
    assert_reads_like_qemu(image, tmp_path)


@needs_qemu
def test_scanning_a_compressed_image_finds_what_the_raw_disk_holds(raw: Path, tmp_path: Path) -> None:
    """The whole pipeline over compressed clusters (files read through the cluster map,
    none of them in one mappable piece) answers as the raw disk does."""
    from scanner.scan import ScanOptions, scan

    image = convert(raw, tmp_path / "disk.qcow2", "-c")
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    got = scan(open_target(images=[str(image)]), ScanOptions(jobs=2))
    want = scan(open_target(images=[str(raw)]), ScanOptions(jobs=2))
    assert by_path(got) == by_path(want) and got["errors"] == want["errors"]
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before


@needs_qemu
def test_other_qcow2_kinds_go_to_dissect(raw: Path, tmp_path: Path) -> None:
    """An image with a backing file is not this reader's: it says so (None) and
    dissect.hypervisor reads the chain."""
    base = convert(raw, tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(overlay)],
                   check=True, cwd=tmp_path)
    with open(overlay, "rb") as fh:
        assert open_plain(fh) is None
    fs = open_target(images=[str(overlay)])
    assert fs.read("/usr/bin/hello")[:4] == b"\x7fELF"
    fs.close()


@needs_qemu
def test_subclusters_are_refused_with_a_clear_error(raw: Path, tmp_path: Path) -> None:
    """Extended L2 entries (qemu-img -o extended_l2=on): dissect.hypervisor exhausts the
    machine's memory on them, so such an image, or a chain holding one, is one clear error."""
    sub = convert(raw, tmp_path / "sub.qcow2", "-o", "extended_l2=on")
    overlay = tmp_path / "over-sub.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", sub.name, "-F", "qcow2", str(overlay)],
                   check=True, cwd=tmp_path)
    for image in (sub, overlay):
        with pytest.raises(TargetError, match="extended L2 entries"):
            open_target(images=[str(image)])


def header_patched(src: Path, dest: Path, fmt: str, offset: int, value: int) -> Path:
    data = bytearray(src.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    dest.write_bytes(bytes(data))
    return dest


@needs_qemu
@pytest.mark.parametrize("field,fmt,offset,value,message", [
    ("cluster_bits", ">I", 20, 40, "cluster size 2^40 is out of range"),
    ("l1_size", ">I", 36, 1 << 30, "larger than QEMU allows"),
    ("l1_table_offset", ">Q", 40, 1 << 40, "the L1 table lies past the end"),
    ("l1_table_offset", ">Q", 40, 12345, "not aligned"),
])
def test_hostile_headers_are_one_clear_error(raw: Path, tmp_path: Path, field: str, fmt: str, offset: int,
                                             value: int, message: str) -> None:
    image = header_patched(convert(raw, tmp_path / "ok.qcow2"), tmp_path / f"bad-{field}.qcow2", fmt, offset, value)
    with open(image, "rb") as fh, pytest.raises(Qcow2Error, match=re.escape(message)):
        open_plain(fh)
    with pytest.raises(TargetError, match=f"cannot read image .*{re.escape(message)}"):
        open_target(images=[str(image)])
    r = subprocess.run([sys.executable, "-m", "scanner", "scan", "--image", str(image), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@needs_qemu
def test_damaged_tables_and_clusters_are_errors_not_zeros(raw: Path, tmp_path: Path) -> None:
    """An L2 table past the end of the file, and a compressed cluster that does not
    inflate: reading there is an OSError naming the problem, never made-up bytes."""
    image = convert(raw, tmp_path / "ok.qcow2", "-c")
    data = bytearray(image.read_bytes())
    l1_size, l1_at = struct.unpack_from(">IQ", data, 36)
    l1 = list(struct.unpack_from(f">{l1_size}Q", data, l1_at))
    first = next(i for i, e in enumerate(l1) if e & 0x00FFFFFFFFFFFE00)
    l2_at = l1[first] & 0x00FFFFFFFFFFFE00
    cluster_bits = struct.unpack_from(">I", data, 20)[0]
    # a compressed cluster's bytes overwritten with garbage
    entries = struct.unpack_from(f">{(1 << cluster_bits) // 8}Q", data, l2_at)
    index, entry = next((i, e) for i, e in enumerate(entries) if e & (1 << 62))
    x = 62 - (cluster_bits - 8)
    host = entry & ((1 << x) - 1)
    data[host: host + 64] = b"\xff" * 64
    garbage = tmp_path / "garbage-cluster.qcow2"
    garbage.write_bytes(bytes(data))
    guest = (first * ((1 << cluster_bits) // 8) + index) << cluster_bits
    with open(garbage, "rb") as fh:
        disk = open_plain(fh)
        assert disk is not None
        disk.seek(guest)
        with pytest.raises(Qcow2Error, match="compressed cluster"):
            disk.read(512)
    # the first L2 table moved past the end of the file
    struct.pack_into(">Q", data, l1_at + 8 * first, (1 << 63) | (1 << 40))
    lost = tmp_path / "lost-l2.qcow2"
    lost.write_bytes(bytes(data))
    with open(lost, "rb") as fh:
        disk = open_plain(fh)
        assert disk is not None
        disk.seek(first * ((1 << cluster_bits) // 8) << cluster_bits)
        with pytest.raises(Qcow2Error, match="L2 table lies past the end"):
            disk.read(512)


@needs_qemu
def test_files_in_one_piece_are_mapped_not_copied(raw: Path, tmp_path: Path) -> None:
    """A file whose bytes lie in one page-aligned range of the image file is handed to
    the ELF parser as a read-only mapping of that range: the same bytes as a read, for
    every file; a file whose range would end past the image file is never mapped."""
    image = convert(raw, tmp_path / "disk.qcow2")
    fs = open_target(images=[str(image)])
    mapped = 0
    for entry in fs.walk("/"):
        if entry.kind != "file":
            continue
        fh, _st = fs.open_resolved(entry.path)
        m = fh.mapped()
        data = fh.read()
        if m is not None:
            assert m[:] == data, entry.path
            m.close()
            mapped += 1
    assert mapped >= 5
    fs.close()
    # cut the image file short just after hello's first bytes: no mapping past its end
    fs = open_target(images=[str(image)])
    fh, _st = fs.open_resolved("/usr/bin/hello")
    pieces: list = []
    from scanner.target.mapped import map_pieces as _pieces

    _pieces(fh._s, 0, _st.st_size, pieces)
    fs.close()
    short = tmp_path / "short.qcow2"
    with open(image, "rb") as src, open(short, "wb") as dst:
        dst.write(src.read(pieces[0][1] + 100))
    fs = open_target(images=[str(short)])
    fh, _st = fs.open_resolved("/usr/bin/hello")
    assert fh.mapped() is None
    with pytest.raises(OSError):
        fh.read()
