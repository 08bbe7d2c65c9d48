"""The brakes over the admin API (issue 15: "each also reachable from the admin API"): holds, release, discard,
pause, resume and the audit trail, on a live service over HTTP, with the records naming ``admin-api`` and the
token's fingerprint.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import requests

from genauth_emulator.payloads import event_body
from service.app import WORKERS_EXTENSION
from service.enforcement.brakes import PAUSE_TTL
from service.settings import parse_change_budget
from service.store.audit import admin_api_actor
from service.store.decisions import decisions_for_user
from tests.support.live import serve_service
from tests.support.store import wait_for_decision
from tests.support.values import ADMIN_TOKEN
from tests.support.waiting import wait_until

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACTOR = admin_api_actor(ADMIN_TOKEN)
SET_MFA = "/api/v3/set-mfa-status"
ACTIONS = ("/api/holds/release", "/api/holds/discard", "/api/pause", "/api/resume")


def post(url, path, body=None, **kwargs):
    return requests.post(f"{url}{path}", json=body, headers=kwargs.pop("headers", AUTH), timeout=10, **kwargs)


def get(url, path):
    return requests.get(f"{url}{path}", headers=AUTH, timeout=10)


def acted(url):
    """The audit records the admin API made (the startup's ``policy-reload`` is the policy file's)."""
    return [r for r in get(url, "/api/audit").json()["records"] if r["actor"] != "policy-file"]


def audit_of(url, *actions):
    answer = get(url, "/api/audit")
    assert answer.status_code == 200, answer.text
    return [
        (r["action"], r["actor"], r["reason"], r["counts"]) for r in answer.json()["records"] if r["action"] in actions
    ]


@pytest.mark.parametrize("path", ["/api/holds", "/api/audit", *ACTIONS])
def test_every_brake_route_needs_the_admin_token(live_intake, path):
    """No token, or a wrong one: 401 in the API's error format, and nothing acted."""
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        if path in ACTIONS:
            answer = post(live_intake.url, path, {"reason": "x", "all": True}, headers=headers)
        else:
            answer = requests.get(f"{live_intake.url}{path}", headers=headers, timeout=10)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
    assert acted(live_intake.url) == []


@pytest.mark.parametrize("path", ACTIONS)
@pytest.mark.parametrize("body", [None, {}, {"reason": "   "}, {"reason": 7}, {"all": True}])
def test_an_action_without_a_reason_is_refused_in_one_line(live_intake, path, body):
    answer = post(live_intake.url, path, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["code"] == "invalid_action" and "reason is required" in error["message"]
    assert "\n" not in error["message"]
    assert acted(live_intake.url) == []
    assert get(live_intake.url, "/api/holds").json()["paused"] is False


def test_bad_bodies_scopes_and_times_are_refused(live_intake, settings):
    url = live_intake.url
    for body, code in (
        ({"reason": "r"}, "invalid_action"),  # a release must say which users
        ({"reason": "r", "all": True, "max": 2}, "invalid_action"),
        ({"reason": "r", "max": "2"}, "invalid_action"),
        ({"reason": "r", "max": 0}, "invalid_action"),
    ):
        answer = post(url, "/api/holds/release", body)
        assert (answer.status_code, answer.json()["code"]) == (400, code), body
    not_json = requests.post(f"{url}/api/pause", data=b"{reason", headers=AUTH, timeout=10)
    assert (not_json.status_code, not_json.json()["code"]) == (400, "malformed_body")
    a_list = post(url, "/api/pause", ["reason"])
    assert (a_list.status_code, a_list.json()["code"]) == (400, "malformed_body")
    huge = post(url, "/api/pause", {"reason": "x" * (settings.webhook.max_body_bytes + 10)})
    assert huge.status_code == 413
    bad_time = get(url, "/api/audit?since=yesterday-ish")
    assert bad_time.status_code == 400 and "is not a time" in bad_time.json()["message"]
    assert get(url, "/api/holds").json()["paused"] is False


def test_pause_over_the_api_stops_a_write_and_resume_lets_it_through(live_service, emulator):
    """A pause through the API reaches the workers within the pause cache; a delivery is then held (``GET
    /api/holds`` shows it), nothing is written, and a resume through the API writes it. Both actions are in the
    audit trail under the token's fingerprint, and ``since`` filters it."""
    url, alice = live_service.url, emulator.users["fin.alice"]
    started = time.time()
    paused = post(url, "/api/pause", {"reason": "incident 9"})
    assert paused.status_code == 200 and paused.json() == {"paused": True, "changed": True}
    assert post(url, "/api/pause", {"reason": "again"}).json() == {"paused": True, "changed": False}
    workers = live_service.app.extensions[WORKERS_EXTENSION]
    wait_until(
        lambda: all(w.reconciler.brakes.pause_state().paused for w in workers),
        timeout=PAUSE_TTL + 1,
        what="every worker to see the pause",
    )
    live_service.sender.deliver(event_body(emulator.state, "login", alice))
    wait_for_decision(live_service.engine, alice)
    assert decisions_for_user(live_service.engine, alice)[0]["action"] == "held"
    assert emulator.journal.count(SET_MFA) == 0
    shown = get(url, "/api/holds").json()
    assert (shown["held"], shown["paused"], shown["per_cause"], shown["per_rule"]) == (
        1,
        True,
        {"paused": 1},
        {"finance-sms": 1},
    )
    assert set(shown) == {"held", "released_pending", "paused", "per_rule", "per_cause", "sample"}
    assert shown["sample"][0]["user_id"] == alice and shown["sample"][0]["add"] == ["SMS"]

    resumed = post(url, "/api/resume", {"reason": "incident over"})
    assert resumed.json() == {"paused": False, "changed": True, "requeued": 1}
    emulator.journal.wait_for(SET_MFA, count=1, timeout=PAUSE_TTL + 20)
    wait_until(lambda: get(url, "/api/holds").json()["held"] == 0, timeout=30, what="the hold to clear")
    assert post(url, "/api/resume", {"reason": "x"}).json() == {"paused": False, "changed": False, "requeued": 0}

    assert audit_of(url, "pause", "resume") == [
        ("pause", ACTOR, "incident 9", {"users": 0}),
        ("resume", ACTOR, "incident over", {"users": 1}),
    ]
    records = get(url, f"/api/audit?since={started - 1}").json()["records"]
    assert records and records[0]["at"].endswith("Z") and records[0]["at_unix"] >= started - 1
    assert get(url, "/api/audit?since=1h").json()["records"] == records
    assert get(url, f"/api/audit?since={time.time() + 3600}").json() == {"records": []}


def test_release_and_discard_over_the_api(settings, emulator, schema_template):
    """With a budget of 1 a day, two of three Finance users are held; the API releases one (written outside the
    budget) and discards the other (not written), and the trail names the admin API for both."""
    people = [
        emulator.state.add_user(
            username=f"f{i}", email=f"f{i}@acme.example", phone=f"138{i:08d}", departments=["finance"]
        )["userId"]
        for i in range(3)
    ]
    budgeted = replace(settings, worker=replace(settings.worker, change_budget=parse_change_budget("1/day")))
    schema_template.apply(settings.database_url)
    with serve_service(budgeted, emulator, run_worker=True) as live:
        for user_id in people:
            live.sender.deliver(event_body(emulator.state, "login", user_id))
        wait_until(lambda: get(live.url, "/api/holds").json()["held"] == 2, timeout=30, what="two users held")
        assert emulator.journal.count(SET_MFA) == 1

        released = post(live.url, "/api/holds/release", {"reason": "ticket 51", "max": 1})
        assert released.status_code == 200 and released.json()["released"] == 1
        wait_until(lambda: emulator.journal.count(SET_MFA) == 2, timeout=30, what="the released write")
        dropped = post(live.url, "/api/holds/discard", {"reason": "after the freeze"})
        assert dropped.status_code == 200 and dropped.json()["discarded"] == 1
        assert get(live.url, "/api/holds").json()["held"] == 0
        nothing = post(live.url, "/api/holds/release", {"reason": "again", "all": True})
        assert nothing.json() == {"released": 0, "users": []}
        assert emulator.journal.count(SET_MFA) == 2
        assert audit_of(live.url, "release", "discard") == [
            ("release", ACTOR, "ticket 51", {"users": 1}),
            ("discard", ACTOR, "after the freeze", {"users": 1}),
            ("release", ACTOR, "again", {"users": 0}),
        ]
        scopes = [r["scope"] for r in get(live.url, "/api/audit").json()["records"] if r["action"] == "release"]
        assert scopes[0] == {"all": False, "max": 1, "rule": None}
