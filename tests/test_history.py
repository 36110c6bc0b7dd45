"""The scan history (scan --history DB, history list, history show) in SQLite and in a real
PostgreSQL server: Debian's postgresql package, a cluster made with initdb in a temporary
folder, started on 127.0.0.1 by pg_ctl and stopped after the session. Each test gets a
fresh database (a new SQLite file, or CREATE DATABASE on the server)."""

from __future__ import annotations

import copy
import gzip
import itertools
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from scanner import history, result as resultmod

from conftest import CACHE, is_root, load_builder, scan_root

try:  # the libvirt test:/// node of the domain tests, for the per-domain history
    import libvirt  # noqa: F401

    from test_domains import node  # noqa: F401 - a fixture
    HAVE_LIBVIRT = True
except ImportError:
    HAVE_LIBVIRT = False


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    """The single ``flightcheck: error:`` line of a failed command (and no traceback)."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flightcheck: error: "), r.stderr
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found and (found[-1].parent / "initdb").exists() else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 (trust authentication for the role flightcheck);
    yields its URL without a database name."""
    pytest.importorskip("psycopg", reason="needs psycopg 3 (pip install 'flightcheck[postgresql]'; "
                                          "the test extra has it)")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("needs PostgreSQL's server programs /usr/lib/postgresql/VERSION/bin/{initdb,pg_ctl} "
                    "(Debian: postgresql, which make installs)")
    if is_root():
        # postgres refuses to run as root: run it as the postgres user Debian's package creates
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and PostgreSQL refuses root: needs the 'postgres' system user "
                        "(Debian's postgresql package creates it)")
        runuser = shutil.which("runuser") or shutil.which("setpriv")
        if runuser is None:
            pytest.skip("running as root: needs runuser or setpriv (util-linux) to start PostgreSQL as 'postgres'")
        prefix = ([runuser, "-u", "postgres", "--"] if runuser.endswith("runuser") else
                  [runuser, f"--reuid={pg_user.pw_uid}", f"--regid={pg_user.pw_gid}", "--init-groups"])
    else:
        pg_user, prefix = None, []  # any other user may run its own server
    base = Path(tempfile.mkdtemp(prefix="flightcheck-pg-"))
    if pg_user is not None:
        os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    data, log, port = base / "data", base / "server.log", _free_port()

    def pg(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=base, timeout=120)
        if check and r.returncode != 0:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(f"{' '.join(args[:1])} failed ({r.returncode}): {r.stdout}{r.stderr}{server_log}")
        return r

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "flightcheck", "--auth=trust", "--no-locale",
       "-E", "UTF8", "--no-sync")
    started = False
    try:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
           "-o", f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off", "start")
        started = True
        yield f"postgresql+psycopg://flightcheck@127.0.0.1:{port}"
    finally:
        if started:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


_numbers = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def history_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty history: an SQLite path (in a folder that does not exist yet), or a new
    database on the PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "not-yet" / "history.sqlite")
    return new_database(request.getfixturevalue("postgres"))


def new_database(server: str, prefix: str = "history") -> str:
    """A new, empty database on the PostgreSQL server ``server``; its URL."""
    name = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return f"{server}/{name}"


@pytest.fixture(scope="session")
def small_root(rpmroot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second target: one real ELF program, no package database."""
    root = tmp_path_factory.mktemp("small") / "root"
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(rpmroot / "usr/bin/hello", root / "usr/bin/hello")
    return root


@pytest.fixture(scope="session")
def small_result(small_root: Path, rpmroot_result: dict[str, Any]) -> dict[str, Any]:
    """Scanned after the fixture root (so its start time is the same or later)."""
    return scan_root(small_root)


def test_store_and_list_newest_first(history_db: str, rpmroot_result: dict[str, Any],
                                     small_result: dict[str, Any]) -> None:
    old = copy.deepcopy(rpmroot_result)  # an audit from long ago, stored last
    old["scan"]["started"], old["scan"]["finished"] = "2020-03-01T10:00:00+00:00", "2020-03-01T10:00:05+00:00"
    ids = [history.store(doc, history_db) for doc in (rpmroot_result, small_result, old)]
    assert len(set(ids)) == 3

    rows = history.list_scans(history_db)
    assert [r.id for r in rows] == [ids[1], ids[0], ids[2]]  # by start time, newest first
    fixture, small = rows[1], rows[0]
    assert fixture.target == rpmroot_result["target"]["root"] and small.target == small_result["target"]["root"]
    assert fixture.kind == "directory" and fixture.verdict == "fail"  # the proprietary app links GPL code
    assert small.verdict == small_result["policy"]["verdict"]
    summary = rpmroot_result["summary"]
    assert (fixture.critical, fixture.high, fixture.medium, fixture.low) == tuple(
        summary["findings"][s] for s in ("critical", "high", "medium", "low"))
    assert (fixture.packages, fixture.elves, fixture.errors) == (summary["packages"], summary["elves"],
                                                                  summary["errors"])
    assert fixture.started == rpmroot_result["scan"]["started"] and fixture.tool_version == "0.1.0"
    assert fixture.schema == resultmod.SCHEMA_ID

    only = history.list_scans(history_db, target=rpmroot_result["target"]["root"])
    assert [r.id for r in only] == [ids[0], ids[2]]
    assert history.list_scans(history_db, target="/nowhere") == []
    assert [r.id for r in history.list_scans(history_db, limit=1)] == [ids[1]]
    assert history.load(history_db, ids[0]) == rpmroot_result
    assert history.load(history_db, ids[2])["scan"]["started"].startswith("2020-")


def test_documents_are_stored_gzip_compressed(history_db: str, rpmroot_result: dict[str, Any]) -> None:
    scan_id = history.store(rpmroot_result, history_db)
    engine = sa.create_engine(history.url_for(history_db))
    with engine.connect() as conn:
        blob = conn.execute(sa.text("SELECT document FROM flightcheck_scans WHERE id = :id"), {"id": scan_id}).scalar()
        indexes = {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes("flightcheck_scans")}
    engine.dispose()
    blob = bytes(blob)
    text = json.dumps(rpmroot_result, ensure_ascii=False, separators=(",", ":")).encode()
    assert blob[:2] == b"\x1f\x8b" and json.loads(gzip.decompress(blob)) == rpmroot_result
    assert len(blob) * 4 < len(text)
    assert ["target", "started"] in indexes.values()


def test_cli_list_and_filter(history_db: str, rpmroot_result: dict[str, Any], small_result: dict[str, Any]) -> None:
    a = history.store(rpmroot_result, history_db)
    b = history.store(small_result, history_db)
    r = run("history", "list", "--history", history_db)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    row_a = next(line for line in lines if rpmroot_result["target"]["root"] in line)
    row_b = next(line for line in lines if small_result["target"]["root"] in line)
    assert lines.index(row_b) < lines.index(row_a)  # newest first
    assert row_a.split()[0] == str(a) and "fail" in row_a.split() and "directory" in row_a.split()
    failing = "/".join(str(rpmroot_result["summary"]["findings"][s]) for s in ("critical", "high", "medium", "low"))
    assert failing in row_a.split()

    r = run("history", "list", "--history", history_db, "--json", "--target", small_result["target"]["root"])
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["id"] for row in rows] == [b] and rows[0]["elves"] == small_result["summary"]["elves"]

    r = run("history", "list", "--history", history_db, "--target", "/nowhere")
    assert r.returncode == 0 and "no scans of /nowhere" in r.stdout


def test_cli_show_round_trips_the_result(history_db: str, rpmroot_result: dict[str, Any], tmp_path: Path) -> None:
    scan_id = history.store(rpmroot_result, history_db)
    r = run("history", "show", str(scan_id), "--history", history_db, "-o", str(tmp_path / "again"),
            "--format", "html,sarif")
    assert r.returncode == 0, r.stderr
    shown = (tmp_path / "again/result.json").read_bytes()
    original = resultmod.write(rpmroot_result, tmp_path / "original").read_bytes()
    assert shown == original and json.loads(shown) == rpmroot_result
    assert (tmp_path / "again/report.html").stat().st_size > 0 and (tmp_path / "again/result.sarif").exists()
    # the summary, as the scan printed it
    assert f"scan {scan_id}: started {rpmroot_result['scan']['started']}" in r.stdout
    assert "verdict: FAIL" in r.stdout and "ELF files" in r.stdout and "report: " in r.stdout

    r = run("history", "show", str(scan_id), "--history", history_db)  # no -o: only the summary
    assert r.returncode == 0 and "verdict: FAIL" in r.stdout and f"result: scan {scan_id} in history" in r.stdout


def test_cli_scan_stores_its_result(history_db: str, rpmroot: Path, tmp_path: Path) -> None:
    r = run("scan", str(rpmroot), "-o", str(tmp_path / "out"), "-j", "2", "--history", history_db)
    assert r.returncode == 1, r.stderr  # the policy fails, as without --history
    stored = [line for line in r.stdout.splitlines() if line.startswith("history: stored as ")]
    assert len(stored) == 1
    scan_id = int(stored[0].rsplit(" ", 1)[1])
    written = json.loads((tmp_path / "out/result.json").read_text())
    assert history.load(history_db, scan_id) == written
    assert [row.id for row in history.list_scans(history_db, target=str(rpmroot))] == [scan_id]

    r = run("scan", str(rpmroot), "-o", str(tmp_path / "quiet"), "-q", "--history", history_db)
    assert r.returncode == 1 and r.stdout == ""
    assert len(history.list_scans(history_db, target=str(rpmroot))) == 2


def test_cli_repo_stores_its_result(rpmroot: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "h.sqlite")
    r = run("repo", str(tmp_path / "nope"), "-o", str(tmp_path / "out"), "--history", db)
    assert r.returncode == 2 and not Path(db).exists()  # nothing read, nothing stored
    repos = load_builder("build_repo").build_repo(CACHE, rpmroot.parent / "rpms")
    r = run("repo", str(repos / "repo"), "-o", str(tmp_path / "out"), "--history", db)
    assert r.returncode in (0, 1), r.stderr
    [row] = history.list_scans(db)
    assert row.kind == "repository" and row.packages > 0 and f"history: stored as {row.id}" in r.stdout


def test_missing_id_is_one_line(history_db: str, rpmroot_result: dict[str, Any]) -> None:
    history.store(rpmroot_result, history_db)
    line = one_line_error(run("history", "show", "999", "--history", history_db))
    assert "no scan 999" in line
    with pytest.raises(history.HistoryError, match="no scan 999"):
        history.load(history_db, 999)


def test_a_file_that_is_not_a_database(tmp_path: Path, rpmroot: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(8192))
    for args in (("history", "list"), ("history", "show", "1")):
        assert "not a database" in one_line_error(run(*args, "--history", str(junk)))
    # the scan's result is written all the same, then the history fails: exit 2
    r = run("scan", str(rpmroot), "-o", str(tmp_path / "out"), "--history", str(junk))
    assert "not a database" in one_line_error(r)
    assert json.loads((tmp_path / "out/result.json").read_text())["schema"] == resultmod.SCHEMA_ID
    assert "verdict: FAIL" in r.stdout and "history: stored" not in r.stdout

    missing = tmp_path / "none.sqlite"
    assert "no history at" in one_line_error(run("history", "list", "--history", str(missing)))
    assert not missing.exists()  # reading never creates a database


def test_another_table_of_that_name(tmp_path: Path, rpmroot_result: dict[str, Any]) -> None:
    db = tmp_path / "other.sqlite"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE flightcheck_scans (id INTEGER PRIMARY KEY, name TEXT)")
    engine.dispose()
    with pytest.raises(history.HistoryError, match="not a flightcheck history database"):
        history.store(rpmroot_result, db)
    assert "not a flightcheck history" in one_line_error(run("history", "list", "--history", str(db)))


def test_unreachable_postgresql(tmp_path: Path, rpmroot: Path) -> None:
    pytest.importorskip("psycopg", reason="needs psycopg 3 (pip install 'flightcheck[postgresql]')")
    url = f"postgresql://flightcheck:s3cret@127.0.0.1:{_free_port()}/audits"  # nothing listens there
    for args in (("history", "list"), ("history", "show", "1")):
        line = one_line_error(run(*args, "--history", url))
        assert "127.0.0.1" in line and "s3cret" not in line
    r = run("scan", str(rpmroot), "-o", str(tmp_path / "out"), "-q", "--history", url)
    line = one_line_error(r)
    assert "refused" in line.lower() and "s3cret" not in line
    assert (tmp_path / "out/result.json").exists()


def test_default_database(tmp_path: Path, rpmroot_result: dict[str, Any]) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "FLIGHTCHECK_HISTORY": ""}
    default = tmp_path / "data/flightcheck/history.sqlite"
    assert str(default) in one_line_error(run("history", "list", env=env))
    history.store(rpmroot_result, default)
    r = run("history", "list", "--json", env=env)
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1
    # $FLIGHTCHECK_HISTORY wins over the XDG folder
    other = tmp_path / "elsewhere.sqlite"
    history.store(rpmroot_result, other)
    history.store(rpmroot_result, other)
    r = run("history", "list", "--json", env={**env, "FLIGHTCHECK_HISTORY": str(other)})
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 2


def test_database_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert history.url_for("h.sqlite").render_as_string() == f"sqlite:///{tmp_path}/h.sqlite"
    assert history.url_for("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert history.describe("postgresql+psycopg://u:pw@h:5433/db") == "postgresql+psycopg://u:***@h:5433/db"
    with pytest.raises(history.HistoryError, match="no SQLAlchemy dialect"):
        history.list_scans("nosuchdialect://x/y")


@pytest.mark.skipif(not HAVE_LIBVIRT, reason="needs libvirt-python (make installs it with Debian's libvirt-dev)")
def test_each_domain_is_stored(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    uri = request.getfixturevalue("node")
    db = str(tmp_path / "h.sqlite")
    r = run("scan", "--all-domains", "--allow-running", "-c", uri, "-o", str(tmp_path / "out"), "--history", db)
    assert r.returncode in (0, 1), r.stderr
    rows = history.list_scans(db)
    assert sorted(row.target for row in rows) == ["db", "web"] and {row.kind for row in rows} == {"domain"}
    assert r.stdout.count("history: stored as ") == 2
    for row in rows:
        doc = json.loads((tmp_path / "out" / row.target / "result.json").read_text())
        assert history.load(db, row.id) == doc
