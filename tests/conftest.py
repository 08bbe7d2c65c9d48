"""Shared fixtures: a real database (SQLite file, and PostgreSQL when TEST_DATABASE_URL is set), the GenAuth
emulator on loopback, settings pointing at both, and the app built from them.

Fixtures build on each other: ``database_url`` → ``settings`` (+ ``emulator``) → ``app`` → ``engine``,
``worker``; ``live_service`` serves the app over real HTTP with its worker thread running.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from genauth_emulator.sample import seed_sandbox
from genauth_emulator.sender import WebhookSender
from genauth_emulator.server import EmulatorServer
from genauth_emulator.state import EmulatorState
from service.app import WORKER_EXTENSION, build_worker, create_app, stop_worker
from service.intake.context import EXTENSION
from service.settings import GenAuthSettings, Settings, WebhookSettings, WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "test-webhook-secret-0123456789"
ADMIN_TOKEN = "test-admin-token-abcdefghijklmnop"
PREVIOUS_SECRET = "previous-webhook-secret-9876543210"
PG_SKIP_REASON = (
    "PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it"
)


def postgres_base_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL", "").strip() or None


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a throw-away schema in TEST_DATABASE_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'enforcer.db'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip(PG_SKIP_REASON)
    yield from _postgres_schema(base)


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL schema, for tests that only make sense there (SKIP LOCKED races)."""
    base = postgres_base_url()
    if base is None:
        pytest.skip(PG_SKIP_REASON)
    yield from _postgres_schema(base)


def _postgres_schema(base: str):
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
def app(settings):
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
    running = build_worker(settings, engine, policy_getter=app.extensions[EXTENSION].policies.current)
    yield running
    running.reconciler.client.close()


@dataclass
class LiveService:
    url: str
    app: object
    engine: sa.Engine
    sender: WebhookSender

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/genauth"


def _serve(settings, emulator, *, run_worker):
    live_settings = replace(settings, worker=replace(settings.worker, run_in_web=run_worker))
    application = create_app(live_settings, configure_logs=False)
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    sender = WebhookSender(f"{url}/webhooks/genauth", WEBHOOK_SECRET, emulator.state.userpool_id)
    try:
        yield LiveService(url=url, app=application, engine=application.extensions[EXTENSION].engine, sender=sender)
    finally:
        sender.close()
        server.shutdown()
        server.server_close()
        stop_worker(application)
        worker = application.extensions.get(WORKER_EXTENSION)
        if worker is not None:
            worker.reconciler.client.close()
        if application.extensions[EXTENSION].admin_client is not None:
            application.extensions[EXTENSION].admin_client.close()
        application.extensions[EXTENSION].engine.dispose()


@pytest.fixture
def live_service(settings, emulator):
    """The service over real HTTP on loopback, with its worker thread running."""
    yield from _serve(settings, emulator, run_worker=True)


@pytest.fixture
def live_intake(settings, emulator):
    """The service over real HTTP on loopback with no worker: deliveries stay on the queue for inspection."""
    yield from _serve(settings, emulator, run_worker=False)
