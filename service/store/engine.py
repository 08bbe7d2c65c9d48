"""Database engines for SQLite (single node, the default) and PostgreSQL (scale-out).

SQLite runs in WAL mode with a busy timeout, and every transaction starts with ``BEGIN IMMEDIATE`` so that a
writer takes the lock up front instead of failing half-way when a reader upgrades. PostgreSQL connections are
pinged before use so a database restart costs one reconnect, not a crash loop.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 15000
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60000,
}
"""libpq connection parameters (seconds, milliseconds for tcp_user_timeout) unless the URL sets them."""


def create_engine(url: str, *, lock_timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> sa.Engine:
    """An engine for ``url``; creates the parent folder of a SQLite file.

    ``lock_timeout``: seconds a SQLite transaction waits for another process's before failing.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, lock_timeout=lock_timeout)
    if parsed.drivername == "postgresql":
        # Plain postgresql:// means psycopg 3 here, the driver we install.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    # TCP keepalives and a user timeout: a connection that went half-open (a failover, a dropped NAT entry)
    # fails within about a minute instead of hanging the statement, and with it every delivery of its batch.
    # Values in the URL's query take precedence.
    connect_args = {key: value for key, value in POSTGRES_CONNECT_ARGS.items() if key not in parsed.query}
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_recycle=1800, connect_args=connect_args
    )


class _SerialisedConnection(sqlite3.Connection):
    """A SQLite connection whose transactions also hold an exclusive ``flock`` on ``<database>.lock``.

    SQLite makes a writer that finds the database locked poll for it, sleeping 1, 2, 5, 10 … up to 100 ms
    between tries, so two processes taking turns to write (two gunicorn workers) lose milliseconds on every
    hand-over even when the lock was free again after a fraction of one. The file lock is tried far more
    often (``_take_file_lock``), so the next writer goes ahead within a fraction of a millisecond. The lock is
    taken before ``BEGIN IMMEDIATE`` and released after ``COMMIT`` or ``ROLLBACK``; the kernel drops it if the
    process dies. SQLite's own lock
    and busy timeout stay in force for anything that does not take the file lock (an operator's sqlite3 shell).
    """

    lock_path: str | None = None
    lock_timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000
    _lock_file: int | None = None

    def hold_write_lock(self) -> None:
        if self.lock_path is None or self._lock_file is not None:
            return
        try:
            # Read access is all flock needs; 0644 lets a CLI run as another user share the lock.
            descriptor = os.open(self.lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as error:
            raise sqlite3.OperationalError(f"cannot open the lock file {self.lock_path}: {error.strerror}") from error
        try:
            _take_file_lock(descriptor, timeout=self.lock_timeout)
        except BaseException:
            os.close(descriptor)
            raise
        self._lock_file = descriptor

    def release_write_lock(self) -> None:
        descriptor, self._lock_file = self._lock_file, None
        if descriptor is not None:
            os.close(descriptor)  # closing the only descriptor of the lock file releases the lock

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_write_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_write_lock()


def _take_file_lock(descriptor: int, *, timeout: float) -> None:
    """Take an exclusive ``flock``, trying every 0.25 ms for the first 50 ms (a hand-over between writers takes
    a millisecond or two), then every 5 ms; after ``timeout`` seconds fail as SQLite would, "database is
    locked", so a stuck holder costs a 503 rather than a request that never ends."""
    deadline = time.monotonic() + timeout
    fast_until = time.monotonic() + 0.05
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now >= deadline:
            raise sqlite3.OperationalError(f"database is locked (its lock file was held for over {timeout:g} s)")
        time.sleep(0.00025 if now < fast_until else 0.005)


def _sqlite_engine(url: str, database: str | None, *, lock_timeout: float) -> sa.Engine:
    lock_path = None
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        lock_path = f"{database}.lock"
    # One connection per process: SQLite has one writer at a time anyway, and threads queueing for the pool
    # wake as soon as it is free, where threads queueing inside SQLite poll its lock with growing sleeps
    # (1 ms up to 100 ms), which showed as 100 ms p99 latency under load (docs/benchmarks.md).
    engine = sa.create_engine(
        url,
        connect_args={
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
            "factory": _SerialisedConnection,
        },
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
        if isinstance(dbapi_connection, _SerialisedConnection):
            dbapi_connection.lock_path = lock_path
            dbapi_connection.lock_timeout = lock_timeout
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if isinstance(dbapi_connection, _SerialisedConnection):
            try:
                dbapi_connection.hold_write_lock()
            except sqlite3.OperationalError as error:  # raised as SQLAlchemy raises the driver's own errors
                raise sa.exc.DBAPIError.instance(
                    "BEGIN IMMEDIATE", None, error, sqlite3.Error, dialect=connection.dialect
                ) from error
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if isinstance(dbapi_connection, _SerialisedConnection):
                dbapi_connection.release_write_lock()
            raise

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
