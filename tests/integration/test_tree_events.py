"""Events that change the organisation tree: the intake accepts them, moves the pool's tree generation in the
transaction that records the event, and a worker whose tree was loaded before (another process's, here
another ``Services``) loads it again and judges a renamed department's members by the new name."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.enforcement.organisation import OrganisationTree
from service.genauth.client import GenAuthClient
from service.policy.conditions import TREE_EVENTS
from service.store.decisions import decisions_for_user
from service.store.inbox import Delivery, record_deliveries
from service.store.organisation_changes import generation
from service.store.subjects import DEPARTMENT, Subject
from service.store.tables import events, work
from tests.support.factories import FakeClock, enqueue
from tests.support.values import WEBHOOK_SECRET

PLATFORM_POLICY = """version: 1
policies:
  - name: platform-sms
    match: {departments: [Platform]}
    require_mfa: [SMS]
"""
EMAIL_POLICY = """version: 1
policies:
  - name: corp-email
    match: {email_domains: [acme.example]}
    require_mfa: [EMAIL]
"""
ORGANIZATIONS = "/api/v3/list-organizations"
ALL_DEPARTMENTS = "/api/v3/get-all-departments"
TOKEN = "/api/v3/get-management-token"


@pytest.fixture
def policy_text():
    return PLATFORM_POLICY


@pytest.fixture
def settings(settings, tmp_path, policy_text):
    """The suite's settings with a rule on a department by name (or, parametrized, none on departments)."""
    path = tmp_path / "policies.yaml"
    path.write_text(policy_text)
    return replace(settings, policy_file=path)


def deliver(app, emulator, body):
    response = app.test_client().post(
        "/webhooks/genauth",
        json=body,
        headers={"x-authing-token": WEBHOOK_SECRET, "x-authing-userpool-id": emulator.state.userpool_id},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def tree_body(emulator, event):
    """A body in the shape of the event table (docs/genauth.md §1.7); node-updated as the emulator sends it."""
    state = emulator.state
    if event == "organization:node-updated":
        return event_body(state, event, department_code="engineering", updates={"name": "Platform"})
    if event == "organization:node-moved":
        return event_body(state, event, department_code="engineering")
    node, organization = state.webhook_node("engineering"), state.webhook_organization("acme")
    data = {
        "organization:node-added": {"node": node, "organization": organization, "parentNode": None},
        "organization:node-deleted": {"nodes": [node]},
        "organization:created": {"organization": organization, "rootNode": state.webhook_node("acme")},
        "organization:deleted": {"organization": organization["id"]},
        "organization:imported": {"organization": organization, "source": "EXCEL"},
        "organization:tree-updated": {"organization": organization, "newNodes": [], "modifyNodes": [node]},
    }[event]
    return {"eventName": event, "data": data}


def calls(emulator):
    return [f"{entry.method} {entry.path}" for entry in emulator.journal.entries() if entry.path != TOKEN]


def test_each_tree_event_is_accepted_recorded_without_its_payload_and_moves_the_generation(app, engine, emulator):
    """Every tree event answers 200 and moves the pool's generation by one; node-updated (and node-moved) also
    queue the department to expand, the others nobody. The event rows keep ids only."""
    pool = emulator.state.userpool_id
    engineering = emulator.state.department_id("engineering")
    assert generation(engine, pool) == 0
    for count, event in enumerate(TREE_EVENTS, start=1):
        answer = deliver(app, emulator, tree_body(emulator, event))
        assert (answer["event"], answer["outcome"], answer["queued"]) == (event, "queued", 0)
        assert generation(engine, pool) == count, event
    with engine.connect() as connection:
        recorded = {row.event_name: row for row in connection.execute(sa.select(events))}
        queued = connection.execute(sa.select(work.c.kind, work.c.user_id, work.c.reason)).all()
    assert set(recorded) == set(TREE_EVENTS)
    expanded = {"organization:node-moved", "organization:node-updated"}
    for event, row in recorded.items():
        assert row.subject_ids == ([f"department:{engineering}"] if event in expanded else []), event
        assert row.outcome == "queued"
    assert [(kind, subject) for kind, subject, _ in queued] == [(DEPARTMENT, engineering)]


def test_a_loaded_tree_reloads_when_another_process_records_a_rename(app, engine, worker, emulator):
    """Engineering is renamed Platform. A worker whose tree was loaded before still sees Engineering (no event
    yet: the cached copy); once the web app records node-updated, the worker's next job reads the moved
    generation (no GenAuth call), loads the tree once and enforces platform-sms on Dave, with no other call
    than a login's and the load's."""
    tree = worker.reconciler.tree
    tree.check_interval = 0.0  # the interval's own test is below
    dave = emulator.users["eng.dave"]
    enqueue(engine, dave)
    worker.run_until_idle()
    assert decisions_for_user(engine, dave)[0]["action"] == "none" and tree.loads == 1
    emulator.state.rename_department("engineering", "Platform")
    enqueue(engine, dave)
    worker.run_until_idle()
    assert decisions_for_user(engine, dave)[0]["action"] == "none" and tree.loads == 1
    deliver(app, emulator, event_body(emulator.state, "organization:node-updated", department_code="engineering"))
    with engine.begin() as connection:  # leave the login alone on the queue: only the marker can reload
        connection.execute(sa.delete(work))
    emulator.journal.clear()
    enqueue(engine, dave)
    worker.run_until_idle()
    [latest, *_] = decisions_for_user(engine, dave)
    assert (latest["trigger"], latest["rules"], latest["action"]) == ("login", ["platform-sms"], "enforced")
    assert tree.loads == 2
    made = calls(emulator)
    assert made.count(f"GET {ORGANIZATIONS}") == 1 and made.count(f"GET {ALL_DEPARTMENTS}") == 1
    assert len(made) == 2 + 4  # the load; get-user, get-mfa-status, set-mfa-status and its read-back
    emulator.journal.clear()
    enqueue(engine, emulator.users["fin.frank"])
    worker.run_until_idle()
    assert tree.loads == 2 and len(calls(emulator)) == 2  # generation unchanged: no load, a login's two reads


def test_the_event_itself_reconciles_the_renamed_departments_members(app, engine, worker, emulator):
    """node-updated through the intake: the department is expanded and Dave, decided for that trigger, matches
    platform-sms by the new name."""
    emulator.state.rename_department("engineering", "Platform")
    deliver(app, emulator, event_body(emulator.state, "organization:node-updated", department_code="engineering"))
    worker.run_until_idle()
    [latest, *_] = decisions_for_user(engine, emulator.users["eng.dave"])
    assert (latest["trigger"], latest["rules"], latest["action"]) == (
        "organization:node-updated",
        ["platform-sms"],
        "enforced",
    )


@pytest.mark.parametrize("policy_text", [EMAIL_POLICY])
@pytest.mark.parametrize("event", ["organization:node-updated", "organization:node-moved", "organization:imported"])
def test_a_tree_event_for_a_pool_with_no_department_rule_is_ignored(app, engine, emulator, event):
    """No rule reads departments, so the tree events are not subscribed to; one delivered anyway is recorded as
    an event the service does not act on: 200, ``ignored``, no work, the generation unmoved."""
    answer = deliver(app, emulator, tree_body(emulator, event))
    assert (answer["outcome"], answer["queued"]) == ("ignored", 0)
    with engine.connect() as connection:
        assert connection.execute(sa.select(events.c.event_name, events.c.outcome)).all() == [(event, "ignored")]
        assert connection.execute(sa.select(sa.func.count()).select_from(work)).scalar() == 0
    assert generation(engine, emulator.state.userpool_id) == 0


def test_deliveries_committed_together_move_each_pools_generation_once(engine):
    """A group commit with two tree events of one pool and one of another moves each generation once, and a
    delivery that does not change the tree moves none."""
    received = [
        (Delivery("organization:node-added", "a", (), "0" * 64, "application/json", "queued", True), 1.0),
        (Delivery("organization:imported", "a", (), "1" * 64, "application/json", "queued", True), 2.0),
        (Delivery("organization:created", "b", (), "2" * 64, "application/json", "queued", True), 3.0),
        (Delivery("login", "c", (Subject.user("u1"),), "3" * 64, "application/json", "queued"), 4.0),
    ]
    record_deliveries(engine, received)
    assert [generation(engine, pool) for pool in "abc"] == [1, 1, 0]
    record_deliveries(engine, received[:1])
    assert generation(engine, "a") == 2


def test_the_generation_is_read_at_most_once_per_interval_and_a_failed_read_waits_for_the_ttl(
    settings, emulator, caplog
):
    """With a 2 s interval, lookups within it read nothing; the first after it reads the generation and loads
    the tree when it moved. A generation that cannot be read is logged and the copy kept until its TTL."""
    clock, moved, failing = FakeClock(), [0], [False]

    def changes():
        if failing[0]:
            raise RuntimeError("database gone")
        return moved[0]

    client = GenAuthClient(settings.genauth)
    try:
        tree = OrganisationTree(clock=clock, changes=changes, check_interval=2.0, ttl=60.0)
        tree.load_if_stale(client)
        assert (tree.loads, tree.checks) == (1, 1)  # read before the load
        moved[0] = 1
        clock.advance(1.0)
        tree.load_if_stale(client)
        assert (tree.loads, tree.checks) == (1, 1)
        clock.advance(1.5)
        tree.load_if_stale(client)
        assert (tree.loads, tree.checks) == (2, 3)  # the check, then the read before the load
        clock.advance(5.0)
        tree.load_if_stale(client)
        assert (tree.loads, tree.checks) == (2, 4)
        failing[0] = True
        clock.advance(5.0)
        with caplog.at_level(logging.WARNING, logger="service.enforcement.organisation"):
            tree.load_if_stale(client)
        assert tree.loads == 2 and "organisation_changes_unread" in caplog.text
        clock.advance(60.0)
        tree.load_if_stale(client)
        assert tree.loads == 3
    finally:
        client.close()


def test_reading_the_generation_is_one_cheap_read(engine):
    """The check a worker makes every few seconds: a primary-key read, about a millisecond. The median of 200
    reads is compared, not their mean, so a stall of the shared machine does not decide it."""
    deliveries = [(Delivery("organization:node-added", "pool", (), "0" * 64, "application/json", "queued", True), 1.0)]
    record_deliveries(engine, deliveries)
    generation(engine, "pool")  # a pooled connection
    times = []
    for _ in range(200):
        started = time.perf_counter()
        assert generation(engine, "pool") == 1
        times.append(time.perf_counter() - started)
    assert sorted(times)[len(times) // 2] < 0.005
