"""scanner.inventory: the ELF census, checked against readelf and hashlib as oracles."""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

from scanner.inventory import take_census
from scanner.inventory.census import census_file
from scanner.inventory.elf import ElfRecord
from scanner.target import DirectoryRoot

from conftest import by_path


def readelf_imports(path: str) -> set[str]:
    """Undefined FUNC symbols of .dynsym, as binutils' readelf prints them."""
    out = subprocess.run(["readelf", "-W", "--dyn-syms", path], capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0].endswith(":") and f[3] == "FUNC" and f[6] == "UND":
            names.add(re.sub(r"@.*", "", f[7]))
    return names


def readelf_dynamic(path: str) -> dict[str, list[str]]:
    out = subprocess.run(["readelf", "-W", "-d", path], capture_output=True, text=True).stdout
    tags: dict[str, list[str]] = {}
    for m in re.finditer(r"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+\S+ \S+: \[(.*)\]", out):
        tags.setdefault(m.group(1), []).append(m.group(2))
    return tags


def test_fixture_census(rpmroot_result: dict) -> None:
    elves = by_path(rpmroot_result)
    hello = elves["/usr/bin/hello"]
    assert hello["type"] == "pie" and hello["class"] == 64 and hello["byte_order"] == "little"
    assert hello["machine"] == "x86_64" and hello["interpreter"] == "/lib64/ld-linux-x86-64.so.2"
    assert hello["needed"] == ["libgreet.so.1", "libc.so.6"]
    assert hello["static"] is False and hello["setuid"] is False
    assert elves["/usr/lib64/libgreet.so.1.0.0"]["type"] == "shared-library"
    assert elves["/usr/lib64/libgreet.so.1.0.0"]["soname"] == "libgreet.so.1"
    assert elves["/opt/originapp/bin/originapp"]["runpath"] == ["$ORIGIN/../lib"]
    assert elves["/opt/rpathdemo/bin/rpath-app"]["rpath"] == ["/opt/rpathdemo/private"]
    assert elves["/opt/rpathdemo/bin/rpath-app"]["runpath"] == []
    static = elves["/usr/bin/static-app"]
    assert static["static"] is True and static["interpreter"] is None and static["needed"] == []
    assert elves["/usr/bin/suid-app"]["setuid"] is True and elves["/usr/bin/suid-app"]["mode"] == "4755"
    assert elves["/usr/bin/sgid-app"]["setgid"] is True and elves["/usr/bin/sgid-app"]["setuid"] is False
    # ELF magic without the x bit, not named .so: still in the census
    plugin = elves["/usr/share/noxdata/plugin.bin"]
    assert plugin["mode"] == "0644" and plugin["soname"] == "libplugin.so.1"
    # links are not files: the symlink libgreet.so.1 is not a second record
    assert "/usr/lib64/libgreet.so.1" not in elves
    assert rpmroot_result["summary"]["elves"] == len(elves)


def test_hashes_match_hashlib(rpmroot: Path, rpmroot_result: dict) -> None:
    for e in rpmroot_result["elves"]:
        data = (rpmroot / e["path"].lstrip("/")).read_bytes()
        assert e["sha256"] == hashlib.sha256(data).hexdigest()
        assert e["sha1"] == hashlib.sha1(data).hexdigest()
        assert e["size"] == len(data)


def test_imports_and_dynamic_tags_match_readelf(rpmroot: Path, rpmroot_result: dict) -> None:
    for e in rpmroot_result["elves"]:
        host = str(rpmroot / e["path"].lstrip("/"))
        assert set(e["imports"]) == readelf_imports(host), e["path"]
        tags = readelf_dynamic(host)
        assert e["needed"] == tags.get("NEEDED", []), e["path"]
        assert e["soname"] == (tags.get("SONAME") or [None])[0], e["path"]
    assert "greet" in by_path(rpmroot_result)["/usr/bin/hello"]["imports"]


def test_host_sample_matches_readelf() -> None:
    """200 ELF files of this host, parsed and compared field by field with readelf."""
    fs = DirectoryRoot("/")
    paths = sorted(str(p) for p in Path("/usr/bin").iterdir() if p.is_file() and not p.is_symlink())
    random.Random(7).shuffle(paths)
    checked = 0
    for p in paths:
        recs = census_file(fs, p)
        if not recs or not isinstance(recs[0], ElfRecord):
            continue
        rec = recs[0]
        tags = readelf_dynamic(p)
        assert list(rec.needed) == tags.get("NEEDED", []), p
        assert list(rec.runpath) == sum((t.split(":") for t in tags.get("RUNPATH", [])), []), p
        assert set(rec.imports) == readelf_imports(p), p
        checked += 1
        if checked == 200:
            break
    assert checked >= 100


def test_hostile_files_become_error_records(hostile_root: Path) -> None:
    census = take_census(DirectoryRoot(hostile_root), jobs=2)
    paths = {r.path for r in census.elves}
    errors = {}
    for e in census.errors:
        errors.setdefault(e.path, []).append(e.message)
    # unparseable: an error record, no ELF record
    for bad in ("/usr/bin/truncated", "/usr/bin/truncated-half", "/usr/bin/bad-phnum", "/usr/bin/bad-shnum"):
        assert bad in errors and bad not in paths, bad
    assert "past the end" in errors["/usr/bin/truncated"][0]
    # a dynamic segment claiming 2^27 entries: read up to DT_NULL, flagged, still censused
    assert "/usr/bin/huge-dynamic" in paths
    assert any("PT_DYNAMIC claims" in m for m in errors["/usr/bin/huge-dynamic"])
    # not ELF: silently not in the census; the good file still is
    assert "/usr/bin/not-elf" not in paths and "/usr/bin/empty" not in paths
    assert "/usr/bin/good" in paths and "/usr/bin/needs-loop" in paths


def test_hostile_scan_changes_nothing(hostile_root: Path, rpmroot: Path) -> None:
    """Every file's bytes, mode and times are the same after a scan (O_NOATIME: not even
    the access time moves)."""
    def snapshot(root: Path) -> dict[str, tuple]:
        out = {}
        for dirpath, dirs, files in __import__("os").walk(root):
            for name in dirs + files:
                p = Path(dirpath) / name
                st = p.lstat()
                out[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_atime_ns)
        return out

    for root in (hostile_root, rpmroot):
        before = snapshot(root)
        take_census(DirectoryRoot(root), jobs=1)
        assert snapshot(root) == before


def test_file_without_section_headers_is_read_like_the_loader(rpmroot: Path, tmp_path: Path) -> None:
    """sstrip-style files have no section headers; the loader needs none. DT_NEEDED comes
    from PT_DYNAMIC, imports from DT_SYMTAB/DT_GNU_HASH."""
    import struct

    data = bytearray((rpmroot / "usr/bin/hello").read_bytes())
    struct.pack_into("<Q", data, 0x28, 0)  # e_shoff
    struct.pack_into("<HHH", data, 0x3A, 0, 0, 0)  # e_shentsize, e_shnum, e_shstrndx
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/nosections").write_bytes(bytes(data))
    recs = census_file(DirectoryRoot(tmp_path), "/usr/bin/nosections")
    assert len(recs) == 1 and isinstance(recs[0], ElfRecord)
    rec = recs[0]
    assert rec.needed == ("libgreet.so.1", "libc.so.6")
    assert rec.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert set(rec.imports) == readelf_imports(str(rpmroot / "usr/bin/hello")) and "greet" in rec.imports


DEBIAN_ELFTOOLS = Path("/usr/lib/python3/dist-packages/elftools")


def test_census_is_the_same_with_debians_older_pyelftools(rpmroot: Path, rpmroot_result: dict, tmp_path: Path) -> None:
    """A process may import Debian 12's pyelftools 0.29 (python3-pyelftools, which pax-utils
    brings) instead of the virtualenv's: it was seen once in CI, and every ELF file became
    "malformed". The census reads the same records with it."""
    import json
    import sys

    if not DEBIAN_ELFTOOLS.is_dir():
        pytest.skip("needs Debian's python3-pyelftools (make installs pax-utils, which depends on it)")
    shadow = tmp_path / "path"
    shadow.mkdir()
    (shadow / "elftools").symlink_to(DEBIAN_ELFTOOLS)
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    which = subprocess.run([sys.executable, "-c", "import elftools; print(elftools.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert which.startswith(str(shadow))
    subprocess.run([sys.executable, "-m", "scanner", "scan", str(rpmroot), "-o", str(tmp_path / "o"), "-q",
                    "--fail-on", "never"], env=env, check=True)
    doc = json.loads((tmp_path / "o" / "result.json").read_text())
    assert by_path(doc) == by_path(rpmroot_result) and doc["errors"] == rpmroot_result["errors"]


def test_static_counts_only_executables(tmp_path: Path) -> None:
    """``summary.static`` counts statically linked executables; relocatable objects and
    kernel modules (ET_REL, no dynamic section either) are counted apart (issue 19)."""
    from conftest import scan_root

    src = tmp_path / "m.c"
    src.write_text("int main(void) { return 0; }\n")
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "lib/modules/6.1/kernel").mkdir(parents=True)
    subprocess.run(["gcc", "-static", "-o", str(root / "usr/bin/static-app"), str(src)], check=True)
    subprocess.run(["gcc", "-o", str(root / "usr/bin/dynamic-app"), str(src)], check=True)
    subprocess.run(["gcc", "-c", "-o", str(root / "usr/bin/object.o"), str(src)], check=True)
    subprocess.run(["gcc", "-c", "-o", str(root / "lib/modules/6.1/kernel/fake.ko"), str(src)], check=True)
    for name in ("object.o", "static-app"):  # readelf as the oracle of what each is
        head = subprocess.run(["readelf", "-h", str(root / "usr/bin" / name)], capture_output=True, text=True).stdout
        assert ("REL (Relocatable file)" in head) == (name == "object.o")
    summary = scan_root(root)["summary"]
    assert (summary["static"], summary["relocatable"], summary["kernel_modules"]) == (1, 2, 1)
    assert summary["executables"] == 2
