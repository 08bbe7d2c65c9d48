"""Rollouts (issue 16): ``enforce_from``, ``grace`` and ``waves`` through the worker against the emulator.

A rule whose date has not come writes nothing (the emulator's journal has no ``set-mfa-status``) and its users
are ``pending`` with the date, in the decision, the report and explain; a new date in the policy enforces them
with no restart and no event (the worker's rollout clock queues them); a grace period counts from the first
sighting, stored once, whatever restarts and events follow, until an operator resets it (audited); a pilot
wave is enforced before the rest, who are brought back on their wave's day. The reconciler's and the rollout
clock's ``today`` are the clocks the code already lets a caller set. SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from service.enforcement.explaining import explain_user
from service.policy import Policy, parse_policy
from service.reports import build_report
from service.services import Services
from service.store import deadlines
from service.store.audit import audit_records
from service.store.decisions import decisions_for_user
from tests.support.factories import CurrentPolicy, enqueue, written

TODAY = datetime.now(UTC).date()


def rule(rollout: str) -> Policy:
    text = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n" + rollout
    return replace(parse_policy(text), digest=str(hash(text)))


@pytest.fixture
def finance(emulator):
    """Alice and Zed in Finance with a phone and no factor; Alice in the pilot group."""
    state = emulator.state
    zed = state.add_user(username="fin.zed", email="zed@acme.example", phone="13800138099", departments=["finance"])
    state.add_group("mfa-pilot", "MFA pilot", "First wave")
    state.add_group_member(emulator.users["fin.alice"], "mfa-pilot")
    return emulator.users["fin.alice"], zed["userId"]


def on_day(worker, day: date) -> None:
    worker.reconciler.today = lambda: day
    assert worker.rollouts is not None
    worker.rollouts.today = lambda: day


def test_a_future_enforce_from_writes_nothing_and_a_past_one_enforces_without_restart(
    settings, engine, emulator, finance
):
    alice, zed = finance
    start = TODAY + timedelta(days=20)
    current = CurrentPolicy(rule(f"    enforce_from: {start}\n"))
    worker = Services(settings, engine).worker(current)
    try:
        emulator.journal.clear()
        enqueue(engine, alice, zed)
        worker.run_until_idle()
        worker.rollouts.maybe_queue(time.time())  # first look: nothing due, pending users queued once
        worker.run_until_idle()
        explained = explain_user(worker.reconciler, alice)
        assert written(emulator) == []
        latest = decisions_for_user(engine, alice)[0]
        assert latest["action"] == "pending"
        assert latest["outcomes"] == {"finance-sms": f"pending [SMS] until {start} (enforce_from)"}
        report = build_report(engine, current(), today=TODAY)
        counts = report["rules"]["finance-sms"]
        assert counts["pending"] == 2 and counts["enforced"] == 0
        assert counts["deadlines"] == {"earliest": start.isoformat(), "due_in_7_days": 0}
        [explained_rule] = explained["rules"]
        assert explained_rule["deadline"] == {"date": start.isoformat(), "source": "enforce_from", "pending": True}
        assert explained_rule["report"] == "pending" and explained["change"]["enable"] == []

        current.policy = rule(f"    enforce_from: {TODAY - timedelta(days=1)}\n")  # edited; no restart, no event
        worker.rollouts.maybe_queue(time.time())
        worker.run_until_idle()
    finally:
        worker.reconciler.client.close()
    assert sorted(written(emulator)) == sorted([alice, zed])
    assert decisions_for_user(engine, zed)[0]["action"] == "enforced"
    assert build_report(engine, current(), today=TODAY)["rules"]["finance-sms"]["enforced"] == 2


def test_grace_counts_from_the_first_sighting_through_restarts_and_events_until_reset(
    settings, engine, emulator, finance
):
    alice, _ = finance
    current = CurrentPolicy(rule("    grace: 30d\n"))
    first = date(2027, 1, 10)
    expected = f"pending [SMS] until {first + timedelta(days=30)} (grace 30d from first seen {first})"
    for day in (first, first + timedelta(days=3), first + timedelta(days=29)):  # each a restarted worker
        worker = Services(settings, engine).worker(current)
        on_day(worker, day)
        try:
            enqueue(engine, alice)
            enqueue(engine, alice)
            worker.run_until_idle()
        finally:
            worker.reconciler.client.close()
        assert decisions_for_user(engine, alice)[0]["outcomes"] == {"finance-sms": expected}
    assert written(emulator) == []
    [row] = deadlines.deadlines_between(engine, first, first + timedelta(days=31))
    assert (row.rule, row.user_id, row.first_seen, row.state) == ("finance-sms", alice, first, deadlines.PENDING)

    assert deadlines.reset(
        engine, rule="finance-sms", user_id=alice, reason="back from leave", actor="ops", now=time.time()
    )
    assert not deadlines.reset(engine, rule="finance-sms", user_id=alice, reason="again", actor="ops", now=0.0)
    [entry] = audit_records(engine, action=deadlines.ROLLOUT_RESET)
    assert entry.reason == "back from leave" and entry.scope["first_seen"] == first.isoformat()
    worker = Services(settings, engine).worker(current)
    later = first + timedelta(days=29)
    on_day(worker, later)
    try:
        worker.run_until_idle()  # the reset queued her
        assert decisions_for_user(engine, alice)[0]["outcomes"]["finance-sms"].startswith(
            f"pending [SMS] until {later + timedelta(days=30)}"
        )
        on_day(worker, later + timedelta(days=30))
        worker.rollouts.maybe_queue(time.time())
        worker.run_until_idle()
    finally:
        worker.reconciler.client.close()
    assert written(emulator) == [alice]


def test_with_enforce_from_and_grace_the_later_date_wins(settings, engine, emulator, finance):
    alice, _ = finance
    current = CurrentPolicy(rule("    enforce_from: 2027-01-15\n    grace: 14d\n"))
    worker = Services(settings, engine).worker(current)
    try:
        on_day(worker, date(2027, 1, 10))
        enqueue(engine, alice)
        worker.run_until_idle()
    finally:
        worker.reconciler.client.close()
    label = decisions_for_user(engine, alice)[0]["outcomes"]["finance-sms"]
    assert label == "pending [SMS] until 2027-01-24 (grace 14d from first seen 2027-01-10)"


def test_a_pilot_wave_is_enforced_before_the_rest_who_are_brought_back_on_their_day(
    settings, engine, emulator, finance
):
    alice, zed = finance
    pilot, everyone = date(2027, 1, 4), date(2027, 1, 18)
    current = CurrentPolicy(
        rule(
            "    waves:\n"
            f"      - {{name: pilot, match: {{groups: [mfa-pilot]}}, from: {pilot}}}\n"
            f"      - {{name: everyone, from: {everyone}}}\n"
        )
    )
    worker = Services(settings, engine).worker(current)
    try:
        on_day(worker, pilot)
        enqueue(engine, alice, zed)
        worker.run_until_idle()
        assert written(emulator) == [alice]
        assert decisions_for_user(engine, zed)[0]["outcomes"] == {
            "finance-sms": f"pending [SMS] until {everyone} (wave everyone)"
        }
        soon = deadlines.deadlines_between(engine, pilot, everyone + timedelta(days=1), states=[deadlines.PENDING])
        assert [(row.user_id, row.deadline, row.source) for row in soon] == [(zed, everyone, "wave everyone")]
        worker.rollouts.maybe_queue(time.time())  # nothing due yet: Zed's row comes back as pending
        worker.run_until_idle()
        assert written(emulator) == [alice]

        on_day(worker, everyone)  # no event for Zed: the rollout clock brings him back
        worker.rollouts.next_at = 0.0
        worker.rollouts.maybe_queue(time.time())
        worker.run_until_idle()
    finally:
        worker.reconciler.client.close()
    assert written(emulator) == [alice, zed]
    assert decisions_for_user(engine, zed)[0]["trigger"] in (deadlines.DUE_REASON, deadlines.POLICY_REASON)
