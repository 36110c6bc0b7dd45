"""The ELF census against hostile files (issue 15): no file may crash it, exhaust it or be
opened when it is not a regular file, and no worker's death may end it.

Every hostile file is a real ELF file (the rpm fixture root's ``hello``, or a program
compiled here with gcc) edited with :mod:`struct`, a sparse file made with ``truncate``, a
section compressed by writing its ``Elf64_Chdr`` and zlib stream, or a FIFO and a device
node. Each case is censused in a subprocess under ``RLIMIT_AS`` of 2 GiB with a 60 s
timeout, next to an unmodified copy of ``hello``: the census finishes, the hostile file
gets an error record naming the cap (or saying what is malformed), the good file is there.
Worker deaths are real: a worker killed with SIGKILL by the test mid-scan, and a worker
killed by the kernel for exceeding ``RLIMIT_CPU`` on a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, is_root

GiB = 1 << 30
TIMEOUT = 60

# A census in a process of its own, under RLIMIT_AS (and RLIMIT_CPU when asked): the
# records as JSON on the file named by "out" (stdout is a pipe nobody reads mid-scan).
DRIVER = r"""
import dataclasses, json, resource, sys
args = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (args["as"], args["as"]))
if args.get("cpu"):
    resource.setrlimit(resource.RLIMIT_CPU, (args["cpu"], args["cpu"]))
from scanner.inventory import take_census
from scanner.inventory.cache import CensusCache
from scanner.target import DirectoryRoot
fs = DirectoryRoot(args["root"])
cache = CensusCache(args["cache"], "DirectoryRoot:" + fs.label) if args.get("cache") else None
census = take_census(fs, jobs=args["jobs"], paths=args["paths"], cache=cache)
if cache is not None:
    cache.commit(prune=False)
    cache.close()
with open(args["out"], "w") as fh:
    json.dump({"elves": [dataclasses.asdict(e) for e in census.elves],
               "errors": [dataclasses.asdict(e) for e in census.errors], "files": census.files,
               "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, fh)
"""


def driver_command(tmp: Path, root: Path | str, *, jobs: int = 2, paths: list[str] | None = None,
                   cache: Path | None = None, cpu: int = 0) -> tuple[list[str], Path]:
    out = tmp / f"census-{time.monotonic_ns()}.json"
    args = {"root": str(root), "jobs": jobs, "paths": paths or ["/"], "as": 2 * GiB, "cpu": cpu,
            "cache": str(cache) if cache else None, "out": str(out)}
    return [sys.executable, "-c", DRIVER, json.dumps(args)], out


def census(tmp: Path, root: Path | str, **kw: Any) -> dict[str, Any]:
    """Census ``root`` in a subprocess (see DRIVER); it must finish, in time, without a traceback."""
    cmd, out = driver_command(tmp, root, **kw)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(out.read_text())


def errors_of(doc: dict[str, Any], path: str) -> list[str]:
    return [e["message"] for e in doc["errors"] if e["path"] == path]


def elf_of(doc: dict[str, Any], path: str) -> dict[str, Any] | None:
    return next((e for e in doc["elves"] if e["path"] == path), None)


# ---- editing real ELF64 files -------------------------------------------------------------
class Elf:
    """A little-endian ELF64 file's bytes, with just enough of its tables read to edit them."""

    def __init__(self, data: bytes) -> None:
        self.d = bytearray(data)
        assert self.d[:4] == b"\x7fELF" and self.d[4] == 2 and self.d[5] == 1

    def u(self, fmt: str, off: int) -> int:
        return struct.unpack_from("<" + fmt, self.d, off)[0]

    def put(self, fmt: str, off: int, value: int) -> None:
        struct.pack_into("<" + fmt, self.d, off, value)

    def sections(self) -> dict[str, int]:
        """Section name -> file offset of its header."""
        shoff, shnum, shstrndx = self.u("Q", 0x28), self.u("H", 0x3C), self.u("H", 0x3E)
        names_at = self.u("Q", shoff + shstrndx * 64 + 24)
        out = {}
        for i in range(shnum):
            hdr = shoff + i * 64
            start = names_at + self.u("I", hdr)
            out[self.d[start: self.d.index(0, start)].decode()] = hdr
        return out

    def section_data(self, name: str) -> bytes:
        hdr = self.sections()[name]
        return bytes(self.d[self.u("Q", hdr + 24): self.u("Q", hdr + 24) + self.u("Q", hdr + 32)])

    def dynamic(self) -> dict[int, int]:
        """DT_* tag -> value, from PT_DYNAMIC."""
        phoff, phnum = self.u("Q", 0x20), self.u("H", 0x38)
        for i in range(phnum):
            ph = phoff + i * 56
            if self.u("I", ph) == 2:
                at, out = self.u("Q", ph + 8), {}
                while (tag := self.u("q", at)) != 0:
                    out[tag] = self.u("Q", at + 8)
                    at += 16
                return out
        raise AssertionError("no PT_DYNAMIC")

    def offset_of(self, vaddr: int) -> int:
        phoff, phnum = self.u("Q", 0x20), self.u("H", 0x38)
        for i in range(phnum):
            ph = phoff + i * 56
            off, va, filesz = self.u("Q", ph + 8), self.u("Q", ph + 16), self.u("Q", ph + 32)
            if self.u("I", ph) == 1 and va <= vaddr < va + filesz:
                return off + vaddr - va
        raise AssertionError(f"{vaddr:#x} is in no PT_LOAD")

    def strip_section_headers(self) -> Elf:
        """As sstrip does: the loader needs none of them."""
        self.put("Q", 0x28, 0)
        for off in (0x3A, 0x3C, 0x3E):
            self.put("H", off, 0)
        return self

    def repoint(self, name: str, data: bytes) -> Elf:
        """Section ``name``'s contents replaced by ``data``, appended to the file."""
        hdr = self.sections()[name]
        self.put("Q", hdr + 24, len(self.d))
        self.put("Q", hdr + 32, len(data))
        self.d += data
        return self

    def compress_dynsym(self, chdr_size: int, body: bytes) -> Elf:
        """.dynsym made SHF_COMPRESSED: an Elf64_Chdr (zlib, ``chdr_size``) and ``body``
        appended to the file, the section header pointed at them. Padded to whole symbol
        entries, as readers that check sh_size against sh_entsize want."""
        hdr = self.sections()[".dynsym"]
        at = len(self.d)
        self.d += struct.pack("<IIQQ", 1, 0, chdr_size, 8) + body
        self.d += bytes(-(len(self.d) - at) % 24)
        self.put("Q", hdr + 8, self.u("Q", hdr + 8) | 0x800)  # sh_flags |= SHF_COMPRESSED
        self.put("Q", hdr + 24, at)
        self.put("Q", hdr + 32, len(self.d) - at)
        return self


def zeros_bomb(total: int) -> bytes:
    """A zlib stream of ``total`` zero bytes (without its final block), built from one
    full-flushed deflate block of 1 MiB of zeros repeated: about 1 KB per MiB."""
    mib = bytes(1 << 20)
    c = zlib.compressobj(9)
    first = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    return first + again * (total // len(mib) - 1)


# ---- the hostile cases --------------------------------------------------------------------
Builder = Callable[[Path, Path, Path], None]
"""Writes a hostile file: (hello, the DT_HASH program, destination)."""


def sparse(size: int) -> Builder:
    def build(hello: Path, _sysv: Path, dest: Path) -> None:
        shutil.copyfile(hello, dest)
        subprocess.run(["truncate", "-s", str(size), str(dest)], check=True)
        assert dest.stat().st_blocks * 512 < 1 << 20  # sparse: a few KB on disk
    return build


def edited(edit: Callable[[Elf], Elf | None], seed: str = "hello") -> Builder:
    def build(hello: Path, sysv: Path, dest: Path) -> None:
        elf = Elf((hello if seed == "hello" else sysv).read_bytes())
        edit(elf)
        dest.write_bytes(elf.d)
    return build


def sysv_nchain(value: int) -> Callable[[Elf], None]:
    def edit(elf: Elf) -> None:
        at = elf.offset_of(elf.dynamic()[4])  # DT_HASH: nbucket, nchain
        elf.strip_section_headers().put("I", at + 4, value)
    return edit


def gnu_hash(field: int, value: int) -> Callable[[Elf], None]:
    def edit(elf: Elf) -> None:
        at = elf.offset_of(elf.dynamic()[0x6FFFFEF5])  # DT_GNU_HASH: nbuckets, symoffset, bloom_size, shift
        elf.strip_section_headers().put("I", at + 4 * field, value)
    return edit


def unterminated_names(elf: Elf) -> None:
    """100,000 imported functions named at successive offsets of a 1 MiB .dynstr holding
    no NUL: a name of about 1 MiB each, 100 GB in all."""
    symbols = b"".join(struct.pack("<IBBHQQ", 1 + i, 0x12, 0, 0, 0, 0) for i in range(100_000))
    elf.repoint(".dynstr", b"\0" + b"A" * (1 << 20)).repoint(".dynsym", bytes(24) + symbols)


CASES: list[tuple[str, Builder, str]] = [
    # 16 GiB of holes: refused by its apparent size before a byte is read
    ("sparse-16g", sparse(16 * GiB), r"limit MAX_ELF_FILE_BYTES \(4,294,967,296\) reached"),
    # a .dynsym claiming to inflate to 6 GiB, whose zlib stream really does
    ("inflate-6g", edited(lambda e: e.compress_dynsym(6 * GiB, zeros_bomb(6 * GiB))),
     r"limit MAX_ELF_INFLATED_BYTES \(67,108,864\) reached: \.dynsym"),
    # under the absolute cap, but 32 MiB from about 32 KB: over the ratio
    ("inflate-ratio", edited(lambda e: e.compress_dynsym(32 << 20, zlib.compress(bytes(32 << 20), 9))),
     r"limit MAX_ELF_INFLATE_RATIO \(100\) reached: \.dynsym claims 33,554,432 bytes"),
    # a header that lies: 2,400 bytes claimed, gigabytes in the stream; only 2,401 are inflated
    ("inflate-lie", edited(lambda e: e.compress_dynsym(2400, zeros_bomb(6 * GiB))),
     r"\.dynsym does not inflate to the 2,400 bytes its compression header claims"),
    # DT_HASH nchain 0xffffffff in a file without section headers
    ("nchain-max", edited(sysv_nchain(0xFFFFFFFF), seed="sysv"),
     r"limit MAX_ELF_SYMBOLS \(1,000,000\) reached: DT_HASH nchain: 4,294,967,295"),
    # under the cap, but more chains than the segment's bytes hold: malformed
    ("nchain-past-segment", edited(sysv_nchain(900_000), seed="sysv"),
     r"DT_HASH claims \d+ buckets and 900,000 chains but its segment has [\d,]+ bytes"),
    ("gnu-buckets-max", edited(gnu_hash(0, 0xFFFFFFFF)),
     r"limit MAX_ELF_SYMBOLS \(1,000,000\) reached: DT_GNU_HASH buckets: 4,294,967,295"),
    ("gnu-bloom-past-segment", edited(gnu_hash(2, 0x10000000)),
     r"DT_GNU_HASH claims \d+ buckets and 268,435,456 bloom words but its segment has [\d,]+ bytes"),
    ("names-unterminated", edited(unterminated_names),
     r"limit MAX_ELF_STRTAB_BYTES \(67,108,864\) reached: bytes of the names read from the dynamic string table"),
]


SYSV_C = '#include <stdio.h>\nint main(void) { puts("sysv"); return 0; }\n'


@pytest.fixture(scope="session")
def sysv_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A program linked with a SysV hash table only (DT_HASH, no DT_GNU_HASH), by gcc."""
    work = tmp_path_factory.mktemp("sysv")
    (work / "sysv.c").write_text(SYSV_C)
    subprocess.run(["gcc", "-O1", "-Wl,--hash-style=sysv", "-o", str(work / "sysv"), str(work / "sysv.c")],
                   check=True, capture_output=True)
    tags = Elf((work / "sysv").read_bytes()).dynamic()
    assert 4 in tags and 0x6FFFFEF5 not in tags
    return work / "sysv"


def hostile_root(tmp: Path, hello: Path) -> Path:
    root = tmp / "root"
    (root / "usr/bin").mkdir(parents=True)
    shutil.copyfile(hello, root / "usr/bin/good")
    return root


@pytest.mark.parametrize("name,build,message", CASES, ids=[c[0] for c in CASES])
def test_hostile_file_is_an_error_record_and_the_census_goes_on(
        name: str, build: Builder, message: str, rpmroot: Path, sysv_program: Path, tmp_path: Path) -> None:
    root = hostile_root(tmp_path, rpmroot / "usr/bin/hello")
    build(rpmroot / "usr/bin/hello", sysv_program, root / "usr/bin" / name)
    doc = census(tmp_path, root)
    path = f"/usr/bin/{name}"
    assert elf_of(doc, path) is None
    assert any(re.search(message, m) for m in errors_of(doc, path)), errors_of(doc, path)
    good = elf_of(doc, "/usr/bin/good")
    assert good is not None and "greet" in good["imports"] and not errors_of(doc, "/usr/bin/good")


def test_files_the_caps_allow_are_read_whole(rpmroot: Path, sysv_program: Path, tmp_path: Path) -> None:
    """The bounded readers still read what real files hold: a .dynsym really compressed
    gives the imports of the plain file; a file without section headers gives the imports
    through DT_HASH (and DT_GNU_HASH) that its table holds, as readelf reads them."""
    hello = rpmroot / "usr/bin/hello"
    root = hostile_root(tmp_path, hello)
    plain = Elf(hello.read_bytes())
    dynsym = plain.section_data(".dynsym")
    (root / "usr/bin/compressed").write_bytes(Elf(hello.read_bytes()).compress_dynsym(
        len(dynsym), zlib.compress(dynsym)).d)
    (root / "usr/bin/gnu-stripped").write_bytes(Elf(hello.read_bytes()).strip_section_headers().d)
    (root / "usr/bin/sysv-stripped").write_bytes(Elf(sysv_program.read_bytes()).strip_section_headers().d)
    shutil.copyfile(sysv_program, root / "usr/bin/sysv")
    doc = census(tmp_path, root)
    assert not doc["errors"], doc["errors"]
    good = elf_of(doc, "/usr/bin/good")
    for name in ("compressed", "gnu-stripped"):
        assert elf_of(doc, f"/usr/bin/{name}")["imports"] == good["imports"], name  # type: ignore[index]
    sysv = elf_of(doc, "/usr/bin/sysv")
    assert sysv is not None and "puts" in sysv["imports"]
    assert elf_of(doc, "/usr/bin/sysv-stripped")["imports"] == sysv["imports"]  # type: ignore[index]


def test_sparse_file_under_the_cap_is_hashed_in_chunks(rpmroot: Path, tmp_path: Path) -> None:
    """A 1 GiB sparse ELF file (a few KB on disk) is hashed right, and the process that
    hashes it never holds it: its peak RSS stays far below the file's size (a map hashed
    whole would count every page of it)."""
    hello = rpmroot / "usr/bin/hello"
    root = hostile_root(tmp_path, hello)
    sparse(GiB)(hello, hello, root / "usr/bin/sparse")
    expected = hashlib.sha256(hello.read_bytes())
    zeros = bytes(1 << 20)
    left = GiB - hello.stat().st_size
    while left:
        expected.update(zeros[: min(left, len(zeros))])
        left -= min(left, len(zeros))
    doc = census(tmp_path, root, jobs=1)
    rec = elf_of(doc, "/usr/bin/sparse")
    assert rec is not None and rec["size"] == GiB and rec["sha256"] == expected.hexdigest()
    assert doc["maxrss_kib"] < 400 * 1024, doc["maxrss_kib"]


def test_non_utf8_symbol_name_keeps_the_record(rpmroot: Path, tmp_path: Path) -> None:
    """A file without section headers whose imported symbol ``greet`` is renamed
    ``gr\\xffet``: the record stays, with the name's undecodable byte escaped as paths are,
    and a note says so."""
    hello = rpmroot / "usr/bin/hello"
    root = hostile_root(tmp_path, hello)
    elf = Elf(hello.read_bytes()).strip_section_headers()
    tags = elf.dynamic()
    start = elf.offset_of(tags[5])  # DT_STRTAB
    at = elf.d.index(b"\0greet\0", start, start + tags[10]) + 1
    elf.d[at: at + 5] = b"gr\xffet"
    (root / "usr/bin/odd-name").write_bytes(elf.d)
    doc = census(tmp_path, root)
    rec, good = elf_of(doc, "/usr/bin/odd-name"), elf_of(doc, "/usr/bin/good")
    assert rec is not None and good is not None
    assert set(rec["imports"]) == set(good["imports"]) - {"greet"} | {"gr\udcffet"}
    assert rec["needed"] == good["needed"] and rec["sha256"] != good["sha256"]
    assert errors_of(doc, "/usr/bin/odd-name") == [
        "1 imported symbol name(s) are not valid UTF-8; kept with the undecodable bytes escaped"]


# ---- only regular files are opened --------------------------------------------------------
AUDITED = r"""
import json, os, sys
root, out = sys.argv[1], sys.argv[2]
watched = (root + "/usr/lib64/libfifo.so.1", root + "/usr/bin/device")
opened = []
def hook(event, args):
    if event in ("open", "os.open") and args and args[0] in watched:
        opened.append(args[0])
sys.addaudithook(hook)
from scanner.inventory import take_census
from scanner.inventory.census import census_paths
from scanner.target import DirectoryRoot
fs = DirectoryRoot(root)
whole = take_census(fs, jobs=1)
tops = take_census(fs, jobs=1, paths=["/usr/lib64/libfifo.so.1", "/usr/bin/device"])
direct = census_paths(fs, ["/usr/lib64/libfifo.so.1", "/usr/bin/device"], jobs=1, light=True)
with open(out, "w") as fh:
    json.dump({"opened": opened, "elves": [e.path for e in whole.elves],
               "errors": [[e.path, e.stage, e.message] for e in (*whole.errors, *tops.errors)],
               "direct": [[r.path, r.message] for r in direct]}, fh)
"""


def test_fifo_and_device_are_never_opened(rpmroot: Path, tmp_path: Path) -> None:
    """A FIFO named like a library and a character device, met by the walk, named as
    --path tops and handed to the census directly (as the loader hands it libraries):
    never opened (an audit hook sees every open of the process), and the census ends."""
    if not is_root():
        pytest.skip("making a device node needs root")
    root = hostile_root(tmp_path, rpmroot / "usr/bin/hello")
    (root / "usr/lib64").mkdir()
    os.mkfifo(root / "usr/lib64/libfifo.so.1")
    os.mknod(root / "usr/bin/device", 0o644 | stat.S_IFCHR, os.makedev(1, 3))
    out = tmp_path / "audit.json"
    proc = subprocess.run([sys.executable, "-c", AUDITED, str(root), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["opened"] == []
    assert doc["elves"] == ["/usr/bin/good"]
    assert sorted(doc["direct"]) == [["/usr/bin/device", "cannot open: not a regular file: character device"],
                                     ["/usr/lib64/libfifo.so.1", "cannot open: not a regular file: FIFO"]]


# ---- worker deaths ------------------------------------------------------------------------
def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append((int(entry.name), Path(entry.path, "cmdline").read_bytes().decode(errors="replace")))
        except (OSError, IndexError, ValueError):
            continue
    return out


def census_killing_a_worker(tmp: Path, root: str, **kw: Any) -> tuple[dict[str, Any], set[str]]:
    """Census ``root`` in a subprocess and SIGKILL one of its census workers (a forked
    child, the same command line) as soon as one exists, as the OOM killer would. Returns
    the census and the command lines of every child the subprocess had."""
    cmd, out = driver_command(tmp, root, **kw)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    own = "\0".join(cmd) + "\0"
    killed, seen = None, set()
    deadline = time.monotonic() + TIMEOUT
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            kids = children(proc.pid)
            seen.update(line for _pid, line in kids)
            if killed is None:
                workers = [pid for pid, line in kids if line == own]
                if workers:
                    killed = workers[0]
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.002)
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "no census worker was seen"
    assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    return json.loads(out.read_text()), seen


# a large real root: this host's programs and libraries
HOST_PATHS = ["/usr/bin", "/usr/lib/x86_64-linux-gnu"]


def host_paths() -> list[str]:
    paths = [p for p in HOST_PATHS if os.path.isdir(p)]
    if not paths:
        pytest.skip("no /usr/bin on this host")
    return paths


def same_census(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["files"] == b["files"]
    assert a["errors"] == b["errors"]
    assert a["elves"] == b["elves"]


def test_worker_killed_mid_scan_changes_nothing(tmp_path: Path) -> None:
    """A census worker SIGKILLed while the batches are out: its batch and the rest are
    censused by fresh workers (from a fork server, which the scan then starts), and the
    result is exactly the undisturbed one."""
    paths = host_paths()
    undisturbed = census(tmp_path, "/", paths=paths)
    disturbed, seen = census_killing_a_worker(tmp_path, "/", paths=paths)
    assert any("forkserver" in line for line in seen), seen
    assert len(disturbed["elves"]) > 500
    same_census(disturbed, undisturbed)


def test_worker_killed_in_a_cached_rescan_changes_nothing(tmp_path: Path) -> None:
    """The same in a rescan with a cache, where workers walk whole subtrees: the parts of
    the dead worker's pool are walked again in the parent, their files parsed by fresh
    workers, and the result is the undisturbed one."""
    paths = host_paths()
    cache = tmp_path / "cache.sqlite"
    census(tmp_path, "/", paths=["/usr/bin/true"] if os.path.exists("/usr/bin/true") else paths[:1], cache=cache)
    undisturbed = census(tmp_path, "/", paths=paths)
    disturbed, seen = census_killing_a_worker(tmp_path, "/", paths=paths, cache=cache)
    assert any("forkserver" in line for line in seen), seen
    same_census(disturbed, undisturbed)


def test_file_that_kills_its_worker_twice_is_an_error_record(rpmroot: Path, tmp_path: Path) -> None:
    """A file whose census makes every worker that takes it die for real: the kernel kills a
    process with SIGKILL at its RLIMIT_CPU (2 s here, inherited by every worker), and
    hashing a 4 GiB sparse file takes longer. Its batch's worker dies, then a fresh worker
    given it alone, then another: an error record says so; the other file is there."""
    hello = rpmroot / "usr/bin/hello"
    root = hostile_root(tmp_path, hello)
    sparse(4 * GiB - (1 << 20))(hello, hello, root / "usr/bin/slow")
    doc = census(tmp_path, root, cpu=2)
    assert elf_of(doc, "/usr/bin/slow") is None
    assert errors_of(doc, "/usr/bin/slow") == ["the parser process died (signal 9) on this file twice"]
    assert elf_of(doc, "/usr/bin/good") is not None and not errors_of(doc, "/usr/bin/good")
