"""Protected accounts (issue 15, part 3): a break-glass user the policy's ``protected`` block names, by id,
username, email or group, is never written (the emulator's journal has no ``set-mfa-status`` for them) while
the other Finance users are; the decision says ``protected`` and the report counts it apart. A user held by the
change budget and protected afterwards is not written on release, and the write gate refuses a protected
user even when its hold was released. Real emulator, SQLite and PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date

import pytest

from service.cli.verdicts import verdict_of
from service.enforcement.brakes import Brakes
from service.enforcement.explaining import explain_user
from service.policy import UserFacts, parse_policy
from service.reports import build_report
from service.services import Services
from service.settings import parse_change_budget
from service.store import holds
from service.store.decisions import decisions_for_user
from service.vocabulary import Action
from tests.support.factories import CurrentPolicy, enqueue, written

USER_GROUPS = "/api/v3/get-user-groups"
RULE = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"
REASON = "break-glass admin, kept out of every rule"


def protecting(entry: str) -> str:
    return f"protected:\n  {entry}\n  reason: {REASON}\n{RULE}"


@pytest.fixture
def finance(emulator):
    """Alice (to protect) and Zed, both in Finance with a phone and no factor; a group holding only Alice."""
    state = emulator.state
    zed = state.add_user(username="fin.zed", email="zed@acme.example", phone="13800138099", departments=["finance"])[
        "userId"
    ]
    state.add_group("break-glass", "Break glass", "Emergency accounts")
    state.add_group_member(emulator.users["fin.alice"], "break-glass")
    return emulator.users["fin.alice"], zed


def make_worker(settings, engine, policy, budget="off"):
    braked = replace(settings, worker=replace(settings.worker, change_budget=parse_change_budget(budget)))
    return Services(braked, engine).worker(policy)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("users: [{alice}]", "user {alice}"),
        ("users: [FIN.Alice]", "user FIN.Alice"),
        ("users: [fin.alice@acme.example]", "user fin.alice@acme.example"),
        ("groups: [Break-Glass]", "group Break-Glass"),
    ],
    ids=["id", "username", "email", "group"],
)
def test_a_protected_finance_user_is_never_written_while_the_others_are(
    settings, engine, emulator, finance, entry, why
):
    alice, zed = finance
    policy = parse_policy(protecting(entry.format(alice=alice)))
    worker = make_worker(settings, engine, CurrentPolicy(policy))
    try:
        emulator.journal.clear()
        enqueue(engine, alice, zed)
        worker.run_until_idle()
        enqueue(engine, alice)  # a second event changes nothing
        worker.run_until_idle()
        groups_read = emulator.journal.count(USER_GROUPS)
        explained = explain_user(worker.reconciler, alice)
        dry = verdict_of(alice, worker.reconciler.plan(alice, dry_run=True), ("finance-sms",))
    finally:
        worker.reconciler.client.close()
    assert written(emulator) == [zed]
    assert groups_read == (3 if "groups" in entry else 0)  # read only for a group block
    latest = decisions_for_user(engine, alice)[0]
    assert latest["action"] == Action.PROTECTED == "protected"
    assert latest["reason"].startswith(f"protected: {REASON} ({why.format(alice=alice)})")
    assert latest["rules"] == ["finance-sms"] and latest["outcomes"] == {"finance-sms": "protected"}
    assert decisions_for_user(engine, zed)[0]["action"] == "enforced"
    assert explained["decision"]["action"] == "protected" and explained["change"]["enable"] == []
    assert [(r["outcome"], r["report"]) for r in explained["rules"]] == [("protected", "protected")]
    assert dry.overall == "protected" and dry.reason.startswith(f"protected: {REASON}")
    report = build_report(engine, policy, today=date.today())
    assert report["totals"]["protected"] == 1 and report["rules"]["finance-sms"]["protected"] == 1
    assert report["rules"]["finance-sms"]["enforced"] == 1 and "protected" in report["categories"]


def test_a_user_held_then_protected_is_not_written_on_release(settings, engine, emulator, finance):
    """Budget 1/day: Zed takes the slot, Alice is held; the policy then protects her; ``holds release``
    re-plans her under the new policy: nothing written, the decision says protected, the hold is over."""
    alice, zed = finance
    current = CurrentPolicy(parse_policy(RULE))
    worker = make_worker(settings, engine, current, budget="1/day")
    try:
        emulator.journal.clear()
        enqueue(engine, zed)
        worker.run_until_idle()
        enqueue(engine, alice)
        worker.run_until_idle()
        assert decisions_for_user(engine, alice)[0]["action"] == "held" and written(emulator) == [zed]
        current.policy = parse_policy(protecting(f"users: [{alice}]"))
        assert holds.release(engine, reason="after the freeze", now=time.time()) == [alice]
        worker.run_until_idle()
    finally:
        worker.reconciler.client.close()
    assert written(emulator) == [zed]
    latest = decisions_for_user(engine, alice)[0]
    assert latest["action"] == "protected" and REASON in latest["reason"]
    with engine.connect() as connection:
        assert holds.held_count(connection) == 0
    assert not holds.is_released(engine, "pool", alice)


def test_the_gate_refuses_a_protected_user_even_when_released(engine):
    """Defence in depth: whatever path reaches the gate (a release, a future revert), a protected user's write
    is refused there, before the pause and the budget, and no hold is recorded for them."""
    brakes = Brakes(engine, parse_change_budget("1/day"))
    entry = holds.Hold("pool", "u-admin", "", "", "login", ("finance-sms",), (), ("SMS",), username="admin")
    holds.hold(engine, replace(entry, cause=holds.BUDGET, reason="held"), now=time.time())
    holds.release(engine, reason="let it go", now=time.time())
    protection = parse_policy(protecting("users: [admin@acme.example]")).protected
    facts = UserFacts("u-admin", username="admin", email="Admin@acme.example")
    refused = brakes.admit(entry, facts, protection)
    assert refused is not None and refused.action == Action.PROTECTED
    assert refused.reason == f"protected: {REASON} (user admin@acme.example): nothing written"
    assert brakes.admit(entry, facts, None) is None  # unprotected, the release lets it through
