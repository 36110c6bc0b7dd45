"""scanner.target: read-only access with every link resolved inside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scanner.target import DirectoryRoot, PathLoop, TargetError, open_target


def test_absolute_link_resolves_inside_root(hostile_root: Path) -> None:
    fs = DirectoryRoot(hostile_root)
    assert fs.resolve("/usr/share/evil/abs") == "/etc/shadow"
    assert fs.read("/usr/share/evil/abs") == b"fixture-shadow-inside-root\n"


def test_dotdot_chain_stops_at_root(hostile_root: Path) -> None:
    fs = DirectoryRoot(hostile_root)
    assert fs.resolve("/usr/share/evil/up") == "/etc/shadow"
    assert fs.read("/usr/share/evil/up") == b"fixture-shadow-inside-root\n"
    assert fs.resolve("/../../../etc/shadow") == "/etc/shadow"


def test_escape_to_host_file_is_not_followed(hostile_root: Path) -> None:
    # the host has /etc/passwd; the fixture root has none: the link must dangle
    assert Path("/etc/passwd").exists()
    fs = DirectoryRoot(hostile_root)
    with pytest.raises(FileNotFoundError):
        fs.read("/usr/lib64/libescape.so.1")
    assert fs.resolve("/usr/lib64/libescape.so.1", strict=False) == "/etc/passwd"
    assert not fs.exists("/usr/lib64/libescape.so.1")


def test_symlink_loop_is_reported(hostile_root: Path) -> None:
    fs = DirectoryRoot(hostile_root)
    with pytest.raises(PathLoop):
        fs.resolve("/usr/lib64/libloop.so.1")
    # through a linked parent folder too
    with pytest.raises(PathLoop):
        fs.open("/lib64/libloop2.so.1")


def test_open_refuses_non_regular_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    fs = DirectoryRoot(tmp_path)
    with pytest.raises(OSError):
        fs.open("/fifo")  # never blocks: O_NONBLOCK, then refused as not regular
    with pytest.raises(IsADirectoryError):
        fs.open("/dir")


def test_walk_does_not_follow_directory_links(rpmroot: Path) -> None:
    fs = DirectoryRoot(rpmroot)
    entries = {e.path: e.kind for e in fs.walk("/")}
    assert entries["/lib64"] == "symlink"
    assert entries["/usr/lib64/libgreet.so.1"] == "symlink"
    assert entries["/usr/bin/hello"] == "file"
    assert not any(p.startswith("/lib64/") for p in entries)


def test_glob_sorted_like_glibc(rpmroot: Path) -> None:
    fs = DirectoryRoot(rpmroot)
    assert fs.glob("/etc/ld.so.conf.d/*.conf") == ["/etc/ld.so.conf.d/extra.conf"]
    assert fs.glob("/usr/bin/[hs]*") == sorted(fs.glob("/usr/bin/[hs]*"))
    assert "/usr/bin/hello" in fs.glob("/usr/bin/[hs]*")


def test_live_root_skips_kernel_and_runtime_trees() -> None:
    fs = DirectoryRoot("/")
    assert fs.is_live
    for p in ("/proc", "/sys", "/dev", "/run"):
        assert not fs.descend(p), p
    cross = DirectoryRoot("/", cross_mounts=True)
    for p in ("/proc", "/sys", "/dev", "/run"):
        assert not cross.descend(p), p
    assert fs.descend("/usr")


def test_mounts_below_a_folder_root_are_not_crossed_unless_asked() -> None:
    # /dev holds real mounts on Linux: /dev/shm (tmpfs) and /dev/pts (devpts)
    mounts = open("/proc/self/mountinfo").read()
    if " /dev/shm " not in mounts or " /dev/pts " not in mounts:
        pytest.skip("this machine has no /dev/shm and /dev/pts mounts to test mount boundaries with")
    fs = DirectoryRoot("/dev")
    assert not fs.descend("/shm") and not fs.descend("/pts")
    cross = DirectoryRoot("/dev", cross_mounts=True)
    assert cross.descend("/shm")  # a real (tmpfs) file system: entered when asked
    assert not cross.descend("/pts")  # a kernel pseudo file system: never


def test_bad_roots_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read root"):
        open_target(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TargetError, match="not a directory"):
        open_target(tmp_path / "file")


def test_a_target_gives_its_identity_as_a_typed_value(tmp_path: Path) -> None:
    """``fs.identity``: a folder is a directory with no image or domain facts and no
    errors of its own; the domain facts given to open_target make it a domain."""
    from scanner.target import TargetIdentity

    fs = open_target(str(tmp_path))
    assert fs.identity == TargetIdentity(kind="directory", label=str(tmp_path), root=str(tmp_path))
    assert fs.target_errors() == []
    facts = {"name": "web1", "uuid": "u", "state": "shut off", "active": False, "interfaces": []}
    dom = open_target(str(tmp_path), domain=facts)
    assert dom.identity.kind == "domain" and dom.identity.domain == facts and dom.identity.image is None
    with pytest.raises(AttributeError):
        dom.identity.kind = "image"  # type: ignore[misc]
