"""Database engines for SQLite (single node, the default) and PostgreSQL (scale-out).

SQLite runs in WAL mode with a busy timeout, and every transaction starts with ``BEGIN IMMEDIATE`` so that a
writer takes the lock up front instead of failing half-way when a reader upgrades. PostgreSQL connections are
pinged before use so a database restart costs one reconnect, not a crash loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 15000


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; creates the parent folder of a SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.drivername == "postgresql":
        # Plain postgresql:// means psycopg 3 here, the driver we install.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_recycle=1800)


def _sqlite_engine(url: str, database: str | None) -> sa.Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: SQLite has one writer at a time anyway, and threads queueing for the pool
    # wake as soon as it is free, where threads queueing inside SQLite poll its lock with growing sleeps
    # (1 ms up to 100 ms), which showed as 100 ms p99 latency under load (docs/benchmarks.md).
    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        poolclass=sa.pool.QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # FULL: an acknowledged delivery survives power loss, not only a killed process.
        # Let SQLAlchemy's "begin" event below issue BEGIN itself, instead of pysqlite's deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def prepare_database(engine: sa.Engine) -> None:
    """Bring the schema up to date (idempotent): the migrations, from wherever the database is."""
    from service.store.migrating import upgrade

    upgrade(engine)


def is_reachable(engine: sa.Engine) -> bool:
    """True when a trivial query succeeds."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return False
    return True


def dialect_name(connection: sa.Connection) -> str:
    return connection.dialect.name
