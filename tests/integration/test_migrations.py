"""Schema migrations: a fresh database and one made by the first release both end up at the code's schema."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import service.store.budget  # registers the brake tables on the shared metadata
import service.store.holds  # and the holds table
import service.store.organisation_changes
import service.store.outbox  # the notification outbox
import service.store.reverts  # and the revert table
import service.store.sweeps  # noqa: F401 - registers the sweep tables on the shared metadata
from service.store.engine import create_engine
from service.store.errors import SchemaOutOfDateError
from service.store.migrating import (
    _config,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
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


def test_the_head_read_from_the_version_files_is_alembics():
    """The start-up check reads the chain without Alembic; Alembic's own reading finds the same head."""
    assert head_revision() == ScriptDirectory.from_config(_config()).get_current_head()


def test_the_stored_revision_read_without_alembic_is_alembics(bare_engine):
    """current_revision reads alembic_version with one query; Alembic reads the same, at every step."""
    for revision in ("0001", head_revision()):
        upgrade(bare_engine, revision)
        with bare_engine.connect() as connection:  # the SQLite engine has one connection: read, then compare
            alembics = MigrationContext.configure(connection).get_current_revision()
        assert current_revision(bare_engine) == alembics == revision


def test_upgrading_twice_is_harmless(bare_engine):
    """db upgrade on an up-to-date database changes nothing."""
    upgrade(bare_engine)
    assert upgrade(bare_engine) == (head_revision(), head_revision())


def test_decisions_can_say_not_read_after_0006_and_downgrading_turns_it_into_no_factors(bare_engine):
    """0006 makes before/after nullable ("not read"), keeping old rows; going back to 0004 stores [] again."""
    upgrade(bare_engine, "0004")
    insert = (
        'INSERT INTO decisions (decided_at, userpool_id, user_id, "trigger", mode, action, rules, required,'
        " \"before\", \"after\", reason, attempt) VALUES (1.0, 'pool', :user, 'login', 'enforce', 'none', '[]',"
        " '[]', {factors}, {factors}, 'r', 1)"
    )
    with bare_engine.begin() as connection:
        connection.execute(sa.text(insert.format(factors="'[\"SMS\"]'")), {"user": "old"})
    upgrade(bare_engine, "0006")
    with bare_engine.begin() as connection:
        connection.execute(sa.text(insert.format(factors="NULL")), {"user": "new"})
    with bare_engine.connect() as connection:
        rows = connection.execute(sa.text('SELECT user_id, "before" FROM decisions ORDER BY id')).all()
    assert [
        (user, None if factors is None else json.loads(factors) if isinstance(factors, str) else factors)
        for user, factors in rows
    ] == [("old", ["SMS"]), ("new", None)]
    with bare_engine.begin() as connection:
        command.downgrade(_config(connection), "0004")
    with bare_engine.connect() as connection:
        [(factors,)] = connection.execute(sa.text("SELECT \"after\" FROM decisions WHERE user_id = 'new'")).all()
    assert (json.loads(factors) if isinstance(factors, str) else factors) == []


def test_0007_adds_who_the_user_is_on_top_of_0006_keeping_old_decisions(bare_engine):
    """0007 follows 0006: a decision recorded before it keeps its "not read" factors and has no name yet;
    going back to 0006 drops the name columns and the index again."""
    upgrade(bare_engine, "0006")
    with bare_engine.begin() as connection:
        connection.execute(
            sa.text(
                'INSERT INTO decisions (decided_at, userpool_id, user_id, "trigger", mode, action, rules, required,'
                " \"before\", \"after\", reason, attempt) VALUES (1.0, 'pool', 'old', 'login', 'enforce', 'none',"
                " '[]', '[]', NULL, NULL, 'r', 1)"
            )
        )
    assert upgrade(bare_engine, "0007") == ("0006", "0007")
    with bare_engine.connect() as connection:
        row = connection.execute(sa.text('SELECT user_id, "before", username, email, status FROM decisions')).one()
    assert tuple(row) == ("old", None, None, None, None)
    assert "decisions_user_latest" in {index["name"] for index in sa.inspect(bare_engine).get_indexes("decisions")}
    with bare_engine.begin() as connection:
        command.downgrade(_config(connection), "0006")
    columns = {column["name"] for column in sa.inspect(bare_engine).get_columns("decisions")}
    assert not columns & {"username", "email", "status"}
    assert "decisions_user_latest" not in {index["name"] for index in sa.inspect(bare_engine).get_indexes("decisions")}


def test_0008_puts_sweeps_on_the_queue_and_abandons_a_sweep_that_was_running(bare_engine):
    """0008 drops the sweep lock, listing progress and members tables (a sweep running then is abandoned: its
    progress lived there) and adds the plan, pages and counts to the sweep row; going back restores the tables."""
    upgrade(bare_engine, "0007")
    with bare_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO sweeps (scope, fingerprint, state, started_at, updated_at, in_scope) VALUES"
                " ('*', 'f', 'running', 1.0, 1.0, NULL), ('*', 'f', 'finished', 0.5, 0.9, 7)"
            )
        )
        connection.execute(sa.text("INSERT INTO sweep_members (sweep_id, user_id, rule) VALUES (1, 'u1', 'r')"))
    assert upgrade(bare_engine, "0008") == ("0007", "0008")
    tables = set(sa.inspect(bare_engine).get_table_names())
    assert not tables & {"sweep_locks", "sweep_members", "sweep_sources"}
    with bare_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT state, in_scope, active FROM sweeps ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [("abandoned", None, None), ("finished", 7, None)]
    with bare_engine.begin() as connection:
        command.downgrade(_config(connection), "0007")
    assert {"sweep_locks", "sweep_members", "sweep_sources"} <= set(sa.inspect(bare_engine).get_table_names())
    assert "plan" not in {column["name"] for column in sa.inspect(bare_engine).get_columns("sweeps")}


def test_0009_adds_the_tree_generations_on_top_of_0008_and_going_back_drops_them(bare_engine):
    """0009 adds organisation_changes (one generation per pool, empty until a tree event); 0008 drops it."""
    upgrade(bare_engine, "0008")
    assert upgrade(bare_engine, "0009") == ("0008", "0009")
    assert "organisation_changes" in set(sa.inspect(bare_engine).get_table_names())
    with bare_engine.begin() as connection:
        command.downgrade(_config(connection), "0008")
    assert "organisation_changes" not in set(sa.inspect(bare_engine).get_table_names())


def test_0010_adds_the_not_effective_column_and_the_event_name_index(bare_engine):
    """0010 adds ``decisions.not_effective`` (NULL for the decisions already there) and the events index the
    MFA settings cache reads; going back removes both."""
    upgrade(bare_engine, "0009")
    with bare_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO decisions (decided_at, userpool_id, user_id, trigger, mode, action, rules, required,"
                " reason, attempt) VALUES (1.0, 'p', 'u1', 'login', 'enforce', 'none', '[]', '[]', 'r', 1)"
            )
        )
    assert upgrade(bare_engine, "0010") == ("0009", "0010")
    with bare_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT not_effective FROM decisions")).scalar() is None
    assert "events_name" in {index["name"] for index in sa.inspect(bare_engine).get_indexes("events")}
    with bare_engine.begin() as connection:
        command.downgrade(_config(connection), "0009")
    assert "not_effective" not in {column["name"] for column in sa.inspect(bare_engine).get_columns("decisions")}
    assert "events_name" not in {index["name"] for index in sa.inspect(bare_engine).get_indexes("events")}


def test_0013_adds_the_policy_digest_and_service_version_of_each_decision(bare_engine):
    """0013 follows 0012: a decision recorded before it keeps its data with no digest or version (nobody knows
    them); going back to 0012 drops both columns."""
    upgrade(bare_engine, "0012")
    with bare_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO decisions (decided_at, userpool_id, user_id, trigger, mode, action, rules, required,"
                " reason, attempt) VALUES (1.0, 'p', 'old', 'login', 'enforce', 'none', '[]', '[]', 'r', 1)"
            )
        )
    assert upgrade(bare_engine, "0013") == ("0012", "0013")
    with bare_engine.connect() as connection:
        row = connection.execute(sa.text("SELECT user_id, policy_digest, service_version FROM decisions")).one()
    assert tuple(row) == ("old", None, None)
    with bare_engine.begin() as connection:
        command.downgrade(_config(connection), "0012")
    columns = {column["name"] for column in sa.inspect(bare_engine).get_columns("decisions")}
    assert not columns & {"policy_digest", "service_version"}
    assert "reason" in columns
