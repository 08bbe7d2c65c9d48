"""`mfa-enforcer reconcile` as operators run it: a subprocess against the emulator with thousands of users, on
SQLite and PostgreSQL. Counts are exact, GenAuth calls grow with the users in scope, a stopped sweep resumes
without redoing pages, a second sweep is refused, the dry run writes nothing, and the worker then enforces."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.app import build_worker
from service.policy.loading import load_policy
from service.store import sweeps
from service.store.engine import create_engine, prepare_database
from service.store.tables import decisions, work
from tests.conftest import WEBHOOK_SECRET

BIN = Path(sys.executable).parent
MEMBERS = "/api/v3/list-department-members"
USERS = "/api/v3/list-users"
SET_MFA = "/api/v3/set-mfa-status"
FINANCE_POLICY = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"
TWO_RULES = FINANCE_POLICY + (
    "  - name: corp-email\n    match: {email_domains: [corp.example]}\n    require_mfa: [EMAIL]\n"
)


def cli_env(emulator, database_url, policy_file, **extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env.update(
        GENAUTH_HOST=emulator.url,
        GENAUTH_ACCESS_KEY_ID=emulator.state.access_key_id,
        GENAUTH_ACCESS_KEY_SECRET=emulator.state.access_key_secret,
        GENAUTH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GENAUTH_USERPOOL_ID=emulator.state.userpool_id,
        GENAUTH_RATE_LIMIT="0",
        DATABASE_URL=database_url,
        POLICY_FILE=str(policy_file),
        ENFORCER_MIGRATE_ON_START="true",
        ENFORCER_BACKOFF_BASE="0.01",
    )
    env.update(extra)
    return env


def run_cli(env, *args, timeout=60):
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def add_people(state, count, department, prefix, domain="acme.example"):
    for i in range(count):
        state.add_user(username=f"{prefix}{i}", email=f"{prefix}{i}@{domain}", departments=[department])


def pages(emulator, path):
    numbers = []
    for entry in emulator.journal.entries(path):
        numbers.append(int(entry.query["page"][0]) if entry.query else entry.body["options"]["pagination"]["page"])
    return Counter(numbers)


def work_rows(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(work.c.user_id, work.c.reason)).all()
    finally:
        engine.dispose()


@pytest.fixture
def finance_policy(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(FINANCE_POLICY)
    return path


def test_reconcile_enqueues_exactly_the_users_in_scope_at_a_cost_proportional_to_them(
    emulator, database_url, finance_policy
):
    """1,504 Finance users in a 3,500-user pool: all enqueued once, in 31 member pages, with no user listing."""
    add_people(emulator.state, 1300, "finance", "f")
    add_people(emulator.state, 200, "finance-payroll", "p")
    add_people(emulator.state, 2000, "engineering", "e")
    emulator.journal.clear()
    result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["in_scope"], summary["enqueued"], summary["finished"]) == (1504, 1504, True)
    assert summary["rules"] == {"finance-sms": {"in_scope": 1504}}
    assert summary["to_enforce"] is None and summary["decided_by"] == "worker"
    assert pages(emulator, MEMBERS) == Counter(range(1, 32))
    assert emulator.journal.count(USERS) == 0
    assert len(emulator.journal.entries()) <= 31 + 6  # the pages, the token, resolving "finance"
    rows = work_rows(database_url)
    assert len(rows) == len({user_id for user_id, _ in rows}) == 1504
    assert {reason for _, reason in rows} == {"reconcile"}
    assert "reconcile: " in result.stderr  # plain progress lines off a terminal


def test_rules_without_departments_page_through_the_pool_and_users_are_counted_once(emulator, database_url, tmp_path):
    """A pool-wide rule pages list-users exactly; a user in scope of two rules is enqueued and counted once."""
    add_people(emulator.state, 900, "engineering", "c", domain="corp.example")
    add_people(emulator.state, 100, "finance", "k", domain="corp.example")
    policy = tmp_path / "policies.yaml"
    policy.write_text(TWO_RULES)
    emulator.journal.clear()
    result = run_cli(cli_env(emulator, database_url, policy), "reconcile", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    pool = len(emulator.state.user_ids())
    assert summary["in_scope"] == summary["enqueued"] == pool == 1006
    assert summary["rules"] == {"finance-sms": {"in_scope": 104}, "corp-email": {"in_scope": pool}}
    assert pages(emulator, USERS) == Counter(range(1, 22)) and pages(emulator, MEMBERS) == Counter(range(1, 4))
    assert len(work_rows(database_url)) == pool
    assert result.stderr == ""


def test_rule_option_limits_the_sweep_and_unknown_rules_are_listed(emulator, database_url, tmp_path):
    """--rule sweeps one rule's scope; an unknown name fails (exit 2) naming the rules there are."""
    policy = tmp_path / "policies.yaml"
    policy.write_text(TWO_RULES)
    env = cli_env(emulator, database_url, policy)
    result = run_cli(env, "reconcile", "--rule", "finance-sms", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["in_scope"] == 4 and emulator.journal.count(USERS) == 0
    wrong = run_cli(env, "reconcile", "--rule", "nope")
    assert wrong.returncode == 2
    assert "no rule named 'nope'; the rules are: finance-sms, corp-email" in wrong.stderr


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes_without_redoing_pages(emulator, database_url, finance_policy):
    """SIGINT mid-sweep exits 130 after the page in hand; the re-run resumes and each page is read once."""
    add_people(emulator.state, 1000, "finance", "f")
    emulator.faults.latency = 0.05
    env = cli_env(emulator, database_url, finance_policy)
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "reconcile", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        emulator.journal.wait_for(MEMBERS, count=4, timeout=30)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    first = json.loads(out)
    assert first["interrupted"] is True and first["finished"] is False
    assert 0 < first["in_scope"] < 1004 and "Traceback" not in err
    emulator.faults.latency = 0.0
    again = run_cli(env, "reconcile", "--json", "--quiet")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["resumed"] is True and second["sweep_id"] == first["sweep_id"]
    assert second["in_scope"] == 1004 and second["enqueued_this_run"] == 1004 - first["in_scope"]
    assert pages(emulator, MEMBERS) == Counter(range(1, 22))  # every page once, across both runs
    assert len(work_rows(database_url)) == 1004
    fresh = json.loads(run_cli(env, "reconcile", "--json", "--quiet").stdout)
    assert fresh["resumed"] is False and fresh["sweep_id"] != first["sweep_id"]  # a finished sweep is not resumed


def test_a_second_sweep_is_refused_while_one_holds_the_lock(emulator, database_url, finance_policy):
    """While another sweep holds the lock, reconcile exits 3 with a clear message and reads no pages."""
    engine = create_engine(database_url)
    prepare_database(engine)
    lease = sweeps.Lease(name=sweeps.SWEEP_LOCK, owner="other-host:42:1", ttl=120)
    assert sweeps.acquire_lock(engine, lease, now=time.time()) is None
    try:
        result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile")
    finally:
        sweeps.release_lock(engine, lease)
        engine.dispose()
    assert result.returncode == 3
    assert "another reconcile sweep is running" in result.stderr and "other-host:42:1" in result.stderr
    assert emulator.journal.count(MEMBERS) == 0


def test_genauth_failing_for_good_exits_1_and_keeps_progress(emulator, database_url, finance_policy):
    """When GenAuth keeps failing after retries, reconcile exits 1 saying progress is saved; a re-run resumes."""
    add_people(emulator.state, 120, "finance", "f")
    env = cli_env(emulator, database_url, finance_policy)
    emulator.faults.add("status_500", path=MEMBERS, times=None)
    result = run_cli(env, "reconcile")
    assert result.returncode == 1
    assert "progress is saved" in result.stderr and "Traceback" not in result.stderr
    emulator.faults.clear()
    again = run_cli(env, "reconcile", "--json", "--quiet")
    assert again.returncode == 0 and json.loads(again.stdout)["in_scope"] == 124


def test_dry_run_evaluates_and_prints_the_plan_without_writing(emulator, database_url, finance_policy, tmp_path):
    """--dry-run counts compliant, to-enforce and unsatisfiable users; nothing is enqueued or written anywhere."""
    result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    counts = {key: summary[key] for key in ("in_scope", "compliant", "to_enforce", "unsatisfiable", "exempt", "failed")}
    # fin.alice and fin.bob need SMS, fin.carol has no phone, fin.frank already has SMS.
    assert counts == {"in_scope": 4, "compliant": 1, "to_enforce": 2, "unsatisfiable": 1, "exempt": 0, "failed": 0}
    assert summary["rules"]["finance-sms"]["to_enforce"] == 2 and summary["enqueued"] == 0
    planned = {change["user_id"]: change["outcome"] for change in summary["changes"]}
    users = emulator.users
    assert planned == {
        users["fin.alice"]: "to_enforce",
        users["fin.bob"]: "to_enforce",
        users["fin.carol"]: "unsatisfiable",
    }
    assert emulator.journal.count(SET_MFA) == 0
    engine = create_engine(database_url)
    try:
        assert not sa.inspect(engine).has_table("work")  # the dry run never even prepared the database
    finally:
        engine.dispose()
    human = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--dry-run")
    assert "Dry run finished: nothing was enqueued or written." in human.stdout
    assert "to enforce" in human.stdout and users["fin.carol"] in human.stdout


def test_reconcile_then_the_worker_enforces_through_the_one_path(emulator, database_url, settings, finance_policy):
    """After reconcile, the worker's ordinary run records a decision per user, triggered by reconcile."""
    result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "4 user(s) in scope, 4 enqueued" in result.stdout and "worker decides" in result.stdout
    engine = create_engine(database_url)
    policy = load_policy(finance_policy)
    worker = build_worker(settings, engine, policy_getter=lambda: policy)
    try:
        assert worker.run_until_idle() == 4
        with engine.connect() as connection:
            rows = connection.execute(sa.select(decisions.c.trigger, decisions.c.action)).all()
    finally:
        worker.reconciler.client.close()
        engine.dispose()
    assert Counter(rows) == Counter(
        {("reconcile", "enforced"): 2, ("reconcile", "unsatisfiable"): 1, ("reconcile", "none"): 1}
    )
    assert emulator.journal.count(SET_MFA) == 2


def test_on_a_terminal_progress_is_a_bar_with_count_rate_and_eta(emulator, database_url, finance_policy):
    """With stderr on a terminal, reconcile redraws one bar line with the count, rate and ETA."""
    add_people(emulator.state, 300, "finance", "f")
    emulator.faults.latency = 0.02  # slow enough for the bar to be drawn more than once
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(BIN / "mfa-enforcer"), "reconcile", "--json"],
            env=cli_env(emulator, database_url, finance_policy),
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
        os.close(terminal)
        out, _ = process.communicate(timeout=60)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    assert process.returncode == 0 and json.loads(out)["in_scope"] == 304
    text = drawn.decode()
    assert "\r[" in text and "/304 listed" in text and "users/s" in text and "ETA" in text
