"""Database engines for SQLite (single node, the default) and PostgreSQL (scale-out).

SQLite runs in WAL mode with a busy timeout, and every transaction starts with ``BEGIN IMMEDIATE`` so that a
writer takes the lock up front instead of failing half-way when a reader upgrades. PostgreSQL connections are
pinged before use so a database restart costs one reconnect, not a crash loop.

A SQLite connection remembers which file (device and inode) it opened. Every commit first checks that the
configured path still names that file: a file deleted or replaced under a running process (a restore copied
over it, a volume remounted) would otherwise take commits into a file nobody will ever open again, each one
acknowledged. Such a commit is rolled back and fails, so deliveries get 503, ``/readyz`` fails and the log
says ``database_file_replaced``, until the process is restarted on the right file.

Reads that need no transaction (``/metrics``, the admin API) use ``create_read_engine``: on SQLite, its own
connections, read-only, which in WAL mode never wait for the single writer connection or its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from service.logs import log_event

logger = logging.getLogger(__name__)

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
        return _sqlite_engine(url, lock_timeout=lock_timeout)
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
    database_path: str | None = None
    opened_file: tuple[int, int] | None = None
    """(device, inode) of the file this connection opened."""
    _lock_file: int | None = None

    def remember_file(self, path: str | None) -> None:
        self.database_path = path
        self.opened_file = _file_identity(path) if path else None

    def replaced_file(self) -> str | None:
        """Why the configured path no longer names the file this connection writes to, or None."""
        if self.database_path is None or self.opened_file is None:
            return None
        found = _file_identity(self.database_path)
        if found == self.opened_file:
            return None
        state = "was deleted" if found is None else "was replaced by another file"
        log_event(
            logger,
            "database_file_replaced",
            level=logging.CRITICAL,
            path=self.database_path,
            opened=f"{self.opened_file[0]}:{self.opened_file[1]}",
            found=None if found is None else f"{found[0]}:{found[1]}",
        )
        return (
            f"the database file {self.database_path} {state} while this process had it open; "
            "nothing more is committed until the process is restarted on the right file"
        )

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
            problem = self.replaced_file()
            if problem is not None:
                super().rollback()
                raise sqlite3.OperationalError(problem)
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


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


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


def sqlite_file(url: str) -> str | None:
    """The path of the file a SQLite URL names, or None (PostgreSQL, in-memory or URI databases)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _sqlite_engine(url: str, *, lock_timeout: float) -> sa.Engine:
    lock_path = None
    path = sqlite_file(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        lock_path = f"{path}.lock"
    # One connection per process: SQLite has one writer at a time anyway, and threads queueing for the pool
    # wake as soon as it is free, where threads queueing inside SQLite poll its lock with growing sleeps
    # (1 ms up to 100 ms), which showed as 100 ms p99 latency under load (docs/benchmarks.md).
    engine = _sqlite_pool(url, size=1, overflow=0, factory=_SerialisedConnection)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself, instead of pysqlite's deferred BEGIN.
        # FULL: an acknowledged delivery survives power loss, not only a killed process.
        _set_pragmas(dbapi_connection, "journal_mode=WAL", "synchronous=FULL")
        if isinstance(dbapi_connection, _SerialisedConnection):
            dbapi_connection.lock_path = lock_path
            dbapi_connection.lock_timeout = lock_timeout
            dbapi_connection.remember_file(path)  # the file exists now: WAL mode wrote its header

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


def _sqlite_pool(url: str, *, size: int, overflow: int, **connect_args: Any) -> sa.Engine:
    """A SQLite engine whose callers queue for at most ``size`` + ``overflow`` connections."""
    timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
    connect_args = {"timeout": timeout, "check_same_thread": False, **connect_args}
    return sa.create_engine(
        url,
        connect_args=connect_args,
        poolclass=sa.pool.QueuePool,
        pool_size=size,
        max_overflow=overflow,
        pool_timeout=timeout,
    )


def _set_pragmas(dbapi_connection: Any, *pragmas: str) -> None:
    """Autocommit in the driver (each statement reads the latest commit; BEGIN is ours), the busy timeout and
    ``pragmas``."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (*pragmas, f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


@contextlib.contextmanager
def disposing(engine: sa.Engine) -> Iterator[sa.Engine]:
    """``engine`` for the block, its connections closed when the block ends (as a command ends)."""
    try:
        yield engine
    finally:
        engine.dispose()


def prepare_database(engine: sa.Engine) -> None:
    """Bring the schema up to date (idempotent): the migrations, from wherever the database is."""
    from service.store.migrating import upgrade

    upgrade(engine)


def create_read_engine(url: str, writer: sa.Engine) -> sa.Engine:
    """An engine for reads: on a SQLite file, read-only connections of its own (disposed with ``writer``), which
    in WAL mode read the last commit without waiting for the writer; otherwise ``writer`` itself (PostgreSQL
    readers never wait for writers, and its pool has room for them)."""
    path = sqlite_file(url)
    if path is None:
        return writer
    reader = _sqlite_pool(url, size=2, overflow=2)

    @sa.event.listens_for(reader, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _set_pragmas(dbapi_connection, "query_only=ON")  # autocommit: no statement holds an old snapshot

    @sa.event.listens_for(writer, "engine_disposed")
    def _dispose_reader(_engine: sa.Engine) -> None:
        reader.dispose()

    return reader


PROBE_NAME = "readyz"
_PROBE_SQL = sa.text(
    "INSERT INTO health_probes (name, written_at) VALUES (:name, :now) "
    "ON CONFLICT (name) DO UPDATE SET written_at = excluded.written_at"
)


def write_problem(engine: sa.Engine) -> str | None:
    """Why the database does not accept a committed write right now, or None when it does.

    Commits the one row of ``health_probes``, so it fails where a delivery's commit would: a read-only replica
    or volume, a full disk, a SQLite file replaced under the process, a lost connection. (One row for every
    process and pod: pods come and go, and a row per host would pile up.)
    """
    try:
        with engine.begin() as connection:
            connection.execute(_PROBE_SQL, {"name": PROBE_NAME, "now": time.time()})
    except sa.exc.SQLAlchemyError as error:
        original = getattr(error, "orig", None) or error
        first_line = (str(original).splitlines() or [""])[0]
        return f"{type(original).__name__}: {first_line[:300]}"
    return None


def dialect_name(connection: sa.Connection) -> str:
    return connection.dialect.name
