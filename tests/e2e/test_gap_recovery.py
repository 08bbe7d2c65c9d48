"""Gap recovery end to end: the emulator delivers while the service is down (its log records the failures), the
service starts, and its worker reads GenAuth's delivery log and enforces every user it missed, with no sweep;
a delivery seen both live and in the log is recorded once. On SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests
import sqlalchemy as sa

from service.genauth.webhooks import WEBHOOK_NAME
from service.store.sweeps import sweeps
from service.store.tables import events, webhook_log_reads
from tests.support.live import serve_service
from tests.support.processes import free_port
from tests.support.recovery import recover_once
from tests.support.store import wait_for_decision
from tests.support.values import WEBHOOK_SECRET
from tests.support.waiting import wait_until

FIVE = 5


@pytest.fixture
def settings(settings):
    """The worker runs in the web process; the recovery interval is far longer than the test, so only the read
    right after the start can be what enforces the users."""
    return replace(settings, worker=replace(settings.worker, recover_interval=300.0, reconcile_interval=0.0))


def user_created_events(engine: sa.Engine) -> int:
    statement = sa.select(sa.func.count()).select_from(events).where(events.c.event_name == "user:created")
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_users_created_while_the_service_was_down_are_enforced_from_the_log(settings, emulator, schema_template):
    """Five finance users are created while the receiver is down; the service, started afterwards, enforces all
    five from GenAuth's log within one recovery interval, without a sweep, and a second read records nothing."""
    state = emulator.state
    down = f"http://127.0.0.1:{free_port()}/webhooks/genauth"  # nothing listens there
    hook = state.webhooks.create(
        name=WEBHOOK_NAME, url=down, content_type="application/json", events=["user:created"], secret=WEBHOOK_SECRET
    )
    created = [
        state.add_user(
            username=f"gap.user{index}",
            email=f"gap.user{index}@acme.example",
            phone=f"1390000010{index}",
            departments=("finance",),
        )["userId"]
        for index in range(FIVE)
    ]
    assert state.wait_for_deliveries(10)
    logged = state.webhooks.logs(hook["webhookId"])
    assert [entry["success"] for entry in logged] == [False] * FIVE

    schema_template.apply(settings.database_url)
    with serve_service(settings, emulator, run_worker=True) as live:
        for user_id in created:
            decision = wait_for_decision(live.engine, user_id, timeout=20)
            assert (decision["action"], decision["rules"]) == ("enforced", ["finance-sms"])
        assert user_created_events(live.engine) == FIVE
        assert count(live.engine, sweeps) == 0  # no sweep ran: the log alone found them
        ready = requests.get(f"{live.url}/readyz", timeout=5).json()["checks"]
        assert ready["webhook_log_read_at"] is not None and ready["webhook_log_recovered"] == FIVE

        again = recover_once(settings, live.engine, since=0.0)
        assert (again.read, again.recovered, again.duplicates, again.skipped_invalid) == (FIVE, 0, FIVE, 0)
        assert user_created_events(live.engine) == FIVE


def test_a_delivery_received_live_and_logged_is_recorded_once(settings, emulator, schema_template):
    """The webhook reaches the running service: the log says success, and a read of the log adds no event."""
    schema_template.apply(settings.database_url)
    with serve_service(settings, emulator, run_worker=True) as live:
        state = emulator.state
        hook = state.webhooks.create(
            name=WEBHOOK_NAME,
            url=live.webhook_url,
            content_type="application/json",
            events=["user:created"],
            secret=WEBHOOK_SECRET,
        )
        user_id = state.add_user(username="gap.live", email="gap.live@acme.example", phone="13900000200")["userId"]
        assert state.wait_for_deliveries(10)
        assert [entry["success"] for entry in state.webhooks.logs(hook["webhookId"])] == [True]
        assert user_created_events(live.engine) == 1

        # The worker may be reading the log at this moment (its lease keeps this read off until it is done).
        def read_whole_log():
            done = recover_once(settings, live.engine, since=0.0)
            return done if done.webhooks else None

        again = wait_until(read_whole_log, what="a read of the log")
        assert (again.webhooks, again.read, again.recovered, again.duplicates) == (1, 1, 0, 1)
        assert user_created_events(live.engine) == 1
        with live.engine.connect() as connection:
            assert connection.execute(sa.select(webhook_log_reads.c.position)).scalar() is not None
        wait_for_decision(live.engine, user_id)
