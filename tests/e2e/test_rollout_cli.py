"""Rollouts as operators run them (issue 16): ``mfa-enforcer worker`` as a subprocess against the emulator, a
policy file whose ``enforce_from`` is in the future, then edited to the past; ``report --json``, ``policy
check`` and ``rollout reset`` as commands. Dates are relative to today (the processes read the real clock)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.inbox import Delivery, record_delivery
from service.store.subjects import Subject
from tests.support.processes import BIN, run_command, service_env, stop
from tests.support.values import ROOT
from tests.support.waiting import wait_until

SET_MFA = "/api/v3/set-mfa-status"
TODAY = datetime.now(UTC).date()
RULE = """policies:
  - name: finance-sms
    match: {{departments: [finance]}}
    require_mfa: [SMS]
    enforce_from: {start}
"""


def test_a_future_date_writes_nothing_then_editing_it_to_the_past_enforces_without_restart(
    emulator, database_url, tmp_path
):
    start = TODAY + timedelta(days=10)
    policy = tmp_path / "policies.yaml"
    policy.write_text(RULE.format(start=start))
    env = service_env(emulator, database_url, POLICY_FILE=str(policy), ENFORCER_POLICY_CHECK_INTERVAL="0.2")
    engine = create_engine(database_url)
    prepare_database(engine)
    alice = emulator.users["fin.alice"]
    pool = emulator.state.userpool_id
    login = Delivery("login", pool, (Subject.user(alice),), "0" * 64, "application/json", "queued")
    record_delivery(engine, login, now=time.time())
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        decision = wait_until(lambda: decisions_for_user(engine, alice), what="the worker's decision")[0]
        assert decision["action"] == "pending"
        assert decision["outcomes"] == {"finance-sms": f"pending [SMS] until {start} (enforce_from)"}
        report = run_command(["mfa-enforcer", "report", "--json"], env)
        assert report.returncode == 0, report.stderr
        counts = json.loads(report.stdout)["rules"]["finance-sms"]
        assert counts["pending"] == 1 and counts["deadlines"]["earliest"] == start.isoformat()
        assert emulator.journal.count(SET_MFA) == 0

        policy.write_text(RULE.format(start=TODAY - timedelta(days=5)))  # edited; no restart, no event
        enforced = wait_until(
            lambda: [d for d in decisions_for_user(engine, alice) if d["action"] == "enforced"],
            what="the edited date to enforce the pending user",
            timeout=20,
        )
        assert enforced[0]["trigger"] == "rollout-policy-changed"
        assert emulator.journal.count(SET_MFA) == 1
    finally:
        assert stop(process) == 0
        log.close()
        engine.dispose()
    refused = run_command(["mfa-enforcer", "rollout", "reset", "--rule", "finance-sms", "--user", alice], env)
    assert refused.returncode == 2 and "--reason TEXT is required" in refused.stderr
    reset = ["mfa-enforcer", "rollout", "reset", "--rule", "finance-sms", "--user", alice, "--reason", "new start"]
    done = run_command(reset, env)
    assert done.returncode == 0, done.stderr
    assert "reset:" in done.stdout
    audit = run_command(["mfa-enforcer", "audit", "--json"], env)
    assert "rollout-reset" in audit.stdout and "new start" in audit.stdout


def finance_rule(name: str, rollout: str) -> str:
    return f"  - name: {name}\n    match: {{departments: [finance]}}\n    require_mfa: [SMS]\n{rollout}"


def test_policy_check_prints_the_timeline_and_names_rule_and_field_for_bad_input(tmp_path):
    policy = tmp_path / "policies.yaml"
    policy.write_text(
        "policies:\n" + finance_rule("finance-sms", "    enforce_from: 2027-01-15\n    grace: 14d\n") + "    waves:\n"
        "      - {name: pilot, match: {groups: [mfa-pilot]}, from: 2027-01-04}\n"
    )
    checked = subprocess.run(
        [str(BIN / "mfa-enforcer"), "policy", "check", str(policy)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "  rollout:\n    2027-01-04  wave pilot: users with groups any of [mfa-pilot]\n" in checked.stdout
    assert "    2027-01-15  enforce_from: everyone in no wave\n" in checked.stdout
    assert "    + grace 14d from when each user is first seen in scope (the later date wins)\n" in checked.stdout

    policy.write_text(
        "policies:\n"
        + finance_rule("finance-sms", "    enforce_from: 2027-01-15\n    grace: two weeks\n")
        + "    waves:\n"
        "      - {name: pilot, match: {groupz: [mfa-pilot]}, from: 2027-01-04}\n"
        + finance_rule(
            "late-wave", "    enforce_from: 2027-01-15\n    waves:\n      - {name: pilot, from: 2027-02-01}\n"
        )
        + finance_rule("bad-date", "    enforce_from: 2027-02-30\n")
    )
    refused = subprocess.run(
        [str(BIN / "mfa-enforcer"), "policy", "check", str(policy)], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[1:] == [
        "  policies[0] (finance-sms): grace: expected a duration like 14d or 2w, got 'two weeks'",
        "  policies[0] (finance-sms): waves[0].match.groupz: unknown key; expected departments, "
        "include_subdepartments, groups, roles, email_domains, status, external_id, user_source_type, "
        "register_source, custom_data, identity_providers, all, any, not",
        "  policies[1] (late-wave): waves[0].from: 2027-02-01 is after the rule's enforce_from 2027-01-15",
        "  policies[2] (bad-date): enforce_from: expected a date like 2027-01-31, got text ('2027-02-30')",
    ]
