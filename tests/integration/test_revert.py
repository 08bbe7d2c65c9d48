"""Revert (issue 15, part 4): what a write changed is recorded with its decision, and ``revert`` undoes exactly
that where GenAuth still holds what the service wrote; what changed since is left alone and listed; bad input
and an enforce-mode rule still covering the users are refused in one line (exit 2); a protected account is
never written; the admin API does the same. One in-process worker against the real emulator, SQLite and
PostgreSQL; the command's code runs in this process (``tests.support.brakes.invoke``)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from service.enforcement.brakes import PAUSE_TTL
from service.enforcement.decisions import Decision
from service.enforcement.merging import write_changes
from service.enforcement.reverting import undo
from service.policy import Policy, parse_policy
from service.services import Services
from service.settings import parse_change_budget
from service.store import operator_actions, reverts
from service.store.audit import admin_api_actor, audit_records
from service.store.decisions import decisions_for_user, record_decision
from tests.support.brakes import SET_MFA, invoke
from tests.support.factories import enforced_decision, enqueue
from tests.support.processes import service_env
from tests.support.values import ADMIN_TOKEN
from tests.support.waiting import wait_until

RULE = (
    "policies:\n  - name: finance-sms\n    mode: {mode}\n    match: {{departments: [finance]}}\n"
    "    require_mfa: [SMS]\n"
)


class Current:
    """The policy the worker reads, switched by the test (as a reload would)."""

    def __init__(self, text: str) -> None:
        self.policy = parse_policy(text)

    def __call__(self) -> Policy:
        return self.policy


@pytest.fixture
def world(settings, engine, emulator, tmp_path):
    """Zed and Yan in Finance with a phone, a token and OTP of their own; a worker enforcing SMS; the command's
    environment with the policy file (enforce mode) the command reads."""
    state = emulator.state
    people = []
    for name in ("zed", "yan"):
        user_id = state.add_user(
            username=f"fin.{name}", email=f"{name}@acme.example", phone="13800138099", departments=["finance"]
        )["userId"]
        state.set_mfa(
            user_id, {"mfaToken": f"tok-{name}", "applicationMfa": [{"mfaPolicy": "OTP", "status": 1, "sort": 0}]}
        )
        people.append(user_id)
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(RULE.format(mode="enforce"))
    current = Current(policy_file.read_text())
    braked = replace(settings, worker=replace(settings.worker, change_budget=parse_change_budget("off")))
    worker = Services(braked, engine).worker(current)
    before = {user_id: state.get_mfa(user_id) for user_id in people}
    enqueue(engine, *people, pool=state.userpool_id)
    worker.run_until_idle()
    env = service_env(emulator, settings.database_url, POLICY_FILE=str(policy_file))

    def to_audit() -> None:
        policy_file.write_text(RULE.format(mode="audit"))
        current.policy = parse_policy(policy_file.read_text())

    try:
        yield {"people": people, "before": before, "worker": worker, "env": env, "to_audit": to_audit}
    finally:
        worker.reconciler.client.close()


def test_a_write_records_exactly_what_it_changed_and_never_the_phone(world, engine):
    zed = world["people"][0]
    changes = decisions_for_user(engine, zed)[0]["changes"]
    assert changes["entries"] == [{"factor": "SMS"}]
    assert set(changes["fields"]) == {"mfaPhone", "mfaPhoneCountryCode"}
    assert changes["fields"]["mfaPhone"]["was"] is None
    assert "13800138099" not in json.dumps(changes)


def test_revert_undoes_only_what_the_service_wrote_and_lists_what_changed_since(world, engine, emulator):
    zed, yan = world["people"]
    state = emulator.state
    changed = state.get_mfa(yan)
    changed["mfaPhone"] = "13911112222"  # Yan's admin replaced the phone the service filled: left alone
    state.set_mfa(yan, changed)
    world["to_audit"]()
    result = invoke(world["env"], "revert", "--rule", "finance-sms", "--reason", "wrong department", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["claimed"] == 2
    emulator.journal.clear()
    world["worker"].run_until_idle()
    assert emulator.journal.count(SET_MFA) == 2
    assert state.get_mfa(zed) == world["before"][zed]  # token and OTP intact, SMS entry and phone gone
    after = state.get_mfa(yan)
    assert after["mfaPhone"] == "13911112222" and after["mfaToken"] == "tok-yan"
    assert [e["mfaPolicy"] for e in after["applicationMfa"]] == ["OTP"]
    latest = decisions_for_user(engine, yan)[0]
    assert latest["action"] == "reverted" and "mfaPhone: not what the service filled in" in latest["reason"]
    outcome = {row["user_id"]: row for row in reverts.outcome(engine, [d["id"] for d in _enforced(engine, zed, yan)])}
    assert outcome[zed]["state"] == "reverted" and outcome[zed]["left_alone"] == []
    assert outcome[yan]["left_alone"] == ["mfaPhone: not what the service filled in (changed since)"]
    again = invoke(world["env"], "revert", "--rule", "finance-sms", "--reason", "again", "--json")
    assert json.loads(again.stdout)["claimed"] == 0 and json.loads(again.stdout)["already_reverted"] == 2
    record = next(r for r in audit_records(engine) if r.action == "revert")
    assert (record.reason, record.counts["users"], record.scope["rule"]) == ("wrong department", 2, "finance-sms")


def test_an_entry_disabled_since_is_left_alone(world, emulator):
    zed = world["people"][0]
    state = emulator.state
    changed = state.get_mfa(zed)
    changed["applicationMfa"] = [dict(e, status=0) if e["mfaPolicy"] == "SMS" else e for e in changed["applicationMfa"]]
    state.set_mfa(zed, changed)
    world["to_audit"]()
    assert invoke(world["env"], "revert", "--user", "fin.zed", "--reason", "r").returncode == 0
    world["worker"].run_until_idle()
    after = state.get_mfa(zed)
    assert {e["mfaPolicy"]: e["status"] for e in after["applicationMfa"]} == {"OTP": 1, "SMS": 0}
    assert after["mfaPhone"] is None  # the phone it filled is still its own: cleared


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("revert", "--reason", "x"), "say which writes: --since TIME"),
        (("revert", "--since", "1h"), "revert needs --reason TEXT"),
        (("revert", "--since", "1h", "--reason", "  "), "revert needs --reason TEXT"),
        (("revert", "--since", "yesterday-ish", "--reason", "x"), "is not a time"),
        (("revert", "--since", "1h", "--reason", "x"), "set `mode: audit` on them first (or --force)"),
    ],
    ids=["no-scope", "no-reason", "blank-reason", "bad-time", "enforce-rule-covers"],
)
def test_bad_input_is_refused_in_one_line(world, emulator, args, message):
    written = emulator.journal.count(SET_MFA)
    result = invoke(world["env"], *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert emulator.journal.count(SET_MFA) == written


def test_force_and_dry_run(world, engine, emulator):
    """``--dry-run`` lists users and diffs, writes nothing, records nothing; ``--force`` reverts even while the
    enforce-mode rule covers them."""
    env = world["env"]
    preview = invoke(env, "revert", "--since", "1h", "--reason", "x", "--force", "--dry-run", "--json")
    assert preview.returncode == 0, preview.stderr
    plan = json.loads(preview.stdout)
    assert plan["users"] == 2 and plan["plan"][0]["writes"][0]["undo"] == [
        "remove the SMS entry the service added",
        "clear mfaPhone, which the service filled",
        "clear mfaPhoneCountryCode, which the service filled",
    ]
    shown = invoke(env, "revert", "--since", "1h", "--reason", "x", "--force", "--dry-run")
    assert "would revert 2 write(s) to 2 user(s)" in shown.stdout
    assert not reverts.outcome(engine, [d["id"] for d in _enforced(engine, *world["people"])])
    assert not [r for r in audit_records(engine) if r.action == "revert"]
    forced = invoke(env, "revert", "--since", "1h", "--reason", "emergency", "--force", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["claimed"] == 2
    emulator.journal.clear()
    world["worker"].run_until_idle()
    assert emulator.journal.count(SET_MFA) == 2


def test_a_protected_account_is_never_written_by_a_revert(world, engine, emulator):
    zed, _ = world["people"]
    world["worker"].reconciler.get_policy.policy = parse_policy(  # type: ignore[attr-defined]
        f"protected:\n  users: [{zed}]\n  reason: break-glass\n" + RULE.format(mode="audit")
    )
    assert invoke(world["env"], "revert", "--user", zed, "--reason", "r", "--force").returncode == 0
    emulator.journal.clear()
    world["worker"].run_until_idle()
    assert emulator.journal.count(SET_MFA) == 0
    latest = decisions_for_user(engine, zed)[0]
    assert latest["action"] == "protected" and "nothing reverted" in latest["reason"]
    assert reverts.outcome(engine, [_enforced(engine, zed)[0]["id"]])[0]["state"] == "left"


def test_undo_takes_back_exactly_the_recorded_changes():
    read = {"mfaToken": "t", "mfaPhone": None, "applicationMfa": [{"mfaPolicy": "SMS", "status": 0, "sort": 2}]}
    written = {
        "mfaToken": "t",
        "mfaPhone": "+8613800138000",
        "applicationMfa": [{"mfaPolicy": "SMS", "status": 1, "sort": 2}],
    }
    digest = str.upper
    changes = write_changes(read, written, digest)
    assert changes == {
        "entries": [{"factor": "SMS", "was": 0}],
        "fields": {"mfaPhone": {"digest": "+8613800138000", "present": True, "was": None}},
    }
    assert undo(written, [changes], digest).trigger_data == read


def test_the_admin_api_reverts_by_the_same_rules(app, engine):
    """Token-protected; a reason is required (400); the shipped policy's enforce-mode finance-sms still covers the
    user (409, ``revert_refused``); ``force`` with ``dry_run`` lists; ``force`` claims, recorded as admin-api."""
    _record(engine, _decision("u-1"))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post("/api/revert", json={"since": "1h", "reason": "x"}).status_code == 401
    assert client.post("/api/revert", json={"since": "1h"}, headers=auth).status_code == 400
    assert client.post("/api/revert", json={"reason": "x"}, headers=auth).status_code == 400
    refused = client.post("/api/revert", json={"since": "1h", "reason": "x"}, headers=auth)
    assert refused.status_code == 409 and "mode: audit" in refused.get_json()["message"]
    dry = client.post("/api/revert", json={"since": "1h", "reason": "x", "force": True, "dry_run": True}, headers=auth)
    assert dry.status_code == 200 and dry.get_json()["users"] == 1 and "claimed" not in dry.get_json()
    done = client.post("/api/revert", json={"user": "u-1", "reason": "api", "force": True}, headers=auth)
    assert done.status_code == 200 and done.get_json()["claimed"] == 1
    record = [r for r in audit_records(engine) if r.action == "revert"][-1]
    assert (record.actor, record.reason, record.scope["force"]) == (admin_api_actor(ADMIN_TOKEN), "api", True)


def _decision(user_id: str) -> Decision:
    return enforced_decision(user_id, changes={"entries": [{"factor": "SMS"}], "fields": {}})


def _record(engine, decision: Decision) -> None:
    with engine.begin() as connection:
        record_decision(connection, decision, now=time.time())


def _enforced(engine, *user_ids: str) -> list[dict]:
    return [d for user_id in user_ids for d in decisions_for_user(engine, user_id) if d["action"] == "enforced"]


def test_a_pause_holds_a_revert_and_resume_lets_it_through(world, engine, emulator):
    """The revert passes the same gate as every write: paused, it is held (a revert hold, which a reconcile of
    the same user does not clear); ``resume`` puts it back on the queue as a revert, and it is written."""
    zed = world["people"][0]
    worker = world["worker"]
    world["to_audit"]()
    operator_actions.pause(engine, reason="incident", actor="ops", now=time.time())
    wait_until(lambda: worker.reconciler.brakes.pause_state().paused, timeout=PAUSE_TTL + 1, what="the pause seen")
    assert invoke(world["env"], "revert", "--user", zed, "--reason", "r").returncode == 0
    emulator.journal.clear()
    worker.run_until_idle()
    enqueue(engine, zed, pool=emulator.state.userpool_id)  # a delivery about Zed while the revert is held
    worker.run_until_idle()
    shown = operator_actions.holds_view(engine)
    assert (shown["held"], shown["sample"][0]["trigger"], shown["per_cause"]) == (1, "revert", {"paused": 1})
    assert emulator.journal.count(SET_MFA) == 0
    assert operator_actions.resume(engine, reason="over", actor="ops", now=time.time(), settle=PAUSE_TTL) == 1
    wait_until(
        lambda: worker.run_once() and emulator.journal.count(SET_MFA) == 1, timeout=PAUSE_TTL + 10, what="revert"
    )
    assert emulator.state.get_mfa(zed) == world["before"][zed]
    assert operator_actions.holds_view(engine)["held"] == 0
    assert decisions_for_user(engine, zed)[0]["action"] == "reverted"
