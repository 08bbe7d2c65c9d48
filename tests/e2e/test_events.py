"""Events beyond sign-in and membership: group changes, role grants, moved departments, deleted users."""

from __future__ import annotations

import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.store.decisions import decisions_for_user
from service.store.tables import events, work
from tests.e2e.test_pipeline import wait_for_decision


def queued(engine):
    with engine.connect() as connection:
        return sorted((row.kind, row.user_id) for row in connection.execute(sa.select(work.c.kind, work.c.user_id)))


def test_group_membership_change_queues_every_user_named(live_intake, emulator):
    """group:member-added queues each user of data.users once."""
    users = [emulator.users["fin.alice"], emulator.users["eng.dave"]]
    body = {
        "eventName": "group:member-added",
        "data": {
            "group": {"id": "g1", "code": "contractors"},
            "users": [emulator.state.webhook_user(u) for u in users],
        },
    }
    assert live_intake.sender.deliver(body).status_code == 200
    assert queued(live_intake.engine) == sorted(("user", u) for u in users)


def test_role_grant_queues_users_and_the_groups_and_departments_to_expand(live_intake, emulator):
    """role:assigned queues its users, and one expansion row per group and department."""
    alice = emulator.users["fin.alice"]
    finance = emulator.state.department_id("finance")
    body = {"eventName": "role:assigned", "data": {"userIds": [alice], "groupIds": ["g1"], "nodeIds": [finance]}}
    response = live_intake.sender.deliver(body)
    assert response.status_code == 200
    assert queued(live_intake.engine) == sorted([("user", alice), ("group", "g1"), ("department", finance)])
    with live_intake.engine.connect() as connection:
        [subjects] = connection.execute(sa.select(events.c.subject_ids)).one()
    assert subjects == [alice, f"department:{finance}", "group:g1"]


def test_deleting_a_user_drops_their_pending_work_and_records_why(live_intake, emulator):
    """user:deleted after a login removes the queued row and leaves a decision saying so."""
    alice, bob = emulator.users["fin.alice"], emulator.users["fin.bob"]
    for user in (alice, bob):
        live_intake.sender.deliver(event_body(emulator.state, "login", user))
    body = event_body(emulator.state, "user:deleted", alice)
    assert live_intake.sender.deliver(body).status_code == 200
    assert queued(live_intake.engine) == [("user", bob)]
    [decision] = decisions_for_user(live_intake.engine, alice)
    assert decision["action"] == "none" and "pending work dropped" in decision["reason"]


def test_archiving_a_user_drops_their_pending_work(live_intake, emulator):
    """user:archived removes the user's queued row."""
    alice = emulator.users["fin.alice"]
    live_intake.sender.deliver(event_body(emulator.state, "login", alice))
    assert live_intake.sender.deliver(event_body(emulator.state, "user:archived", alice)).status_code == 200
    assert queued(live_intake.engine) == []


def test_moving_a_department_under_finance_enforces_its_members(live_service, emulator):
    """organization:node-moved for Engineering (now under Finance) reaches eng.dave, who gets SMS."""
    dave = emulator.users["eng.dave"]
    emulator.state.move_department("engineering", "finance")
    body = event_body(emulator.state, "organization:node-moved", department_code="engineering")
    assert live_service.sender.deliver(body).status_code == 200
    emulator.journal.wait_for(
        lambda e: e.path == "/api/v3/set-mfa-status" and bool(e.body) and e.body.get("userId") == dave, timeout=15
    )
    members = emulator.journal.entries("/api/v3/list-department-members")
    assert members and members[-1].query["includeChildrenDepartments"] == ["true"]


def test_granting_a_role_to_a_group_reaches_its_members(live_service, emulator):
    """role:assigned with a group id: the worker expands the group and reconciles each member."""
    bob = emulator.users["fin.bob"]
    contractors = emulator.state.group("contractors")["id"]
    body = {"eventName": "role:assigned", "data": {"userIds": [], "groupIds": [contractors], "nodeIds": []}}
    assert live_service.sender.deliver(body).status_code == 200
    decision = wait_for_decision(live_service.engine, bob)
    assert decision["trigger"] == "role:assigned"
    assert emulator.journal.count("/api/v3/list-group-members") == 1
