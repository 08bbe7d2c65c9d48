"""Gap recovery against bad logs: entries that do not validate are counted and skipped once (the position moves
past them), a log longer than the page cap is read only that far, a dry run records nothing, GenAuth's errors
come out typed, and ``mfa-enforcer webhooks recover`` reports in one line (on the emulator's log, filled
directly as GenAuth would have logged failed attempts)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from genauth_emulator.payloads import event_body
from genauth_emulator.records import log_timestamp
from service.genauth.errors import GenAuthAuthenticationError
from service.genauth.webhooks import WEBHOOK_NAME
from service.store.tables import events, webhook_log_reads, work
from service.store.webhook_log import stored_read
from tests.support.processes import run_command, service_env
from tests.support.recovery import recover_once
from tests.support.values import WEBHOOK_SECRET


@pytest.fixture
def hook(emulator):
    """Our webhook, sending nowhere (nothing is delivered automatically: the tests write its log)."""
    emulator.state.auto_deliver = False
    return emulator.state.webhooks.create(
        name=WEBHOOK_NAME,
        url="http://127.0.0.1:9/webhooks/genauth",
        content_type="application/json",
        events=["user:created"],
        secret=WEBHOOK_SECRET,
    )


def log(emulator, hook, body, *, at, pool=None, success=False):
    """One failed attempt in the webhook's log, as the emulator's sender writes it."""
    headers = {"x-authing-userpool-id": pool or emulator.state.userpool_id, "content-type": "application/json"}
    emulator.state.webhooks.add_log(
        hook["webhookId"],
        {
            "webhookId": hook["webhookId"],
            "eventName": str(body.get("eventName", "test")) if isinstance(body, dict) else "user:created",
            "requestBody": body,
            "requestHeaders": headers,
            "timestamp": log_timestamp(at),
            "success": success,
            "responseStatusCode": None,
            "errorMessage": "ECONNREFUSED",
        },
    )


def counted(result):
    return REGISTRY.get_sample_value("mfa_enforcer_webhook_log_entries_total", {"result": result}) or 0.0


def rows(engine, table):
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_an_entry_that_does_not_validate_is_counted_and_skipped_once(settings, engine, emulator, hook):
    """A body without a user id, an entry without a body and one for another pool are counted as invalid and
    skipped; the valid one is recorded; the next read starts after them all and counts nothing again."""
    now = time.time()
    alice = emulator.users["fin.alice"]
    log(emulator, hook, {"eventName": "user:created", "data": {"nope": 1}}, at=now - 4)
    log(emulator, hook, None, at=now - 3)
    log(emulator, hook, event_body(emulator.state, "user:created", alice), at=now - 2, pool="another-pool")
    log(emulator, hook, event_body(emulator.state, "user:created", alice), at=now - 1)

    before = {result: counted(result) for result in ("recovered", "invalid")}
    first = recover_once(settings, engine)
    assert (first.read, first.recovered, first.skipped_invalid, first.duplicates) == (4, 1, 3, 0)
    assert {result: counted(result) - before[result] for result in before} == {"recovered": 1, "invalid": 3}
    assert rows(engine, events) == 1 and rows(engine, work) == 1
    assert first.last_position == pytest.approx(now - 1, abs=0.002)

    second = recover_once(settings, engine)
    assert (second.read, second.recovered, second.skipped_invalid) == (0, 0, 0)
    assert rows(engine, events) == 1


def test_a_log_longer_than_the_page_cap_is_read_only_that_far(settings, engine, emulator, hook):
    """120 entries and a cap of two pages: the read stops after 100 entries and says it was capped."""
    now = time.time()
    bob = emulator.users["fin.bob"]
    for index in range(120):
        log(emulator, hook, event_body(emulator.state, "user:created", bob), at=now - 120 + index)
    done = recover_once(settings, engine, max_pages=2)
    assert done.capped and done.read == 100
    assert done.recovered + done.duplicates == 100  # equal bodies: the same delivery, recorded once
    assert rows(engine, events) == done.recovered


def test_a_dry_run_records_nothing_and_keeps_the_position(settings, engine, emulator, hook):
    log(emulator, hook, event_body(emulator.state, "user:created", emulator.users["fin.alice"]), at=time.time())
    done = recover_once(settings, engine, dry_run=True)
    assert (done.read, done.recovered) == (1, 1)
    assert rows(engine, events) == 0 and stored_read(engine, hook["webhookId"]) is None


def test_genauth_refusing_the_key_is_its_typed_error_and_leaves_no_lease(settings, engine, emulator, hook):
    wrong = replace(settings, genauth=replace(settings.genauth, access_key_secret="not-the-secret"))
    with pytest.raises(GenAuthAuthenticationError):
        recover_once(wrong, engine)
    with engine.connect() as connection:
        assert connection.execute(sa.select(webhook_log_reads.c.lease_until)).scalars().all() in ([], [None])


def test_the_command_reports_what_it_recovered(settings, engine, emulator, hook):
    """``webhooks recover --json`` on the service's database; a --since that is no time is a usage error."""
    log(emulator, hook, event_body(emulator.state, "user:created", emulator.users["fin.alice"]), at=time.time())
    env = service_env(emulator, settings.database_url)
    done = run_command(["mfa-enforcer", "webhooks", "recover", "--json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"lastPosition": None} == {
        "dryRun": False,
        "webhooks": 1,
        "busy": 0,
        "read": 1,
        "recovered": 1,
        "skippedInvalid": 0,
        "duplicates": 0,
        "lastPosition": None,
        "capped": False,
    }
    again = run_command(["mfa-enforcer", "webhooks", "recover"], env)
    assert again.returncode == 0 and "read 0 new log entries of 1 webhook(s): recovered 0" in again.stdout
    refused = run_command(["mfa-enforcer", "webhooks", "recover", "--since", "yesterday-ish"], env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
