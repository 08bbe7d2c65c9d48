"""End to end: GenAuth-shaped deliveries over HTTP to the running service, the worker thread reconciling, and
what the GenAuth emulator received. Runs on SQLite and on PostgreSQL, with each way of proving the access key
(GENAUTH_AUTH): a management token, and signed requests, which never ask for one."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.settings import AUTH_MODES
from service.store.tables import events, work
from tests.support.store import wait_for_decision, wait_for_empty_queue

SET_MFA = "/api/v3/set-mfa-status"
GET_MFA = "/api/v3/get-mfa-status"
TOKEN = "/api/v3/get-management-token"


@pytest.fixture(params=AUTH_MODES)
def settings(settings, emulator, request):
    """The suite's settings in each GENAUTH_AUTH mode; with signatures, no token may be asked for, ever."""
    yield replace(settings, genauth=replace(settings.genauth, auth=request.param))
    calls = [entry for entry in emulator.journal.entries() if entry.path.startswith("/api/v3/")]
    if request.param == "signature":
        assert emulator.journal.count(TOKEN) == 0
        assert all(entry.headers["authorization"].startswith("authing ") for entry in calls)
    else:
        assert all(entry.headers["authorization"].startswith("Bearer ") for entry in calls if entry.path != TOKEN)


def is_write_for(user_id):
    return lambda entry: entry.path == SET_MFA and bool(entry.body) and entry.body.get("userId") == user_id


def writes_for(emulator, user_id):
    return [entry for entry in emulator.journal.entries(SET_MFA) if entry.body and entry.body.get("userId") == user_id]


@pytest.mark.parametrize("event", ["user:created", "register", "login"])
def test_finance_user_gets_sms_enforced(live_service, emulator, event):
    """A delivery for a Finance user leads to set-mfa-status with SMS enabled and the user's phone bound."""
    alice = emulator.users["fin.alice"]
    response = live_service.sender.deliver(event_body(emulator.state, event, alice))
    assert response.status_code == 200 and response.json()["success"] is True
    [write] = emulator.journal.wait_for(is_write_for(alice), timeout=10)
    data = write.body["mfaTriggerData"]
    assert {"mfaPolicy": "SMS", "status": 1, "sort": 0} in data["applicationMfa"]
    assert data["mfaPhone"] == emulator.state.user(alice)["phone"]
    decision = wait_for_decision(live_service.engine, alice)
    assert (decision["action"], decision["rules"], decision["after"]) == ("enforced", ["finance-sms"], ["SMS"])


def test_sub_department_user_keeps_existing_factors_and_token(live_service, emulator):
    """Payroll (under Finance) is in scope; the enabled EMAIL factor and the stored mfaToken are sent back."""
    bob = emulator.users["fin.bob"]
    stored = emulator.state.get_mfa(bob)
    live_service.sender.deliver(event_body(emulator.state, "login", bob))
    [write] = emulator.journal.wait_for(is_write_for(bob), timeout=10)
    data = write.body["mfaTriggerData"]
    assert data["mfaToken"] == stored["mfaToken"]
    assert data["mfaEmail"] == stored["mfaEmail"]
    policies = {entry["mfaPolicy"]: entry["status"] for entry in data["applicationMfa"]}
    assert policies == {"EMAIL": 1, "SMS": 1}
    reads = [entry.path for entry in emulator.journal.entries() if entry.query.get("userId") == [bob]]
    assert GET_MFA in reads, "the write must be built from a read"
    after = {entry["mfaPolicy"]: entry["status"] for entry in emulator.state.get_mfa(bob)["applicationMfa"]}
    assert after == {"EMAIL": 1, "SMS": 1}


@pytest.mark.parametrize(
    ("username", "action", "reason"),
    [
        ("eng.dave", "none", "no rule matches"),
        ("fin.frank", "none", "already compliant"),
        ("fin.carol", "unsatisfiable", "no phone number on record"),
    ],
    ids=["out-of-scope", "compliant", "no-phone"],
)
def test_nothing_is_written_when_nothing_may_be(live_service, emulator, username, action, reason):
    """Out-of-scope, already compliant and unsatisfiable users are recorded and never written."""
    user_id = emulator.users[username]
    before = emulator.state.get_mfa(user_id)
    live_service.sender.deliver(event_body(emulator.state, "login", user_id))
    decision = wait_for_decision(live_service.engine, user_id)
    assert decision["action"] == action and reason in decision["reason"]
    assert writes_for(emulator, user_id) == []
    assert emulator.state.get_mfa(user_id) == before


def test_moving_into_finance_enforces_and_moving_out_removes_nothing(live_service, emulator):
    """member-added to Finance enforces SMS; member-removed afterwards leaves the factor in place."""
    erin = emulator.users["new.erin"]
    emulator.state.add_member(erin, "finance")
    live_service.sender.deliver(
        event_body(emulator.state, "organization:member-added", erin, department_code="finance")
    )
    emulator.journal.wait_for(is_write_for(erin), timeout=10)
    wait_for_decision(live_service.engine, erin)

    emulator.state.remove_member(erin, "finance")
    live_service.sender.deliver(
        event_body(emulator.state, "organization:member-removed", erin, department_code="finance")
    )
    decision = wait_for_decision(live_service.engine, erin, count=2)
    assert decision["action"] == "none" and "no rule matches" in decision["reason"]
    assert len(writes_for(emulator, erin)) == 1
    enabled = {entry["mfaPolicy"] for entry in emulator.state.get_mfa(erin)["applicationMfa"] if entry["status"] == 1}
    assert "SMS" in enabled


def test_duplicate_deliveries_cause_one_write(live_service, emulator):
    """Five copies of a login for one user end in exactly one set-mfa-status."""
    alice = emulator.users["fin.alice"]
    body = event_body(emulator.state, "login", alice)
    for _ in range(5):
        assert live_service.sender.deliver(body).status_code == 200
    wait_for_empty_queue(live_service.engine)
    assert len(writes_for(emulator, alice)) == 1


@pytest.mark.parametrize("encoding", ["json", "form-brackets", "form-json-field", "form-raw-json"])
@pytest.mark.parametrize("header_style", ["authing", "genauth"])
def test_every_body_encoding_and_header_spelling_is_accepted(live_service, emulator, encoding, header_style):
    """JSON and the three form shapes, with either header spelling, are enqueued and enforced."""
    alice = emulator.users["fin.alice"]
    response = live_service.sender.deliver(
        event_body(emulator.state, "login", alice), encoding=encoding, header_style=header_style
    )
    assert response.status_code == 200, response.text
    assert response.json()["queued"] == 1
    emulator.journal.wait_for(is_write_for(alice), timeout=10)


def test_bare_login_body_is_accepted(live_service, emulator):
    """The guide's un-enveloped login example is treated as a login."""
    alice = emulator.users["fin.alice"]
    response = live_service.sender.deliver(event_body(emulator.state, "login", alice), bare=True)
    assert response.status_code == 200 and response.json()["event"] == "login"
    emulator.journal.wait_for(is_write_for(alice), timeout=10)


def test_console_test_event_is_acknowledged_and_recorded(live_service, emulator):
    """The console's test delivery gets 200 and an event record with no work."""
    response = live_service.sender.deliver(event_body(emulator.state, "test"))
    assert response.status_code == 200 and response.json()["outcome"] == "test"
    with live_service.engine.connect() as connection:
        assert connection.execute(sa.select(events.c.event_name, events.c.outcome)).all() == [("test", "test")]
        assert connection.execute(sa.select(sa.func.count()).select_from(work)).scalar_one() == 0
