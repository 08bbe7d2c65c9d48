"""Shared fixtures: a real database (SQLite file, and PostgreSQL when TEST_DATABASE_URL is set), the GenAuth
emulator on loopback, settings pointing at both, and the app built from them.

Fixtures build on each other: ``database_url`` → ``settings`` (+ ``emulator``) → ``app`` → ``engine``,
``worker``; ``live_service`` serves the app over real HTTP with its worker thread running. What tests import
(helpers, constants) is in tests/support/, never here.
"""

from __future__ import annotations

import os

import pytest

from genauth_emulator.sample import seed_sandbox
from genauth_emulator.server import EmulatorServer
from genauth_emulator.state import EmulatorState
from service.app import create_app, stop_worker
from service.intake.context import EXTENSION
from service.services import Services
from service.settings import GenAuthSettings, Settings, WebhookSettings, WorkerSettings
from tests.support.databases import PostgresSchemas, SchemaTemplate
from tests.support.live import serve_service
from tests.support.values import ADMIN_TOKEN, PREVIOUS_SECRET, ROOT, WEBHOOK_SECRET

PG_SKIP_REASON = (
    "PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it"
)


def postgres_base_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL", "").strip() or None


@pytest.fixture(scope="session")
def postgres_schemas():
    """Where the PostgreSQL tests get their schemas (None without TEST_DATABASE_URL)."""
    base = postgres_base_url()
    if base is None:
        yield None
        return
    schemas = PostgresSchemas(base)
    yield schemas
    schemas.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a throw-away schema in TEST_DATABASE_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'enforcer.db'}"
        return
    yield from _postgres_schema(request.getfixturevalue("postgres_schemas"))


@pytest.fixture
def postgres_url(postgres_schemas):
    """A throw-away PostgreSQL schema, for tests that only make sense there (SKIP LOCKED races)."""
    yield from _postgres_schema(postgres_schemas)


def _postgres_schema(schemas):
    if schemas is None:
        pytest.skip(PG_SKIP_REASON)
    url = schemas.create()
    yield url
    schemas.drop_later(url)


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory):
    """The migrated schema, made once a session, for the fixtures that start an app on a fresh database."""
    return SchemaTemplate(tmp_path_factory.mktemp("schema-template"))


@pytest.fixture
def emulator():
    """The GenAuth emulator with the sandbox's sample users, on 127.0.0.1 and a free port."""
    state = EmulatorState()
    server = EmulatorServer(state)
    server.start()
    server.users = seed_sandbox(state)  # username -> user id
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(emulator, database_url):
    """Settings for a test: the emulator, a fresh database, fast retries, no worker thread."""
    return Settings(
        genauth=GenAuthSettings(
            host=emulator.url,
            access_key_id=emulator.state.access_key_id,
            access_key_secret=emulator.state.access_key_secret,
            connect_timeout=2.0,
            read_timeout=2.0,
        ),
        webhook=WebhookSettings(
            secrets=(WEBHOOK_SECRET, PREVIOUS_SECRET), userpool_id=emulator.state.userpool_id, admin_token=ADMIN_TOKEN
        ),
        worker=WorkerSettings(
            run_in_web=False, poll_interval=0.02, backoff_base=0.02, backoff_max=0.2, max_attempts=4, lease_seconds=30
        ),
        database_url=database_url,
        policy_file=ROOT / "config" / "policies.yaml",
        migrate_on_start=True,
    )


@pytest.fixture
def app(settings, schema_template):
    schema_template.apply(settings.database_url)  # what the app's own upgrade at start would make, made faster
    application = create_app(settings, configure_logs=False)
    yield application
    stop_worker(application)
    application.extensions[EXTENSION].engine.dispose()


@pytest.fixture
def engine(app):
    return app.extensions[EXTENSION].engine


@pytest.fixture
def worker(app, settings, engine):
    """A worker (not running) on the app's database, to drive step by step."""
    running = Services(settings, engine).worker(app.extensions[EXTENSION].policies.current)
    yield running
    running.reconciler.client.close()


@pytest.fixture
def live_service(settings, emulator, schema_template):
    """The service over real HTTP on loopback, with its worker thread running."""
    schema_template.apply(settings.database_url)
    with serve_service(settings, emulator, run_worker=True) as live:
        yield live


@pytest.fixture
def live_intake(settings, emulator, schema_template):
    """The service over real HTTP on loopback with no worker: deliveries stay on the queue for inspection."""
    schema_template.apply(settings.database_url)
    with serve_service(settings, emulator, run_worker=False) as live:
        yield live
