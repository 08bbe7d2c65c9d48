"""The rule language through the worker: groups, roles, custom data, combinators, exceptions and fallbacks,
each fetching only the facts it needs from the emulator."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date

import pytest

from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.inbox import Delivery, record_delivery
from service.store.subjects import Subject

TODAY = date(2026, 11, 28)


@pytest.fixture
def run(settings, emulator, tmp_path, database_url, schema_template):
    """run(policy_yaml, *usernames) -> {username: latest decision}, with the calls made in the journal."""
    schema_template.apply(database_url)
    engine = create_engine(database_url)
    prepare_database(engine)
    workers = []

    def run_policy(text, *usernames):
        path = tmp_path / f"policy-{len(workers)}.yaml"
        path.write_text(text)
        from service.policy import load_policy

        policy = load_policy(path)
        worker = Services(replace(settings, policy_file=path), engine).worker(lambda: policy)
        worker.reconciler.today = lambda: TODAY
        workers.append(worker)
        users = [emulator.users[name] for name in usernames]
        record_delivery(
            engine,
            Delivery("login", "pool", tuple(map(Subject.user, users)), "0" * 64, "application/json", "queued"),
            now=time.time(),
        )
        emulator.journal.clear()
        worker.run_until_idle()
        return {name: decisions_for_user(engine, emulator.users[name])[0] for name in usernames}

    yield run_policy
    for worker in workers:
        worker.reconciler.client.close()
    engine.dispose()


def paths(emulator):
    return sorted({entry.path for entry in emulator.journal.entries()} - {"/api/v3/get-management-token"})


def test_department_but_not_its_contractors_group(run, emulator):
    """Finance minus the contractors group: alice is enforced, bob (a contractor) is not matched."""
    decisions = run(
        """
policies:
  - name: finance-staff
    match:
      departments: [finance]
      not: {groups: [contractors]}
    require_mfa: [SMS]
""",
        "fin.alice",
        "fin.bob",
    )
    assert decisions["fin.alice"]["action"] == "enforced"
    assert decisions["fin.bob"]["action"] == "none" and decisions["fin.bob"]["rules"] == []
    assert "/api/v3/get-user-groups" in paths(emulator)
    assert "/api/v3/get-user-roles" not in paths(emulator)


def test_admins_by_role_fetch_roles_only(run, emulator):
    """A role rule enforces eng.dave (admin) and reads roles, never departments or groups."""
    decisions = run(
        "policies:\n  - name: admins-otp\n    match: {roles: [admin]}\n    require_mfa: [OTP]\n",
        "eng.dave",
        "fin.alice",
    )
    assert decisions["eng.dave"]["action"] == "enforced" and decisions["eng.dave"]["after"] == ["OTP"]
    assert decisions["fin.alice"]["action"] == "none"
    assert paths(emulator) == [
        "/api/v3/get-global-mfa-settings",  # once per process: the pool's factors (service.enforcement.effective)
        "/api/v3/get-mfa-status",
        "/api/v3/get-user",
        "/api/v3/get-user-roles",
        "/api/v3/set-mfa-status",
    ]
    assert emulator.journal.entries("/api/v3/get-user-roles")[0].query["namespace"] == ["default"]


def test_custom_data_rule_asks_for_custom_data(run, emulator):
    """customData.costCenter = FIN-01 matches only the user who has it, read with withCustomData."""
    emulator.state.update_user(emulator.users["eng.dave"], custom_data={"costCenter": "FIN-01"})
    decisions = run(
        "policies:\n  - name: cost-center\n    match: {custom_data: {costCenter: {equals: FIN-01}}}\n"
        "    require_mfa: [OTP]\n",
        "eng.dave",
        "fin.alice",
    )
    assert decisions["eng.dave"]["action"] == "enforced"
    assert decisions["fin.alice"]["action"] == "none"
    assert emulator.journal.entries("/api/v3/get-user")[0].query.get("withCustomData") == ["true"]


def test_temporary_exception_exempts_until_it_expires(run, emulator):
    """A group exception exempts its members; an expired one no longer does."""
    emulator.state.add_group_member(emulator.users["fin.alice"], "mfa-exempt")
    policy = """
policies:
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
    exceptions:
      - groups: [mfa-exempt]
        reason: Hardware token pilot
        expires: {expires}
"""
    exempt = run(policy.replace("{expires}", "2027-01-31"), "fin.alice")["fin.alice"]
    assert exempt["action"] == "exempt" and "Hardware token pilot" in exempt["reason"]
    assert emulator.journal.count("/api/v3/set-mfa-status") == 0
    expired = run(policy.replace("{expires}", "2026-11-01"), "fin.alice")["fin.alice"]
    assert expired["action"] == "enforced"


def test_fallback_stands_in_for_a_factor_the_user_cannot_have(run, emulator):
    """fin.carol has no phone: with fallback [EMAIL] she gets EMAIL, and the decision says why."""
    decisions = run(
        "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"
        "    fallback: [EMAIL]\n",
        "fin.carol",
    )
    carol = decisions["fin.carol"]
    assert carol["action"] == "enforced" and carol["after"] == ["EMAIL"]
    assert carol["outcomes"] == {"finance-sms": "enforce [EMAIL] (fallback for SMS)"}
    [write] = emulator.journal.entries("/api/v3/set-mfa-status")
    assert write.body["mfaTriggerData"]["mfaEmail"] == emulator.state.user(emulator.users["fin.carol"])["email"]


def test_union_of_rules_is_enforced_and_outcomes_are_recorded_per_rule(run, emulator):
    """Two rules for one user: both factors are written in one call and each rule's outcome recorded."""
    decisions = run(
        """
policies:
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
  - name: acme-otp
    match: {email_domains: [acme.example]}
    require_mfa: [OTP]
""",
        "fin.alice",
    )
    alice = decisions["fin.alice"]
    assert alice["after"] == ["SMS", "OTP"] and emulator.journal.count("/api/v3/set-mfa-status") == 1
    assert alice["outcomes"] == {"finance-sms": "enforce [SMS]", "acme-otp": "enforce [OTP]"}
