"""What the service tells an admin is true: the report counts each user once whatever was replayed, the dry run
counts each rule by its own outcome and agrees with the report, users are found and shown by the names an
admin has, and the words say what happened (or would). The CLI runs as a subprocess against the emulator and
a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import requests
import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.policy import load_policy
from service.services import Services
from service.store.tables import decisions, work
from tests.support.live import serve_service
from tests.support.processes import run_command, service_env
from tests.support.store import wait_for_decision, wait_for_empty_queue
from tests.support.values import ADMIN_TOKEN, ROOT
from tests.support.waiting import wait_until

SHIPPED_POLICY = ROOT / "config" / "policies.yaml"
TWO_RULES = """policies:
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
  - name: acme-email-audit
    mode: audit
    match: {email_domains: [acme.example]}
    require_mfa: [EMAIL]
    exceptions:
      - groups: [contractors]
        reason: contractors sign in with their own company's MFA
"""


def cli(env, *args, timeout=60):
    return run_command(["mfa-enforcer", *args], env)


def deliver_logins(service, emulator, names):
    for name in names:
        service.sender.deliver(event_body(emulator.state, "login", emulator.users[name]))


def report_json(env, *args):
    result = cli(env, "report", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def pool_keys(engine):
    with engine.connect() as connection:
        return set(connection.execute(sa.select(decisions.c.userpool_id).distinct()).scalars()) | set(
            connection.execute(sa.select(work.c.userpool_id).distinct()).scalars()
        )


def test_report_counts_each_user_once_after_every_kind_of_replay(emulator, database_url, live_service):
    """replay --user (no work row), --user by username, --all (dead letters) and --since all enqueue under the
    deployment's pool key: the report still counts alice, carol and frank once each; dead-letters shows no
    "(pool -)" but the user's name."""
    env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
    engine = live_service.engine
    deliver_logins(live_service, emulator, ("fin.alice", "fin.carol", "fin.frank"))
    for name in ("fin.alice", "fin.carol", "fin.frank"):
        wait_for_decision(engine, emulator.users[name])
    wait_for_empty_queue(engine)
    assert report_json(env)["users"] == 3

    alice = emulator.users["fin.alice"]
    for replay in (["--user", alice], ["--user", "fin.carol"], ["--since", "1h"]):
        before = len(_decisions_of(engine))
        result = cli(env, "replay", *replay, "--reason", "truth test")
        assert result.returncode == 0, result.stderr
        _wait_for_more_decisions(engine, before)
        wait_for_empty_queue(engine)
        assert report_json(env)["users"] == 3, f"after replay {replay}"
    assert pool_keys(engine) == {emulator.state.userpool_id}

    # A dead letter: GenAuth fails every read of frank's MFA until the retry budget is spent.
    emulator.faults.add("status_500", path="get-mfa-status", times=None)
    deliver_logins(live_service, emulator, ("fin.frank",))
    wait_until(lambda: _dead(engine), what="a dead letter")
    emulator.faults.clear()
    listed = cli(env, "dead-letters")
    assert "fin.frank" in listed.stdout and "(pool -)" not in listed.stdout, listed.stdout
    assert report_json(env)["totals"]["failed"] == 1
    result = cli(env, "replay", "--all", "--reason", "frank recovered")
    assert result.returncode == 0 and "fin.frank" in result.stdout, result.stdout + result.stderr
    frank = emulator.users["fin.frank"]
    wait_until(lambda: not _dead(engine) and _latest_action(engine, frank) != "failed", what="frank decided again")
    wait_for_empty_queue(engine)
    final = report_json(env)
    assert final["users"] == 3 and final["rules"]["finance-sms"]["compliant"] == 2
    assert pool_keys(engine) == {emulator.state.userpool_id}


def _decisions_of(engine):
    with engine.connect() as connection:
        return connection.execute(sa.select(decisions.c.id)).all()


def _latest_action(engine, user_id):
    with engine.connect() as connection:
        return connection.execute(
            sa.select(decisions.c.action).where(decisions.c.user_id == user_id).order_by(decisions.c.id.desc())
        ).scalar()


def _dead(engine):
    with engine.connect() as connection:
        return connection.execute(sa.select(work.c.user_id).where(work.c.state == "dead")).all()


def _wait_for_more_decisions(engine, before):
    wait_until(lambda: len(_decisions_of(engine)) > before, what="a new decision")


def test_dry_run_counts_each_rule_by_its_own_outcome_and_rule_plans_only_that_rule(emulator, database_url):
    """The shipped audit rule matches nobody: its block says 4 not matched, not "2 to enforce"; --rule plans
    and prints only that rule; the plan says "would enable SMS (dry run)" and names each user."""
    env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
    summary = json.loads(cli(env, "reconcile", "--dry-run", "--json", "--quiet").stdout)
    audit = summary["rules"]["finance-partners-sms"]
    assert audit["in_scope"] == 4 and audit["not_matched"] == 4 and audit["to_enforce"] == 0, audit
    sms = summary["rules"]["finance-sms"]
    assert (sms["to_enforce"], sms["unsatisfiable"], sms["compliant"]) == (2, 1, 1)

    only = json.loads(cli(env, "reconcile", "--dry-run", "--json", "--quiet", "--rule", "finance-partners-sms").stdout)
    assert list(only["rules"]) == ["finance-partners-sms"]
    assert only["to_enforce"] == 0 and only["not_matched"] == 4 and only["changes"] == []

    text = cli(env, "reconcile", "--dry-run", "--quiet").stdout
    assert "would enable SMS (dry run)" in text and "(audit)" not in text
    assert "fin.alice" in text and "fin.carol" in text
    assert "add a phone number" in text, "an unsatisfiable user's line names the fix"


def test_dry_run_and_report_agree_on_the_same_users(emulator, database_url, settings, engine, tmp_path):
    """Two rules (one audit, with an exception, one user suspended, one archived): the dry run's per-rule counts
    are what the report shows once the worker has decided the same users."""
    policy = tmp_path / "policies.yaml"
    policy.write_text(TWO_RULES)
    emulator.state.update_user(emulator.users["eng.dave"], status="Suspended")
    emulator.state.update_user(emulator.users["fin.frank"], status="Archived")
    env = service_env(emulator, database_url, POLICY_FILE=str(policy))
    dry = json.loads(cli(env, "reconcile", "--dry-run", "--json", "--quiet").stdout)
    assert cli(env, "reconcile", "--quiet").returncode == 0
    loaded = load_policy(policy)
    worker = Services(settings, engine).worker(lambda: loaded)
    try:
        worker.run_until_idle()  # the sweep's pages: its users are decided from the listings
        assert len(_decisions_of(engine)) == 6
    finally:
        worker.reconciler.client.close()
    report = report_json(env)
    for rule in ("finance-sms", "acme-email-audit"):
        planned, recorded = dry["rules"][rule], report["rules"][rule]
        assert planned["compliant"] == recorded["compliant"], rule
        assert planned["to_enforce"] == recorded["enforced"] + recorded["would-enforce"], rule
        assert planned["unsatisfiable"] == recorded["unsatisfiable"], rule
        assert planned["exempt"] == recorded["exempt"], rule
    assert dry["rules"]["acme-email-audit"]["exempt"] == 1  # fin.bob, a contractor
    assert dry["inactive"] == 1 and report["inactive"] == 1  # eng.dave, suspended
    assert dry["removed"] == 1 and report["totals"]["removed"] == 1  # fin.frank, archived
    assert dry["rules"]["finance-sms"]["removed"] == 1
    assert dry["to_enforce"] == report["totals"]["enforced"] + report["totals"]["would-enforce"]


def test_report_lists_the_users_behind_each_count_as_text_csv_and_json(emulator, database_url, live_service):
    """report --users --outcome unsatisfiable names fin.carol; --format csv has one row per (rule, user)."""
    env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
    deliver_logins(live_service, emulator, ("fin.alice", "fin.carol", "fin.frank"))
    for name in ("fin.alice", "fin.carol", "fin.frank"):
        wait_for_decision(live_service.engine, emulator.users[name])
    text = cli(env, "report", "--users", "--outcome", "unsatisfiable")
    assert text.returncode == 0, text.stderr
    assert "fin.carol" in text.stdout and emulator.users["fin.carol"] in text.stdout and "fin.alice" not in text.stdout
    rows = list(csv.DictReader(io.StringIO(cli(env, "report", "--users", "--format", "csv").stdout)))
    assert {(row["username"], row["outcome"]) for row in rows} == {
        ("fin.alice", "enforced"),
        ("fin.carol", "unsatisfiable"),
        ("fin.frank", "compliant"),
    }
    assert all(row["rule"] == "finance-sms" and "@acme.example" in row["email"] for row in rows)
    listed = report_json(env, "--users", "--rule", "finance-sms")["users_listed"]
    assert {entry["username"] for entry in listed} == {"fin.alice", "fin.carol", "fin.frank"}
    assert cli(env, "report", "--outcome", "nonsense").returncode == 2
    api = requests.get(
        f"{live_service.url}/api/report?users=1&outcome=enforced",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=5,
    ).json()
    assert [entry["username"] for entry in api["users_listed"]] == ["fin.alice"]


def test_users_are_found_by_id_username_email_or_phone(emulator, database_url, live_service):
    """explain, the admin API and replay --user accept the name an admin has, and resolve it to the user id."""
    env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
    carol = emulator.users["fin.carol"]
    for reference in (carol, "fin.carol", "fin.carol@acme.example"):
        result = cli(env, "explain", reference, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["user"]["id"] == carol
    alice_phone = emulator.state.user(emulator.users["fin.alice"])["phone"]
    by_phone = json.loads(cli(env, "explain", alice_phone, "--json").stdout)
    assert by_phone["user"]["id"] == emulator.users["fin.alice"] and alice_phone not in json.dumps(by_phone)
    missing = cli(env, "explain", "nobody.at.all")
    assert missing.returncode == 1 and "no user 'nobody.at.all'" in missing.stderr and "Traceback" not in missing.stderr

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    explained = requests.get(f"{live_service.url}/api/users/fin.carol/explain", headers=auth, timeout=10).json()
    assert explained["user"]["id"] == carol
    deliver_logins(live_service, emulator, ("fin.carol",))
    wait_for_decision(live_service.engine, carol)
    by_name = requests.get(f"{live_service.url}/api/users/fin.carol@acme.example/decisions", headers=auth, timeout=5)
    assert by_name.json()["user_id"] == carol and by_name.json()["decisions"]

    replayed = cli(env, "replay", "--user", "fin.carol", "--dry-run", "--json")
    assert json.loads(replayed.stdout)["users"] == [
        {
            "user_id": carol,
            "kind": "user",
            "userpool_id": emulator.state.userpool_id,
            "source": "user",
            "username": "fin.carol",
            "email": "fin.carol@acme.example",
        }
    ]
    no_genauth = {key: value for key, value in env.items() if not key.startswith("GENAUTH_ACCESS_KEY")}
    unknown = cli(no_genauth, "replay", "--user", "somebody.new", "--reason", "check")
    assert unknown.returncode == 1 and "GENAUTH_ACCESS_KEY_ID" in unknown.stderr


def test_explain_says_what_the_worker_would_do_and_how_to_fix_an_unsatisfiable_user(emulator, database_url):
    """explain writes nothing, so it says "would"; for fin.carol (no phone) it names the fix."""
    env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
    alice = cli(env, "explain", "fin.alice")
    assert "If the worker ran now: would-enforce — the worker would enable SMS (nothing was written)" in alice.stdout
    assert "enabled SMS" not in alice.stdout
    carol = cli(env, "explain", "fin.carol")
    assert "to fix: add a phone number to the user in GenAuth, or declare a fallback" in carol.stdout, carol.stdout
    assert emulator.journal.count("/api/v3/set-mfa-status") == 0


def test_reconcile_wait_blocks_until_the_worker_decided_everyone_then_summarises(emulator, database_url, live_service):
    """--wait returns once each enqueued user has a newer decision, with the per-rule summary (exit 0)."""
    env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
    result = cli(env, "reconcile", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    waited = json.loads(result.stdout)["waited"]
    assert waited["decided"] == 4 and waited["pending"] == 0 and waited["failed"] == 0
    assert waited["rules"]["finance-sms"] == {
        "compliant": 1,
        "enforced": 2,
        "pending": 0,
        "not-effective": 0,
        "would-enforce": 0,
        "held": 0,
        "unsatisfiable": 1,
        "overdue": 0,
        "exempt": 0,
        "protected": 0,
        "failed": 0,
        "removed": 0,
    }
    assert "waiting for the worker: 4/4 decided" in result.stderr


def test_reconcile_wait_exits_3_when_users_end_failed(emulator, database_url, settings):
    """With GenAuth refusing every write, the users to enforce are dead-lettered: --wait exits 3 and lists them."""
    quick = replace(settings, worker=replace(settings.worker, max_attempts=2, backoff_max=0.05))
    emulator.faults.add("status_500", path="set-mfa-status", times=None)
    with serve_service(quick, emulator, run_worker=True) as service:
        env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
        result = cli(env, "reconcile", "--wait", "--wait-timeout", "50")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "2 failed or dead-lettered" in result.stdout and emulator.users["fin.alice"] in result.stdout
        assert "dead-letters" in result.stdout and service.url


def test_a_dry_run_cannot_wait(emulator, database_url):
    env = service_env(emulator, database_url, POLICY_FILE=str(SHIPPED_POLICY))
    result = cli(env, "reconcile", "--dry-run", "--wait")
    assert result.returncode == 2 and "--wait" in result.stderr
