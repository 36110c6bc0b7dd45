"""Hostile disk images (issue 15): an image may have been built by an attacker. Its backing
files are followed only where allowed, damaged file systems are error records or one clear
line, and a file claiming 256 GiB costs seconds, not minutes.

Every image is built here, at run time, with the real tools: mkfs.ext4 -d, debugfs -w,
qemu-img (convert, create, rebase -u) and struct edits of real qcow2 headers. The leaky
image is the attack from the issue: the guest's /etc/os-release has its one extent moved to
block 0, whose 512-byte qcow2 clusters are left unallocated, so its bytes come from the
backing file; with the backing file named ``/etc/shadow`` (or any host file) the host's
bytes become the guest's os-release, and would land in result.json as ``target.os``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scanner import limits
from scanner.target import TargetError, open_target

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("qemu-img", "mkfs.ext4", "debugfs", "dumpe2fs")),
                                reason="needs qemu-img and e2fsprogs")

MARKER = "secret-marker-0451"
SECRET = f"ID=secretmarker\nKEY={MARKER}\n".encode()
BIG = 256 << 30  # what the hostile inode claims: 256 GiB
FLIGHTCHECK = Path(sys.executable).with_name("flightcheck")


def run(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def debugfs(image: Path, *requests: str) -> None:
    for request in requests:
        run("debugfs", "-w", "-R", request, image)


def scan_cli(image: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``flightcheck scan --image`` as a user runs it (one process, a minute at most)."""
    cmd = [str(FLIGHTCHECK)] if FLIGHTCHECK.exists() else [sys.executable, "-m", "scanner"]
    return subprocess.run([*cmd, "scan", "--image", str(image), "-o", str(out), "-j", "1", "-q", *extra],
                          capture_output=True, text=True, timeout=60, check=False)


def everything_written(r: subprocess.CompletedProcess[str], out: Path) -> str:
    """Standard output, standard error and every file the scan wrote."""
    files = [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()] if out.exists() else []
    return "\n".join([r.stdout, r.stderr, *files])


def one_clear_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Aborted" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flightcheck: error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small guest (/etc/os-release, /usr/bin/big: a real ELF file) as a raw ext4 file
    system, a clean qcow2 of it, and the leaky qcow2 (no backing file named yet)."""
    base = tmp_path_factory.mktemp("guest")
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=guest\nNAME=Guest\n")
    shutil.copy(shutil.which("true") or "/bin/true", root / "usr/bin/big")
    raw = base / "clean.raw"
    run("mkfs.ext4", "-q", "-F", "-b", "4096", "-d", root, raw, "8M")
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, base / "clean.qcow2")
    leaky_raw = base / "leaky.raw"
    shutil.copy(raw, leaky_raw)
    # os-release's one extent (i_block[5]: ee_start_lo) moved to block 0, its size the secret's
    debugfs(leaky_raw, "sif /etc/os-release block[5] 0", f"sif /etc/os-release size {len(SECRET)}")
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=512", "-S", "512",
        leaky_raw, base / "leaky.qcow2")
    return {"root": root, "raw": raw, "clean": base / "clean.qcow2", "leaky": base / "leaky.qcow2"}


def leaky(guest: dict[str, Path], folder: Path, backing: str) -> Path:
    """The leaky image in ``folder``, naming ``backing`` as its raw backing file."""
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "guest.qcow2"
    shutil.copy(guest["leaky"], image)
    run("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", backing, "-F", "raw", image)
    return image


# ---- backing files confined ---------------------------------------------------------------
HOSTILE_BACKINGS = {
    "absolute path outside": lambda case, secret: str(secret),
    "../ out of the folder": lambda case, secret: os.path.relpath(secret, case),
    "symlink leading outside": lambda case, secret: (case / "link").symlink_to(secret) or "link",
    "FIFO in the folder": lambda case, secret: os.mkfifo(case / "fifo") or "fifo",
    "/proc/self/environ": lambda case, secret: "/proc/self/environ",
    "/etc/shadow": lambda case, secret: "/etc/shadow",
    "symlink to a device": lambda case, secret: (case / "dev").symlink_to("/dev/zero") or "dev",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BACKINGS))
def test_backing_file_outside_is_one_line_and_never_read(case: str, guest: dict[str, Path], tmp_path: Path) -> None:
    """Each hostile backing name: exit 2, one line naming the refused name, no traceback,
    and the host file's bytes in no output (nor the scanner's environment)."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    folder = tmp_path / "case"
    folder.mkdir()
    name = HOSTILE_BACKINGS[case](folder, secret)
    image = leaky(guest, folder, name)
    with pytest.raises(TargetError, match="refused backing file"):
        open_target(images=[str(image)])
    out = tmp_path / "out"
    r = scan_cli(image, out)
    line = one_clear_line(r)
    assert "refused backing file" in line and repr(name) in line
    written = everything_written(r, out)
    assert MARKER not in written and os.environ.get("PATH", "\0") not in written


def test_the_same_file_is_read_when_allowed(guest: dict[str, Path], tmp_path: Path) -> None:
    """The attack is real: with the secret's folder allowed (--backing-dir), or the file in
    the image's own folder, its bytes are the guest's os-release. What refuses it above is
    the confinement, nothing else."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    image = leaky(guest, tmp_path / "case", str(secret))
    r = scan_cli(image, tmp_path / "out", "--backing-dir", str(tmp_path))
    assert r.returncode in (0, 1), r.stderr
    assert json.loads((tmp_path / "out/result.json").read_text())["target"]["os"]["KEY"] == MARKER
    inside = leaky(guest, tmp_path / "inside", "base.raw")
    (tmp_path / "inside/base.raw").write_bytes(SECRET)
    assert open_target(images=[str(inside)]).read("/etc/os-release") == SECRET


def test_backing_dir_must_exist_and_never_opens_proc(guest: dict[str, Path], tmp_path: Path) -> None:
    """--backing-dir / still never reaches /proc; a folder that is not there is an error."""
    image = leaky(guest, tmp_path / "case", "/proc/self/environ")
    with pytest.raises(TargetError, match="kernel or device file system"):
        open_target(images=[str(image)], backing_dirs=["/"])
    with pytest.raises(TargetError, match="not a folder"):
        open_target(images=[str(image)], backing_dirs=[str(tmp_path / "nowhere")])


def chain(guest: dict[str, Path], folder: Path, depth: int) -> Path:
    """``depth`` distinct qcow2 overlays over the clean image, each naming the one below."""
    folder.mkdir()
    shutil.copy(guest["clean"], folder / "l0.qcow2")
    for i in range(1, depth):
        run("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", f"l{i - 1}.qcow2", "-F", "qcow2",
            folder / f"l{i}.qcow2", "8M")
    return folder / f"l{depth - 1}.qcow2"


def test_forty_distinct_backing_files_are_a_chain_not_a_loop(guest: dict[str, Path], tmp_path: Path) -> None:
    top = chain(guest, tmp_path / "chain", 40)
    assert open_target(images=[str(top)]).read("/etc/os-release") == b"ID=guest\nNAME=Guest\n"


def test_a_chain_past_the_cap_names_the_cap(guest: dict[str, Path], tmp_path: Path) -> None:
    top = chain(guest, tmp_path / "chain", limits.MAX_BACKING_CHAIN + 1)
    line = one_clear_line(scan_cli(top, tmp_path / "out"))
    assert f"limit MAX_BACKING_CHAIN ({limits.MAX_BACKING_CHAIN})" in line


def test_a_real_loop_is_still_a_loop(guest: dict[str, Path], tmp_path: Path) -> None:
    """a -> b -> a, and a -> alias where alias is a link to a (one file, two names)."""
    for name, backing in (("a", "b.qcow2"), ("b", "a.qcow2"), ("c", "alias.qcow2")):
        run("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "qcow2", tmp_path / f"{name}.qcow2",
            "8M")
    (tmp_path / "alias.qcow2").symlink_to("c.qcow2")
    for top in ("a", "c"):
        line = one_clear_line(scan_cli(tmp_path / f"{top}.qcow2", tmp_path / "out"))
        assert "backing chain loops" in line


# ---- damaged file systems ---------------------------------------------------------------
def test_partitionless_ext4_with_a_bad_superblock_is_one_line(guest: dict[str, Path], tmp_path: Path) -> None:
    """The magic is there, the geometry is not: inodes per group 0, a block size of 2^(10+40)."""
    image = tmp_path / "bad-sb.raw"
    data = bytearray(guest["raw"].read_bytes())
    struct.pack_into("<I", data, 1024 + 40, 0)  # s_inodes_per_group
    struct.pack_into("<I", data, 1024 + 24, 40)  # s_log_block_size
    image.write_bytes(bytes(data))
    line = one_clear_line(scan_cli(image, tmp_path / "out"))
    assert str(image) in line


def inode_table(raw: Path) -> tuple[int, int]:
    """Where group 0's inode table lies (bytes) and the inode size, from dumpe2fs."""
    text = run("dumpe2fs", raw)
    start = int(re.search(r"Inode table at (\d+)-", text).group(1))
    block = int(re.search(r"Block size:\s+(\d+)", text).group(1))
    return start * block, int(re.search(r"Inode size:\s+(\d+)", text).group(1))


def test_flipped_bytes_in_the_inode_table_are_error_records(guest: dict[str, Path], tmp_path: Path) -> None:
    """Bytes flipped across the inodes of every file (11 onwards): the scan finishes and
    says what it could not read; no traceback, never exit 2 for one bad inode."""
    at, size = inode_table(guest["raw"])
    data = bytearray(guest["raw"].read_bytes())
    rng = random.Random(15)
    for inode in range(11, 32):
        for _ in range(24):
            data[at + (inode - 1) * size + rng.randrange(size)] ^= 1 << rng.randrange(8)
    image = tmp_path / "flipped.raw"
    image.write_bytes(bytes(data))
    r = scan_cli(image, tmp_path / "out")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    doc = json.loads((tmp_path / "out/result.json").read_text())
    assert doc["errors"]


def test_an_inode_claiming_256_gib_costs_seconds(guest: dict[str, Path], tmp_path: Path) -> None:
    """/usr/bin/big (a real ELF file) claims 256 GiB: reading it stops at the hole cap
    (MAX_IMAGE_HOLE_BYTES) or an earlier one, the scan ends in seconds with an error record
    naming the cap, and a whole read() is refused without allocating it."""
    image = tmp_path / "big.raw"
    shutil.copy(guest["raw"], image)
    debugfs(image, f"sif /usr/bin/big size {BIG}")
    fs = open_target(images=[str(image)])
    fh, st = fs.open_resolved("/usr/bin/big")
    assert st.st_size == BIG and fh.read(4) == b"\x7fELF"
    with pytest.raises(OSError, match="MAX_IMAGE_READ_BYTES"):
        fh.read()
    with pytest.raises(OSError, match="MAX_IMAGE_HOLE_BYTES"):
        while fh.read(limits.READ_CHUNK * 64):
            pass
    t0 = time.monotonic()
    r = scan_cli(image, tmp_path / "out")
    took = time.monotonic() - t0
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert took < 45, took
    errors = json.loads((tmp_path / "out/result.json").read_text())["errors"]
    assert any(e["path"] == "/usr/bin/big" and "limit MAX_" in e["message"] for e in errors), errors


def test_flipped_bytes_in_a_compressed_cluster_are_error_records(guest: dict[str, Path], tmp_path: Path) -> None:
    """``qemu-img convert -c``, then bytes flipped inside the compressed cluster holding
    /usr/bin/big: what it holds is error records, the scan finishes, no traceback."""
    from scanner.target.mapped import map_pieces as _pieces
    from scanner.target.qcow2 import PlainQcow2

    image = tmp_path / "compressed.qcow2"
    run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", guest["raw"], image)
    fs = open_target(images=[str(image)])
    pieces: list = []
    stream = fs._node("/usr/bin/big").open()
    _pieces(stream, 0, stream.size, pieces)
    disk = next(p[0] for p in pieces if isinstance(p[0], PlainQcow2))
    cluster = next(p[1] for p in pieces if isinstance(p[0], PlainQcow2)) // disk.cluster_size
    host = disk._entry(cluster) & ((1 << (62 - (disk.cluster_bits - 8))) - 1)
    fs.close()
    data = bytearray(image.read_bytes())
    for i in range(16, 400, 7):
        data[host + i] ^= 0xFF
    image.write_bytes(bytes(data))
    r = scan_cli(image, tmp_path / "out")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    doc = json.loads((tmp_path / "out/result.json").read_text())
    # in an image this small that 64 KiB cluster also holds directory blocks (/etc): each
    # path it holds is an error record saying why, the scan goes on
    assert doc["errors"] and all("compressed cluster does not inflate" in e["message"] for e in doc["errors"])


# ---- the other ways in: a libvirt domain's chain, the guestfs backend ------------------------
def domain_node(tmp_path: Path, image: Path, backing: Path | None) -> str:
    """A libvirt test:/// node with one shut-off domain on ``image``; its disk's
    ``<backingStore>`` names ``backing`` when given."""
    store = (f"<backingStore type='file'><format type='raw'/><source file='{backing}'/><backingStore/></backingStore>"
             if backing else "")
    xml = tmp_path / "node.xml"
    xml.write_text(f"""<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>guest</name><uuid>11111111-2222-3333-4444-555555555515</uuid><memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{image}'/>{store}
      <target dev='vda'/></disk></devices>
    <test:runstate>5</test:runstate>
  </domain>
</node>
""")
    return f"test://{xml}"


@pytest.mark.parametrize("named", [True, False])
def test_a_domains_own_backing_store_chain_is_followed(named: bool, guest: dict[str, Path], tmp_path: Path) -> None:
    """The hypervisor's word allows a backing file outside the image's folder: the domain
    whose ``<backingStore>`` names it is read; the same image in a domain that names no
    chain is refused, as on the command line."""
    pytest.importorskip("libvirt", reason="needs libvirt-python")
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    image = leaky(guest, tmp_path / "case", str(secret))
    uri = domain_node(tmp_path, image, secret if named else None)
    cmd = [str(FLIGHTCHECK)] if FLIGHTCHECK.exists() else [sys.executable, "-m", "scanner"]
    r = subprocess.run([*cmd, "scan", "--domain", "guest", "-c", uri, "-o", str(tmp_path / "out"), "-j", "1", "-q"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in r.stderr, r.stderr
    if named:
        assert r.returncode in (0, 1), r.stderr
        assert json.loads((tmp_path / "out/guest/result.json").read_text())["target"]["os"]["KEY"] == MARKER
    else:
        assert r.returncode == 2 and "refused backing file" in r.stderr
        assert MARKER not in everything_written(r, tmp_path / "out")


def test_guestfs_is_given_the_checked_chain(guest: dict[str, Path], tmp_path: Path) -> None:
    """The guestfs backend refuses the same names before any appliance starts, and for an
    allowed chain hands QEMU wrappers whose json: backing names each checked file, never a
    name from an image: the wrappers read what the chain reads (qemu-img compare)."""
    from scanner.target.guestfs import checked_drive
    from scanner.target.qcow2 import BackingPolicy

    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    image = leaky(guest, tmp_path / "case", str(secret))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(TargetError, match="refused backing file"):
        checked_drive(image, BackingPolicy(), str(work))
    top = chain(guest, tmp_path / "chain", 3)
    drive, fmt = checked_drive(top, BackingPolicy(), str(work))
    assert fmt == "qcow2" and Path(drive).parent == work
    header = Path(drive).read_bytes()[:4096]
    assert b'json:{"driver":"qcow2","file":{"driver":"file","filename":"' + str(top).encode() in header
    run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", drive, guest["raw"])


@pytest.mark.slow
def test_guestfs_reads_of_a_256_gib_inode_are_bounded(guest: dict[str, Path], tmp_path: Path) -> None:
    """Through libguestfs's appliance: the same inode is refused at the hole cap (the
    file's allocated blocks plus MAX_IMAGE_HOLE_BYTES), and read() of it whole at once."""
    from scanner.target.guestfs import import_guestfs

    try:
        import_guestfs()
    except TargetError as exc:
        pytest.skip(str(exc))
    os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")  # as conftest: KVM may hang here
    image = tmp_path / "big.raw"
    shutil.copy(guest["raw"], image)
    debugfs(image, f"sif /usr/bin/big size {BIG}")
    with open_target(images=[str(image)], backend="guestfs") as fs:
        fh, st = fs.open_resolved("/usr/bin/big")
        assert st.st_size == BIG and fh.read(4) == b"\x7fELF"
        with pytest.raises(OSError, match="MAX_IMAGE_READ_BYTES"):
            fh.read()
        fh.seek(limits.MAX_IMAGE_HOLE_BYTES + (1 << 20))
        with pytest.raises(OSError, match="MAX_IMAGE_HOLE_BYTES"):
            fh.read(4096)


def test_domain_scans_honour_backing_dir(guest: dict[str, Path], tmp_path: Path) -> None:
    """--backing-dir applies to --domain scans as to --image: a domain naming no chain,
    whose image's backing file lies in an allowed folder, is read (it was refused: the
    domain scan dropped the option)."""
    pytest.importorskip("libvirt", reason="needs libvirt-python")
    secret = tmp_path / "allowed" / "secret"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    image = leaky(guest, tmp_path / "case", str(secret))
    uri = domain_node(tmp_path, image, None)
    cmd = [str(FLIGHTCHECK)] if FLIGHTCHECK.exists() else [sys.executable, "-m", "scanner"]
    base = [*cmd, "scan", "--domain", "guest", "-c", uri, "-j", "1", "-q"]
    r = subprocess.run([*base, "-o", str(tmp_path / "out"), "--backing-dir", str(secret.parent)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert json.loads((tmp_path / "out/guest/result.json").read_text())["target"]["os"]["KEY"] == MARKER
    # a --backing-dir elsewhere allows nothing here
    r = subprocess.run([*base, "-o", str(tmp_path / "out2"), "--backing-dir", str(tmp_path / "case")],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "refused backing file" in r.stderr, r.stderr


# ---- damage inside the image: every loss is an error record --------------------------------
def _in_process_scan(image: Path) -> dict[str, Any] | str:
    """The result document of scanning ``image`` with the dissect backend (one process),
    or the one line of a TargetError."""
    from scanner.scan import ScanOptions, scan

    try:
        fs = open_target(images=[str(image)], backend="dissect")
    except TargetError as exc:
        return str(exc)
    with fs:
        return scan(fs, ScanOptions(jobs=1, licenses=False))


def _target_errors(doc: dict[str, Any]) -> list[dict[str, str]]:
    return [e for e in doc["errors"] if e["stage"] == "target"]


@pytest.fixture(scope="module")
def corpus(rpmroot: Path) -> dict[str, Any]:
    from conftest import CACHE, load_builder

    builder = load_builder("build_hostile_corpus")
    return builder.build_hostile_corpus(CACHE, rpmroot, seed=builder.DEFAULT_SEED)


#: mutants of the hostile corpus whose L1 or L2 entries point a folder's clusters at
#: nothing or at other metadata: the folders read as zeros or as garbage, and dissect only
#: logged "Zero-length directory entry" while up to all 16 files vanished (the L1 one
#: passed the gate: exit 0)
QCOW2_TABLE_MUTANTS = ("qcow2-0005", "qcow2-0011", "qcow2-0024", "qcow2-0032", "qcow2-0043")


def test_qcow2_table_damage_is_an_error_record(corpus: dict[str, Any], tmp_path: Path) -> None:
    """Each of those mutants, scanned as a user scans it: the folders that lost entries
    are error records (stage target, path, why), FC-ERR-001 fails, and the exit is 1."""
    entry = Path(corpus["entry"])
    mutants = {m["name"]: m for m in corpus["mutants"]}
    seed = _in_process_scan(entry / "qcow2/seed.qcow2")
    assert isinstance(seed, dict) and not _target_errors(seed)
    for name in QCOW2_TABLE_MUTANTS:
        m = mutants[name]
        assert m["kind"] in ("l1", "l2"), m
        out = tmp_path / name
        r = scan_cli(entry / m["target"], out, "--fail-on", "low")
        assert r.returncode == 1 and "Traceback" not in r.stderr, (name, r.returncode, r.stderr)
        doc = json.loads((out / "result.json").read_text())
        errors = _target_errors(doc)
        assert errors and all(e["message"].startswith("cannot walk: damaged directory: ") for e in errors), (name, errors)
        assert doc["summary"]["files"] < seed["summary"]["files"], name  # the loss is real, and now explained
        gate = [f for f in doc["findings"] if f["rule"] == "FC-ERR-001"]
        assert gate and all(f["state"] == "error" for f in gate), name
    zeroed = json.loads((tmp_path / "qcow2-0005/result.json").read_text())
    assert {e["path"] for e in _target_errors(zeroed)} >= {"/etc", "/usr"}
    assert any("read as zeros" in e["message"] for e in _target_errors(zeroed))


def _ext4_flipped(fs: bytes, rng: random.Random, hot: list[tuple[int, int]]) -> tuple[bytes, str]:
    data = bytearray(fs)
    lo, hi = rng.choice(hot)
    if rng.random() < 0.15:
        lo, hi = 1024, 1024 + 256  # the superblock's own fields
    flips = rng.choice([1, 4, 16, 64])
    for _ in range(flips):
        pos = rng.randrange(lo, hi)
        data[pos] ^= 1 << rng.randrange(8)
    return bytes(data), f"{flips} bit flips in [{lo:#x}, {hi:#x})"


def test_ext4_bit_flips_never_lose_files_silently(corpus: dict[str, Any], tmp_path: Path) -> None:
    """Seeded bit flips in the superblock, group descriptors, inode tables and folders of
    the corpus's ext4 (metadata_csum, 1 KiB blocks): each mutant is one clear line (the
    file system as a whole unreadable), or reads every file of the seed with no error
    record, or has error records (of the target stage, or new ones of another stage: a
    package database the damage hit). A mutant that loses files or changes what the
    census finds without one fails. (The corpus's own ext4 mutants are
    left unmutated by the builder, so they are made here.)"""
    seed_fs = (Path(corpus["entry"]) / "ext4/seed.raw").read_bytes()
    seed = _in_process_scan(Path(corpus["entry"]) / "ext4/seed.raw")
    assert isinstance(seed, dict) and not _target_errors(seed)
    seed_elves = {(e["path"], e["sha256"]) for e in seed["elves"]}
    seed_errors = {tuple(e.values()) for e in seed["errors"]}
    hot = [(1024, 2048), (2048, 3072)] + [(b * 1024, (b + 1) * 1024) for b in range(3, 300)
                                          if any(seed_fs[b * 1024:(b + 1) * 1024])]
    rng = random.Random(20261203)
    silent, caught, whole = [], 0, 0
    for i in range(60):
        data, detail = _ext4_flipped(seed_fs, rng, hot)
        image = tmp_path / f"m{i}.raw"
        image.write_bytes(data)
        doc = _in_process_scan(image)
        image.unlink()
        if isinstance(doc, str):
            whole += 1
            assert "\n" not in doc
            continue
        if _target_errors(doc):
            caught += 1
            continue
        if {tuple(e.values()) for e in doc["errors"]} - seed_errors:
            continue  # another stage could not read what the damage hit (a package database...)
        elves = {(e["path"], e["sha256"]) for e in doc["elves"]}
        if doc["summary"]["files"] != seed["summary"]["files"] or elves != seed_elves:
            silent.append(f"m{i} ({detail}): {doc['summary']['files']} files, ELF files {sorted(elves ^ seed_elves)}")
    assert not silent, "files lost or changed without an error record:\n" + "\n".join(silent)
    assert caught >= 20, (caught, whole)


@pytest.fixture()
def csum_guest(guest: dict[str, Path], tmp_path: Path) -> Path:
    raw = tmp_path / "fs.raw"
    shutil.copy(guest["raw"], raw)
    assert "metadata_csum" in run("dumpe2fs", "-h", raw)
    return raw


def _inode_at(image: Path, path: str) -> int:
    """The byte offset of ``path``'s inode in the file system image (debugfs imap)."""
    out = run("debugfs", "-R", f"imap {path}", image)
    block = int(re.search(r"located at block (\d+), offset (0x[0-9a-f]+)", out).group(1))  # type: ignore[union-attr]
    offset = int(re.search(r"offset (0x[0-9a-f]+)", out).group(1), 16)  # type: ignore[union-attr]
    return block * 4096 + offset


def _patch(image: Path, at: int, data: bytes) -> None:
    with open(image, "r+b") as fh:
        fh.seek(at)
        fh.write(data)


def test_ext4_inode_checksum_refuses_the_inode(csum_guest: Path, tmp_path: Path) -> None:
    """One byte of /etc/os-release's inode changed (its mtime: the file still reads, so the
    old reader trusted it): the kernel would refuse the inode (EIO), so does the target,
    and the scan has an error record for the path (read_os_release only asks whether it
    exists: the damage is kept by the target and added by the scan)."""
    at = _inode_at(csum_guest, "/etc/os-release") + 0x10  # i_mtime
    _patch(csum_guest, at, bytes([csum_guest.read_bytes()[at] ^ 0x01]))
    with open_target(images=[str(csum_guest)], backend="dissect") as fs:
        with pytest.raises(OSError, match="inode .* checksum mismatch"):
            fs.lstat("/etc/os-release")
        assert fs.lstat("/usr/bin/big").st_size > 0  # the rest reads
    doc = _in_process_scan(csum_guest)
    assert isinstance(doc, dict)
    assert any(e["path"] == "/etc/os-release" and "checksum mismatch" in e["message"] for e in doc["errors"])


def test_ext4_folder_damage_ends_a_block_not_the_folder(csum_guest: Path) -> None:
    """/usr/bin's first entry given record length 0 (what a zeroed or garbled block gives):
    dissect stopped there and logged; now the block's damage is an error record of
    /usr/bin (with the checksum mismatch the change also causes) and the scan goes on."""
    out = run("debugfs", "-R", "blocks /usr/bin", csum_guest).split()
    block = int(out[0])
    _patch(csum_guest, block * 4096 + 4, b"\0\0")  # '.' entry: rec_len 0
    doc = _in_process_scan(csum_guest)
    assert isinstance(doc, dict)
    messages = [e["message"] for e in _target_errors(doc) if e["path"] == "/usr/bin"]
    assert any("record length 0" in m for m in messages), doc["errors"]
    assert any("checksum mismatch" in m for m in messages), doc["errors"]


def test_ext4_superblock_checksum_is_an_error_record(csum_guest: Path) -> None:
    """A changed byte in the superblock (the last-mounted path: nothing dissect uses) makes
    its checksum fail, which the kernel refuses to mount: an error record of the image,
    the files still read."""
    _patch(csum_guest, 1024 + 0x88, b"X")
    doc = _in_process_scan(csum_guest)
    assert isinstance(doc, dict)
    assert any("superblock checksum mismatch" in e["message"] for e in _target_errors(doc)), doc["errors"]
    assert doc["summary"]["files"] > 0
    assert any("superblock checksum mismatch" in p for p in doc["target"]["image"]["problems"])


def test_an_fstab_mount_not_read_is_an_error_record(csum_guest: Path, tmp_path: Path) -> None:
    """The guest's fstab mounts an EFI vfat file system and a /srv that is on no disk given:
    both are error records naming the mount point (vfat as a kind flightcheck does not
    read), not only lines in target.image.problems."""
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=0000-ABCD /boot/efi vfat umask=0077 0 1\nLABEL=gone /srv ext4 defaults 0 2\n")
    run("debugfs", "-w", "-R", f"write {fstab} /etc/fstab", csum_guest)
    doc = _in_process_scan(csum_guest)
    assert isinstance(doc, dict)
    by_path = {e["path"]: e["message"] for e in _target_errors(doc)}
    assert "vfat" in by_path["/boot/efi"] and "reads only ext2/3/4 and xfs" in by_path["/boot/efi"]
    assert "no file system of these disks matches" in by_path["/srv"]
    gate = [f for f in doc["findings"] if f["rule"] == "FC-ERR-001"]
    assert gate and gate[0]["state"] == "error"


@pytest.mark.slow
def test_guestfs_kvm_launch_is_bounded(guest: dict[str, Path], tmp_path: Path) -> None:
    """Without LIBGUESTFS_BACKEND_SETTINGS the appliance is launched under KVM first; on a
    machine where that hangs at boot (this one: /dev/kvm is there, the appliance never
    comes up) the launch is cut at the cap (5 s here) and made again under TCG: the scan
    completes, and says how it was launched. Where KVM boots in time it is simply used."""
    from scanner.target.guestfs import import_guestfs

    try:
        import_guestfs()
    except TargetError as exc:
        pytest.skip(str(exc))
    env = {k: v for k, v in os.environ.items() if k != "LIBGUESTFS_BACKEND_SETTINGS"}
    env["FLIGHTCHECK_GUESTFS_KVM_LAUNCH_SECONDS"] = "5"
    cmd = [str(FLIGHTCHECK)] if FLIGHTCHECK.exists() else [sys.executable, "-m", "scanner"]
    t0 = time.monotonic()
    r = subprocess.run([*cmd, "scan", "--image-backend", "guestfs", "--image", str(guest["raw"]), "-o",
                        str(tmp_path / "out"), "-j", "1", "-q"], capture_output=True, text=True, timeout=240,
                       check=False, env=env)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    image = json.loads((tmp_path / "out/result.json").read_text())["target"]["image"]
    assert image["backend"] == "guestfs"
    if image["accel"] == "tcg":
        assert any("GUESTFS_KVM_LAUNCH_SECONDS" in note for note in image["launch"]), image
    assert time.monotonic() - t0 < 200


def test_a_qcow2_entry_in_use_without_a_cluster_is_an_error_record(guest: dict[str, Path], tmp_path: Path) -> None:
    """The L2 entry of /usr/bin/big's first data cluster set to the in-use flag alone (no
    host offset: qemu-img check calls it corruption). Read as an unallocated cluster the
    program's bytes (and what else the cluster holds) silently became zeros; now each
    path it holds is an error record naming the corrupt table."""
    image = tmp_path / "guest.qcow2"
    shutil.copy(guest["clean"], image)
    head = image.read_bytes()[:72]
    bits = struct.unpack_from(">I", head, 20)[0]
    l1_at = struct.unpack_from(">Q", head, 40)[0]
    guest_at = int(run("debugfs", "-R", "blocks /usr/bin/big", guest["raw"]).split()[0]) * 4096
    l1_index, l2_index = divmod(guest_at >> bits, (1 << bits) // 8)
    with open(image, "r+b") as fh:
        fh.seek(l1_at + 8 * l1_index)
        l2_at = struct.unpack(">Q", fh.read(8))[0] & 0x00FFFFFFFFFFFE00
        fh.seek(l2_at + 8 * l2_index)
        assert struct.unpack(">Q", fh.read(8))[0] & 0x00FFFFFFFFFFFE00  # allocated in the clean image
        fh.seek(l2_at + 8 * l2_index)
        fh.write(struct.pack(">Q", 1 << 63))
    doc = _in_process_scan(image)
    assert isinstance(doc, dict)
    # a 64 KiB cluster: the folders and files it holds (/etc, /usr/bin/big...) are each an
    # error record saying why
    corrupt = {e["path"] for e in doc["errors"] if "corrupt qcow2 table" in e["message"]}
    assert corrupt & {"/usr", "/usr/bin", "/usr/bin/big"}, doc["errors"]
    assert not any(e["path"] == "/usr/bin/big" for e in doc["elves"])


def test_a_gpt_whose_crc_fails_is_an_error_record(corpus: dict[str, Any], tmp_path: Path) -> None:
    """One byte of the first partition's name changed in the corpus's GPT disk, CRCs left
    as they were: dissect reads the entries as it finds them (the guest's kernel would
    refuse them and read the backup), so the damage is an error record of the disk, and
    the file system is still read. The intact seed has none."""
    seed = Path(corpus["entry"]) / "gpt/seed.raw"
    clean = _in_process_scan(seed)
    assert isinstance(clean, dict) and not _target_errors(clean)
    image = tmp_path / "disk.raw"
    shutil.copy(seed, image)
    _patch(image, 1024 + 56, b"X")  # entry 1's name (UTF-16LE), first character
    doc = _in_process_scan(image)
    assert isinstance(doc, dict)
    assert [e["message"] for e in _target_errors(doc) if e["path"] == str(image)] == [
        "the GPT partition entries' CRC32 does not match: partitions may be read from damaged entries"]
    assert doc["summary"]["files"] == clean["summary"]["files"]


def test_two_threads_reading_one_image_see_the_same_inodes(corpus: dict[str, Any]) -> None:
    """The scan reads an image from two threads (package databases beside the census
    walk), and every layer below seeks one shared position: unserialised, one thread's
    seek moved the other's read, so an intact inode read as garbage (now: failed its
    checksum, an error record on a clean image). Caches are emptied each round so the
    inodes are really read again."""
    with open_target(images=[str(Path(corpus["entry"]) / "ext4/seed.raw")], backend="dissect") as fs:
        files = sorted(e.path for e in fs.walk("/") if e.kind == "file")
        want = {p: fs.lstat(p) for p in files}
        bad: list[tuple[str, str]] = []

        def work(k: int) -> None:
            for _ in range(100):
                for f in fs.filesystems:  # type: ignore[attr-defined]
                    if getattr(f, "checks", None) is not None:
                        f.checks.good_inodes.clear()
                    f.fs.get_inode.cache_clear()
                fs.__dict__.get("_dirs", {}).clear()
                for p in files[k::2]:
                    try:
                        if fs.lstat(p) != want[p]:
                            bad.append((p, "another stat"))
                    except OSError as exc:
                        bad.append((p, str(exc)))

        import threading

        workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    assert not bad, bad[:5]
