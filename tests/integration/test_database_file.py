"""The database must be the one it was: a SQLite file deleted or replaced under a running process stops
commits (503, /readyz fails) instead of acknowledging deliveries into a lost file; /readyz proves a write, not
only a read; and a migration never silently recreates a database that existed."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from genauth_emulator.payloads import event_body
from service.app import create_app
from service.errors import ConfigurationError
from service.intake.context import EXTENSION
from service.store.engine import create_engine, prepare_database
from service.store.errors import DatabaseMissingError
from service.store.migrating import upgrade

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def sqlite_path(url: str) -> str:
    return make_url(url).database


@SQLITE
@pytest.mark.parametrize("fault", ["deleted", "replaced"])
def test_a_sqlite_file_deleted_or_replaced_under_the_service_gets_503_and_fails_readyz(
    live_intake, emulator, database_url, fault, caplog
):
    """After the file at the configured path goes away (or becomes another file), deliveries get 503 and
    /readyz 503, and the log says database_file_replaced; nothing is acknowledged into the lost file."""
    body = event_body(emulator.state, "login", emulator.users["fin.alice"])
    assert live_intake.sender.deliver(body).status_code == 200
    path = sqlite_path(database_url)
    moved = f"{path}.moved"
    os.rename(path, moved)
    if fault == "replaced":
        shutil.copy(moved, path)
    caplog.set_level(logging.INFO)
    response = live_intake.sender.deliver(body)
    assert response.status_code == 503 and response.json()["code"] == "store_unavailable"
    ready = requests.get(f"{live_intake.url}/readyz", timeout=5)
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"] == "unavailable" and "was deleted or replaced" not in checks["database_error"]
    assert ("was deleted" if fault == "deleted" else "was replaced") in checks["database_error"]
    [alarm, *_] = [record for record in caplog.records if record.getMessage() == "database_file_replaced"]
    assert alarm.levelno == logging.CRITICAL and alarm.fields["path"] == path


def test_readyz_fails_when_the_database_refuses_writes_though_it_answers_reads(settings, database_url):
    """A database that answers SELECT 1 but refuses writes (a read-only PostgreSQL session, as on a standby;
    SQLite with query_only) makes /readyz 503, and the write probe says why."""
    writable = create_app(settings, configure_logs=False)  # migrates and keeps the key and the policy copy
    writable.extensions[EXTENSION].engine.dispose()
    read_only = replace(settings, database_url=_read_only_url(database_url), migrate_on_start=False)
    application = create_app(read_only, configure_logs=False)
    try:
        if make_url(database_url).get_backend_name() == "sqlite":
            engine = application.extensions[EXTENSION].engine
            sa.event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA query_only=ON"))
            engine.dispose()
        with application.extensions[EXTENSION].reader.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1, "reads still work"
        ready = application.test_client().get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database"] == "unavailable"
        assert "read-only" in ready.get_json()["checks"]["database_error"].lower().replace("readonly", "read-only")
    finally:
        application.extensions[EXTENSION].engine.dispose()


def _read_only_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return url
    options = f"{parsed.query.get('options', '')} -cdefault_transaction_read_only=on".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_readyz_commits_a_write(live_intake, database_url):
    """A ready answer means a row was committed just now, on SQLite and PostgreSQL."""
    assert requests.get(f"{live_intake.url}/readyz", timeout=5).status_code == 200
    with live_intake.engine.connect() as connection:
        first = connection.execute(sa.text("SELECT written_at FROM health_probes")).scalar_one()
    assert requests.get(f"{live_intake.url}/readyz", timeout=5).status_code == 200
    with live_intake.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT written_at FROM health_probes")).scalar_one() >= first


@SQLITE
@pytest.mark.parametrize("leftover", [".lock", "-wal", "-shm"])
def test_migrate_on_start_refuses_to_recreate_a_sqlite_database_that_existed(settings, database_url, leftover):
    """With the database file gone but its lock file or WAL leftovers beside it, startup stops with one clear
    error instead of creating an empty database (and losing the queue silently)."""
    path = sqlite_path(database_url)
    engine = create_engine(database_url)
    prepare_database(engine)
    engine.dispose()
    os.remove(path)
    for suffix in (".lock", "-wal", "-shm"):
        if suffix != leftover and os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    open(f"{path}{leftover}", "a").close()
    with pytest.raises(DatabaseMissingError) as caught:
        create_app(settings, configure_logs=False)
    assert isinstance(caught.value, ConfigurationError)
    message = str(caught.value)
    assert path in message and leftover in message and "refusing to create" in message
    assert not os.path.exists(path), "no empty database was created"
    os.remove(f"{path}{leftover}")
    engine = create_engine(database_url)
    assert upgrade(engine)[0] is None, "without the leftovers, a new database is made as before"
    engine.dispose()
