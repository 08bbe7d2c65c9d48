"""Databases at the current schema without running every migration again for every test.

Running the migrations on a fresh database costs a fifth of a second on SQLite and half a second on PostgreSQL,
and most tests start an app on a fresh database. ``SchemaTemplate`` runs them once per session and gives each
empty database the result: a copy of the migrated SQLite file, or on PostgreSQL the statements the migrations
executed (recorded on a throw-away schema and replayed in the test's schema, which ``search_path`` names). The
app still runs its own upgrade at start, which then finds the schema current. Tests of the migrations
themselves use ``database_url`` as it is: empty.
"""

from __future__ import annotations

import queue
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from service.store.engine import create_engine, disposing, prepare_database, sqlite_file


class SchemaTemplate:
    """The migrated schema, made once (per backend) and applied to empty databases."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sqlite: Path | None = None
        self._statements: list[str] | None = None

    def apply(self, url: str) -> None:
        """Bring the empty database at ``url`` to the current schema; a database with tables is left alone."""
        if sa.engine.make_url(url).get_backend_name() == "sqlite":
            path = sqlite_file(url)
            if path is not None and not (Path(path).exists() and Path(path).stat().st_size):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self._sqlite_template(), path)
            return
        with disposing(create_engine(url)) as engine:
            with engine.begin() as connection:
                if _has_tables(connection):
                    return
            statements = self._postgres_statements(url) if self._statements is None else self._statements
            if statements:
                with engine.begin() as connection:  # one round trip: on a loaded machine each costs milliseconds
                    connection.exec_driver_sql(";\n".join(statements))

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            path = self.folder / "template.db"
            with disposing(create_engine(f"sqlite:///{path}")) as engine:
                prepare_database(engine)
            assert not Path(f"{path}-wal").exists(), "the template must be complete in its one file"
            self._sqlite = path
        return self._sqlite

    def _postgres_statements(self, url: str) -> list[str]:
        """Migrate the (empty) database at ``url`` and record what the migrations changed: every statement
        but the reads, which carry no state."""
        recorded: list[str] = []
        with disposing(create_engine(url)) as engine:

            @sa.event.listens_for(engine, "before_cursor_execute")
            def _record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
                if not statement.lstrip().upper().startswith("SELECT"):
                    assert not parameters, statement  # the migrations' statements carry their values inline
                    recorded.append(statement)

            prepare_database(engine)
        self._statements = recorded
        return []  # this database is migrated already


def _has_tables(connection: sa.Connection) -> bool:
    found = connection.exec_driver_sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
    ).scalar_one()
    return bool(found)


class PostgresSchemas:
    """Throw-away schemas in the ``TEST_DATABASE_URL`` database, one per test, over one pooled connection.

    A schema is dropped in a helper thread after its test, so the next test starts while PostgreSQL removes
    the tables (a tenth of a second each on a loaded machine); ``close`` waits for every drop to finish."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._admin = sa.create_engine(base_url, pool_size=1, max_overflow=1)
        self._dropping: queue.Queue[str | None] = queue.Queue()
        self._failures: list[str] = []
        self._dropper = threading.Thread(target=self._drop_each, name="schema-dropper", daemon=True)
        self._dropper.start()

    def create(self) -> str:
        """A new, empty schema; returns the URL whose ``search_path`` names it."""
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = sa.engine.make_url(self.base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def drop_later(self, url: str) -> None:
        options = sa.engine.make_url(url).query["options"]
        assert isinstance(options, str)
        self._dropping.put(options.removeprefix("-csearch_path="))

    def close(self) -> None:
        """Wait for every drop; raise if one failed (a schema was left behind)."""
        self._dropping.put(None)
        self._dropper.join()
        self._admin.dispose()
        assert not self._failures, f"schemas not dropped: {self._failures}"

    def _drop_each(self) -> None:
        while (schema := self._dropping.get()) is not None:
            try:
                with self._admin.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            except sa.exc.SQLAlchemyError as error:
                self._failures.append(f"{schema}: {error}")
