"""``flightcheck repo``: the license inventory of a YUM/DNF repository.

Real repositories (fixtures/build_repo.py: rpmbuild + createrepo_c) served over HTTP on
127.0.0.1 by two real servers the tests start and stop: nginx (range requests, autoindex
pages, an access log that shows every request made) and Python's http.server (no range
support, its own listing pages). ``rpm -qp`` on the package files is the oracle for
names, versions and License tags.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner import result as resultmod
from scanner.repo import RepoError, inventory
from scanner.repo.sources import HttpSource

from conftest import CACHE, load_builder


@pytest.fixture(scope="session")
def repos(rpmroot: Path) -> Path:
    return load_builder("build_repo").build_repo(CACHE, rpmroot.parent / "rpms")


@pytest.fixture(scope="session")
def manifest(repos: Path) -> list[dict]:
    return json.loads((repos / "packages.json").read_text())


@pytest.fixture(scope="session")
def webroot(repos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the servers serve: the fixture repositories (linked) and a folder for each
    test's own variants."""
    root = tmp_path_factory.mktemp("webroot")
    for child in repos.iterdir():
        if child.is_dir():
            (root / child.name).symlink_to(child)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def nginx(webroot: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """nginx on 127.0.0.1 (autoindex on, ranges as nginx always serves them); yields the
    base URL and its access log."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        pytest.skip("needs nginx (Debian: nginx-light), which make installs")
    work = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    log = work / "access.log"
    temps = " ".join(f"{k}_temp_path {work}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(f"""
daemon off; master_process off; worker_processes 1;
error_log {work}/error.log; pid {work}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log {log};
  {temps}
  types {{ text/html html; application/xml xml; application/x-rpm rpm; }}
  default_type application/octet-stream;
  server {{ listen 127.0.0.1:{port}; root {webroot}; autoindex on; }}
}}
""")
    proc = subprocess.Popen([exe, "-c", str(work / "nginx.conf"), "-p", str(work)], stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"nginx did not start: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(10)


class _NoRanges(http.server.SimpleHTTPRequestHandler):
    """Python's own file server: whole files only (it ignores Range), its own listings."""

    requests: list[str] = []

    def log_message(self, fmt: str, *args: object) -> None:
        type(self).requests.append(self.path)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/redirector/"):  # every file redirects outside the repository
            self.send_response(302)
            self.send_header("Location", "/outside/evil-1.0-1.noarch.rpm")
            self.end_headers()
            return
        super().do_GET()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up after the header it needed is the point, not an error."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def plainhttp(webroot: Path) -> Iterator[str]:
    handler = lambda *a, **kw: _NoRanges(*a, directory=str(webroot), **kw)  # noqa: E731
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def listing(doc: dict) -> list[tuple]:
    """What must agree however the repository is read."""
    return sorted((p["name"], p["epoch"], p["version"], p["release"], p["arch"], p["license_raw"],
                   p["license_spdx"], p["license_status"], p["license_category"]) for p in doc["packages"])


def oracle(manifest: list[dict]) -> list[tuple]:
    return sorted((m["name"], m["epoch"], m["version"], m["release"], m["arch"], m["license"]) for m in manifest)


def _requests(log: Path, since: int) -> list[str]:
    lines = log.read_text().splitlines()[since:]
    return [line.split('"')[1].split()[1] for line in lines if '"' in line]


def _log_len(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_three_ways_give_the_same_inventory(repos: Path, manifest: list[dict], nginx: tuple[str, Path]) -> None:
    """repodata over HTTP, the autoindex pages of a repository without repodata over HTTP,
    and the same folder read locally: the same packages and licenses, and what rpm -qp
    says of the package files."""
    base, log = nginx
    by_repodata = inventory(f"{base}/repo/")
    by_index = inventory(f"{base}/norepodata/")
    by_folder = inventory(str(repos / "norepodata"))
    assert by_repodata["target"]["repository"]["method"] == "repodata"
    assert by_index["target"]["repository"]["method"] == "index"
    assert by_folder["target"]["repository"]["method"] == "folder"
    assert listing(by_repodata) == listing(by_index) == listing(by_folder)
    assert [row[:6] for row in listing(by_repodata)] == oracle(manifest)
    assert len(by_repodata["packages"]) == 17 and not by_repodata["errors"]
    for doc in (by_repodata, by_index, by_folder):
        resultmod.validate(doc)
        assert doc["target"]["kind"] == "repository" and doc["elves"] == []
    lic = {p["name"]: p for p in by_repodata["packages"]}
    assert lic["agpl-server"]["license_spdx"] == "AGPL-3.0-or-later"
    assert lic["firmware-blob"]["epoch"] == 2
    assert lic["mystery-lib"]["license_status"] == "unknown"
    # the policy gate is the system scan's: AGPL is denied by default
    failing = {(f["rule"], f["subject"]) for f in by_repodata["findings"] if f["state"] == "fail"}
    assert ("FC-LIC-001", "rpm/agpl-server-3.1-2.noarch") in failing
    assert by_repodata["policy"]["verdict"] == "fail"
    # package rules only, and FC-ERR-001: an unreadable .rpm or metadata file reaches the gate
    assert {r["id"] for r in by_repodata["rules"]} <= {"FC-LIC-001", "FC-LIC-002", "FC-LIC-004", "FC-LIC-005",
                                                       "FC-LIC-006", "FC-ERR-001"}
    assert [f["state"] for f in by_repodata["findings"] if f["rule"] == "FC-ERR-001"] == ["pass"]


def test_headers_come_by_range_requests(repos: Path, nginx: tuple[str, Path]) -> None:
    """nginx honours ranges: each rpm costs one 64 KiB range, the one with a header past
    64 KiB a second; far fewer bytes than the packages hold."""
    base, log = nginx
    start = _log_len(log)
    doc = inventory(f"{base}/norepodata/")
    traffic = doc["target"]["repository"]["traffic"]
    assert traffic["range_requests"] == 17 + 1 and traffic["full_requests"] == 0
    total = sum(p.stat().st_size for p in (repos / "norepodata").rglob("*.rpm"))
    assert traffic["bytes"] < total
    assert all(path.startswith("/norepodata/") for path in _requests(log, start))


def test_server_without_ranges(repos: Path, plainhttp: str, manifest: list[dict]) -> None:
    """Python's http.server ignores Range: each file comes whole, is read only up to the
    end of its header, and the inventory is the same."""
    doc = inventory(f"{plainhttp}/norepodata/")
    traffic = doc["target"]["repository"]["traffic"]
    assert traffic["full_requests"] == 17 and traffic["range_requests"] == 0
    assert [row[:6] for row in listing(doc)] == oracle(manifest)


@pytest.mark.parametrize("variant", ["repo-xz", "repo-zst"])
def test_compressed_metadata(variant: str, repos: Path, nginx: tuple[str, Path]) -> None:
    base, _log = nginx
    want = listing(inventory(str(repos / "repo")))
    doc = inventory(f"{base}/{variant}/")
    assert doc["target"]["repository"]["primary"].endswith(".xz" if variant == "repo-xz" else ".zst")
    assert listing(doc) == want


def test_filelists(repos: Path) -> None:
    doc = inventory(str(repos / "repo"), _opts(filelists=True))
    files = {p["name"]: p["files"] for p in doc["packages"]}
    assert files["bigheader"] == 3001 and files["hello"] > 0  # 3000 files and their folder
    folder = inventory(str(repos / "norepodata"), _opts(filelists=True))
    assert {p["name"]: p["files"] for p in folder["packages"]} == files


def _opts(**kw: object):  # type: ignore[no-untyped-def]
    from scanner.repo import RepoOptions

    return RepoOptions(**kw)  # type: ignore[arg-type]


def test_missing_and_truncated_primary(repos: Path, nginx: tuple[str, Path]) -> None:
    """repomd.xml naming a primary that is not there, a primary.xml.gz cut in half: a clear
    error record, and the inventory is taken from the package files instead."""
    base, _log = nginx
    want = listing(inventory(str(repos / "repo")))
    for variant, message in (("missing-primary", "which is not there"),
                             ("truncated-primary", "cannot be decompressed")):
        for spec in (str(repos / variant), f"{base}/{variant}/"):
            doc = inventory(spec)
            assert doc["target"]["repository"]["method"] in ("folder", "index")
            assert any(message in e["message"] for e in doc["errors"]), doc["errors"]
            assert listing(doc) == want


def test_hostile_index_page(nginx: tuple[str, Path]) -> None:
    """javascript:, data:, file:, other hosts, ../../ and percent-encoded parents: all
    skipped and said; only the repository's own prefix is ever requested."""
    base, log = nginx
    start = _log_len(log)
    doc = inventory(f"{base}/hostile-index/")
    assert [p["name"] for p in doc["packages"]] == ["mystery-lib"]
    skipped = doc["target"]["repository"]["traffic"]["skipped_links"]
    for bad in ("javascript:", "http://evil.invalid", "//evil.invalid", "file:", "data:", "../outside",
                "../../outside", "%2e%2e/outside", "/outside/", "sub/%2e%2e/%2e%2e/outside"):
        assert any(s.startswith(bad) for s in skipped), bad
    requested = _requests(log, start)
    assert requested and all(path.startswith("/hostile-index/") for path in requested), requested
    assert not any("outside" in path or "evil" in path for path in requested)


def test_redirect_outside_is_refused(plainhttp: str, tmp_path: Path) -> None:
    """A server that redirects every request outside the repository's prefix: the
    redirect is refused, never followed, and the command says so in one line."""
    _NoRanges.requests.clear()
    r = subprocess.run([sys.executable, "-m", "scanner", "repo", f"{plainhttp}/redirector/", "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "outside the repository" in r.stderr and "Traceback" not in r.stderr
    assert not any(p.startswith("/outside") for p in _NoRanges.requests)


def test_repomd_pointing_outside(repos: Path, webroot: Path, nginx: tuple[str, Path], tmp_path: Path) -> None:
    """A repomd.xml whose primary location climbs out of the repository (../../): refused
    locally and over HTTP, never fetched."""
    base, log = nginx
    variant = webroot / "escape"
    if not variant.exists():
        shutil.copytree(repos / "repo", variant)
        md = variant / "repodata" / "repomd.xml"
        text = md.read_text()
        primary = text.split('<data type="primary">')[1].split('href="')[1].split('"')[0]
        md.write_text(text.replace(f'href="{primary}"', 'href="../../outside/evil-1.0-1.noarch.rpm"'))
    start = _log_len(log)
    for spec in (str(variant), f"{base}/escape/"):
        doc = inventory(spec)
        assert any("outside the repository" in e["message"] for e in doc["errors"]), doc["errors"]
        assert len(doc["packages"]) == 17  # read from the package files instead
    assert not any("outside" in path for path in _requests(log, start))


def test_broken_package_files(repos: Path, webroot: Path, nginx: tuple[str, Path]) -> None:
    """Random bytes named .rpm, an rpm cut inside its header, a header claiming 2^24
    entries: one error record each; the other packages are read."""
    base, _log = nginx
    variant = webroot / "broken"
    if not variant.exists():
        shutil.copytree(repos / "norepodata", variant)
        rnd = random.Random(7)
        (variant / "garbage-1-1.noarch.rpm").write_bytes(bytes(rnd.randrange(256) for _ in range(4096)))
        real = next((repos / "norepodata").rglob("hello-*.rpm")).read_bytes()
        (variant / "truncated-1-1.noarch.rpm").write_bytes(real[:300])
        huge = bytearray(real[:200])
        huge[96 + 8:96 + 12] = (1 << 24).to_bytes(4, "big")
        (variant / "huge-1-1.noarch.rpm").write_bytes(bytes(huge))
    for spec in (str(variant), f"{base}/broken/"):
        doc = inventory(spec)
        errs = {e["path"]: e["message"] for e in doc["errors"]}
        assert "no lead magic" in errs["garbage-1-1.noarch.rpm"]
        assert "truncated" in errs["truncated-1-1.noarch.rpm"]
        assert "claims" in errs["huge-1-1.noarch.rpm"]
        assert len(doc["packages"]) == 17


def test_not_a_repository(tmp_path: Path, nginx: tuple[str, Path]) -> None:
    base, _log = nginx
    r = subprocess.run([sys.executable, "-m", "scanner", "repo", f"{base}/no-such-repo/", "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no repodata/repomd.xml and no index page" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(RepoError, match="not an http"):
        HttpSource("ftp://example.invalid/repo/")
    r = subprocess.run([sys.executable, "-m", "scanner", "repo", str(tmp_path / "missing"), "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not a folder" in r.stderr


def test_cli_reports(repos: Path, nginx: tuple[str, Path], tmp_path: Path) -> None:
    """The same reports as a system scan: HTML, PDF, SPDX (a package per rpm, with its
    download location), SARIF, JUnit; the gate exits 1 on the AGPL package."""
    base, _log = nginx
    r = subprocess.run([sys.executable, "-m", "scanner", "repo", f"{base}/repo/", "-o", str(tmp_path), "-q",
                        "--format", "html,pdf,spdx-json,spdx-tv,sarif,junit"], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    for name in ("result.json", "report.html", "report.pdf", "result.spdx.json", "result.spdx", "result.sarif",
                 "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0, name
    spdx = json.loads((tmp_path / "result.spdx.json").read_text())
    pkgs = {p["name"]: p for p in spdx["packages"]}
    assert pkgs["agpl-server"]["licenseDeclared"] == "AGPL-3.0-or-later"
    # SPDX wants a host name with a top-level domain: an address like 127.0.0.1 is left out
    assert pkgs["agpl-server"]["downloadLocation"] == "NOASSERTION"
    assert "package file Packages/a/agpl-server-3.1-2.noarch.rpm" in pkgs["agpl-server"]["comment"]
    from scanner.reports.spdx.values import download_location as _download

    mirror = {"repository": {"kind": "http", "source": "https://mirror.example.org/fedora/41/"}}
    assert _download(mirror, {"location": "Packages/a/a b.rpm"}) == \
        "https://mirror.example.org/fedora/41/Packages/a/a%20b.rpm"
    assert len(spdx["packages"]) == 17 + 1  # each rpm and the repository itself
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    assert validate_full_spdx_document(parse_file(str(tmp_path / "result.spdx.json"))) == []
    assert "YUM/DNF repository" in (tmp_path / "report.html").read_text()
    r = subprocess.run([sys.executable, "-m", "scanner", "repo", str(repos / "repo"), "-o", str(tmp_path / "b"),
                        "--fail-on", "never"], capture_output=True, text=True)
    assert r.returncode == 0 and "17" in r.stdout and "repodata" in r.stdout


# ---- 60,000 packages ---------------------------------------------------------------------------
LICENSES = ["GPLv2+", "MIT", "ASL 2.0", "BSD", "LGPLv2+", "GPLv3+ and GFDL", "MIT and BSD and ISC", "Public Domain",
            "(GPLv2+ or Artistic) and BSD", "Redistributable, no modification permitted", "MPLv2.0", "zlib",
            "OpenSSL", "Vendor EULA 3", "AGPLv3", "Python", "LGPLv2+ with exceptions", "CC0", "Unlicense", "Boost"]


def _big_repo(folder: Path, count: int) -> None:
    """A repomd.xml and a primary.xml.gz of ``count`` packages, written as a stream."""
    (folder / "repodata").mkdir(parents=True)
    primary = folder / "repodata" / "primary.xml.gz"
    rnd = random.Random(60000)
    with gzip.open(primary, "wt", compresslevel=1) as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" '
                  f'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="{count}">\n')
        for i in range(count):
            name = f"pkg{i:05d}-{rnd.choice(['lib', 'tools', 'devel', 'doc', 'python3'])}"
            lic = rnd.choice(LICENSES)
            desc = "A package of the generated repository. " * rnd.randrange(3, 12)
            out.write(f"""<package type="rpm"><name>{name}</name><arch>x86_64</arch>
<version epoch="0" ver="{rnd.randrange(1, 9)}.{rnd.randrange(30)}" rel="{rnd.randrange(1, 5)}.fc41"/>
<checksum type="sha256" pkgid="YES">{hashlib.sha256(name.encode()).hexdigest()}</checksum>
<summary>{name}</summary><description>{desc}</description><packager>Fedora Project</packager>
<url>https://example.invalid/{name}</url><time file="1700000000" build="1700000000"/>
<size package="12345" installed="45678" archive="46000"/><location href="Packages/{name[0]}/{name}.rpm"/>
<format><rpm:license>{lic}</rpm:license><rpm:vendor>Fedora Project</rpm:vendor><rpm:group>Unspecified</rpm:group>
<rpm:buildhost>build.invalid</rpm:buildhost><rpm:sourcerpm>{name}-1-1.src.rpm</rpm:sourcerpm>
<rpm:header-range start="4504" end="12000"/><rpm:provides><rpm:entry name="{name}" flags="EQ" epoch="0" ver="1" rel="1"/>
<rpm:entry name="{name}(x86-64)"/></rpm:provides><rpm:requires><rpm:entry name="libc.so.6()(64bit)"/>
<rpm:entry name="rtld(GNU_HASH)"/></rpm:requires><file>/usr/bin/{name}</file></format></package>
""")
        out.write("</metadata>\n")
    digest = hashlib.sha256(primary.read_bytes()).hexdigest()
    (folder / "repodata" / "repomd.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1</revision>
  <data type="primary"><checksum type="sha256">{digest}</checksum><location href="repodata/primary.xml.gz"/>
  <size>{primary.stat().st_size}</size></data>
</repomd>
""")


def test_sixty_thousand_packages_in_bounded_memory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A generated primary.xml.gz of 60,000 packages (about 90 MB of XML): the whole
    command, result.json included, stays under 300 MB of peak memory."""
    folder = CACHE / "repo-60k"
    if not (folder / "repodata" / "repomd.xml").exists():
        tmp = CACHE / f".repo-60k-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _big_repo(tmp, 60_000)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    out = tmp_path_factory.mktemp("big")
    t0 = time.monotonic()
    # the peak is read by the command's own process at exit (VmHWM of its memory map):
    # a child's ru_maxrss would also count the pages it shared with this big pytest process
    # between fork and exec
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: print('VmHWM', open('/proc/self/status').read().split('VmHWM:')[1].split()[0],"
             " file=sys.stderr))\n"
             "from scanner.cli import main\n"
             f"sys.argv = ['flightcheck', 'repo', {str(folder)!r}, '-o', {str(out)!r}, '-q', '--fail-on', 'never']\n"
             "main()\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    peak_mb = int(r.stderr.split("VmHWM")[1].split()[0]) / 1024
    xml_mb = len(gzip.decompress((folder / "repodata" / "primary.xml.gz").read_bytes())) / 1e6
    print(f"\n60,000 packages ({xml_mb:.0f} MB of primary XML): peak memory {peak_mb:.0f} MB, {seconds:.1f} s")
    doc = json.loads((out / "result.json").read_text())
    assert doc["summary"]["packages"] == 60_000
    assert peak_mb < 300
