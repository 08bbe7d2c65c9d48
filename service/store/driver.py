"""Plain driver statements inside a SQLAlchemy transaction, for the few that run once per webhook.

Why: through SQLAlchemy, each statement costs tens of microseconds of Python (execution context, parameter
and result processing) on top of what the driver does, and the intake runs two or three of them per
delivery; that was most of a delivery's CPU once the commits were shared (docs/benchmarks.md). Here such a
statement runs on the driver's own cursor, in the transaction of the SQLAlchemy connection it is given (so
``engine.begin()`` still opens and commits it, and SQLite's lock and PostgreSQL's pre-ping still apply), and
the driver's errors come out as SQLAlchemy's, as from ``connection.execute``: callers catch one family.

SQL is written once with ``:name`` parameters and rewritten for the driver's style (psycopg: ``%(name)s``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import sqlalchemy as sa

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@cache
def driver_sql(sql: str, dialect_name: str) -> str:
    """``sql`` with ``:name`` parameters, as the driver of ``dialect_name`` takes them."""
    if dialect_name == "sqlite":
        return sql  # the sqlite3 module takes :name parameters from a dict
    if dialect_name == "postgresql":
        return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))  # psycopg: %(name)s
    raise ValueError(f"no driver SQL for {dialect_name!r}")


@contextlib.contextmanager
def driver_cursor(connection: sa.Connection) -> Iterator[Any]:
    """A cursor of ``connection``'s driver connection; driver errors are raised as SQLAlchemy errors."""
    if not connection.in_transaction():
        # Driver statements do not start SQLAlchemy's transaction; outside one they would not be committed
        # with the caller's work (PostgreSQL) or would run without the write lock (SQLite).
        raise RuntimeError("driver statements must run inside a transaction (engine.begin())")
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    dialect = connection.dialect
    base_error: type[Exception] = dialect.loaded_dbapi.Error
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except base_error as error:
        invalidated = dialect.is_disconnect(error, dbapi_connection, cursor)  # type: ignore[arg-type]
        if invalidated:
            connection.invalidate(error)
        wrapped = sa.exc.DBAPIError.instance(
            None, None, error, base_error, connection_invalidated=invalidated, dialect=dialect
        )
        raise wrapped from error
    finally:
        with contextlib.suppress(Exception):
            cursor.close()
