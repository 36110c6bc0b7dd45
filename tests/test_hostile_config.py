"""Hostile configuration files (issue 15): devices and FIFOs where configuration files
should be, include and glob loops, files over the caps, malformed boot files next to a
failing grub.cfg.

Scans that meet a FIFO or a device run the real CLI in a child process, under a time limit
and ``RLIMIT_AS`` of 2 GiB, with an audit hook (``sys.addaudithook``) that records every
``open`` of a watched path: a device must never be opened (its driver's open runs even with
``O_NONBLOCK``), and a FIFO opened for reading without ``O_NONBLOCK`` would hang the child
past its time limit. The others scan in-process (no FIFO can block them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, scan_root

from scanner import limits
from scanner.limits import LimitExceeded
from scanner.linkage import config as cfgmod
from scanner.target import DirectoryRoot

#: seconds a hostile scan may take (the issue's bound); the child is killed at twice that
MAX_SECONDS = 60

#: the child: address space capped, every open of a watched host path logged, then the CLI
DRIVER = r"""
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
watch = frozenset(p for p in os.environ["FC_WATCH"].split(os.pathsep) if p)
log = os.open(os.environ["FC_OPENLOG"], os.O_WRONLY | os.O_APPEND)

def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        path = os.path.normpath(os.fsdecode(args[0]))
        if path in watch:
            os.write(log, path.encode() + b"\n")

sys.addaudithook(hook)
sys.argv = ["flightcheck", *sys.argv[1:]]
from scanner.cli import entry
entry()
"""

BOOT_NO_PASSWORD = "menuentry 'Linux' {\n  linux /vmlinuz root=/dev/sda1 ro audit=1\n}\n"
HASH = "grub.pbkdf2.sha512.10000." + "AB" * 32 + "." + "CD" * 32


def write(root: Path, rel: str, content: str | bytes, mode: int = 0o600) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    p.chmod(mode)
    return p


def base_root(root: Path, grub_cfg: str = BOOT_NO_PASSWORD) -> Path:
    """A small GRUB 2 root: grub.cfg (0600, no password unless given one), /etc/hosts with
    ::1, a sysctl.d file that leaves IPv6 on, ld.so.conf with an include glob."""
    write(root, "boot/grub2/grub.cfg", grub_cfg)
    write(root, "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n", 0o644)
    write(root, "etc/sysctl.d/50-ok.conf", "net.ipv6.conf.all.disable_ipv6 = 0\n", 0o644)
    write(root, "etc/ld.so.conf", "include ld.so.conf.d/*.conf\n", 0o644)
    write(root, "etc/ld.so.conf.d/local.conf", "/opt/local/lib\n", 0o644)
    return root


def node(path: Path, kind: str) -> Path:
    """A FIFO, or a character device with /dev/null's numbers, at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))
    return path


def need_mknod(kind: str) -> None:
    if kind == "chardev" and os.geteuid() != 0:
        pytest.skip("making a character device (mknod) needs root; this run is not root")


def cli_scan(root: Path, out: Path, *extra: str, watch: tuple[Path, ...] = ()) -> tuple[int, dict, list[str], str]:
    """Run ``flightcheck scan ROOT -o OUT`` in a child (see :data:`DRIVER`): exit code,
    result.json, the watched paths it opened, its standard error."""
    openlog = out.parent / f"{out.name}.opened"
    openlog.write_text("")
    env = {**os.environ, "FC_WATCH": os.pathsep.join(os.path.normpath(p) for p in watch),
           "FC_OPENLOG": str(openlog), "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", DRIVER, "scan", str(root), "-o", str(out), "--no-progress",
                        "--jobs", "1", *extra], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=2 * MAX_SECONDS, check=False)
    assert time.monotonic() - t0 < MAX_SECONDS
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads((out / "result.json").read_text()), openlog.read_text().split(), r.stderr


def results(doc: dict, rule: str) -> list[dict]:
    return [f for f in doc["findings"] if f["rule"] == rule]


def state(doc: dict, rule: str) -> str:
    got = {f["state"] for f in results(doc, rule)}
    assert len(got) == 1, (rule, got)
    return got.pop()


def message(doc: dict, rule: str) -> str:
    return " ".join(f["message"] for f in results(doc, rule))


# ---- only regular files are opened ---------------------------------------------------------------
#: where a device or FIFO is put, and the rule that must then say error naming it (None:
#: the file is read by a stage, not a rule: a scan-level error record, or nothing to judge)
SPOTS = {
    "etc/sysctl.d/99.conf": "FC-IP6-002",
    "etc/modprobe.d/blacklist.conf": "FC-IP6-003",
    "etc/NetworkManager/system-connections/eth0.nmconnection": "FC-IP6-005",
    "etc/default/grub.d/50-local.cfg": "FC-BOOT-006",
    "etc/inittab": "FC-BOOT-007",
    "etc/ld.so.conf.d/zz.conf": None,
    "etc/os-release": None,
}


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_devices_and_fifos_at_configuration_paths_are_never_opened(kind: str, tmp_path: Path) -> None:
    need_mknod(kind)
    root = base_root(tmp_path / "root")
    nodes = tuple(node(root / rel, kind) for rel in SPOTS)
    what = "FIFO" if kind == "fifo" else "character device"
    code, doc, opened, _ = cli_scan(root, tmp_path / "out", "--fail-on", "low", watch=nodes)
    assert opened == []
    assert code == 1  # grub.cfg has no password: failing, whatever else could not be read
    assert state(doc, "FC-BOOT-001") == "fail"
    for rel, rule in SPOTS.items():
        if rule:
            assert state(doc, rule) == "error", rel
            assert f"/{rel}" in message(doc, rule) and f"not a regular file: {what}" in message(doc, rule), rel
    linkage = [e for e in doc["errors"] if e["path"] == "/etc/ld.so.conf.d/zz.conf"]
    assert linkage and f"not a regular file: {what}" in linkage[0]["message"]


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_open_checks_the_type_before_opening(kind: str, tmp_path: Path) -> None:
    """DirectoryRoot.open refuses a device or FIFO by its lstat: the open(2) is never made
    (the audit hook in a child sees no open of it), and the error names the type."""
    need_mknod(kind)
    dev = node(tmp_path / "etc/dev.conf", kind)
    probe = (
        "import os, sys\n"
        "seen = []\n"
        "sys.addaudithook(lambda e, a: seen.append(a[0]) if e == 'open' and a and a[0] == sys.argv[2] else None)\n"
        "from scanner.target import DirectoryRoot\n"
        "try:\n"
        "    DirectoryRoot(sys.argv[1]).open('/etc/dev.conf')\n"
        "except OSError as exc:\n"
        "    print(exc.strerror)\n"
        "print(len(seen))\n")
    r = subprocess.run([sys.executable, "-c", probe, str(tmp_path), str(dev)], capture_output=True, text=True,
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=MAX_SECONDS, check=True)
    assert r.stdout.splitlines() == [f"not a regular file: {'FIFO' if kind == 'fifo' else 'character device'}", "0"]


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_a_device_in_place_of_grub_cfg_is_an_error_not_a_missing_boot_loader(kind: str, tmp_path: Path) -> None:
    """Taking a node for an absent file would make every boot rule notapplicable."""
    need_mknod(kind)
    root = tmp_path / "root"
    write(root, "etc/hosts", "::1 localhost\n", 0o644)
    grub = node(root / "boot/grub2/grub.cfg", kind)
    _, doc, opened, _ = cli_scan(root, tmp_path / "out", "--fail-on", "low", watch=(grub,))
    assert opened == []
    for rule in ("FC-BOOT-001", "FC-BOOT-002", "FC-BOOT-004", "FC-IP6-001"):
        assert state(doc, rule) == "error", rule
        assert "/boot/grub2/grub.cfg: cannot read: not a regular file" in message(doc, rule)
    if os.geteuid() == 0:  # the node is then root:root 0600; owner and mode need no open
        assert state(doc, "FC-BOOT-003") == "pass"


def test_a_link_to_dev_null_masks_a_file_without_opening_dev_null(tmp_path: Path) -> None:
    """systemd's mask: /etc/sysctl.d/NAME -> /dev/null hides the vendor file of that name.
    The target's /dev/null (a FIFO here, a device on a live system) is never opened."""
    root = base_root(tmp_path / "root", f"set superusers=\"boss\"\npassword_pbkdf2 boss {HASH}\n{BOOT_NO_PASSWORD}")
    write(root, "usr/lib/sysctl.d/60-off.conf", "net.ipv6.conf.all.disable_ipv6 = 1\n", 0o644)
    os.symlink("/dev/null", root / "etc/sysctl.d/60-off.conf")
    null = node(root / "dev/null", "fifo")
    _, doc, opened, _ = cli_scan(root, tmp_path / "out", watch=(null,))
    assert opened == []
    assert state(doc, "FC-IP6-002") == "pass"
    # and without the mask the vendor file disables IPv6
    (root / "etc/sysctl.d/60-off.conf").unlink()
    assert state(scan_root(root), "FC-IP6-002") == "fail"


# ---- the evasion case: a malformed file next to a failing grub.cfg -------------------------------
MALFORMED = {
    "quote": b'X="unterminated',
    "nul": b"GRUB_TIMEOUT=5\n\0\n",
    "non-utf8": b"GRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=\xff\xfe\n",
    "over-the-cap": b"GRUB_TIMEOUT=5\n" + b"#" * limits.MAX_CONFIG_BYTES + b"\n",
}
REASON = {"quote": "No closing quotation", "nul": "binary data (a NUL byte", "non-utf8": "binary or non-UTF-8 data",
          "over-the-cap": "limit MAX_CONFIG_BYTES (1,048,576) reached"}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_grub_default_does_not_flip_the_password_rule(case: str, tmp_path: Path) -> None:
    """grub.cfg without a password fails the gate; a malformed /etc/default/grub.d file,
    which the password rule never reads, leaves it failing and the exit code 1. The rules
    that do read /etc/default/grub say error, naming the file and why."""
    root = base_root(tmp_path / "root")
    write(root, "etc/default/grub", 'GRUB_DISABLE_RECOVERY="true"\nGRUB_CMDLINE_LINUX="audit=1"\n', 0o644)
    code, before, _, _ = cli_scan(root, tmp_path / "before", "--fail-on", "low")
    assert code == 1 and state(before, "FC-BOOT-001") == "fail"
    assert state(before, "FC-BOOT-006") == "pass" and state(before, "FC-BOOT-005") == "pass"

    write(root, "etc/default/grub.d/x.cfg", MALFORMED[case], 0o644)
    code, after, _, _ = cli_scan(root, tmp_path / "after", "--fail-on", "low")
    assert code == 1
    assert state(after, "FC-BOOT-001") == "fail"
    assert state(after, "FC-BOOT-002") == "fail"  # no superuser: grub.cfg alone says so
    assert state(after, "FC-BOOT-004") == "pass"  # the entries are in grub.cfg, all read
    for rule in ("FC-BOOT-005", "FC-BOOT-006", "FC-IP6-001"):  # these read /etc/default/grub.d
        assert state(after, rule) == "error", rule
        assert "/etc/default/grub.d/x.cfg" in message(after, rule) and REASON[case] in message(after, rule), rule
    unreadable = results(after, "FC-BOOT-001")[0]["evidence"]["unreadable"]
    assert unreadable[0]["path"] == "/etc/default/grub.d/x.cfg"  # reported where it did not matter too


def test_what_is_read_after_a_malformed_file_is_known(tmp_path: Path) -> None:
    """Later wins: a value set after the unreadable part is certain again (pass), a value
    set before it is not (error); a forbidden argument set after it still fails."""
    root = base_root(tmp_path / "root", f"set superusers=\"boss\"\npassword_pbkdf2 boss {HASH}\n{BOOT_NO_PASSWORD}")
    write(root, "etc/default/grub", 'GRUB_DISABLE_RECOVERY="true"\n', 0o644)
    write(root, "etc/default/grub.d/10-bad.cfg", MALFORMED["quote"], 0o644)
    doc = scan_root(root)
    assert state(doc, "FC-BOOT-001") == "pass" and state(doc, "FC-BOOT-006") == "error"
    write(root, "etc/default/grub.d/20-good.cfg", 'GRUB_DISABLE_RECOVERY="true"\n'
          'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ipv6.disable=1"\n', 0o644)
    doc = scan_root(root)
    assert state(doc, "FC-BOOT-006") == "pass"
    assert state(doc, "FC-IP6-001") == "fail"


# ---- caps on configuration files -----------------------------------------------------------------
def test_sysctl_file_over_the_caps_is_read_up_to_the_cap(tmp_path: Path) -> None:
    """A setting before an unreadable part may have been undone by it (error); one after
    it is in effect (fail). Each error names the file and the cap."""
    root = base_root(tmp_path / "root")
    write(root, "etc/sysctl.d/10-off.conf", "net.ipv6.conf.all.disable_ipv6 = 1\n", 0o644)
    big = write(root, "etc/sysctl.d/90-big.conf", ("#" * 99 + "\n") * (limits.MAX_CONFIG_BYTES // 100 + 10), 0o644)
    doc = scan_root(root)
    assert state(doc, "FC-IP6-002") == "error"
    assert "/etc/sysctl.d/90-big.conf: limit MAX_CONFIG_BYTES (1,048,576) reached" in message(doc, "FC-IP6-002")

    big.write_text("\n" * (limits.MAX_CONFIG_LINES + 1))
    assert "limit MAX_CONFIG_LINES (50,000) reached" in message(scan_root(root), "FC-IP6-002")
    big.write_text("net.ipv4.ip_forward = " + "1" * (limits.MAX_CONFIG_LINE + 1) + "\n")
    assert "limit MAX_CONFIG_LINE (65,536) reached" in message(scan_root(root), "FC-IP6-002")

    (root / "etc/sysctl.d/10-off.conf").rename(root / "etc/sysctl.d/95-off.conf")
    doc = scan_root(root)
    assert state(doc, "FC-IP6-002") == "fail"


def test_junk_in_one_modprobe_file_does_not_hide_a_blacklist_in_another(tmp_path: Path) -> None:
    root = base_root(tmp_path / "root")
    write(root, "etc/modprobe.d/junk.conf", os.urandom(64) + b"\0", 0o644)
    assert state(scan_root(root), "FC-IP6-003") == "error"
    write(root, "etc/modprobe.d/ipv6.conf", "blacklist ipv6\n", 0o644)
    assert state(scan_root(root), "FC-IP6-003") == "fail"


# ---- includes and globs --------------------------------------------------------------------------
def links_to_dot(folder: Path, n: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        os.symlink(".", folder / f"l{i}")


def test_ld_so_conf_include_over_links_to_dot_ends_with_an_error_naming_the_cap(tmp_path: Path) -> None:
    """The issue's ``include /x/*/*/*/*/*/*/*/*.conf`` over links to ``.``: 8 links per level
    make 8**7 folders to visit, hours of work without the caps."""
    root = base_root(tmp_path / "root")
    links_to_dot(root / "x", 8)
    write(root, "x/more.conf", "/opt/more/lib\n", 0o644)
    write(root, "etc/ld.so.conf", "/opt/first/lib\ninclude /x/*/*/*/*/*/*/*/*.conf\n", 0o644)
    _, doc, _, _ = cli_scan(root, tmp_path / "out")
    errs = [e["message"] for e in doc["errors"] if e["path"] == "/etc/ld.so.conf"]
    assert len(errs) == 1 and re.fullmatch(r"limit MAX_GLOB_(DIRS|MATCHES) \([\d,]+\) reached: "
                                           r"glob /x/\*/\*/\*/\*/\*/\*/\*/\*\.conf", errs[0]), errs


def test_ld_so_conf_caps(tmp_path: Path) -> None:
    """Include nesting, files read and bytes of one file: each stops with an error naming
    its cap, keeping the folders read before it."""
    chain = tmp_path / "chain"
    for i in range(limits.MAX_INCLUDE_DEPTH + 5):
        write(chain, f"etc/ld{i}.conf", f"/opt/lib{i}\ninclude /etc/ld{i + 1}.conf\n", 0o644)
    os.rename(chain / "etc/ld0.conf", chain / "etc/ld.so.conf")
    errs: list[tuple[str, str]] = []
    dirs = cfgmod.parse_ld_so_conf(DirectoryRoot(chain), errors=errs)
    assert dirs == [f"/opt/lib{i}" for i in range(limits.MAX_INCLUDE_DEPTH + 1)]
    assert [m for _, m in errs] == ["limit MAX_INCLUDE_DEPTH (16) reached: /etc/ld17.conf is included 17 deep"]

    many = tmp_path / "many"
    write(many, "etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n", 0o644)
    for i in range(limits.MAX_CONFIG_FILES + 1):
        write(many, f"etc/ld.so.conf.d/{i:04d}.conf", f"/opt/l{i}\n", 0o644)
    errs = []
    dirs = cfgmod.parse_ld_so_conf(DirectoryRoot(many), errors=errs)
    assert len(dirs) == limits.MAX_CONFIG_FILES - 1  # ld.so.conf itself is one of the files
    assert errs == [("/etc/ld.so.conf", "limit MAX_CONFIG_FILES (512) reached: /etc/ld.so.conf.d/0511.conf")]

    big = tmp_path / "big"
    write(big, "etc/ld.so.conf", "/opt/kept\n" + "#" * limits.MAX_CONFIG_BYTES + "\n/opt/beyond\n", 0o644)
    errs = []
    assert cfgmod.parse_ld_so_conf(DirectoryRoot(big), errors=errs) == ["/opt/kept"]
    assert errs[0][0] == "/etc/ld.so.conf" and "limit MAX_CONFIG_BYTES (1,048,576) reached" in errs[0][1]


def test_glob_is_bounded(tmp_path: Path) -> None:
    links_to_dot(tmp_path / "x", 3)
    (tmp_path / "many").mkdir()
    for i in range(limits.MAX_GLOB_MATCHES + 1):
        (tmp_path / "many" / f"f{i}").touch()
    fs = DirectoryRoot(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(LimitExceeded) as exc:
        fs.glob("/x/" + "*/" * 12 + "*.conf")  # 3**12 folders
    assert exc.value.cap == "MAX_GLOB_DIRS" and time.monotonic() - t0 < 10
    with pytest.raises(LimitExceeded) as exc:
        fs.glob("/many/*")
    assert exc.value.cap == "MAX_GLOB_MATCHES"
    assert fs.glob("/many/f1000*") == ["/many/f1000", "/many/f10000"]  # under the caps: every match


# ---- the loader's own files ----------------------------------------------------------------------
def _over_the_cap(path: Path, head: bytes, cap: int) -> None:
    """``head`` (a real file's bytes), then a hole up to one byte past ``cap`` (sparse: no
    disk, and the old reader took the first ``cap`` bytes as the whole file)."""
    path.write_bytes(head)
    os.truncate(path, cap + 1)


def test_ld_so_cache_over_its_cap(rpmroot: Path, tmp_path: Path) -> None:
    """An /etc/ld.so.cache larger than MAX_LD_SO_CACHE_BYTES (a real cache, then a hole):
    not parsed cut short, an error record naming the cap, and ld.so.conf stands in."""
    root = tmp_path / "root"
    shutil.copytree(rpmroot, root, symlinks=True)
    _over_the_cap(root / "etc/ld.so.cache", Path("/etc/ld.so.cache").read_bytes(), limits.MAX_LD_SO_CACHE_BYTES)
    doc = scan_root(root)
    assert doc["target"]["loader"]["cache"] == "ld.so.conf"
    errs = [e["message"] for e in doc["errors"] if e["path"] == "/etc/ld.so.cache"]
    want = f"limit MAX_LD_SO_CACHE_BYTES ({limits.MAX_LD_SO_CACHE_BYTES:,}) reached: not read; using ld.so.conf instead"
    assert errs == [want], errs
    assert {e["stage"] for e in doc["errors"] if e["path"] == "/etc/ld.so.cache"} == {"linkage"}


def test_interpreter_over_its_cap(rpmroot: Path, tmp_path: Path) -> None:
    """The target's ld.so (the real one, then a hole past MAX_INTERPRETER_BYTES): its
    search folders are not taken from its first 64 MiB as if that were all of it; an error
    record names the cap and the distribution's usual folders stand in."""
    root = tmp_path / "root"
    shutil.copytree(rpmroot, root, symlinks=True)
    ldso = root / "usr/lib64/ld-linux-x86-64.so.2"
    _over_the_cap(ldso, ldso.read_bytes(), limits.MAX_INTERPRETER_BYTES)
    doc = scan_root(root)
    interps = {i["path"]: i for i in doc["target"]["loader"]["interpreters"]}
    assert interps["/lib64/ld-linux-x86-64.so.2"]["system_dirs_from"] == "fallback"
    errs = [e["message"] for e in doc["errors"] if e["path"] == "/lib64/ld-linux-x86-64.so.2"]
    assert f"limit MAX_INTERPRETER_BYTES ({limits.MAX_INTERPRETER_BYTES:,}) reached: the interpreter was not " \
           "read; its search folders were guessed" in errs, errs


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_musl_path_file_that_is_not_a_file(kind: str, rpmroot: Path, tmp_path: Path) -> None:
    """/etc/ld-musl-x86_64.path a FIFO or a device: never opened, musl's built-in path
    stands in, and the loader's error records say so (they were dropped)."""
    need_mknod(kind)
    root = tmp_path / "root"
    shutil.copytree(rpmroot, root, symlinks=True)
    (root / "lib/ld-musl-x86_64.so.1").symlink_to("/usr/lib64/ld-linux-x86-64.so.2")
    node(root / "etc/ld-musl-x86_64.path", kind)
    from scanner.inventory.census import census_file
    from scanner.linkage.loader import Loader

    fs = DirectoryRoot(root)
    (rec,) = census_file(fs, "/usr/bin/hello")
    loader = Loader(fs, {rec.path: rec}, lambda p: census_file(fs, p))
    cfg = loader.config_for("/lib/ld-musl-x86_64.so.1", rec)
    assert cfg.flavour == "musl" and cfg.system_dirs == ("/lib", "/usr/local/lib", "/usr/lib")
    name = "FIFO" if kind == "fifo" else "character device"
    assert [(e.path, e.stage, e.message) for e in loader.errors.values()] == [
        ("/etc/ld-musl-x86_64.path", "linkage",
         f"cannot read: not a regular file: {name}; using musl's built-in path")]
