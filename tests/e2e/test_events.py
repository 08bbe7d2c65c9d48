"""Events beyond sign-in and membership: group changes, role grants, moved departments, deleted users."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.intake.context import EXTENSION
from service.reports import build_report
from service.store.decisions import decisions_for_user
from service.store.tables import events, work
from tests.support.store import wait_for_decision

TODAY = date(2026, 12, 1)


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


def test_a_forged_deletion_does_not_cancel_enforcement(live_service, emulator):
    """A user:deleted for a user GenAuth still has active is a hint like any other: the worker reads the user,
    finds them, and enforces the policy (a delivery alone must not cancel enforcement)."""
    alice = emulator.users["fin.alice"]
    assert live_service.sender.deliver(event_body(emulator.state, "user:deleted", alice)).status_code == 200
    emulator.journal.wait_for(lambda e: e.path == "/api/v3/set-mfa-status" and e.body["userId"] == alice)
    assert wait_for_decision(live_service.engine, alice)["action"] == "enforced"
    assert [f["mfaPolicy"] for f in emulator.state.get_mfa(alice)["applicationMfa"]] == ["SMS"]


def test_a_forged_archiving_does_not_cancel_enforcement(live_service, emulator):
    """Likewise user:archived for a user whose status in GenAuth is still Activated."""
    alice = emulator.users["fin.alice"]
    assert live_service.sender.deliver(event_body(emulator.state, "user:archived", alice)).status_code == 200
    assert wait_for_decision(live_service.engine, alice)["action"] == "enforced"


def test_a_confirmed_deletion_is_recorded_as_removed_and_keeps_the_last_status(live_service, emulator):
    """A user GenAuth no longer has gets a `removed` decision carrying their last known outcome; the earlier
    decisions stay, nothing is written, and the report counts them as removed, not compliant, not gone."""
    alice = emulator.users["fin.alice"]
    live_service.sender.deliver(event_body(emulator.state, "login", alice))
    assert wait_for_decision(live_service.engine, alice)["action"] == "enforced"
    body = event_body(emulator.state, "user:deleted", alice)
    emulator.state.delete_user(alice)
    writes = emulator.journal.count("/api/v3/set-mfa-status")
    assert live_service.sender.deliver(body).status_code == 200
    removed = wait_for_decision(live_service.engine, alice, count=2)
    assert removed["action"] == "removed" and "does not exist" in removed["reason"]
    assert removed["outcomes"] == {"finance-sms": "enforce [SMS]"} and removed["before"] is None
    assert [d["action"] for d in decisions_for_user(live_service.engine, alice)] == ["removed", "enforced"]
    assert emulator.journal.count("/api/v3/set-mfa-status") == writes
    report = build_report(live_service.engine, live_service.app.extensions[EXTENSION].policies.current(), today=TODAY)
    assert report["totals"]["removed"] == 1 and report["totals"]["compliant"] == 0
    assert report["rules"]["finance-sms"]["removed"] == 1 and report["users"] == 1


def test_a_confirmed_archiving_is_removed_without_reading_or_writing_mfa(live_service, emulator):
    """A user whose GenAuth status is Archived is recorded as removed; their MFA data is neither read nor written."""
    alice = emulator.users["fin.alice"]
    emulator.state.update_user(alice, status="Archived")
    emulator.journal.clear()
    assert live_service.sender.deliver(event_body(emulator.state, "user:archived", alice)).status_code == 200
    decision = wait_for_decision(live_service.engine, alice)
    assert decision["action"] == "removed" and "archived" in decision["reason"]
    paths = {entry.path for entry in emulator.journal.entries()}
    assert not paths & {"/api/v3/get-mfa-status", "/api/v3/set-mfa-status"}


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
