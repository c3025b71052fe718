"""Engine construction: the one place that knows SQLite from PostgreSQL at connect time.

SQLite is opened in WAL mode with ``synchronous=NORMAL`` (durable across process crashes,
and commits without an fsync each), foreign keys on, and pysqlite's own transaction
handling turned off so that SQLAlchemy's BEGIN/SAVEPOINT are the ones that run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from labdeck.errors import InvalidParameter

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
    # Checkpoints run on their own thread (Database's checkpointer), never inside a commit.
    "PRAGMA wal_autocheckpoint=0",
)

# The execution option a connection sets to open its transactions with BEGIN IMMEDIATE.
BEGIN_IMMEDIATE = "labdeck_begin_immediate"


def make_engine(url: str, pool_size: int) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, pool_size)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg"))
        return create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, future=True
        )
    raise InvalidParameter(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST/DB"
    )


def _sqlite_engine(url: str, pool_size: int) -> Engine:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InvalidParameter("an in-memory SQLite database cannot be shared between threads; give a file path")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"check_same_thread": False, "timeout": 30},
        future=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: this runs for every transaction, logged metrics included.
        immediate = conn.get_execution_options().get(BEGIN_IMMEDIATE)
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
