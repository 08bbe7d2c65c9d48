"""What one delivery may cost: subjects per delivery, values per body, bytes per body; how the queue orders
real events before bulk work; what the event record keeps of long lists; the user-pool check failing closed;
and the keyed body digest."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import tracemalloc
from dataclasses import replace

import pytest
import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.app import create_app
from service.intake.context import EXTENSION
from service.store import queue
from service.store.inbox import MAX_LISTED_SUBJECTS
from service.store.subjects import Subject
from service.store.tables import deployment_keys, events, work
from tests.support.values import WEBHOOK_SECRET


@pytest.fixture
def make_client(settings):
    """A test client for the app built from ``settings`` with some webhook settings changed."""
    built = []

    def make(**webhook):
        application = create_app(replace(settings, webhook=replace(settings.webhook, **webhook)), configure_logs=False)
        built.append(application)
        return application.test_client(), application.extensions[EXTENSION].engine

    yield make
    for application in built:
        application.extensions[EXTENSION].engine.dispose()


def deliver(client, body, *, pool="ours", content_type="application/json", headers=None):
    sent = {"x-authing-token": WEBHOOK_SECRET, "Content-Type": content_type, **(headers or {})}
    if pool is not None:
        sent["x-authing-userpool-id"] = pool
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/webhooks/genauth", data=data, headers=sent)


def counts(engine):
    with engine.connect() as connection:
        return tuple(connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in (events, work))


def role_event(user_ids, group_ids=(), node_ids=()):
    return {
        "eventName": "role:assigned",
        "data": {"userIds": list(user_ids), "groupIds": list(group_ids), "nodeIds": list(node_ids)},
    }


# -- subjects per delivery ------------------------------------------------------------------------------------


def test_a_delivery_naming_more_subjects_than_the_cap_is_refused_and_nothing_is_stored(make_client, emulator):
    """ENFORCER_MAX_SUBJECTS counts users, departments and groups together; one over it is 422."""
    client, engine = make_client(userpool_id=emulator.state.userpool_id, max_subjects=10)
    pool = emulator.state.userpool_id
    at_cap = role_event([f"u{i}" for i in range(8)], group_ids=["g1"], node_ids=["d1"])
    assert deliver(client, at_cap, pool=pool).status_code == 200
    before = counts(engine)
    over = role_event([f"u{i}" for i in range(9)], group_ids=["g1"], node_ids=["d1"])
    response = deliver(client, over, pool=pool)
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "too_many_subjects" and "ENFORCER_MAX_SUBJECTS" in body["message"]
    assert counts(engine) == before


def test_the_default_cap_refuses_the_reported_amplification(make_client, emulator):
    """One delivery of 3 x 5,000 ids (15,000 work rows before) is refused by the default cap of 1,000."""
    client, engine = make_client(userpool_id=emulator.state.userpool_id)
    ids = [f"{i:024x}" for i in range(5000)]
    response = deliver(client, role_event(ids, ids, ids), pool=emulator.state.userpool_id)
    assert response.status_code in (400, 413, 422) and counts(engine) == (0, 0)


# -- priorities -----------------------------------------------------------------------------------------------


def test_a_login_is_claimed_before_bulk_work_queued_earlier(make_client, emulator):
    """Department and group expansions and the users of list events wait behind a single-user event, on
    SQLite and PostgreSQL, even when they were due first."""
    client, engine = make_client(userpool_id=emulator.state.userpool_id)
    pool = emulator.state.userpool_id
    assert deliver(client, role_event([f"bulk{i}" for i in range(30)], ["g1"], ["d1"]), pool=pool).status_code == 200
    time.sleep(0.01)
    alice = emulator.users["fin.alice"]
    assert deliver(client, event_body(emulator.state, "login", alice), pool=pool).status_code == 200
    with engine.connect() as connection:
        priorities = dict(connection.execute(sa.select(work.c.user_id, work.c.priority)).all())
    assert priorities[alice] == queue.PRIORITY_EVENT
    assert {priorities[key] for key in priorities if key != alice} == {queue.PRIORITY_BULK}
    [first] = queue.claim(engine, owner="w", limit=1, lease_seconds=30, now=time.time() + 1)
    assert (first.subject.id, first.subject.kind) == (alice, "user")
    rest = queue.claim(engine, owner="w", limit=100, lease_seconds=30, now=time.time() + 1)
    assert len(rest) == 32


def test_bulk_rows_named_by_a_real_event_are_raised_to_its_priority(make_client, emulator):
    """A user waiting as bulk work (a sweep, a list event) who then signs in is claimed as a login."""
    client, engine = make_client(userpool_id=emulator.state.userpool_id)
    pool = emulator.state.userpool_id
    alice = emulator.users["fin.alice"]
    with engine.begin() as connection:
        queue.enqueue(connection, "", [Subject.user("other")], reason="reconcile", now=time.time() - 120)
        queue.enqueue(connection, "", [Subject.user(alice)], reason="reconcile", now=time.time() - 60)
    assert deliver(client, event_body(emulator.state, "login", alice), pool=pool).status_code == 200
    [first] = queue.claim(engine, owner="w", limit=1, lease_seconds=30, now=time.time() + 1)
    assert first.subject.id == alice


# -- what the event record keeps ---------------------------------------------------------------------------------


def test_long_subject_lists_are_kept_as_a_count_and_a_digest(make_client, emulator):
    """Up to MAX_LISTED_SUBJECTS subjects are listed (replay --since reads them); a longer list is stored as
    its count and the SHA-256 of the list it would have been."""
    client, engine = make_client(userpool_id=emulator.state.userpool_id)
    pool = emulator.state.userpool_id
    short = [f"s{i}" for i in range(MAX_LISTED_SUBJECTS)]
    long = [f"l{i}" for i in range(MAX_LISTED_SUBJECTS + 1)]
    for ids in (short, long):
        assert deliver(client, role_event(ids), pool=pool).status_code == 200
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(events.c.subject_ids, events.c.subject_count, events.c.subjects_digest).order_by(events.c.id)
        ).all()
    assert rows[0] == (short, len(short), None)
    assert rows[1] == ([], len(long), hashlib.sha256(json.dumps(long).encode()).hexdigest())


# -- values and bytes per body -------------------------------------------------------------------------------


def test_a_mebibyte_of_empty_objects_is_refused_before_parsing(make_client, emulator):
    """1 MiB of `{}` (about 50 MB once parsed) is refused from a byte count: with the default limit by its
    size (413), with a limit raised to 2 MiB by its values (400), either way within a few MiB and no row."""
    flood = b"[" + b"{}," * (1024 * 1024 // 3 - 1) + b"{}]"
    for limit, status, code in ((None, 413, "request_entity_too_large"), (2 * 1024 * 1024, 400, "too_many_values")):
        extra = {} if limit is None else {"max_body_bytes": limit}
        client, engine = make_client(userpool_id=emulator.state.userpool_id, **extra)
        tracemalloc.start()
        try:
            started = time.perf_counter()
            response = deliver(client, flood, pool=emulator.state.userpool_id)
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (response.status_code, response.get_json()["code"]) == (status, code)
        assert peak < len(flood) * 3 + 2 * 1024 * 1024, f"peak {peak} bytes"
        assert elapsed < 2.0 and counts(engine) == (0, 0)


def test_the_largest_genauth_events_fit_the_default_limits_with_room(make_client, emulator):
    """A list event of 100 full user objects (compact JSON, as GenAuth's sender writes it) is under the body
    limit and its value cap; the largest single-user event is under a sixty-fourth of the limit."""
    client, _engine = make_client(userpool_id=emulator.state.userpool_id)
    state = emulator.state
    users = list(emulator.users.values())
    body = event_body(state, "group:member-added", users=(users * 20)[:100], group_code="mfa-exempt")
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    settings_limit = client.application.extensions[EXTENSION].settings.webhook
    assert len(raw) < settings_limit.max_body_bytes
    assert deliver(client, raw, pool=state.userpool_id).status_code == 200
    largest_single = max(
        len(json.dumps(event_body(state, name, user, department_code="finance")).encode())
        for name in ("login", "register", "user:created", "user:updated", "organization:member-added")
        for user in users
    )
    assert largest_single * 64 < settings_limit.max_body_bytes


def test_form_values_that_are_not_utf8_are_refused(make_client, emulator):
    """A percent-encoded value that is not UTF-8 is a 400, as a JSON body that is not UTF-8 is."""
    client, engine = make_client(userpool_id=emulator.state.userpool_id)
    body = b"eventName=login&data[id]=%ff%fe&data[userPoolId]=" + emulator.state.userpool_id.encode()
    response = deliver(client, body, pool=emulator.state.userpool_id, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "not UTF-8" in response.get_json()["message"]
    assert counts(engine) == (0, 0)


# -- the user pool, failing closed --------------------------------------------------------------------------------


def test_with_a_configured_pool_a_delivery_naming_no_pool_or_another_is_refused(make_client, emulator):
    """GENAUTH_USERPOOL_ID set: no pool anywhere is 403 missing_userpool; another pool in any header or in the
    body is 403 wrong_userpool; the configured pool in the header or the body is accepted."""
    ours = emulator.state.userpool_id
    client, engine = make_client(userpool_id=ours)
    alice = emulator.users["fin.alice"]
    login = event_body(emulator.state, "login", alice)
    role = role_event([alice])
    refusals = [
        (deliver(client, role, pool=None), "missing_userpool"),
        (deliver(client, {"eventName": "user:password-changed", "data": {}}, pool=None), "missing_userpool"),
        (deliver(client, role, pool=ours, headers={"x-genauth-userpool-id": "f" * 24}), "wrong_userpool"),
        (deliver(client, role, pool=f"{ours},{'f' * 24}"), "wrong_userpool"),
        (deliver(client, {**login, "data": {**login["data"], "userPoolId": "f" * 24}}, pool=ours), "wrong_userpool"),
        (deliver(client, {"eventName": "test", "data": {}}, pool="f" * 24), "wrong_userpool"),
        (deliver(client, {"eventName": "x:y", "data": {"userPoolId": "f" * 24}}, pool=None), "wrong_userpool"),
    ]
    for response, code in refusals:
        assert (response.status_code, response.get_json()["code"]) == (403, code)
    assert counts(engine) == (0, 0)
    assert deliver(client, login, pool=None).status_code == 200, "the body names our pool"
    assert deliver(client, role, pool=ours).status_code == 200, "the header names our pool"
    assert deliver(client, {"eventName": "test", "data": {"description": "x"}}, pool=None).status_code == 200
    assert deliver(client, {"description": "A test from GenAuth Webhook"}, pool=None).status_code == 200


def test_without_a_configured_pool_deliveries_need_not_name_one(make_client, emulator):
    """GENAUTH_USERPOOL_ID unset: nothing to compare with, so a delivery naming no pool is accepted."""
    client, _engine = make_client(userpool_id=None)
    assert deliver(client, role_event(["u1"]), pool=None).status_code == 200


# -- the body digest ----------------------------------------------------------------------------------------


def test_the_stored_body_digest_is_an_hmac_under_a_key_kept_per_database(make_client, emulator):
    """events.digest is HMAC-SHA-256 under the deployment key, not the bare SHA-256 of the body; equal bodies
    get equal digests, across restarts of the service on the same database."""
    ours = emulator.state.userpool_id
    raw = json.dumps(event_body(emulator.state, "login", emulator.users["fin.bob"])).encode()
    first, engine = make_client(userpool_id=ours)
    second, _ = make_client(userpool_id=ours)
    for client in (first, second):
        assert deliver(client, raw, pool=ours).status_code == 200
    with engine.connect() as connection:
        digests = connection.execute(sa.select(events.c.digest)).scalars().all()
        [key] = connection.execute(sa.select(deployment_keys.c.value)).scalars().all()
    assert digests[0] == digests[1] == hmac.new(bytes.fromhex(key), raw, hashlib.sha256).hexdigest()
    assert hashlib.sha256(raw).hexdigest() not in digests
    assert len(bytes.fromhex(key)) == 32
