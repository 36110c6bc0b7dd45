"""Scan history: every result stored with its target, time and verdict, in SQLite or PostgreSQL.

``scan --history DB`` stores a result after it is written; ``flightcheck history list`` and
``history show ID`` read them back, so an old audit can be listed, compared and rendered again.

DB is a path (an SQLite file, created with its folders when first written) or a SQLAlchemy
URL such as ``postgresql+psycopg://flightcheck@db.example.org/audits`` (``postgresql://``
means the same: psycopg 3 is the driver, the ``flightcheck[postgresql]`` extra). SQLAlchemy
Core does the SQL for both; the table is created when missing.

One table, ``flightcheck_scans``: a row per stored result with the columns a listing needs
(target, kind, times, verdict, failing findings by severity, counts) and the whole result
document, gzip-compressed (a host's result is megabytes of JSON that compresses about ten to
one). Every failure (a server that does not answer, a file that is not a database, a table of
another shape, an unknown id) is a :class:`HistoryError` with one line of text.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from scanner.result import SCHEMA_ID

TABLE = "flightcheck_scans"
SEVERITY_COLUMNS = ("critical", "high", "medium", "low")
COMPRESS_LEVEL = 6
CONNECT_TIMEOUT = 10  # seconds, for a server that does not answer

metadata = sa.MetaData()
scans = sa.Table(
    TABLE, metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("started", sa.Text, nullable=False),  # ISO 8601, UTC, as in the result
    sa.Column("finished", sa.Text),
    sa.Column("verdict", sa.Text, nullable=False),
    sa.Column("tool_version", sa.Text),
    *(sa.Column(sev, sa.Integer, nullable=False, default=0) for sev in SEVERITY_COLUMNS),
    sa.Column("packages", sa.Integer, nullable=False, default=0),
    sa.Column("elves", sa.Integer, nullable=False, default=0),
    sa.Column("errors", sa.Integer, nullable=False, default=0),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("document", sa.LargeBinary, nullable=False),  # result.json, gzip
    sa.Index(f"{TABLE}_target_started", "target", "started"),
    sqlite_autoincrement=True,  # ids are never reused, even after rows are deleted
)
LISTED = [c for c in scans.columns if c.name != "document"]


class HistoryError(Exception):
    """The history database could not be used; the message is one line."""


@dataclass(frozen=True)
class ScanRow:
    """One stored scan, as listed (without its document)."""

    id: int
    target: str
    kind: str
    started: str
    finished: str | None
    verdict: str
    tool_version: str | None
    critical: int
    high: int
    medium: int
    low: int
    packages: int
    elves: int
    errors: int
    schema: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_db() -> str:
    """``$FLIGHTCHECK_HISTORY``, else ``${XDG_DATA_HOME:-~/.local/share}/flightcheck/history.sqlite``."""
    if os.environ.get("FLIGHTCHECK_HISTORY"):
        return os.environ["FLIGHTCHECK_HISTORY"]
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "flightcheck", "history.sqlite")


def url_for(db: str | os.PathLike[str]) -> URL:
    """A path becomes ``sqlite:///ABSOLUTE_PATH``; a string holding ``://`` is a SQLAlchemy URL
    (``postgresql://`` gets the psycopg 3 driver)."""
    text = os.fspath(db)
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
    try:
        url = sa.make_url(text)
    except ArgumentError as exc:
        raise HistoryError(f"not a database path or URL: {text} ({exc})") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def describe(db: str | os.PathLike[str]) -> str:
    """The database as it is safe to print: its path, or its URL without a password."""
    try:
        url = url_for(db)
    except HistoryError:
        return os.fspath(db)
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def _one_line(exc: BaseException) -> str:
    """A database error's own message (the DB-API's, without SQLAlchemy's SQL echo and
    links), on one line."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


@contextmanager
def _engine(db: str | os.PathLike[str], create: bool) -> Iterator[Engine]:
    """An engine on ``db``, disposed afterwards. ``create``: make the SQLite file's folders."""
    url = url_for(db)
    where = describe(db)
    path = _sqlite_file(url)
    if path is not None:
        if path.is_dir():
            raise HistoryError(f"history {where}: is a folder, not a database file")
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"history {where}: cannot create {path.parent}: {exc.strerror or exc}") from exc
        elif not path.exists():
            raise HistoryError(f"no history at {where} (nothing stored yet: scan --history {where})")
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    try:
        engine = sa.create_engine(url, connect_args=connect_args)
    except NoSuchModuleError:
        raise HistoryError(f"history {where}: no SQLAlchemy dialect {url.drivername}") from None
    except ImportError as exc:
        extra = " (pip install 'flightcheck[postgresql]')" if url.get_backend_name() == "postgresql" else ""
        raise HistoryError(f"history {where}: the database driver is not installed: {exc}{extra}") from exc
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise HistoryError(f"history {where}: {_one_line(exc)}") from exc
    finally:
        engine.dispose()


def _check_shape(conn: sa.Connection, where: str) -> bool:
    """Whether the table exists; raises when it exists with another shape."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(TABLE):
        return False
    have = {c["name"] for c in inspector.get_columns(TABLE)}
    missing = [c.name for c in scans.columns if c.name not in have]
    if missing:
        raise HistoryError(f"history {where}: not a flightcheck history database "
                           f"(table {TABLE} has no column {', '.join(missing)})")
    return True


def _target_name(doc: dict[str, Any]) -> str:
    target = doc.get("target") or {}
    if target.get("kind") == "domain" and (target.get("domain") or {}).get("name"):
        hypervisor = (target["domain"].get("hypervisor") or {}).get("name")  # a fleet scan: HYPERVISOR/DOMAIN
        return f"{hypervisor}/{target['domain']['name']}" if hypervisor else str(target["domain"]["name"])
    return str(target.get("root") or "?")


def row_for(doc: dict[str, Any]) -> dict[str, Any]:
    """The columns stored for a result document (the document itself compressed)."""
    summary = doc.get("summary") or {}
    failing = summary.get("findings") or {}
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return {
        "target": _target_name(doc),
        "kind": str((doc.get("target") or {}).get("kind") or "?"),
        "started": str((doc.get("scan") or {}).get("started") or ""),
        "finished": (doc.get("scan") or {}).get("finished"),
        "verdict": str((doc.get("policy") or {}).get("verdict") or summary.get("verdict") or "?"),
        "tool_version": (doc.get("tool") or {}).get("version"),
        **{sev: int(failing.get(sev, 0)) for sev in SEVERITY_COLUMNS},
        "packages": int(summary.get("packages", 0)),
        "elves": int(summary.get("elves", 0)),
        "errors": int(summary.get("errors", 0)),
        "schema": str(doc.get("schema") or ""),
        "document": gzip.compress(body, compresslevel=COMPRESS_LEVEL, mtime=0),
    }


def store(doc: dict[str, Any], db: str | os.PathLike[str]) -> int:
    """Store a result document; its id in the history."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise HistoryError(f"not a {SCHEMA_ID} document")
    row = row_for(doc)
    where = describe(db)
    with _engine(db, create=True) as engine:
        try:
            metadata.create_all(engine, checkfirst=True)
        except SQLAlchemyError as exc:
            # another process may have created it at the same moment; else it is the real problem
            with engine.connect() as conn:
                if not _check_shape(conn, where):
                    raise HistoryError(f"history {where}: {_one_line(exc)}") from exc
        with engine.begin() as conn:
            _check_shape(conn, where)
            key = conn.execute(scans.insert().values(**row)).inserted_primary_key
            assert key is not None  # an INSERT of one row has its key
            new_id = key[0]
    return int(new_id)


def list_scans(db: str | os.PathLike[str], target: str | None = None, limit: int | None = None) -> list[ScanRow]:
    """The stored scans, newest first (optionally of one target only)."""
    with _engine(db, create=False) as engine, engine.connect() as conn:
        if not _check_shape(conn, describe(db)):
            return []
        query = sa.select(*LISTED).order_by(scans.c.started.desc(), scans.c.id.desc())
        if target is not None:
            query = query.where(scans.c.target == target)
        if limit is not None:
            query = query.limit(limit)
        return [ScanRow(**row._asdict()) for row in conn.execute(query)]


def get(db: str | os.PathLike[str], scan_id: int) -> tuple[ScanRow, dict[str, Any]]:
    """One stored scan: its row and its result document."""
    where = describe(db)
    with _engine(db, create=False) as engine, engine.connect() as conn:
        row = None
        if _check_shape(conn, where):
            row = conn.execute(sa.select(*LISTED, scans.c.document).where(scans.c.id == scan_id)).first()
        if row is None:
            raise HistoryError(f"no scan {scan_id} in history {where} (see: flightcheck history list)")
    fields = row._asdict()
    blob = fields.pop("document")
    try:
        doc = json.loads(gzip.decompress(blob).decode("utf-8"))
    except (OSError, EOFError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise HistoryError(f"scan {scan_id} in history {where}: its stored document is damaged ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise HistoryError(f"scan {scan_id} in history {where}: not a {SCHEMA_ID} document")
    return ScanRow(**fields), doc


def load(db: str | os.PathLike[str], scan_id: int) -> dict[str, Any]:
    """A stored result document by id."""
    return get(db, scan_id)[1]
