"""`mfa-enforcer listen` as operators run it: a real subprocess subscribed to the emulator's event WebSocket, with
`mfa-enforcer worker` beside it and no webhook at all. A user created in GenAuth is enforced from the socket
alone; a dropped socket reconnects and the catch-up after it (a sweep, where there is no webhook) finds the user
created while it was down; garbage and oversized frames are counted and survived; a refused key stops the
listener with one line instead of reconnecting."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests
import sqlalchemy as sa

from service.genauth.events import EVENT_CODES
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.sweeps import sweeps
from service.store.tables import events
from tests.support.metrics import sample
from tests.support.processes import BIN, free_port, run_command, service_env, stop
from tests.support.values import ROOT
from tests.support.waiting import wait_until

CODES = sorted(set(EVENT_CODES.values()))
CREATED = "authing.user.created"


def _start(arguments, env, log_path):
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), *arguments], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return process, log


def _listen_env(emulator, database_url, **extra):
    return service_env(
        emulator,
        database_url,
        GENAUTH_EVENTS_URL=emulator.events_url,
        GENAUTH_WEBHOOK_SECRET="",  # the listener needs none: there is no webhook
        ENFORCER_LISTEN_BACKOFF_BASE="0.5",
        ENFORCER_LISTEN_BACKOFF_MAX="1",
        **extra,
    )


def _subscribed(emulator):
    return all(emulator.events.subscribers(code) >= 1 for code in CODES)


def _sweeps_finished(engine):
    with engine.connect() as connection:
        states = connection.execute(sa.select(sweeps.c.state)).scalars().all()
    return states if states and all(state == "finished" for state in states) else None


def _enforced(engine, user_id):
    return [d for d in decisions_for_user(engine, user_id) if d["action"] == "enforced"]


@pytest.fixture
def sqlite_url(tmp_path):
    """For the tests whose subject is the socket, not the database: SQLite only, to keep the suite fast."""
    return f"sqlite:///{tmp_path / 'enforcer.db'}"


@pytest.fixture
def pipeline(request, emulator, tmp_path):
    """`listen` and `worker` running against the emulator and a fresh database (the test's ``database_url``, else
    SQLite), with their engine and the listener's /metrics URL."""
    names = request.fixturenames
    database_url = request.getfixturevalue("database_url" if "database_url" in names else "sqlite_url")
    engine = create_engine(database_url)
    prepare_database(engine)
    metrics_port = free_port()
    listener, listener_log = _start(
        ["listen"],
        _listen_env(emulator, database_url, ENFORCER_METRICS_PORT=str(metrics_port)),
        tmp_path / "listen.log",
    )
    worker, worker_log = _start(["worker"], service_env(emulator, database_url), tmp_path / "worker.log")
    try:
        wait_until(lambda: _subscribed(emulator), what="the listener to subscribe to every code")
        # The first connection is caught up on too (a listener that was not running missed events): a sweep.
        wait_until(lambda: _sweeps_finished(engine), what="the catch-up sweep after the first connection")
        yield engine, f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        assert stop(listener) == 0
        assert stop(worker) == 0
        listener_log.close()
        worker_log.close()
        engine.dispose()
    output = (tmp_path / "listen.log").read_text()
    assert '"event": "listen_stopped"' in output
    assert "Traceback" not in output
    assert "13800000000" not in output  # no message body (a phone number) reaches the log


def test_listen_alone_enforces_a_created_user_and_catches_up_after_a_drop(emulator, database_url, pipeline):
    """No webhook: a user created in GenAuth reaches the queue from the socket (its event record says
    `websocket`) and is enforced. Then every connection is cut, a user is created while none is open (GenAuth
    sends it to nobody), and after the reconnect the catch-up sweep finds and enforces that user too."""
    engine, _ = pipeline
    live = emulator.state.add_user(username="ws.live", phone="13800000000", departments=["finance"])["userId"]
    wait_until(lambda: _enforced(engine, live), what="the live user's enforcement", timeout=30)
    with engine.connect() as connection:
        recorded = connection.execute(sa.select(events.c.event_name, events.c.content_type)).all()
    assert ("user:created", "websocket") in [tuple(row) for row in recorded]

    sweeps_before = len(_sweeps_finished(engine))
    assert emulator.events.drop_connections() >= len(CODES)
    gap = emulator.state.add_user(username="ws.gap", phone="13800000001", departments=["finance"])["userId"]
    sent = [item for item in emulator.events.published if gap in str(item.message) and item.recipients]
    assert sent == [], "the gap user was created while no subscription was open: GenAuth sent it to nobody"
    wait_until(lambda: _subscribed(emulator), what="the listener to reconnect")
    wait_until(lambda: _enforced(engine, gap), what="the gap user's enforcement after the catch-up", timeout=30)
    wait_until(
        lambda: len(_sweeps_finished(engine) or ()) > sweeps_before, what="the reconnect's catch-up sweep to finish"
    )


def test_garbage_and_oversized_frames_are_counted_and_survived(emulator, pipeline):
    """Unreadable frames are counted and skipped on an open subscription; a frame over the size limit closes it,
    and the listener reconnects and goes on taking events."""
    engine, metrics_url = pipeline
    assert emulator.events.publish_raw(CREATED, "this is not json") == 1
    assert emulator.events.publish_raw(CREATED, b"\x00\xff") == 1
    text = wait_until(
        lambda: (
            (t := requests.get(metrics_url, timeout=5).text)
            and sample(t, "mfa_enforcer_listen_messages_total", code=CREATED, outcome="unreadable") == 2
            and t
        ),
        what="two unreadable messages counted",
    )
    assert sample(text, "mfa_enforcer_listen_silence_seconds", code=CREATED) < 60
    assert emulator.events.publish_oversized(CREATED, 300 * 1024) == 1  # ENFORCER_MAX_BODY_BYTES is 256 KiB
    wait_until(
        lambda: (
            sample(
                requests.get(metrics_url, timeout=5).text,
                "mfa_enforcer_listen_connects_total",
                code=CREATED,
                result="lost",
            )
            >= 1
        ),
        what="the oversized frame to close the subscription",
    )
    wait_until(lambda: emulator.events.subscribers(CREATED) == 1, what="the listener to reconnect")
    after = emulator.state.add_user(username="ws.after", phone="13800000002", departments=["finance"])["userId"]
    wait_until(lambda: _enforced(engine, after), what="enforcement after the reconnect", timeout=30)


def test_a_refused_key_stops_the_listener_with_one_line(emulator, sqlite_url):
    """GenAuth refusing the handshake (401, apiCode 1300) ends `listen` at once with exit 1 and one line naming
    the variables to check, after one handshake per code at most: no reconnect loop."""
    env = _listen_env(emulator, sqlite_url, GENAUTH_ACCESS_KEY_SECRET="a-wrong-secret-of-some-length")
    started = time.monotonic()
    result = run_command(["mfa-enforcer", "listen"], env)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "GENAUTH_ACCESS_KEY_SECRET" in line and "1300" in line
    assert "Traceback" not in result.stderr
    assert emulator.events.refused <= len(CODES)
