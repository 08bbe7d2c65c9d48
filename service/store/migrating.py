"""Schema migrations (Alembic, configured in code): upgrade, and refuse to run on an out-of-date schema.

``mfa-enforcer db upgrade`` (the Procfile's ``release``, the Kubernetes migration Job) calls ``upgrade``.
The web service and the worker call ``check_schema`` at startup and stop with a message saying what to run,
unless ``ENFORCER_MIGRATE_ON_START`` lets a single-node deployment upgrade itself. A database made by the first
release, before migrations existed, is recognised and stamped as revision 0001 before upgrading.

An upgrade never creates a new SQLite database where one existed: if the file is missing (or empty) but its
lock file, WAL or shared-memory file is still beside it, the database was deleted or lost (a volume not
mounted, a restore gone wrong), and creating an empty one would silently start over without the queue. It
stops with ``DatabaseMissingError`` instead.

Every command, the web service and the worker check the schema as they start, and nearly always find it
current. That check reads the revision chain from the version files' ``revision = ...`` lines and the stored
revision with one query, without importing Alembic (and Mako, which it loads): a fifth of a second of CPU per
process start. Alembic itself is loaded only to change a schema (tests/integration/test_migrations.py checks
the two readings of the chain agree).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from service.store.engine import sqlite_file
from service.store.errors import DatabaseMissingError, SchemaOutOfDateError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
VERSION_TABLE = "alembic_version"
_REVISION_LINE = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*(?:["']([^"']+)["']|None)\s*$""", re.M)


LEFTOVER_SUFFIXES = (".lock", "-wal", "-shm", "-journal")
"""Files SQLite (and ``service.store.engine``'s write lock) keep beside a database that has been used."""


def refuse_lost_database(engine: sa.Engine) -> None:
    """Raise ``DatabaseMissingError`` when a SQLite file is missing or empty and leftovers show one existed."""
    path = sqlite_file(str(engine.url))
    if path is None:
        return
    try:
        size: int | None = os.stat(path).st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    leftovers = [f"{path}{suffix}" for suffix in LEFTOVER_SUFFIXES if os.path.exists(f"{path}{suffix}")]
    if leftovers:
        state = "is missing" if size is None else "is empty"
        raise DatabaseMissingError(
            f"the database {path} {state}, but {', '.join(leftovers)} show(s) that a database existed there: "
            'refusing to create a new, empty one. Restore the database (docs/operations.md, "Back up and '
            'restore"), or remove those files to start afresh'
        )


def _config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The revision no other revision revises, from the version files (the chain is linear)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        lines = dict((key, value) for key, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if lines.get("revision"):
            revisions.add(lines["revision"])
            if lines.get("down_revision"):
                revised.add(lines["down_revision"])
    heads = revisions - revised
    assert len(heads) == 1, f"the migrations must have one head, not {sorted(heads)}"
    return heads.pop()


def current_revision(engine: sa.Engine) -> str | None:
    """The revision stored in the database, or None when it has none (no tables, or made before migrations)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        stored = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()  # noqa: S608
    assert len(stored) <= 1, f"the database records several revisions: {stored}"
    return stored[0] if stored else None


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision``; returns (before, after). Refuses to recreate a lost SQLite database."""
    refuse_lost_database(engine)
    before = current_revision(engine)
    if revision == "head" and before == head_revision():
        return before, before  # nothing to do: Alembic would find the same and change nothing
    from alembic import command

    with engine.begin() as connection:
        if before is None and sa.inspect(connection).has_table("work"):
            # Made by the first release with create_all, before migrations existed.
            command.stamp(_config(connection), FIRST_REVISION)
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)
    return before, current_revision(engine)


def check_schema(engine: sa.Engine) -> None:
    """Raise ``SchemaOutOfDateError`` unless the schema is exactly what this code needs."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    state = "has no tables yet" if current is None else f"is at revision {current}"
    raise SchemaOutOfDateError(
        f"the database schema {state} and this version needs {head}: run `mfa-enforcer db upgrade` "
        "(or set ENFORCER_MIGRATE_ON_START=true on a single node)"
    )


def ensure_schema(engine: sa.Engine, *, migrate: bool) -> None:
    """At startup: upgrade when allowed to, else insist the schema is current."""
    if migrate:
        upgrade(engine)
    else:
        check_schema(engine)
