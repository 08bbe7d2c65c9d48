"""Schema migrations: a fresh database and one made by the first release both end up at the code's schema."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import service.store.sweeps  # noqa: F401 - registers the sweep tables on the shared metadata
from service.store.engine import create_engine
from service.store.migrating import SchemaOutOfDateError, check_schema, current_revision, head_revision, upgrade
from service.store.tables import metadata


@pytest.fixture
def bare_engine(database_url):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def schema_differences(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [diff for diff in compare_metadata(context, metadata) if not _is_noise(diff)]


def _is_noise(diff):
    # The migration version table is Alembic's own.
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


def test_migrations_build_exactly_the_schema_the_code_declares(bare_engine):
    """Upgrading an empty database to head gives the tables, columns, indexes and constraints of tables.py."""
    assert upgrade(bare_engine) == (None, head_revision())
    assert schema_differences(bare_engine) == []
    check_schema(bare_engine)


def test_a_database_from_the_first_version_is_upgraded_with_its_data(bare_engine):
    """A database at revision 0001 with queued work upgrades to head, keeping its rows."""
    upgrade(bare_engine, "0001")
    with bare_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO work (userpool_id, user_id, state, version, reason, first_enqueued_at, enqueued_at,"
                " due_at, attempts) VALUES ('pool', 'u1', 'pending', 1, 'login', 1.0, 1.0, 1.0, 0)"
            )
        )
    with pytest.raises(SchemaOutOfDateError, match=r"revision 0001.*mfa-enforcer db upgrade"):
        check_schema(bare_engine)
    assert upgrade(bare_engine) == ("0001", head_revision())
    with bare_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT user_id, kind FROM work")).all() == [("u1", "user")]
    assert schema_differences(bare_engine) == []


def test_an_unstamped_database_from_before_migrations_is_recognised(bare_engine):
    """Tables created by the first release without Alembic are stamped as 0001, then upgraded."""
    upgrade(bare_engine, "0001")
    with bare_engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE alembic_version"))
    assert current_revision(bare_engine) is None
    upgrade(bare_engine)
    assert current_revision(bare_engine) == head_revision()
    assert schema_differences(bare_engine) == []


def test_an_empty_database_is_reported_with_what_to_run(bare_engine):
    """check_schema on an empty database says there are no tables and names the command."""
    with pytest.raises(SchemaOutOfDateError, match=r"has no tables yet.*mfa-enforcer db upgrade"):
        check_schema(bare_engine)


def test_upgrading_twice_is_harmless(bare_engine):
    """db upgrade on an up-to-date database changes nothing."""
    upgrade(bare_engine)
    assert upgrade(bare_engine) == (head_revision(), head_revision())
